package imapfront

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// bodyStructure computes a message's extended BODYSTRUCTURE from its
// parsed header and the reader positioned at its body. It gives the same
// tree as go-imap's imapserver.ExtractBodyStructure (FuzzBodyStructure
// holds the two equal) at a fraction of the cost: go-imap reads every
// leaf part into memory to measure it, which at ingest means allocating
// the whole of every attachment once more; here a leaf is streamed through
// a counter of bytes and lines, and only message/rfc822 parts, whose
// header must be parsed, are read whole.
func bodyStructure(h textproto.Header, r io.Reader) imap.BodyStructure {
	header := gomessage.Header{Header: h}
	mediaType, params, _ := header.ContentType()
	typ, sub, _ := strings.Cut(mediaType, "/")
	if typ == "multipart" {
		mp := &imap.BodyStructureMultiPart{Subtype: sub}
		mr := textproto.NewMultipartReader(r, params["boundary"])
		for {
			part, _ := mr.NextPart()
			if part == nil {
				break
			}
			mp.Children = append(mp.Children, bodyStructure(part.Header, part))
		}
		mp.Extended = &imap.BodyStructureMultiPartExt{
			Params:      params,
			Disposition: disposition(header),
			Language:    language(header),
			Location:    header.Get("Content-Location"),
		}
		return mp
	}
	sp := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     sub,
		Params:      params,
		ID:          header.Get("Content-Id"),
		Description: header.Get("Content-Description"),
		Encoding:    header.Get("Content-Transfer-Encoding"),
	}
	if mediaType == "message/rfc822" || mediaType == "message/global" {
		body, _ := io.ReadAll(r)
		sp.Size = uint32(len(body))
		br := bufio.NewReader(bytes.NewReader(body))
		inner, _ := textproto.ReadHeader(br)
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      extractEnvelope(inner),
			BodyStructure: bodyStructure(inner, br),
			NumLines:      int64(bytes.Count(body, []byte("\n"))),
		}
	} else {
		size, lines := countBody(r)
		sp.Size = uint32(size)
		if typ == "text" {
			sp.Text = &imap.BodyStructureText{NumLines: lines}
		}
	}
	sp.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: disposition(header),
		Language:    language(header),
		Location:    header.Get("Content-Location"),
	}
	return sp
}

// countBufs are the buffers countBody reads through.
var countBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// countBody reads r to its end (or first error, as io.ReadAll would stop)
// and returns how many bytes and newlines it held.
func countBody(r io.Reader) (size, lines int64) {
	buf := countBufs.Get().(*[]byte)
	defer countBufs.Put(buf)
	for {
		n, err := r.Read(*buf)
		size += int64(n)
		lines += int64(bytes.Count((*buf)[:n], []byte{'\n'}))
		if err != nil {
			return size, lines
		}
	}
}

func disposition(h gomessage.Header) *imap.BodyStructureDisposition {
	value, params, _ := h.ContentDisposition()
	if value == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: value, Params: params}
}

func language(h gomessage.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	langs := strings.Split(v, ",")
	for i := range langs {
		langs[i] = strings.TrimSpace(langs[i])
	}
	return langs
}
