package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

func TestPOP3Content(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"crlf unchanged", "a\r\nb\r\n", "a\r\nb\r\n"},
		{"bare lf", "a\nb\n", "a\r\nb\r\n"},
		{"mixed", "a\r\nb\nc\r\n", "a\r\nb\r\nc\r\n"},
		{"no final newline", "a\r\nb", "a\r\nb\r\n"},
		{"final cr only", "a\r", "a\r\r\n"},
		{"lone lf", "\n", "\r\n"},
		{"blank lines", "\n\n\r\n\n", "\r\n\r\n\r\n\r\n"},
		{"cr inside line", "a\rb\r\n", "a\rb\r\n"},
		{"dots untouched", ".\r\n..\n", ".\r\n..\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in)), iotest.HalfReader(strings.NewReader(tc.in))} {
				got, err := io.ReadAll(bridge.POP3Content(r))
				if err != nil || string(got) != tc.want {
					t.Fatalf("POP3Content(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
			}
		})
	}
}

// FuzzPOP3Content: the output has only CRLF line endings, ends in CRLF
// (unless empty), loses no byte but adds CRs, and is a fixed point.
func FuzzPOP3Content(f *testing.F) {
	for _, s := range []string{"", "a\nb", "\r\n", "x\r\r\n\n", ".\n..\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(bridge.POP3Content(bytes.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		if len(in) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Fatalf("%q does not end in CRLF", out)
		}
		for i, c := range out {
			if c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d of %q", i, out)
			}
		}
		if stripped := bytes.ReplaceAll(out, []byte("\r"), nil); !bytes.HasPrefix(stripped, bytes.ReplaceAll(in, []byte("\r"), nil)) {
			t.Fatalf("%q lost bytes of %q", out, in)
		}
		again, _ := io.ReadAll(bridge.POP3Content(bytes.NewReader(out)))
		if !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %q → %q", out, again)
		}
		if want := refPOP3Content(in); !bytes.Equal(out, want) {
			t.Fatalf("POP3Content(%q) = %q, the reference gives %q", in, out, want)
		}
		for _, r := range []io.Reader{iotest.OneByteReader(bytes.NewReader(in)), iotest.HalfReader(bytes.NewReader(in)), iotest.DataErrReader(bytes.NewReader(in))} {
			if got, err := io.ReadAll(bridge.POP3Content(r)); err != nil || !bytes.Equal(got, out) {
				t.Fatalf("read in pieces: %q, %v; want %q", got, err, out)
			}
		}
	})
}

