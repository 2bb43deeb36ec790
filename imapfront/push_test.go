package imapfront_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// expectLines reads exactly want from c, in order.
func expectLines(t *testing.T, c *rawClient, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := c.line(); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func startIdle(t *testing.T, c *rawClient) {
	t.Helper()
	c.send("idle IDLE")
	expectLines(t, c, "+ idling")
}

func stopIdle(t *testing.T, c *rawClient) {
	t.Helper()
	c.send("DONE")
	expectLines(t, c, "idle OK IDLE completed")
}

func TestIdleGetsExpungeAndFlags(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3))
	a, b := e.raw(), e.raw()
	a.login("alice")
	b.login("alice")
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	startIdle(t, b)

	// A's own STORE answers A once; B hears of it while idling. A selected
	// first: the messages are recent there, not in B.
	if got := a.ok("STORE 2 +FLAGS (\\deleted)"); !reflect.DeepEqual(got, []string{`* 2 FETCH (FLAGS (\Deleted \Recent))`}) {
		t.Errorf("A STORE: %q", got)
	}
	expectLines(t, b, `* 2 FETCH (UID 2 FLAGS (\Deleted))`)

	if got := a.ok("EXPUNGE"); !reflect.DeepEqual(got, []string{"* 2 EXPUNGE"}) {
		t.Errorf("A EXPUNGE: %q", got)
	}
	expectLines(t, b, "* 2 EXPUNGE")
	b.noLine(100 * time.Millisecond)
	stopIdle(t, b)
	if got := b.ok("NOOP"); len(got) != 0 {
		t.Errorf("B NOOP after IDLE: %q", got)
	}
	if got := a.ok("NOOP"); len(got) != 0 {
		t.Errorf("A NOOP: %q (own STORE must not come back)", got)
	}
	if got := b.ok("FETCH 1:* (UID)"); !reflect.DeepEqual(got, []string{"* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)"}) {
		t.Errorf("B FETCH: %q", got)
	}
}

func TestIdleWithoutMailbox(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	c.login("alice")
	startIdle(t, c)
	e.deliver("alice", simpleMsg(1))
	c.noLine(100 * time.Millisecond)
	stopIdle(t, c)
}

func TestIdleGetsNewSourceMail(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))
	b := e.raw()
	b.login("alice")
	b.ok("SELECT INBOX")
	startIdle(t, b)
	e.deliver("alice", simpleMsg(2), simpleMsg(3))
	// B is the only session: new mail is recent there. The bridge stores
	// fetched mail in batches: the two messages arrive together (3
	// EXISTS) or one after the other (2 EXISTS first).
	if got := b.line(); got == "* 2 EXISTS" {
		expectLines(t, b, "* 2 RECENT", "* 3 EXISTS", "* 3 RECENT")
	} else if got != "* 3 EXISTS" {
		t.Fatalf("got %q, want \"* 2 EXISTS\" or \"* 3 EXISTS\"", got)
	} else {
		expectLines(t, b, "* 3 RECENT")
	}
	stopIdle(t, b)
	if got := b.ok("UID FETCH 2:* (UID)"); !reflect.DeepEqual(got, []string{"* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"}) {
		t.Errorf("FETCH: %q", got)
	}
	e.metrics.mu.Lock()
	idle := e.metrics.idle
	e.metrics.mu.Unlock()
	if idle != 0 {
		t.Errorf("idle gauge %d after DONE", idle)
	}
}

