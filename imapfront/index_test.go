package imapfront

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

func readTestdata(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.eml: %v", err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// normalize makes structures from different paths comparable: empty maps
// and slices become nil, dates become UTC with their offset kept apart.
func normalizeEnvelope(env *imap.Envelope) (imap.Envelope, int) {
	e := *env
	_, off := e.Date.Zone()
	if !e.Date.IsZero() {
		e.Date = e.Date.UTC()
	}
	for _, l := range []*[]imap.Address{&e.From, &e.Sender, &e.ReplyTo, &e.To, &e.Cc, &e.Bcc} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(e.InReplyTo) == 0 {
		e.InReplyTo = nil
	}
	return e, off
}

func normalizeBody(bs imap.BodyStructure) imap.BodyStructure {
	nm := func(m map[string]string) map[string]string {
		if len(m) == 0 {
			return nil
		}
		return m
	}
	nd := func(d *imap.BodyStructureDisposition) *imap.BodyStructureDisposition {
		if d == nil {
			return nil
		}
		c := *d
		c.Params = nm(c.Params)
		return &c
	}
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		c := *bs
		c.Children = nil
		for _, ch := range bs.Children {
			c.Children = append(c.Children, normalizeBody(ch))
		}
		ext := *bs.Extended
		ext.Params = nm(ext.Params)
		ext.Disposition = nd(ext.Disposition)
		c.Extended = &ext
		return &c
	case *imap.BodyStructureSinglePart:
		c := *bs
		c.Params = nm(c.Params)
		ext := *bs.Extended
		ext.Disposition = nd(ext.Disposition)
		c.Extended = &ext
		if m := bs.MessageRFC822; m != nil {
			mc := *m
			env, _ := normalizeEnvelope(m.Envelope)
			mc.Envelope = &env
			mc.BodyStructure = normalizeBody(m.BodyStructure)
			c.MessageRFC822 = &mc
		}
		return &c
	}
	return bs
}

func TestIndexMatchesExtract(t *testing.T) {
	for name, raw := range readTestdata(t) {
		t.Run(name, func(t *testing.T) {
			b, err := Index(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("Index: %v", err)
			}
			if b[0] != indexVersion4 {
				t.Fatalf("version byte %d", b[0])
			}
			idx, err := decodeIndex(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			gotEnv, gotOff := normalizeEnvelope(idx.Envelope)
			wantEnv, wantOff := normalizeEnvelope(extractEnvelope(h))
			if !reflect.DeepEqual(gotEnv, wantEnv) || gotOff != wantOff {
				t.Errorf("envelope:\n got %+v (%d)\nwant %+v (%d)", gotEnv, gotOff, wantEnv, wantOff)
			}
			want := normalizeBody(sanitizeBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(raw)), 0))
			if got := normalizeBody(idx.BodyStructure); !reflect.DeepEqual(got, want) {
				t.Errorf("body structure:\n got %#v\nwant %#v", got, want)
			}
			if d, ok := indexSentDate(b); !ok || !d.Equal(idx.Envelope.Date) {
				t.Errorf("sent date %v %v", d, ok)
			}
			fields, ok := indexSearchFields(b)
			if !ok {
				t.Fatal("no search fields")
			}
			for _, key := range searchFields {
				var got []string
				for _, f := range fields {
					if f.key == key {
						got = append(got, f.value)
					}
				}
				if want := h.Values(key); !reflect.DeepEqual(got, want) {
					t.Errorf("search field %s: got %q, want %q", key, got, want)
				}
			}
		})
	}
}

