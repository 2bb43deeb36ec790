package pop3front_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/pop3front"
)

// expungeRecorder is a bridge observer that records expunges.
type expungeRecorder struct {
	mu   sync.Mutex
	uids [][]bridge.UID
}

func (r *expungeRecorder) Appended(*bridge.Mailbox, []bridge.MessageFlags, *bridge.Watch) {}
func (r *expungeRecorder) FlagsChanged(*bridge.Mailbox, bridge.UID, []string, any)        {}
func (r *expungeRecorder) Expunged(_ *bridge.Mailbox, uids []bridge.UID) {
	r.mu.Lock()
	r.uids = append(r.uids, slices.Clone(uids))
	r.mu.Unlock()
}

func (r *expungeRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.uids)
}

// waitFor polls cond until it holds (an event another goroutine causes),
// failing after a generous bound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (m *testMetrics) open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns
}

// DELE + QUIT expunges in the bridge: the observers (IMAP sessions) hear
// of it before the +OK, the messages are gone from INBOX, and an
// on_expunge source deletes them at the host on its next poll.
func TestDeleExpunges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fill(e)
	rec := &expungeRecorder{}
	e.b.AddObserver(rec)
	c := e.dial()
	c.login("alice")
	for _, cmd := range []string{"DELE 1", "DELE 3"} {
		if l := c.cmd(cmd); !strings.HasPrefix(l, "+OK") {
			t.Fatalf("%s: %q", cmd, l)
		}
	}
	if got := rec.String(); got != "[]" {
		t.Fatalf("expunged before QUIT: %s", got)
	}
	if l := c.cmd("QUIT"); l != "+OK imapbridge POP3 server signing off (1 messages left)" {
		t.Fatalf("QUIT: %q", l)
	}
	if got := rec.String(); got != "[[1 3]]" {
		t.Errorf("observers heard %s by the +OK, want [[1 3]]", got)
	}
	if got := fmt.Sprint(e.inbox("alice").UIDs()); got != "[2]" {
		t.Errorf("INBOX after QUIT: %s, want [2]", got)
	}
	if n := e.metrics.get(e.metrics.deleted, pop3front.DeleExpunge); n != 2 {
		t.Errorf("Deleted(expunge) counted %d", n)
	}
	// The host still holds message 1 (keep); with on_expunge it goes.
	if len(e.src.Messages("alice")) != 1 {
		t.Fatalf("host holds %v", e.src.Messages("alice"))
	}
	feed := bridge.Feed{Source: e.src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteOnExpunge}}
	if _, err := e.b.Poll(e.ctx, e.user("alice"), feed); err != nil {
		t.Fatal(err)
	}
	if ids := e.src.Messages("alice"); len(ids) != 0 {
		t.Errorf("after an on_expunge poll the host still holds %v", ids)
	}
	// A new session sees what is left, with the same UIDL.
	c = e.dial()
	if l := c.login("alice"); l != fmt.Sprintf("+OK Logged in, 1 messages (%d octets)", len(msg2)) {
		t.Errorf("second login: %q", l)
	}
}

// A session that ends without QUIT (dropped, or timed out) removes
// nothing: RFC 1939 enters UPDATE only from QUIT.
func TestNoQuitNoDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fill(e)
	c := e.dial()
	c.login("alice")
	if l := c.cmd("DELE 1"); !strings.HasPrefix(l, "+OK") {
		t.Fatal(l)
	}
	c.conn.Close()
	waitFor(t, "the session to end", func() bool { return e.metrics.open() == 0 })
	if got := fmt.Sprint(e.inbox("alice").UIDs()); got != "[1 2 3]" {
		t.Errorf("INBOX after a dropped session: %s, want [1 2 3]", got)
	}
}

