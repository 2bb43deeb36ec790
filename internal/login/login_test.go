package login

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
)

// TestLimiter: failures are held half a second more each, up to 5 s; the
// eleventh within 15 minutes is refused, for the user and for the address
// apart; a success forgets the user's failures, not the address's; the
// window forgets both. The clock is a fake: the window is 15 minutes.
func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := NewLimiter()
	l.now = func() time.Time { return now }

	var delays []time.Duration
	for range 10 {
		if !l.Allow("alice", "192.0.2.1") {
			t.Fatalf("refused after %d failures", len(delays))
		}
		delays = append(delays, l.Fail("alice", "192.0.2.1"))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second, 2500 * time.Millisecond,
		3 * time.Second, 3500 * time.Millisecond, 4 * time.Second, 4500 * time.Millisecond, 5 * time.Second}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Errorf("delays %v, want %v", delays, want)
	}
	for _, c := range []struct {
		user, host string
		allowed    bool
	}{
		{"alice", "192.0.2.1", false},
		{"alice", "192.0.2.99", false}, // the user, from anywhere
		{"bob", "192.0.2.1", false},    // the address, for anyone
		{"bob", "192.0.2.99", true},
	} {
		if got := l.Allow(c.user, c.host); got != c.allowed {
			t.Errorf("Allow(%s, %s) = %v, want %v", c.user, c.host, got, c.allowed)
		}
	}
	l.Succeed("alice", "192.0.2.1")
	if !l.Allow("alice", "192.0.2.99") || l.Allow("alice", "192.0.2.1") {
		t.Errorf("after a success: the user's failures should be gone, the address's kept")
	}
	now = now.Add(limitWindow + time.Second)
	if !l.Allow("alice", "192.0.2.1") {
		t.Errorf("refused after the window")
	}
	if d := l.Fail("alice", "192.0.2.1"); d != 500*time.Millisecond {
		t.Errorf("first failure after the window held %v, want 500ms", d)
	}
}

type attempts []string

func (a *attempts) add(r string) { *a = append(*a, r) }

// TestAuthenticateStatic: a configured user's bcrypt hash decides; a wrong
// password and an unknown user get the same error, ErrFailed; after ten
// failures even the right password is refused, as ratelimited.
func TestAuthenticateStatic(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.ParseEnv([]byte(fmt.Sprintf("data_dir: data\nsources: [{name: spool, type: mbox, path: '/nonexistent/{user}'}]\n"+
		"users: [{name: alice, password_hash: %q, sources: [spool]}]\n", hash)), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var got attempts
	s := New(Options{Config: cfg, Bridge: b, Attempt: got.add})
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}

	u, err := s.Authenticate(ctx, "alice", "right", remote)
	if err != nil || u == nil || u.Name() != "alice" {
		t.Fatalf("right password: %v, %v", u, err)
	}
	// A cancelled context cuts the delay of a failure short, not its answer.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct{ user, pass string }{{"alice", "wrong"}, {"nobody", "right"}} {
		if _, err := s.Authenticate(cancelled, c.user, c.pass, remote); err != ErrFailed {
			t.Errorf("%s/%s: error %v, want ErrFailed", c.user, c.pass, err)
		}
	}
	for range 8 {
		s.Authenticate(cancelled, "alice", "wrong", remote)
	}
	_, err = s.Authenticate(ctx, "alice", "right", remote)
	if !errors.Is(err, ErrFailed) || err.Error() != "authentication failed: too many failed attempts, try again later" {
		t.Errorf("after 10 failures: %v", err)
	}
	want := "[success failure failure failure failure failure failure failure failure failure failure ratelimited]"
	if fmt.Sprint(got) != want {
		t.Errorf("attempts %v, want %s", got, want)
	}
}
