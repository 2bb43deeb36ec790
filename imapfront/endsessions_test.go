package imapfront_test

import (
	"context"
	"testing"
	"time"
)

// TestEndUserSessions: every session of the user gets the BYE text and is
// closed; another user's session and a connection not logged in are left
// alone.
func TestEndUserSessions(t *testing.T) {
	e := newEnv(t)
	a1, a2, b, anon := e.raw(), e.raw(), e.raw(), e.raw()
	a1.login("alice")
	a2.login("alice")
	b.login("bob")
	a2.ok("SELECT INBOX")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n := e.srv.EndUserSessions(ctx, "alice", "Account removed from the configuration"); n != 2 {
		t.Errorf("EndUserSessions ended %d sessions, want 2", n)
	}
	for _, c := range []*rawClient{a1, a2} {
		if got := c.line(); got != "* BYE Account removed from the configuration" {
			t.Errorf("alice's session got %q, want the BYE", got)
		}
		c.closed()
	}
	b.ok("NOOP")
	anon.ok("NOOP")
	if n := e.srv.EndUserSessions(ctx, "carol", "gone"); n != 0 {
		t.Errorf("EndUserSessions of a user with no session ended %d", n)
	}
}