// With Dele: keep, QUIT only hides: IMAP keeps the message, POP3 does not
// list it again, in this server or a new one over the same store.
func TestDeleKeepHides(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *pop3front.Options) { o.Dele = pop3front.DeleKeep })
	r := fill(e)
	rec := &expungeRecorder{}
	e.b.AddObserver(rec)
	c := e.dial()
	c.login("alice")
	c.cmd("DELE 1")
	if l := c.cmd("QUIT"); l != "+OK imapbridge POP3 server signing off (2 messages left)" {
		t.Fatalf("QUIT: %q", l)
	}
	if got := fmt.Sprint(e.inbox("alice").UIDs()); got != "[1 2 3]" {
		t.Errorf("INBOX after QUIT with dele keep: %s, want all three", got)
	}
	if got := rec.String(); got != "[]" {
		t.Errorf("expunges heard: %s", got)
	}
	for _, addr := range []string{e.addr, ""} {
		var c *client
		if addr == "" {
			// A second server over the same bridge: the hiding is stored.
			e2, err := pop3front.New(e.opts)
			if err != nil {
				t.Fatal(err)
			}
			e3 := *e
			e3.srv = e2
			ln := listen(t)
			go e2.Serve(ln)
			t.Cleanup(func() { e2.Shutdown(e.ctx) })
			e3.addr = ln.Addr().String()
			c = e3.dial()
		} else {
			c = e.dial()
		}
		c.login("alice")
		c.send("UIDL")
		want := r.Replace("+OK|1 {G2}|2 {G3}|.")
		var got []string
		for len(got) < 4 {
			got = append(got, c.mustLine())
		}
		if strings.Join(got, "|") != want {
			t.Errorf("UIDL after hiding: %s, want %s", strings.Join(got, "|"), want)
		}
	}
	if n := e.metrics.get(e.metrics.deleted, pop3front.DeleKeep); n != 1 {
		t.Errorf("Deleted(keep) counted %d", n)
	}
}

// The maildrop is a snapshot: mail arriving and IMAP expunges during the
// session change neither numbers nor sizes; RETR of an expunged message
// says so.
func TestSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := fill(e)
	c := e.dial()
	c.login("alice")
	e.appendMsg("alice", "Subject: four\r\n\r\nnew\r\n")
	if _, err := e.inbox("alice").ExpungeUIDs(e.ctx, []bridge.UID{2}); err != nil {
		t.Fatal(err)
	}
	if l := c.cmd("STAT"); l != r.Replace("+OK 3 {T}") {
		t.Errorf("STAT after changes: %q", l)
	}
	if l := c.cmd("RETR 2"); l != "-ERR Message 2 was removed by another session" {
		t.Errorf("RETR of an expunged message: %q", l)
	}
	if l := c.cmd("DELE 2"); l != "+OK Message 2 deleted" {
		t.Errorf("DELE of an expunged message: %q", l)
	}
	if l := c.cmd("QUIT"); l != "+OK imapbridge POP3 server signing off (2 messages left)" {
		t.Errorf("QUIT: %q", l)
	}
	if got := fmt.Sprint(e.inbox("alice").UIDs()); got != "[1 3 4]" {
		t.Errorf("INBOX: %s", got)
	}
}

// A large message with long lines and dot lines comes back byte for byte,
// and its size is what LIST said.
func TestRetrLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("Subject: big\r\n\r\n")
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "%s\r\n.%d\r\n", strings.Repeat(string(rune('a'+i%26)), 1000+i%9000), i)
	}
	big := b.String()
	e.appendMsg("alice", big)
	c := e.dial()
	c.login("alice")
	if l := c.cmd("LIST 1"); l != fmt.Sprintf("+OK 1 %d", len(big)) {
		t.Fatalf("LIST 1: %q", l)
	}
	if l := c.cmd("RETR 1"); l != fmt.Sprintf("+OK %d octets", len(big)) {
		t.Fatalf("RETR 1: %q", l)
	}
	got := string(unstuff(c.multi()))
	if got != big {
		t.Fatalf("RETR returned %d bytes, want %d, equal: %v", len(got), len(big), got == big)
	}
}

// unstuff undoes dot-stuffing of a multi-line body.
func unstuff(b []byte) []byte {
	var out []byte
	for _, l := range strings.SplitAfter(string(b), "\r\n") {
		out = append(out, strings.TrimPrefix(l, ".")...)
	}
	return out
}
