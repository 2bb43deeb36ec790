package imapfront

import (
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// headerItems are the header sections FETCH serves from the index: what
// Thunderbird, K-9, mutt and Apple Mail ask for, the NOT form, RFC822.HEADER
// (BODY.PEEK[HEADER]) and partial ranges of each.
var headerItems = []*imap.FetchItemBodySection{
	{Specifier: imap.PartSpecifierHeader, Peek: true},
	{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Priority", "X-Priority", "References", "Newsgroups", "In-Reply-To", "Content-Type", "Reply-To"}, Peek: true},
	{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject"}},
	{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Latin1", "x-mixed", "REFERENCES"}},
	{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"No-Such-Field"}},
	{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Received", "Subject", "references"}},
	{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject", "Date"}, HeaderFieldsNot: []string{"subject"}},
	{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"\u212aey", "fr\u00f6m"}},
	{Specifier: imap.PartSpecifierHeader, Partial: &imap.SectionPartial{Offset: 0, Size: 10}},
	{Specifier: imap.PartSpecifierHeader, Partial: &imap.SectionPartial{Offset: 7, Size: 1 << 20}},
	{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject"}, Partial: &imap.SectionPartial{Offset: 3, Size: 5}},
}

// checkHeaderFromIndex compares what FETCH answers each of headerItems
// from raw's index with what the whole message gives.
func checkHeaderFromIndex(t *testing.T, raw []byte) {
	t.Helper()
	b, err := Index(bytes.NewReader(raw))
	if err != nil {
		return // no index: FETCH reads the message
	}
	mi, err := openMessageIndex(b)
	if err != nil {
		t.Fatalf("index does not open: %v", err)
	}
	hdr, ok := mi.Header()
	if !ok {
		if len(raw) <= maxHeaderKeep {
			t.Fatalf("no header block kept for a %d-byte message", len(raw))
		}
		return
	}
	if !bytes.HasPrefix(raw, hdr) {
		t.Fatalf("header block is not a prefix of the message:\n%q", hdr)
	}
	for _, item := range headerItems {
		got := imapserver.ExtractBodySection(bytes.NewReader(hdr), item)
		want := imapserver.ExtractBodySection(bytes.NewReader(raw), item)
		if !bytes.Equal(got, want) {
			t.Errorf("%+v:\n got %q\nwant %q", item, got, want)
		}
		if fast, ok := headerSection(hdr, item); ok && !bytes.Equal(fast, want) {
			t.Errorf("%+v, without parsing:\n got %q\nwant %q", item, fast, want)
		}
	}
}

// TestHeaderFromIndexMatchesMessage: every header section FETCH serves
// from the stored header block is byte for byte what the whole message
// gives, over the corpus (odd headers among it: no body, no blank line,
// no header, bare LF, 15 KB lines, 400-line folds, 8-bit bytes).
func TestHeaderFromIndexMatchesMessage(t *testing.T) {
	for name, raw := range readTestdata(t) {
		t.Run(name, func(t *testing.T) { checkHeaderFromIndex(t, raw) })
	}
}

// TestHeaderTooLargeNotKept: a header past maxHeaderKeep is not kept (its
// header fetches read the message), and the rest of the index is whole.
func TestHeaderTooLargeNotKept(t *testing.T) {
	var raw bytes.Buffer
	raw.WriteString("Subject: huge\r\n")
	for raw.Len() <= maxHeaderKeep {
		raw.WriteString("X-Filler: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n")
	}
	raw.WriteString("\r\nbody\r\n")
	b, err := Index(bytes.NewReader(raw.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	mi, err := openMessageIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mi.Header(); ok {
		t.Error("a header past the bound was kept")
	}
	if env, err := mi.Envelope(); err != nil || env.Subject != "huge" {
		t.Errorf("envelope %+v, %v", env, err)
	}
}

func FuzzHeaderFromIndex(f *testing.F) {
	for _, raw := range readTestdata(f) {
		f.Add(raw)
	}
	f.Add([]byte("A: b\nC: d\r\n\n"))
	f.Add([]byte("A: b\r\n c\r\n\r"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, raw []byte) { checkHeaderFromIndex(t, raw) })
}
