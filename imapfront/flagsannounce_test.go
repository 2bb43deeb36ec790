package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const sysFlags = `\Answered \Flagged \Deleted \Seen \Draft`

// TestFlagsAnnouncedBeforeFetch (RFC 3501 section 7.2.6): a keyword new to
// the mailbox, brought by STORE, APPEND, COPY or MOVE, is announced with
// "* FLAGS" and "* OK [PERMANENTFLAGS]" to every session that has the
// mailbox selected — the one that made the change, one that FETCHes, one
// in IDLE, one read-only — before any FETCH response shows it.
func TestFlagsAnnouncedBeforeFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))
	e.appendMsg("alice", "Archive", simpleMsg(2), []string{"$FromCopy"}, time.Now())
	e.appendMsg("alice", "Archive", simpleMsg(3), []string{"$FromMove"}, time.Now())

	a, b, idle, ro := e.raw(), e.raw(), e.raw(), e.raw()
	for _, c := range []*rawClient{a, b, idle, ro} {
		c.login("alice")
	}
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	idle.ok("SELECT INBOX")
	if got := ro.ok("EXAMINE INBOX"); !contains(got, `* OK [PERMANENTFLAGS ()] Permanent flags`) {
		t.Fatalf("EXAMINE: %q", got)
	}

	flagsLine := func(kw ...string) string {
		return "* FLAGS (" + strings.Join(append(strings.Fields(sysFlags), kw...), " ") + ")"
	}
	permLine := func(kw ...string) string {
		return "* OK [PERMANENTFLAGS (" + strings.Join(append(append(strings.Fields(sysFlags), kw...), `\*`), " ") + ")] Permanent flags"
	}
	steps := []struct {
		cmd  string
		kw   []string // the mailbox's keywords after it
		want []string // what the session that ran it sees, in order
	}{
		{"STORE 1 +FLAGS ($New1)", []string{"$New1"}, []string{
			flagsLine("$New1"), permLine("$New1"), `* 1 FETCH (FLAGS ($New1 \Recent))`}},
		{"APPEND INBOX ($New2) {" + fmt.Sprint(len(simpleMsg(9))) + "+}\r\n" + simpleMsg(9), []string{"$New1", "$New2"}, []string{
			flagsLine("$New1", "$New2"), permLine("$New1", "$New2"), `* 2 EXISTS`, `* 2 RECENT`}},
		{`UID COPY 1 INBOX`, []string{"$FromCopy", "$New1", "$New2"}, nil},
		{`UID MOVE 2 INBOX`, []string{"$FromCopy", "$FromMove", "$New1", "$New2"}, nil},
	}
	for _, st := range steps {
		if strings.HasPrefix(st.cmd, "UID ") {
			// COPY and MOVE from Archive into INBOX: run from a session
			// with Archive selected.
			c := e.raw()
			c.login("alice")
			c.ok("SELECT Archive")
			c.ok(st.cmd)
		} else {
			got := a.ok(st.cmd)
			if !equalLines(got, st.want) {
				t.Errorf("%s, its own session:\n got %q\nwant %q", st.cmd, got, st.want)
			}
		}
		// A session that FETCHes: the FLAGS come before the first FETCH.
		got := b.ok("FETCH 1:* (FLAGS)")
		if len(got) < 2 || got[0] != flagsLine(st.kw...) || got[1] != permLine(st.kw...) {
			t.Errorf("after %s, FETCH in another session:\n got %q\nwant %q and %q first", st.cmd, got, flagsLine(st.kw...), permLine(st.kw...))
		}
		checkFlagsModel(t, "FETCH", got)
	}
	// The idle session and the read-only one: everything in one NOOP/IDLE,
	// checked against a model of what it has been told.
	idle.send("i1 IDLE")
	if l := idle.line(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	var pushed []string
	for {
		l := idle.line()
		pushed = append(pushed, l)
		if strings.HasPrefix(l, "* OK [PERMANENTFLAGS") && strings.Contains(l, "$FromMove") {
			break
		}
	}
	idle.send("DONE")
	for l := idle.line(); !strings.HasPrefix(l, "i1 "); l = idle.line() {
		pushed = append(pushed, l)
	}
	checkFlagsModel(t, "IDLE", pushed)
	roGot := ro.ok("NOOP")
	checkFlagsModel(t, "read-only NOOP", roGot)
	if !contains(roGot, `* OK [PERMANENTFLAGS ()] Permanent flags`) {
		t.Errorf("read-only session: PERMANENTFLAGS not empty: %q", roGot)
	}
}

// checkFlagsModel fails the test if a FETCH shows a keyword no FLAGS line
// before it named (the session's initial FLAGS are the system flags: each
// test mailbox starts without keywords), or a FLAGS line is not followed by
// its PERMANENTFLAGS.
func checkFlagsModel(t *testing.T, what string, lines []string) {
	t.Helper()
	if err := newFlagsModel(nil).check(lines); err != nil {
		t.Errorf("%s: %v\nin %q", what, err, lines)
	}
}

func equalLines(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestFlagsBeforeRewrittenFetch: a FETCH update already queued for a
// session is brought up to date by its own later STORE, new keyword and
// all, while the FLAGS update for that keyword is queued behind it; the
// poll after STORE .SILENT writes FLAGS first. (The 20-session stress run
// found this one.)
func TestFlagsBeforeRewrittenFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))
	a, b := e.raw(), e.raw()
	a.login("alice")
	b.login("alice")
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	a.ok(`STORE 1 +FLAGS.SILENT (\Flagged)`) // queued for B: * 1 FETCH (FLAGS (\Flagged))
	got := b.ok(`STORE 1 +FLAGS.SILENT ($Fresh)`)
	want := []string{
		flagsLineOf("$Fresh"),
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Fresh \*)] Permanent flags`,
		`* 1 FETCH (UID 1 FLAGS ($Fresh \Flagged))`,
	}
	if !equalLines(got, want) {
		t.Errorf("B's STORE .SILENT:\n got %q\nwant %q", got, want)
	}
	checkFlagsModel(t, "B", got)
}

func flagsLineOf(kw ...string) string {
	return "* FLAGS (" + strings.Join(append(strings.Fields(sysFlags), kw...), " ") + ")"
}