// TestIndexOlderVersions: records written before version 3 (version 1,
// before the search fields; version 2, before groups were kept) are not
// used for ENVELOPE or BODYSTRUCTURE (FETCH parses the message, and
// IndexCurrent tells Bridge.Reindex to rewrite them), while their Date
// and, from version 2, their search fields still serve SEARCH. Version 3
// records (no header block) serve ENVELOPE and BODYSTRUCTURE but are not
// current, so Reindex adds the header block.
func TestIndexOlderVersions(t *testing.T) {
	raw := readTestdata(t)["multipart.eml"]
	v4, err := Index(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !IndexCurrent(v4) {
		t.Fatalf("IndexCurrent(Index(...)) is false; version byte %d", v4[0])
	}
	old := map[string][]byte{}
	for name, v := range map[string]byte{"version 1": indexVersion1, "version 2": indexVersion2, "version 3": indexVersion3} {
		b, err := indexWith(bytes.NewReader(raw), v, extractEnvelope)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = b
	}
	cur, err := decodeIndex(v4)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range old {
		if IndexCurrent(b) {
			t.Errorf("%s: IndexCurrent is true", name)
		}
		if d, ok := indexSentDate(b); !ok || !d.Equal(cur.Envelope.Date) {
			t.Errorf("%s: sent date %v %v, want %v", name, d, ok, cur.Envelope.Date)
		}
	}
	for _, name := range []string{"version 1", "version 2"} {
		if _, err := decodeIndex(old[name]); !errors.Is(err, errBadIndex) {
			t.Errorf("%s: decodeIndex = %v, want errBadIndex", name, err)
		}
	}
	v3, err := decodeIndex(old["version 3"])
	if err != nil {
		t.Fatalf("version 3: %v", err)
	}
	if !reflect.DeepEqual(v3, cur) {
		t.Errorf("version 3 decodes to\n%#v\nwant\n%#v", v3, cur)
	}
	if mi, err := openMessageIndex(old["version 3"]); err != nil {
		t.Fatal(err)
	} else if _, ok := mi.Header(); ok {
		t.Error("version 3: a header block read")
	}
	if _, ok := indexSearchFields(old["version 1"]); ok {
		t.Error("search fields read from a version 1 record")
	}
	for _, name := range []string{"version 2", "version 3"} {
		if f, ok := indexSearchFields(old[name]); !ok || len(f) == 0 {
			t.Errorf("no search fields read from a %s record", name)
		}
	}
	if f, ok := indexSearchFields(v4); !ok || len(f) == 0 {
		t.Error("no search fields read from a version 4 record")
	}
}

// TestIndexSearchFieldsTooLarge: a message whose search fields exceed the
// bound keeps none (SEARCH reads its header), and the rest of the index is
// whole.
func TestIndexSearchFieldsTooLarge(t *testing.T) {
	to := "To: " + strings.Repeat("someone@example.org, ", maxSearchFieldBytes/20) + "last@example.org\r\n"
	b, err := Index(strings.NewReader("From: a@example.org\r\n" + to + "Subject: big\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := indexSearchFields(b); ok {
		t.Error("search fields kept past the bound")
	}
	idx, err := decodeIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Envelope.Subject != "big" || len(idx.Envelope.To) < maxSearchFieldBytes/20 {
		t.Errorf("envelope: subject %q, %d To addresses", idx.Envelope.Subject, len(idx.Envelope.To))
	}
}

func TestIndexBrokenMultipart(t *testing.T) {
	raw := "Subject: broken\r\nContent-Type: multipart/mixed; boundary=nowhere\r\n\r\nno parts at all\r\n"
	b, err := Index(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := decodeIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	mp, ok := idx.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 1 || mp.Children[0].MediaType() != "text/plain" {
		t.Fatalf("want a multipart with one empty text/plain part, got %#v", idx.BodyStructure)
	}
}

func TestDecodeIndexRejectsGarbage(t *testing.T) {
	good, err := Index(strings.NewReader("Subject: x\r\nDate: Tue, 05 Mar 2024 10:00:00 +0100\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(good); i++ {
		if _, err := decodeIndex(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	for _, b := range [][]byte{nil, {0}, {2, 0, 0}, {1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := decodeIndex(b); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
	if _, ok := indexSentDate([]byte{9}); ok {
		t.Error("unknown version read")
	}
	if _, ok := indexSentDate(nil); ok {
		t.Error("nil index read")
	}
}

func TestIndexDateKeepsZone(t *testing.T) {
	b, err := Index(strings.NewReader("Date: Fri, 08 Mar 2024 23:30:00 -0800\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := indexSentDate(b)
	if !ok {
		t.Fatal("no date")
	}
	if _, off := d.Zone(); off != -8*3600 || d.Day() != 8 || !d.Equal(time.Date(2024, 3, 9, 7, 30, 0, 0, time.UTC)) {
		t.Errorf("date %v", d)
	}
}

func FuzzIndex(f *testing.F) {
	for _, raw := range readTestdata(f) {
		f.Add(raw)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/x; boundary=b\r\n\r\n--b\r\n\r\n--b--\r\n--a--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := Index(bytes.NewReader(raw))
		if err != nil {
			return
		}
		if _, err := decodeIndex(b); err != nil {
			t.Fatalf("Index output does not decode: %v", err)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	for _, raw := range readTestdata(f) {
		if b, err := Index(bytes.NewReader(raw)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeIndex(b) // must not panic, whatever b holds
		indexSentDate(b)
		indexSearchFields(b)
	})
}

func TestBinarySection(t *testing.T) {
	raw := readTestdata(t)["multipart.eml"]
	tests := []struct {
		part []int
		want string
		err  bool
	}{
		{[]int{1, 1}, "Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9fe, the quarterly figures are attached.", false},
		{[]int{2}, "%PDF-1.4\n%\xc7\xec\x8f\xa2\n1 0 obj\n<</Type/Catalog>>\nendobj\n", false},
		{[]int{9}, "", false},
	}
	for _, tt := range tests {
		got, err := binarySection(raw, tt.part)
		if (err != nil) != tt.err || string(got) != tt.want {
			t.Errorf("BINARY%v = %q, %v; want %q", tt.part, got, err, tt.want)
		}
	}
	if _, err := binarySection([]byte("Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"), []int{1}); err == nil {
		t.Error("unknown CTE: no error")
	}
}

func TestCharsetReader(t *testing.T) {
	tests := []struct{ charset, in, want string }{
		{"ISO-8859-1", "M\xfcnchen", "München"},
		{"windows-1252", "\x93quoted\x94 \x80", "\u201cquoted\u201d €"},
		{"iso-8859-15", "\xa4", "€"},
		{"utf-8", "ü", "ü"},
	}
	for _, tt := range tests {
		r, err := charsetReader(tt.charset, strings.NewReader(tt.in))
		if err != nil {
			t.Fatalf("%s: %v", tt.charset, err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(r)
		if buf.String() != tt.want {
			t.Errorf("%s: %q, want %q", tt.charset, buf.String(), tt.want)
		}
	}
	if _, err := charsetReader("koi8-r", strings.NewReader("")); err == nil {
		t.Error("koi8-r: no error")
	}
}
