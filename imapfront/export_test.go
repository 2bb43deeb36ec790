package imapfront

import (
	"io"

	"github.com/emersion/go-imap/v2/imapserver"
)

// AddressCases are the address-list forms of the ENVELOPE tests, for the
// wire-level test in package imapfront_test.
var AddressCases = addressCasesList

// IndexVersion2 is Index as it was before version 3: go-imap's ENVELOPE,
// which drops group markers, under version byte 2. It writes the store an
// older release left behind, for the upgrade tests.
func IndexVersion2(r io.Reader) ([]byte, error) {
	return indexWith(r, indexVersion2, imapserver.ExtractEnvelope)
}
