package imapfront

import (
	"bufio"
	"io"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// AddressCases are the address-list forms of the ENVELOPE tests, for the
// wire-level test in package imapfront_test.
var AddressCases = addressCasesList

// IndexVersion2 is Index as it was before version 3: go-imap's ENVELOPE,
// which drops group markers, under version byte 2. It writes the store an
// older release left behind, for the upgrade tests.
func IndexVersion2(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	header, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, err
	}
	env := imapserver.ExtractEnvelope(header)
	bs := sanitizeBodyStructure(bodyStructure(header, br), 0)
	var w indexWriter
	w.buf = append(w.buf, indexVersion2)
	w.searchFields(header)
	w.envelope(env)
	w.body(bs, 0)
	return w.buf, nil
}