// refPOP3Content is POP3Content written the obvious way.
func refPOP3Content(in []byte) []byte {
	var out []byte
	for i, c := range in {
		if c == '\n' && (i == 0 || in[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	if len(in) > 0 && in[len(in)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return out
}

func TestGeneratedUIDLValid(t *testing.T) {
	for _, c := range []struct {
		v   bridge.UIDValidity
		uid bridge.UID
	}{{1, 1}, {0xffffffff, 0xffffffff}, {1764646000, 42}} {
		u := bridge.GeneratedUIDL(c.v, c.uid)
		if !bridge.ValidUIDL(u) || len(u) > 24 {
			t.Errorf("GeneratedUIDL(%d, %d) = %q: not a valid UIDL", c.v, c.uid, u)
		}
	}
	for _, s := range []string{"", "a b", strings.Repeat("x", 71), "é", "a\x7f"} {
		if bridge.ValidUIDL(s) {
			t.Errorf("ValidUIDL(%q) = true", s)
		}
	}
	if !bridge.ValidUIDL(strings.Repeat("x", 70)) || !bridge.ValidUIDL("!~") {
		t.Error("ValidUIDL refuses a valid UIDL")
	}
}

// hostUIDLs treats the source "pop" as a POP3 host whose ids are UIDLs,
// except those starting "fp:" (as a fingerprint would).
func hostUIDLs(source string, id bridge.SourceID) (string, bool) {
	if source != "pop" || strings.HasPrefix(string(id), "fp:") {
		return "", false
	}
	return string(id), true
}

// TestPOP3Listing: host UIDLs for mail from the POP3 source, generated ones
// for the rest (APPEND, another source, a fingerprint, an invalid UIDL, a
// COPY within INBOX repeating a host UIDL), sizes as POP3 sends them, and
// a host UIDL that looks like one of ours pushes ours aside.
func TestPOP3Listing(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	inbox := mailbox(t, u, "INBOX")
	uv := inbox.Info().UIDValidity
	pop := bridgetest.NewSource("pop")
	other := bridgetest.NewSource("spool")
	date := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	idA := pop.Deliver("alice", []byte("Subject: a\r\n\r\nA\r\n"), date)
	pop.Deliver("alice", []byte("Subject: b\nbare LF\n"), date)
	poll := func(src *bridgetest.Source) {
		t.Helper()
		if _, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}}); err != nil {
			t.Fatal(err)
		}
	}
	poll(pop)
	other.Deliver("alice", []byte("Subject: c\r\n\r\nC\r\n"), date)
	poll(other)
	appendTo(t, u, "INBOX", 4, nil, date)
	// A COPY within INBOX keeps the origin, so it would repeat A's UIDL.
	if _, _, _, err := inbox.CopyTo(ctx, []bridge.UID{1}, inbox); err != nil {
		t.Fatal(err)
	}
	got, err := inbox.POP3Listing(ctx, hostUIDLs)
	if err != nil {
		t.Fatal(err)
	}
	gen := func(uid bridge.UID) string { return bridge.GeneratedUIDL(uv, uid) }
	want := []bridge.POP3Entry{
		{UID: 1, Size: 17, UIDL: string(idA), HostUIDL: true},
		{UID: 2, Size: 21, UIDL: string(pop.Messages("alice")[1]), HostUIDL: true},
		{UID: 3, Size: 17, UIDL: gen(3)},
		{UID: 4, Size: int64(len(msg(4))), UIDL: gen(4)},
		{UID: 5, Size: 17, UIDL: gen(5)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listing\n got %+v\nwant %+v", got, want)
	}
	// Sizes were recorded: the same listing again, and without a host
	// function every UIDL is generated.
	again, err := inbox.POP3Listing(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].Size != want[i].Size || again[i].UIDL != gen(want[i].UID) || again[i].HostUIDL {
			t.Errorf("entry %d without host UIDLs: %+v", i, again[i])
		}
	}
	// A host UIDL equal to a generated one keeps it; ours gains an "x".
	hostLike := func(source string, id bridge.SourceID) (string, bool) {
		if source == "spool" {
			return gen(4), true
		}
		return hostUIDLs(source, id)
	}
	got, err = inbox.POP3Listing(ctx, hostLike)
	if err != nil {
		t.Fatal(err)
	}
	if got[2].UIDL != gen(4) || !got[2].HostUIDL || got[3].UIDL != gen(4)+"x" {
		t.Errorf("clash: uid 3 %q, uid 4 %q; want %q (host) and %q", got[2].UIDL, got[3].UIDL, gen(4), gen(4)+"x")
	}
}

// TestPOP3HideAndExpunge: hidden messages stay hidden across a restart and
// stay in IMAP; ExpungeUIDs removes exactly the named ones, whatever their
// flags, tells the observers and survives a restart.
func TestPOP3HideAndExpunge(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	for i := 1; i <= 4; i++ {
		appendTo(t, u, "INBOX", i, nil, time.Now())
	}
	inbox := mailbox(t, u, "INBOX")
	if err := inbox.HidePOP3(ctx, []bridge.UID{2, 99}); err != nil {
		t.Fatal(err)
	}
	rec := &expungeRecorder{}
	b.AddObserver(rec)
	del, err := inbox.ExpungeUIDs(ctx, []bridge.UID{4, 3, 3, 77})
	if err != nil || fmt.Sprint(del) != "[3 4]" {
		t.Fatalf("ExpungeUIDs = %v, %v; want [3 4]", del, err)
	}
	if fmt.Sprint(rec.uids) != "[[3 4]]" {
		t.Errorf("observer heard %v, want [[3 4]]", rec.uids)
	}
	b.Close()

	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	inbox = mailbox(t, u, "INBOX")
	if got := fmt.Sprint(inbox.UIDs()); got != "[1 2]" {
		t.Fatalf("after restart INBOX holds %s, want [1 2]", got)
	}
	l, err := inbox.POP3Listing(ctx, nil)
	if err != nil || len(l) != 2 || l[0].Hidden || !l[1].Hidden {
		t.Fatalf("listing after restart %+v, %v; want uid 2 hidden", l, err)
	}
}

type expungeRecorder struct{ uids [][]bridge.UID }

func (r *expungeRecorder) Appended(*bridge.Mailbox, []bridge.MessageFlags, *bridge.Watch) {}
func (r *expungeRecorder) Expunged(_ *bridge.Mailbox, uids []bridge.UID) {
	r.uids = append(r.uids, append([]bridge.UID(nil), uids...))
}
func (r *expungeRecorder) FlagsChanged(*bridge.Mailbox, bridge.UID, []string, any) {}
