package imapfront

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/bridge"
)

// trackerFixture is a bridge with one mailbox of n messages and a hub
// observing it, without any network.
func trackerFixture(t *testing.T, n int) (*hub, *bridge.Mailbox) {
	t.Helper()
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h := newHub()
	b.AddObserver(h)
	u, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, _, err := u.Append(ctx, "INBOX", strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\n%d\r\n", i, i)), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	mb, err := u.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return h, mb
}

func expunge(t *testing.T, mb *bridge.Mailbox, uids ...bridge.UID) {
	t.Helper()
	ctx := context.Background()
	if _, err := mb.Store(ctx, uids, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Expunge(ctx, uids); err != nil {
		t.Fatal(err)
	}
}

func appendN(t *testing.T, mb *bridge.Mailbox, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, _, err := mb.User().Append(context.Background(), mb.Name(), strings.NewReader("Subject: new\r\n\r\nx\r\n"), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
}

func refsOf(sel *selection, set imap.NumSet) string {
	var parts []string
	refs, err := sel.resolve(set, nil)
	if err != nil {
		return err.Error()
	}
	for _, r := range refs {
		parts = append(parts, fmt.Sprintf("%d=%d", r.seq, r.uid))
	}
	return strings.Join(parts, " ")
}

// TestResolveWithPendingUpdates checks how a client's numbers map to
// messages while updates are queued and not yet written to it.
func TestResolveWithPendingUpdates(t *testing.T) {
	seq := func(a, b uint32) imap.SeqSet { return imap.SeqSet{{Start: a, Stop: b}} }
	uid := func(a, b imap.UID) imap.UIDSet { return imap.UIDSet{{Start: a, Stop: b}} }
	tests := []struct {
		name   string
		change func(t *testing.T, mb *bridge.Mailbox)
		set    imap.NumSet
		want   string
	}{
		{"nothing pending", nil, seq(1, 0), "1=1 2=2 3=3 4=4 5=5"},
		{"star alone", nil, seq(0, 0), "5=5"},
		{"past the end is the client's mistake", nil, seq(9, 0), "imap: BAD [CLIENTBUG] No such message: the last message is 5"},
		{"new mail not yet announced", func(t *testing.T, mb *bridge.Mailbox) { appendN(t, mb, 2) }, seq(1, 0), "1=1 2=2 3=3 4=4 5=5"},
		{"star with new mail", func(t *testing.T, mb *bridge.Mailbox) { appendN(t, mb, 2) }, seq(0, 0), "5=5"},
		{"expunged in the middle", func(t *testing.T, mb *bridge.Mailbox) { expunge(t, mb, 2) }, seq(1, 0), "1=1 3=3 4=4 5=5"},
		{"expunged last: star names nothing", func(t *testing.T, mb *bridge.Mailbox) { expunge(t, mb, 5) }, seq(0, 0), ""},
		{"expunged last: 5:* names nothing", func(t *testing.T, mb *bridge.Mailbox) { expunge(t, mb, 5) }, seq(5, 0), ""},
		{"expunged last: 4:*", func(t *testing.T, mb *bridge.Mailbox) { expunge(t, mb, 5) }, seq(4, 0), "4=4"},
		{"expunged and appended", func(t *testing.T, mb *bridge.Mailbox) { expunge(t, mb, 1, 5); appendN(t, mb, 3) }, seq(1, 0), "2=2 3=3 4=4"},
		{"uid star with expunged last", func(t *testing.T, mb *bridge.Mailbox) { expunge(t, mb, 5) }, uid(6, 0), ""},
		{"uid star", nil, uid(7, 0), "5=5"},
		{"uid range skips unannounced", func(t *testing.T, mb *bridge.Mailbox) { appendN(t, mb, 1) }, uid(4, 0), "4=4 5=5"},
		{"overlapping ranges", nil, imap.SeqSet{{Start: 2, Stop: 4}, {Start: 3, Stop: 5}, {Start: 1, Stop: 1}}, "1=1 2=2 3=3 4=4 5=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, mb := trackerFixture(t, 5)
			sel := openSel(t, h, mb, false)
			defer h.close(sel)
			if tt.change != nil {
				tt.change(t, mb)
			}
			if got := refsOf(sel, tt.set); got != tt.want {
				t.Errorf("%v: got %q, want %q", tt.set, got, tt.want)
			}
		})
	}
}

// openSel selects mb for a read-write (or read-only) IMAP4rev1 session.
func openSel(t *testing.T, h *hub, mb *bridge.Mailbox, readOnly bool) *selection {
	t.Helper()
	sel, _, err := h.open(context.Background(), mb, readOnly, true)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func TestHubReleasesState(t *testing.T) {
	h, mb := trackerFixture(t, 3)
	if _, err := mb.Store(context.Background(), []bridge.UID{2}, bridge.FlagsAdd, []string{"$Seen-By-Test"}, nil); err != nil {
		t.Fatal(err)
	}
	a := openSel(t, h, mb, false)
	b, snap, err := h.open(context.Background(), mb, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if a.st != b.st || snap.Info.Messages != 3 {
		t.Fatalf("two selections of one mailbox do not share state")
	}
	if got := b.st.mailboxFlags(); !reflect.DeepEqual(got[len(got)-1], imap.Flag("$Seen-By-Test")) {
		t.Errorf("keywords %v", got)
	}
	h.close(a)
	if h.state(mb.ID()) == nil {
		t.Fatal("state released while a session still has the mailbox")
	}
	h.close(b)
	if h.state(mb.ID()) != nil {
		t.Fatal("state kept after the last session closed")
	}
	// Changes with nobody watching are ignored, and a new selection
	// starts from the mailbox as it is.
	expunge(t, mb, 1)
	c := openSel(t, h, mb, false)
	defer h.close(c)
	if got := refsOf(c, imap.SeqSet{{Start: 1, Stop: 0}}); got != "1=2 2=3" {
		t.Errorf("after reopen: %q", got)
	}
}

func TestGoImapPanicsAreCounted(t *testing.T) {
	var n int
	s := New(Options{Metrics: &Metrics{Recovered: func() { n++ }}})
	l := goimapLogger{s}
	l.Printf("failed to read command: %v", "EOF")
	l.Printf("panic handling command: %v\n%s", "boom", "stack")
	l.Printf("panic idling: %v\n%s", "boom", "stack")
	if n != 2 {
		t.Errorf("%d panics counted, want 2", n)
	}
}
