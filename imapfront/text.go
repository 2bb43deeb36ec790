package imapfront

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// searchText is a message's text as SEARCH sees it: header fields with
// encoded words decoded, and the decoded text of every text/* part
// (transfer encoding and charset undone, encapsulated messages included),
// all lower-cased for case-insensitive matching.
type searchText struct {
	header textproto.Header
	fields string // "key: value\n" for every field, decoded, lower-cased
	body   string // decoded body text, lower-cased
}

// maxSearchDepth bounds how deep SEARCH follows nested parts.
const maxSearchDepth = 32

func extractSearchText(raw []byte) *searchText {
	st := &searchText{}
	br := bufio.NewReader(bytes.NewReader(raw))
	h, _ := textproto.ReadHeader(br)
	st.header = h
	st.fields = strings.ToLower(headerText(h))
	var body strings.Builder
	ent, err := gomessage.New(gomessage.Header{Header: h}, br)
	if ent == nil {
		body.Write(raw)
	} else {
		appendEntityText(&body, ent, err, 0)
	}
	st.body = strings.ToLower(body.String())
	return st
}

// headerText renders decoded header fields, one per line.
func headerText(h textproto.Header) string {
	var b strings.Builder
	for f := h.Fields(); f.Next(); {
		b.WriteString(f.Key())
		b.WriteString(": ")
		b.WriteString(decodeWords(f.Value()))
		b.WriteByte('\n')
	}
	return b.String()
}

var wordDecoder = mime.WordDecoder{CharsetReader: charsetReader}

// decodeWords decodes RFC 2047 encoded words; undecodable input is kept.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// appendEntityText adds the text of an entity: a text/* body, the parts of
// a multipart, the header and text of an encapsulated message. newErr is
// what gomessage.New reported: an unknown charset leaves the body undecoded
// (but transfer-decoded), and it is converted here if the charset is one
// this package knows.
func appendEntityText(b *strings.Builder, e *gomessage.Entity, newErr error, depth int) {
	if depth > maxSearchDepth {
		return
	}
	mt, params, _ := e.Header.ContentType()
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		mr := e.MultipartReader()
		if mr == nil {
			return
		}
		for {
			p, err := mr.NextPart()
			if p == nil {
				return // io.EOF, or a broken part: stop here
			}
			appendEntityText(b, p, err, depth+1)
		}
	case mt == "message/rfc822" || mt == "message/global":
		inner, err := gomessage.Read(e.Body)
		if inner == nil {
			return
		}
		b.WriteString(headerText(inner.Header.Header))
		appendEntityText(b, inner, err, depth+1)
	case mt == "" || strings.HasPrefix(mt, "text/"):
		var r io.Reader = e.Body
		if gomessage.IsUnknownCharset(newErr) {
			if cr, err := charsetReader(params["charset"], r); err == nil {
				r = cr
			}
		}
		data, _ := io.ReadAll(io.LimitReader(r, 64<<20))
		b.Write(bytes.ToValidUTF8(data, []byte("\uFFFD")))
		b.WriteByte('\n')
	}
}

// charsetReader converts the charsets mail most often uses besides UTF-8
// to UTF-8, without a global registry (go-message's CharsetReader is a
// package variable, which a library must not set).
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	case "iso-8859-1", "iso8859-1", "latin1", "l1", "iso_8859-1", "cp819":
		return &singleByteReader{r: r, table: nil}, nil
	case "windows-1252", "cp1252":
		return &singleByteReader{r: r, table: &cp1252}, nil
	case "iso-8859-15", "iso8859-15", "latin-9", "latin9":
		return &singleByteReader{r: r, table: &latin9}, nil
	}
	return nil, fmt.Errorf("imapfront: charset %q not supported", charset)
}

// singleByteReader decodes a single-byte charset: Latin-1, with table
// overriding the code points that differ (0x80–0xBF).
type singleByteReader struct {
	r     io.Reader
	table *[64]rune
	buf   []byte
	out   []byte
}

func (s *singleByteReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if cap(s.buf) == 0 {
			s.buf = make([]byte, 4096)
		}
		n, err := s.r.Read(s.buf[:cap(s.buf)])
		for _, c := range s.buf[:n] {
			r := rune(c)
			if s.table != nil && c >= 0x80 && c < 0xC0 {
				r = s.table[c-0x80]
			}
			s.out = utf8.AppendRune(s.out, r)
		}
		if n == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

var cp1252, latin9 [64]rune

func init() {
	for i := range cp1252 {
		cp1252[i] = rune(0x80 + i)
		latin9[i] = rune(0x80 + i)
	}
	copy(cp1252[:], []rune{
		0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
		0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
	})
	for c, r := range map[int]rune{0xA4: 0x20AC, 0xA6: 0x0160, 0xA8: 0x0161, 0xB4: 0x017D, 0xB8: 0x017E, 0xBC: 0x0152, 0xBD: 0x0153, 0xBE: 0x0178} {
		latin9[c-0x80] = r
	}
}
