package imapfront_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// oracle is go-imap's in-memory server holding the same message: what it
// answers (through the same imapclient) is what imapserver.Extract* give,
// the reference for ENVELOPE, BODYSTRUCTURE and body sections.
func oracle(t *testing.T, msgs ...string) *imapclient.Client {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("alice", password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       discardPrintf{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", password).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		cmd := c.Append("INBOX", int64(len(m)), nil)
		cmd.Write([]byte(m))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func forwardedMsg(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "forwarded.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type discardPrintf struct{}

func (discardPrintf) Printf(string, ...any) {}

func fetchOne(t *testing.T, c *imapclient.Client, set imap.NumSet, opts *imap.FetchOptions) *imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, opts).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("FETCH returned %d messages", len(msgs))
	}
	return msgs[0]
}

func section(spec string) *imap.FetchItemBodySection {
	s := &imap.FetchItemBodySection{Peek: true}
	name, partial, _ := strings.Cut(spec, "<")
	if partial != "" {
		var off, n int64
		fmt.Sscanf(partial, "%d.%d>", &off, &n)
		s.Partial = &imap.SectionPartial{Offset: off, Size: n}
	}
	for name != "" {
		head, rest, _ := strings.Cut(name, ".")
		var n int
		if _, err := fmt.Sscanf(head, "%d", &n); err != nil {
			break
		}
		s.Part = append(s.Part, n)
		name = rest
	}
	switch {
	case name == "":
	case strings.HasPrefix(name, "HEADER.FIELDS.NOT "):
		s.Specifier = imap.PartSpecifierHeader
		s.HeaderFieldsNot = strings.Fields(strings.TrimPrefix(name, "HEADER.FIELDS.NOT "))
	case strings.HasPrefix(name, "HEADER.FIELDS "):
		s.Specifier = imap.PartSpecifierHeader
		s.HeaderFields = strings.Fields(strings.TrimPrefix(name, "HEADER.FIELDS "))
	default:
		s.Specifier = imap.PartSpecifier(name)
	}
	return s
}

var sectionSpecs = []string{
	"", "HEADER", "TEXT", "HEADER.FIELDS Subject From", "HEADER.FIELDS.NOT Subject Date",
	"1", "2", "1.1", "1.2", "1.MIME", "1.1.MIME", "2.MIME", "3", "1.3",
	"<0.20>", "<10.30>", "TEXT<5.10>", "<100000.10>", "2<3.7>",
	// For the forwarded message (a message/rfc822 part 2).
	"2.HEADER", "2.TEXT", "2.1", "2.2", "2.1.MIME", "2.HEADER.FIELDS Subject",
}

func TestFetchMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []envOption
	}{
		{"with index", nil},
		{"without index", []envOption{withoutIndex()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := []string{multipartMsg, simpleMsg(1), latin1Msg, forwardedMsg(t)}
			e := newEnv(t, tc.opts...)
			e.deliver("alice", msgs...)
			c := e.client("alice")
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			ref := oracle(t, msgs...)
			opts := &imap.FetchOptions{
				Envelope:      true,
				BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
			}
			for _, spec := range sectionSpecs {
				opts.BodySection = append(opts.BodySection, section(spec))
			}
			for i := range msgs {
				seq := imap.SeqSetNum(uint32(i + 1))
				got := fetchOne(t, c, seq, opts)
				want := fetchOne(t, ref, seq, opts)
				if !reflect.DeepEqual(got.Envelope, want.Envelope) {
					t.Errorf("message %d ENVELOPE:\n got %+v\nwant %+v", i+1, got.Envelope, want.Envelope)
				}
				if !reflect.DeepEqual(got.BodyStructure, want.BodyStructure) {
					t.Errorf("message %d BODYSTRUCTURE:\n got %#v\nwant %#v", i+1, got.BodyStructure, want.BodyStructure)
				}
				for j, sec := range opts.BodySection {
					g, w := got.FindBodySection(sec), want.FindBodySection(sec)
					if !bytes.Equal(g, w) {
						t.Errorf("message %d BODY[%s]:\n got %q\nwant %q", i+1, sectionSpecs[j], g, w)
					}
				}
				if g := got.FindBodySection(section("")); string(g) != msgs[i] {
					t.Errorf("message %d BODY[] is not the delivered message", i+1)
				}
			}
			// Non-extended BODY too.
			got := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}})
			want := fetchOne(t, ref, imap.SeqSetNum(1), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}})
			if !reflect.DeepEqual(got.BodyStructure, want.BodyStructure) {
				t.Errorf("BODY:\n got %#v\nwant %#v", got.BodyStructure, want.BodyStructure)
			}
		})
	}
}

func TestFetchEnvelopeDecoded(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", multipartMsg)
	c := e.client("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	if m.Envelope.Subject != "Grüße aus München" {
		t.Errorf("subject %q", m.Envelope.Subject)
	}
	if len(m.Envelope.From) != 1 || m.Envelope.From[0].Name != "Jörg Müller" || m.Envelope.From[0].Addr() != "joerg@example.de" {
		t.Errorf("from %+v", m.Envelope.From)
	}
	if m.Envelope.MessageID != "mp-1@example.de" || !reflect.DeepEqual(m.Envelope.InReplyTo, []string{"note-1@example.org"}) {
		t.Errorf("ids %q %q", m.Envelope.MessageID, m.Envelope.InReplyTo)
	}
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Fatalf("body structure %#v", m.BodyStructure)
	}
	att := mp.Children[1].(*imap.BodyStructureSinglePart)
	if att.Filename() != "figures.pdf" || att.Disposition().Value != "attachment" {
		t.Errorf("attachment %#v", att)
	}
}

