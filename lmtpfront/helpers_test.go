package lmtpfront_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

// env is a bridge in a temp dir with an LMTP server over it on a real
// listener.
type env struct {
	t     testing.TB
	b     *bridge.Bridge
	srv   *lmtpfront.Server
	addr  string // for net.Dial(network, addr)
	netw  string
	users map[string]*bridge.User

	mu      sync.Mutex
	results map[string]int
	limits  map[string]int
	conns   int
	lookups []string
}

// newEnv starts a server with users (names as the Lookup callback sees
// them) on listen ("" for 127.0.0.1:0), after edit changed its options.
func newEnv(t testing.TB, listen string, edit func(*lmtpfront.Options), users ...string) *env {
	t.Helper()
	return newEnvStore(t, nil, listen, edit, users...)
}

// newEnvStore is newEnv over a store opened with the options store set.
func newEnvStore(t testing.TB, store func(*bridge.Options), listen string, edit func(*lmtpfront.Options), users ...string) *env {
	t.Helper()
	ctx := context.Background()
	bopts := bridge.Options{DataDir: t.TempDir()}
	if store != nil {
		store(&bopts)
	}
	b, err := bridge.Open(ctx, bopts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, b: b, users: map[string]*bridge.User{}, results: map[string]int{}, limits: map[string]int{}}
	for _, name := range users {
		u, err := b.User(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		e.users[name] = u
	}
	opts := lmtpfront.Options{
		Hostname: "lmtp.test",
		Bridge:   b,
		Lookup: func(ctx context.Context, name string) (*bridge.User, bool, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.lookups = append(e.lookups, name)
			u, ok := e.users[name]
			return u, ok, nil
		},
		MaxMessageSize: 1000,
		MaxRecipients:  3,
		Metrics: lmtpfront.Metrics{
			Delivery:    func(r string) { e.mu.Lock(); e.results[r]++; e.mu.Unlock() },
			Limit:       func(l string) { e.mu.Lock(); e.limits[l]++; e.mu.Unlock() },
			Connections: func(d int) { e.mu.Lock(); e.conns += d; e.mu.Unlock() },
			Recovered:   func() { t.Error("a panic was recovered") },
		},
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := lmtpfront.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	l, err := lmtpfront.Listen(listen, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.netw, e.addr = srv, l.Addr().Network(), l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		b.Close()
	})
	return e
}

// client is a raw LMTP client: it writes what it is told and reads whole
// replies (every line of a multi-line one).
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// dialRaw connects and reads nothing.
func (e *env) dialRaw() *client {
	e.t.Helper()
	c, err := net.Dial(e.netw, e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &client{t: e.t, c: c, r: bufio.NewReader(c)}
}

// dial connects and reads the greeting.
func (e *env) dial() *client {
	e.t.Helper()
	cl := e.dialRaw()
	if got := cl.reply(); got != "220 lmtp.test LMTP Service Ready" {
		e.t.Fatalf("greeting %q", got)
	}
	return cl
}

// send writes s with each "\n" made CRLF.
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, strings.ReplaceAll(s, "\n", "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one reply; its lines are joined by "\n", CRLFs dropped.
func (c *client) reply() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(time.Minute))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading a reply after %q: %v", lines, err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *client) replies(n int) []string {
	c.t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = c.reply()
	}
	return out
}

// inbox returns the bodies in user's INBOX, in UID order, with their UIDs.
func (e *env) inbox(user string) ([]bridge.UID, []string) {
	e.t.Helper()
	return e.inboxOf(e.t, user)
}

// inboxOf is inbox, failing tb.
func (e *env) inboxOf(tb testing.TB, user string) ([]bridge.UID, []string) {
	tb.Helper()
	ctx := context.Background()
	u, err := e.b.User(ctx, user)
	if err != nil {
		tb.Fatal(err)
	}
	mb, err := u.Mailbox(ctx, "INBOX")
	if err != nil {
		tb.Fatal(err)
	}
	uids := mb.UIDs()
	var bodies []string
	for _, uid := range uids {
		body, err := mb.Open(ctx, uid)
		if err != nil {
			tb.Fatal(err)
		}
		data, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			tb.Fatal(err)
		}
		bodies = append(bodies, string(data))
	}
	return uids, bodies
}

func (e *env) counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, v := range e.results {
		out[k] = v
	}
	return out
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// message is a small message of n lines.
func message(subject string) string {
	return fmt.Sprintf("From: sender@remote.example\nTo: alice@test.example\nSubject: %s\n\nHello.\n", subject)
}
