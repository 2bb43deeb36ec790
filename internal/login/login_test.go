package login

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
)

// TestLimiter: a stranger's failures never refuse the user from another
// address. Per address and user, the eleventh failure within 15 minutes is
// refused; per address (for any user), the thirty-first; per user name
// alone, never: after the third failure the user's next check waits half
// a second more each, at most 5 s. A success forgets the user's failures,
// not the address's; the window forgets all. The clock is a fake.
func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := NewLimiter(Limits{})
	l.now = func() time.Time { return now }

	var holds []time.Duration
	for range 10 {
		if _, ok := l.Check("alice", "192.0.2.1"); !ok {
			t.Fatalf("refused after %d failures", len(holds))
		}
		holds = append(holds, l.Fail("alice", "192.0.2.1"))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second, 2500 * time.Millisecond,
		3 * time.Second, 3500 * time.Millisecond, 4 * time.Second, 4500 * time.Millisecond, 5 * time.Second}
	if fmt.Sprint(holds) != fmt.Sprint(want) {
		t.Errorf("holds %v, want %v", holds, want)
	}
	check := func(what, user, host string, wantOK bool, wantWait time.Duration) {
		t.Helper()
		wait, ok := l.Check(user, host)
		if ok != wantOK || wait != wantWait {
			t.Errorf("%s: Check(%s, %s) = %v, %v; want %v, %v", what, user, host, wait, ok, wantWait, wantOK)
		}
	}
	check("the user from the guessing address", "alice", "192.0.2.1", false, 0)
	check("the user from elsewhere: slowed, not refused", "alice", "192.0.2.99", true, 4*time.Second)
	check("another user from the guessing address", "bob", "192.0.2.1", true, 0)

	// Ten addresses, one wrong password each for carol: never refused,
	// slowed from the fourth failure on.
	var waits []time.Duration
	for i := range 10 {
		host := fmt.Sprintf("198.51.100.%d", i+1)
		wait, ok := l.Check("carol", host)
		if !ok {
			t.Fatalf("carol refused from %s after %d failures elsewhere", host, i)
		}
		waits = append(waits, wait)
		l.Fail("carol", host)
	}
	wantWaits := []time.Duration{0, 0, 0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second, 2500 * time.Millisecond, 3 * time.Second, 3500 * time.Millisecond}
	if fmt.Sprint(waits) != fmt.Sprint(wantWaits) {
		t.Errorf("carol's waits %v, want %v", waits, wantWaits)
	}
	for i := range 40 {
		l.Fail("carol", "198.51.100.200") // holds stay bounded
		if i == 39 {
			check("carol after 50 failures, from a new address", "carol", "203.0.113.5", true, 5*time.Second)
		}
	}

	// One address guessing many users: refused after 30 failures (it
	// has 10 for alice already).
	for i := range 20 {
		if _, ok := l.Check(fmt.Sprintf("user%d", i), "192.0.2.1"); !ok {
			t.Fatalf("address refused after %d failures", 10+i)
		}
		l.Fail(fmt.Sprintf("user%d", i), "192.0.2.1")
	}
	check("a new user from an address with 30 failures", "dave", "192.0.2.1", false, 0)

	l.Succeed("alice", "192.0.2.1")
	check("alice after a success, from elsewhere", "alice", "192.0.2.99", true, 0)
	check("alice after a success, from the address", "alice", "192.0.2.1", false, 0)
	now = now.Add(DefaultLimits.Window + time.Second)
	check("after the window", "alice", "192.0.2.1", true, 0)
	if d := l.Fail("alice", "192.0.2.1"); d != 500*time.Millisecond {
		t.Errorf("first failure after the window held %v, want 500ms", d)
	}
	if n := l.Len(); n != 3 {
		t.Errorf("after the window and one failure: %d entries, want 3", n)
	}
}