// TestPiledUpUpdates: several changes by other sessions and the source
// reach a session that only polls, each with the sequence number right at
// its point in the stream.
func TestPiledUpUpdates(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3), simpleMsg(4), simpleMsg(5))
	a, b := e.raw(), e.raw()
	a.login("alice")
	b.login("alice")
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")

	a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	a.ok("EXPUNGE")                           // UID 1 goes; UIDs 2 3 4 5 remain
	a.ok("UID STORE 4 +FLAGS.SILENT ($Todo)") // UID 4 is now message 3
	e.deliver("alice", simpleMsg(6))          // UID 6 arrives as message 5
	a.ok("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
	a.ok("UID EXPUNGE 3") // UID 3 (message 2) goes

	// FLAGS goes first, ahead of the queue: it names no sequence number,
	// and a FETCH in the queue may show the keyword it announces.
	want := []string{
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Todo)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Todo \*)] Permanent flags`,
		`* 1 FETCH (UID 1 FLAGS (\Deleted))`,
		`* 1 EXPUNGE`,
		`* 3 FETCH (UID 4 FLAGS ($Todo))`,
		`* 5 EXISTS`,
		`* 2 FETCH (UID 3 FLAGS (\Deleted))`,
		`* 2 EXPUNGE`,
	}
	if got := b.ok("NOOP"); !reflect.DeepEqual(got, want) {
		t.Errorf("B NOOP:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if got := b.ok("FETCH 1:* (UID FLAGS)"); !reflect.DeepEqual(got, []string{
		"* 1 FETCH (UID 2 FLAGS ())", "* 2 FETCH (UID 4 FLAGS ($Todo))", "* 3 FETCH (UID 5 FLAGS ())", "* 4 FETCH (UID 6 FLAGS ())",
	}) {
		t.Errorf("B FETCH: %q", got)
	}
}

// TestExpungeDeferredDuringFetch: FETCH, STORE and SEARCH may not report
// expunges; the client's numbers stay as it knows them until a command
// that may.
func TestExpungeDeferredDuringFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3), simpleMsg(4), simpleMsg(5))
	a, b := e.raw(), e.raw()
	a.login("alice")
	b.login("alice")
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	a.ok("STORE 2,5 +FLAGS.SILENT (\\Deleted)")
	a.ok("EXPUNGE")

	tests := []struct {
		cmd  string
		want []string
	}{
		{"FETCH 3 (UID)", []string{
			"* 3 FETCH (UID 3)",
			// Then the updates queued before the first expunge.
			`* 2 FETCH (UID 2 FLAGS (\Deleted))`,
			`* 5 FETCH (UID 5 FLAGS (\Deleted))`,
		}},
		{"FETCH 2 (UID)", nil},   // expunged, not yet reported: nothing
		{"FETCH 5:* (UID)", nil}, // "*" is message 5, expunged: must not name message 4
		{"FETCH * (UID)", nil},
		{"FETCH 4:* (UID)", []string{"* 4 FETCH (UID 4)"}},
		{"SEARCH ALL", []string{"* SEARCH 1 3 4"}},
		{"STORE 5 +FLAGS (\\Seen)", nil},
		// UID commands do not depend on sequence numbers: they may.
		{"UID SEARCH ALL", []string{"* SEARCH 1 3 4", "* 2 EXPUNGE", "* 4 EXPUNGE"}},
		{"NOOP", nil},
		{"FETCH * (UID)", []string{"* 3 FETCH (UID 4)"}},
	}
	for _, tt := range tests {
		got, status := b.cmd(tt.cmd)
		if !strings.HasPrefix(status, "OK") {
			t.Errorf("%s: %s", tt.cmd, status)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.cmd, got, tt.want)
		}
	}
}

func TestMoveAndCopyPush(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3))
	a, b, arch := e.raw(), e.raw(), e.raw()
	for _, c := range []*rawClient{a, b, arch} {
		c.login("alice")
	}
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	archSel := arch.ok("SELECT Archive")
	uv := uidValidity(t, archSel)
	startIdle(t, b)
	startIdle(t, arch)

	got, status := a.cmd("MOVE 2 Archive")
	if want := []string{"* OK [COPYUID " + uv + " 2 1] COPY completed", "* 2 EXPUNGE"}; !reflect.DeepEqual(got, want) || status != "OK MOVE completed" {
		t.Errorf("MOVE: %q %q", got, status)
	}
	expectLines(t, b, "* 2 EXPUNGE")
	// Arch is the only session with Archive selected: what arrives is
	// recent there.
	expectLines(t, arch, "* 1 EXISTS", "* 1 RECENT")

	_, status = a.cmd("UID COPY 1,3 Archive")
	if want := "OK [COPYUID " + uv + " 1,3 2:3] COPY completed"; status != want {
		t.Errorf("COPY: %q, want %q", status, want)
	}
	expectLines(t, arch, "* 3 EXISTS", "* 3 RECENT")
	b.noLine(100 * time.Millisecond)
	stopIdle(t, b)
	stopIdle(t, arch)

	if _, status := a.cmd("MOVE 1 Nowhere"); status != "NO [TRYCREATE] Mailbox does not exist" {
		t.Errorf("MOVE to missing: %q", status)
	}
	if got := arch.ok("UID FETCH 1:* (UID FLAGS)"); len(got) != 3 {
		t.Errorf("Archive: %q", got)
	}
}

func TestAppendPush(t *testing.T) {
	e := newEnv(t)
	a, b := e.raw(), e.raw()
	a.login("alice")
	b.login("alice")
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	uv := uidValidity(t, b.ok("EXAMINE INBOX"))
	startIdle(t, b)
	msg := simpleMsg(1)
	a.send("a1 APPEND INBOX (\\seen $Label) {" + strconv.Itoa(len(msg)) + "+}")
	a.send(msg) // the literal, then the command line's CRLF
	// The keyword is new to INBOX: FLAGS first. A selected INBOX first:
	// the new message is recent in A, not in B.
	perm := `* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Label \*)] Permanent flags`
	expectLines(t, a, `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Label)`, perm, "* 1 EXISTS", "* 1 RECENT", "a1 OK [APPENDUID "+uv+" 1] APPEND completed")
	// B has INBOX open read-only (EXAMINE): it may set nothing.
	expectLines(t, b, `* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Label)`, `* OK [PERMANENTFLAGS ()] Permanent flags`, "* 1 EXISTS")
	stopIdle(t, b)
	if got := b.ok("FETCH 1 (FLAGS)"); got[0] != `* 1 FETCH (FLAGS ($Label \Seen))` {
		t.Errorf("flags %q", got)
	}
}