func TestFetchItems(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), multipartMsg)
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	size1 := len(simpleMsg(1))
	tests := []struct {
		cmd  string
		want []string
	}{
		{"FETCH 1 (FLAGS UID RFC822.SIZE INTERNALDATE)", []string{
			// The source's date, in the zone it came in.
			fmt.Sprintf(`* 1 FETCH (UID 1 FLAGS (\Recent) INTERNALDATE " 5-Mar-2024 10:00:00 +0000" RFC822.SIZE %d)`, size1),
		}},
		{"UID FETCH 2 (FLAGS)", []string{`* 2 FETCH (UID 2 FLAGS (\Recent))`}},
		{"FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])", []string{
			"* 1 FETCH (BODY[HEADER.FIELDS (\"SUBJECT\")] {19}\r\nSubject: note 1\r\n\r\n)",
		}},
		{"FETCH 1 (BODY.PEEK[]<0.6>)", []string{"* 1 FETCH (BODY[]<0> {6}\r\nFrom: )"}},
		{"FETCH 1 (BODY.PEEK[TEXT]<8.6>)", []string{"* 1 FETCH (BODY[TEXT]<8> {6}\r\nnote n)"}},
		{"FETCH 1 (BODY.PEEK[]<9999.5>)", []string{"* 1 FETCH (BODY[]<9999> {0}\r\n)"}},
		{"FETCH 2 (BINARY.PEEK[2] BINARY.SIZE[2])", []string{
			"* 2 FETCH (BINARY[2] ~{" + fmt.Sprint(len(pdfBytes)) + "}\r\n" + string(pdfBytes) + fmt.Sprintf(" BINARY.SIZE[2] %d)", len(pdfBytes)),
		}},
		{"FETCH 2 (BINARY.PEEK[1.1]<0.12>)", []string{"* 2 FETCH (BINARY[1.1] ~{12}\r\nSchöne Grü)"}},
		{"FETCH 2 (RFC822.HEADER)", []string{
			"* 2 FETCH (RFC822.HEADER {" + fmt.Sprint(strings.Index(multipartMsg, "\r\n\r\n")+4) + "}\r\n" + multipartMsg[:strings.Index(multipartMsg, "\r\n\r\n")+4] + ")",
		}},
		{"FETCH 3 (FLAGS)", nil}, // BAD: checked below
		{"FETCH 1:* (FLAGS)", []string{`* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`}},
		{"FETCH * (UID)", []string{`* 2 FETCH (UID 2)`}},
		{"UID FETCH 5:* (UID)", []string{`* 2 FETCH (UID 2)`}},
		{"FETCH 1 (MODSEQ)", nil}, // BAD: checked below
	}
	for _, tt := range tests {
		got, status := c.cmd(tt.cmd)
		if tt.cmd == "FETCH 1 (MODSEQ)" || tt.cmd == "FETCH 3 (FLAGS)" {
			if !strings.HasPrefix(status, "BAD") {
				t.Errorf("%s: %s", tt.cmd, status)
			}
			continue
		}
		if !strings.HasPrefix(status, "OK") {
			t.Errorf("%s: %s", tt.cmd, status)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.cmd, got, tt.want)
		}
	}
}

var pdfBytes, _ = base64.StdEncoding.DecodeString("JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK")

func TestFetchBinaryKeepsCharset(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", latin1Msg)
	c := e.client("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sec := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{sec}})
	if got := string(m.FindBinarySection(sec)); got != "Viele Gr\xfc\xdfe aus M\xfcnchen\r\n" {
		t.Errorf("BINARY[1] = %q", got)
	}
}

func TestFetchSetsSeen(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2))
	c := e.raw()
	c.login("alice")

	c.ok("EXAMINE INBOX")
	got := c.ok("FETCH 1 (BODY[TEXT])")
	want := "* 1 FETCH (BODY[TEXT] {24}\r\nThis is note number 1.\r\n)"
	if len(got) != 1 || got[0] != want {
		t.Errorf("read-only FETCH: %q", got)
	}
	// Nobody has taken the new messages as recent: EXAMINE shows them so
	// and takes nothing.
	if got := c.ok("FETCH 1 (FLAGS)"); got[0] != `* 1 FETCH (FLAGS (\Recent))` {
		t.Errorf("EXAMINE set \\Seen: %q", got)
	}

	c.ok("SELECT INBOX")
	got = c.ok("FETCH 1 (BODY[TEXT])")
	want = "* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT] {24}\r\nThis is note number 1.\r\n)"
	if len(got) != 1 || got[0] != want {
		t.Errorf("first FETCH:\n got %q\nwant %q", got, want)
	}
	got = c.ok("FETCH 1 (BODY[TEXT])")
	want = "* 1 FETCH (BODY[TEXT] {24}\r\nThis is note number 1.\r\n)"
	if len(got) != 1 || got[0] != want {
		t.Errorf("second FETCH: %q", got)
	}
	got = c.ok("UID FETCH 2 (RFC822.TEXT)")
	want = "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) RFC822.TEXT {24}\r\nThis is note number 2.\r\n)"
	if len(got) != 1 || got[0] != want {
		t.Errorf("RFC822.TEXT:\n got %q\nwant %q", got, want)
	}
	if got := c.ok("FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (X-None)] FLAGS)"); got[0] != "* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[HEADER.FIELDS (\"X-None\")] {2}\r\n\r\n)" {
		t.Errorf("peek: %q", got)
	}
}