// TestLimiterMemoryBounded: a flood of made-up names from made-up
// addresses keeps every table at MaxEntries, dropping the oldest; the
// newest entries still count.
func TestLimiterMemoryBounded(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		max, flood int
	}{{max: 1000, flood: 50000}, {max: 0, flood: DefaultLimits.MaxEntries + 2000}} {
		l := NewLimiter(Limits{MaxEntries: c.max})
		l.now = func() time.Time { return now }
		max := c.max
		if max == 0 {
			max = DefaultLimits.MaxEntries
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range c.flood {
			l.Fail(fmt.Sprintf("u%x", rng.Uint64()), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
			if i%1000 == 0 {
				now = now.Add(time.Millisecond)
			}
		}
		if n := l.Len(); n != 3*max {
			t.Errorf("max %d, after %d failures: %d entries, want %d", max, c.flood, n, 3*max)
		}
		// The last address to fail is still counted: 10 more and it is
		// refused.
		for range 10 {
			l.Fail("victim", "192.0.2.77")
		}
		if _, ok := l.Check("victim", "192.0.2.77"); ok {
			t.Errorf("max %d: an address with 10 fresh failures was forgotten", max)
		}
		if n := l.Len(); n != 3*max {
			t.Errorf("max %d: %d entries, want %d", max, n, 3*max)
		}
	}
}

type attempts []string

func (a *attempts) add(r string) { *a = append(*a, r) }

// newStatic returns a Service for cfgYAML (a config whose %s is
// replaced by the bcrypt hash of "right"), with a store in a temp dir and
// failure delays of a nanosecond a step.
func newStatic(t *testing.T, cfgYAML string, got *attempts) *Service {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.ParseEnv([]byte(strings.ReplaceAll(cfgYAML, "%s", string(hash))), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bridge.Open(context.Background(), bridge.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return New(Options{Config: cfg, Bridge: b, Attempt: got.add, Limits: Limits{Step: time.Nanosecond}})
}

const aliceConfig = "data_dir: data\nsources: [{name: spool, type: mbox, path: '/nonexistent/{user}'}]\n" +
	"users: [{name: alice, password_hash: '%s', sources: [spool]}]\n"

// TestAuthenticateStatic: a configured user's bcrypt hash decides; a wrong
// password and an unknown user get the same error, ErrFailed; after ten
// failures from one address even the right password is refused there, as
// ratelimited, and accepted from another address.
func TestAuthenticateStatic(t *testing.T) {
	var got attempts
	s := newStatic(t, aliceConfig, &got)
	ctx := context.Background()
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
	for range 9 {
		s.Authenticate(ctx, "alice", "wrong", remote)
	}
	_, err = s.Authenticate(ctx, "alice", "right", remote)
	if !errors.Is(err, ErrFailed) || err.Error() != "authentication failed: too many failed attempts, try again later" {
		t.Errorf("after 10 failures: %v", err)
	}
	other := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 8), Port: 40000}
	if u, err := s.Authenticate(ctx, "alice", "right", other); err != nil || u.Name() != "alice" {
		t.Errorf("after 10 failures from %s, the right password from %s: %v, %v", remote, other, u, err)
	}
	want := "[success failure failure failure failure failure failure failure failure failure failure failure ratelimited success]"
	if fmt.Sprint(got) != want {
		t.Errorf("attempts %v, want %s", got, want)
	}
}

// TestAuthenticateBadNames: a name with a space or a control character,
// not UTF-8, empty or over 256 bytes is refused before any check with an
// error saying which, wrapping ErrBadName (not ErrFailed: it is no wrong
// password); it counts against the address only.
func TestAuthenticateBadNames(t *testing.T) {
	var got attempts
	s := newStatic(t, aliceConfig, &got)
	ctx := context.Background()
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 40000}
	for _, c := range []struct{ name, want string }{
		{"", "login name refused: empty"},
		{"alice bob", "login name refused: contains a space or a control character"},
		{" alice", "login name refused: contains a space or a control character"},
		{"alice\t", "login name refused: contains a space or a control character"},
		{"ali\x00ce", "login name refused: contains a space or a control character"},
		{"alice\r\nA1 LOGOUT", "login name refused: contains a space or a control character"},
		{"alice\x7f", "login name refused: contains a space or a control character"},
		{"alice\u0085", "login name refused: contains a space or a control character"}, // C1 NEL
		{"alice\u00a0", "login name refused: contains a space or a control character"}, // no-break space
		{"al\u200bice", "login name refused: contains a space or a control character"}, // zero-width space
		{"alice\u202e", "login name refused: contains a space or a control character"}, // right-to-left override
		{"alice\u3000", "login name refused: contains a space or a control character"}, // ideographic space
		{"alice\xff", "login name refused: not valid UTF-8"},
		{strings.Repeat("a", 257), "login name refused: longer than 256 bytes"},
		{strings.Repeat("é", 129), "login name refused: longer than 256 bytes"},
	} {
		_, err := s.Authenticate(ctx, c.name, "right", remote)
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrBadName) || errors.Is(err, ErrFailed) {
			t.Errorf("name %q: %v, want %q wrapping ErrBadName", c.name, err, c.want)
		}
	}
	// Good names: checked (and refused as unknown, or accepted).
	for _, name := range []string{strings.Repeat("a", 256), "bob.smith@example.com", "jörg", "a+b-c_d"} {
		if _, err := s.Authenticate(ctx, name, "right", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10)}); err != ErrFailed {
			t.Errorf("name %q: %v, want ErrFailed (unknown user)", name, err)
		}
	}
	// 15 bad names from one address and 15 more failures: that address
	// is refused (30), for alice too.
	for i := range 15 {
		s.Authenticate(ctx, fmt.Sprintf("nobody%d", i), "x", remote)
	}
	if _, err := s.Authenticate(ctx, "alice", "right", remote); err == nil || err.Error() != "authentication failed: too many failed attempts, try again later" {
		t.Errorf("after 30 failures from one address: %v", err)
	}
}

