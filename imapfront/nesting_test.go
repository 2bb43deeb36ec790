package imapfront_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/imapfront"
)

// TestSearchNestingCap: SEARCH keys nested deeper than MaxSearchDepth get
// BAD before go-imap's recursive parser sees them, on the first line or
// after a literal; up to the cap they work.
func TestSearchNestingCap(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2))
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	deep := func(op string, n int) string { return strings.Repeat(op, n) + "ALL" }
	for _, tc := range []struct {
		name, cmd, untagged, status string
	}{
		{"NOT at the cap", "SEARCH " + deep("NOT NOT ", imapfront.MaxSearchDepth/2), "* SEARCH 1 2", "OK SEARCH completed"},
		{"NOT over the cap", "SEARCH " + deep("NOT ", imapfront.MaxSearchDepth+1), "", "BAD SEARCH nested too deeply (limit 100 levels)"},
		{"10,000 NOTs", "SEARCH " + deep("NOT ", 10000), "", "BAD SEARCH nested too deeply (limit 100 levels)"},
		{"parentheses over the cap", "UID SEARCH " + strings.Repeat("(", 101) + "ALL" + strings.Repeat(")", 101), "", "BAD SEARCH nested too deeply (limit 100 levels)"},
		{"OR chain over the cap", "SEARCH " + strings.Repeat("OR SEEN ", 101) + "ALL", "", "BAD SEARCH nested too deeply (limit 100 levels)"},
		{"OR chain at the cap", "SEARCH " + strings.Repeat("OR SEEN ", 100) + "ALL", "* SEARCH 1 2", "OK SEARCH completed"},
		{"siblings are not depth", "SEARCH " + strings.Repeat("NOT SEEN ", 1000) + "ALL", "* SEARCH 1 2", "OK SEARCH completed"},
		{"RETURN and CHARSET", "SEARCH RETURN (COUNT) CHARSET UTF-8 " + deep("NOT ", 101), "", "BAD SEARCH nested too deeply (limit 100 levels)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			untagged, status := c.cmd(tc.cmd)
			if status != tc.status {
				t.Fatalf("status %q, want %q", status, tc.status)
			}
			if got := strings.Join(untagged, "\n"); got != tc.untagged {
				t.Fatalf("untagged %q, want %q", got, tc.untagged)
			}
		})
	}
	// The session is still there.
	c.ok("NOOP")

	// Nesting that goes on after a literal: the guard cannot answer in the
	// middle of a command go-imap is reading, so it says BYE.
	c.send("z1 SEARCH SUBJECT {1+}")
	c.send("x " + deep("NOT ", 200))
	if got := c.line(); got != "* BYE SEARCH nested too deeply (limit 100 levels)" {
		t.Fatalf("after a literal: %q", got)
	}
	c.closed()
}

// TestSearchNestingMemory: the 10,000-deep SEARCH of issue 12 costs less
// than 1 MB (go-imap's parser took ~36 MB of heap and stack for it, which
// stayed with the connection's goroutine). Measured as the bytes allocated
// while the command runs, and the stack and heap in use after a GC, a
// loose bound that does not depend on speed.
func TestSearchNestingMemory(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	cmd := "SEARCH " + strings.Repeat("NOT ", 10000) + "ALL"
	c.cmd("NOOP")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, status := c.cmd(cmd)
	runtime.GC()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	held := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	t.Logf("10,000-deep SEARCH: %q; allocated %d bytes, heap+stack in use after GC %+d bytes", status, alloc, held)
	if alloc > 1<<20 {
		t.Errorf("allocated %d bytes for one command, want < 1 MB", alloc)
	}
	if held > 1<<20 {
		t.Errorf("heap+stack in use grew by %d bytes, want < 1 MB", held)
	}
}
