package imapfront_test

import (
	"strings"
	"testing"
)

// TestOwnStoreAfterQueuedChange: session B changes a message's flags while
// session A is between commands (B's change waits in A's queue), then A
// stores on the same message. A's STORE answers with the flags after both
// changes; the queued update of B's change, written after that answer (go-
// imap polls after the command), must not take A's own change back. The
// load test found the stale flags: each session's last word on a message
// must be its current flags. With .SILENT, the queued update is A's only
// news of B's change and must carry the flags after A's.
func TestOwnStoreAfterQueuedChange(t *testing.T) {
	for _, silent := range []bool{false, true} {
		name := "plain"
		if silent {
			name = "silent"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.deliver("alice", simpleMsg(1))
			a, b := e.raw(), e.raw()
			for _, c := range []*rawClient{a, b} {
				c.login("alice")
				c.ok("SELECT INBOX")
			}
			b.ok(`UID STORE 1 +FLAGS (\Seen)`)
			store := `UID STORE 1 +FLAGS (\Flagged)`
			if silent {
				store = `UID STORE 1 +FLAGS.SILENT (\Flagged)`
			}
			var last string
			for _, l := range a.ok(store) {
				if strings.HasPrefix(l, "* 1 FETCH") {
					last = l
				}
			}
			if !strings.Contains(last, `\Seen`) || !strings.Contains(last, `\Flagged`) {
				t.Errorf("A's last word on message 1 is %q; want both \\Flagged and \\Seen", last)
			}
		})
	}
}