// TestAuthenticateFoldCase: with login.fold_case, "Alice" and "ALICE" are
// alice (one bridge user); without it they are unknown users.
func TestAuthenticateFoldCase(t *testing.T) {
	ctx := context.Background()
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 11), Port: 40000}
	for _, fold := range []bool{false, true} {
		var got attempts
		s := newStatic(t, fmt.Sprintf("login: {fold_case: %v}\n", fold)+strings.Replace(aliceConfig, "name: alice", "name: Alice", 1), &got)
		for _, name := range []string{"alice", "Alice", "ALICE", "aLiCe"} {
			u, err := s.Authenticate(ctx, name, "right", remote)
			switch {
			case fold && (err != nil || u.Name() != "alice"):
				t.Errorf("fold_case: %q logged in as %v, %v; want alice", name, u, err)
			case !fold && name == "Alice" && (err != nil || u.Name() != "Alice"):
				t.Errorf("no fold_case: %q: %v, %v; want Alice", name, u, err)
			case !fold && name != "Alice" && err != ErrFailed:
				t.Errorf("no fold_case: %q: %v, want ErrFailed", name, err)
			}
		}
	}
}

// TestDummyHashCost: an unknown user's password is compared against a
// hash of the highest cost among the configured ones (bcrypt's default
// when there are none), so the time taken does not tell whether a name
// exists.
func TestDummyHashCost(t *testing.T) {
	dir := t.TempDir()
	hash := func(cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	h4, h6 := hash(bcrypt.MinCost), hash(6)
	for _, c := range []struct {
		hashes []string
		want   int
	}{
		{nil, bcrypt.DefaultCost},
		{[]string{h4}, bcrypt.MinCost},
		{[]string{h4, h6}, 6},
		{[]string{h6, h4}, 6},
	} {
		yaml := "data_dir: data\nsources: [{name: spool, type: mbox, path: '/x/{user}'}, {name: p, type: pop3, address: '127.0.0.1:1'}]\nusers:\n"
		for i, h := range c.hashes {
			yaml += fmt.Sprintf("  - {name: u%d, password_hash: '%s', sources: [spool]}\n", i, h)
		}
		if len(c.hashes) == 0 {
			yaml = strings.TrimSuffix(yaml, "users:\n")
		}
		cfg, _, err := config.ParseEnv([]byte(yaml), dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := New(Options{Config: cfg})
		if got, err := bcrypt.Cost(s.dummyHash()); err != nil || got != c.want {
			t.Errorf("hashes of costs %d: dummy hash cost %d (%v), want %d", len(c.hashes), got, err, c.want)
		}
	}
}

// FuzzCheckName: a name CheckName takes is valid UTF-8 of 1 to 256 bytes
// without a space or control character; one it refuses gets one of four
// texts, wrapping ErrBadName.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"alice", "a b", "a\x00", "\xff", strings.Repeat("x", 300), "jörg", "al\u200bice", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := CheckName(name)
		if err == nil {
			if name == "" || len(name) > MaxNameLength || !utf8.ValidString(name) || strings.IndexFunc(name, func(r rune) bool {
				return unicode.IsSpace(r) || unicode.IsControl(r)
			}) >= 0 {
				t.Fatalf("CheckName(%q) = nil", name)
			}
			return
		}
		switch err.Error() {
		case "login name refused: empty", "login name refused: longer than 256 bytes", "login name refused: not valid UTF-8",
			"login name refused: contains a space or a control character":
		default:
			t.Fatalf("CheckName(%q): unexpected text %q", name, err)
		}
		if !errors.Is(err, ErrBadName) {
			t.Fatalf("CheckName(%q): %v does not wrap ErrBadName", name, err)
		}
	})
}
