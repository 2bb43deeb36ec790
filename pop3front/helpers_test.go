package pop3front_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
	"github.com/imapbridge/imapbridge/pop3front"
)

const password = "s3cret pass"

// testEnv is a bridge in a temp dir with a POP3 face on 127.0.0.1:0
// (plain + STLS) and, when asked, an implicit-TLS listener.
type testEnv struct {
	t       testing.TB
	ctx     context.Context
	b       *bridge.Bridge
	srv     *pop3front.Server
	addr    string
	tlsAddr string
	pool    *x509.CertPool
	src     *bridgetest.Source // "legacy": a POP3 host, as HostUIDL says
	spool   *bridgetest.Source // "spool": not a POP3 host
	metrics *testMetrics
	logs    *syncBuffer
	opts    pop3front.Options
}

type testMetrics struct {
	mu        sync.Mutex
	commands  map[string]int // "CMD result"
	auth      map[string]int
	limits    map[string]int
	deleted   map[string]int
	conns     int
	recovered atomic.Int64
}

func (m *testMetrics) hooks() *pop3front.Metrics {
	return &pop3front.Metrics{
		CommandDone: func(cmd, result string, _ time.Duration) { m.add(m.commands, cmd+" "+result, 1) },
		Connections: func(_ string, d int) { m.mu.Lock(); m.conns += d; m.mu.Unlock() },
		AuthAttempt: func(r string) { m.add(m.auth, r, 1) },
		Limit:       func(l string) { m.add(m.limits, l, 1) },
		Deleted:     func(mode string, n int) { m.add(m.deleted, mode, n) },
		Recovered:   func() { m.recovered.Add(1) },
	}
}

func (m *testMetrics) add(into map[string]int, k string, n int) {
	m.mu.Lock()
	into[k] += n
	m.mu.Unlock()
}

func (m *testMetrics) get(from map[string]int, k string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return from[k]
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hostUIDL: the "legacy" source is a POP3 host whose ids are its UIDLs.
func hostUIDL(source string, id bridge.SourceID) (string, bool) {
	if source == "legacy" {
		return string(id), true
	}
	return "", false
}

func newEnv(t testing.TB, edit ...func(*pop3front.Options)) *testEnv {
	t.Helper()
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("bridge.Open: %v", err)
	}
	e := &testEnv{t: t, ctx: ctx, b: b, src: bridgetest.NewSource("legacy"), spool: bridgetest.NewSource("spool"),
		metrics: &testMetrics{commands: map[string]int{}, auth: map[string]int{}, limits: map[string]int{}, deleted: map[string]int{}},
		logs:    &syncBuffer{}}
	cert, pool := selfSigned(t)
	e.pool = pool
	level := slog.LevelDebug
	var out interface{ Write([]byte) (int, error) } = e.logs
	if os.Getenv("POP3FRONT_TEST_LOG") != "" {
		out = ioMulti{e.logs, os.Stderr}
	}
	e.opts = pop3front.Options{
		Bridge:            b,
		HostUIDL:          hostUIDL,
		Logger:            slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		AllowInsecureAuth: true,
		Metrics:           e.metrics.hooks(),
		Authenticate: func(ctx context.Context, username, pw string, _ net.Addr) (*bridge.User, error) {
			if pw != password || (username != "alice" && username != "bob") {
				return nil, fmt.Errorf("check %q: %w", username, pop3front.ErrAuthFailed)
			}
			return b.User(ctx, username)
		},
	}
	for _, f := range edit {
		f(&e.opts)
	}
	e.srv, err = pop3front.New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr, e.tlsAddr = ln.Addr().String(), tln.Addr().String()
	errs := make(chan error, 2)
	listeners := 1
	go func() { errs <- e.srv.Serve(ln) }()
	if e.opts.TLSConfig != nil {
		listeners++
		go func() { errs <- e.srv.ServeTLS(tln) }()
	} else {
		tln.Close()
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for range listeners {
			if err := <-errs; !errors.Is(err, pop3front.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
		if n := e.metrics.recovered.Load(); n != 0 {
			t.Errorf("%d panics recovered", n)
		}
		if strings.Contains(e.logs.String(), password) {
			t.Errorf("the password appears in the log")
		}
		b.Close()
	})
	return e
}

type ioMulti []interface{ Write([]byte) (int, error) }

func (m ioMulti) Write(p []byte) (int, error) {
	for _, w := range m {
		w.Write(p)
	}
	return len(p), nil
}

func (e *testEnv) user(name string) *bridge.User {
	u, err := e.b.User(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *testEnv) inbox(name string) *bridge.Mailbox {
	mb, err := e.user(name).Mailbox(e.ctx, "INBOX")
	if err != nil {
		e.t.Fatal(err)
	}
	return mb
}

// deliver puts messages at src and polls them into user's INBOX.
func (e *testEnv) deliver(src *bridgetest.Source, user string, msgs ...string) []bridge.SourceID {
	e.t.Helper()
	var ids []bridge.SourceID
	for _, m := range msgs {
		ids = append(ids, src.Deliver(user, []byte(m), time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC)))
	}
	if _, err := e.b.Poll(e.ctx, e.user(user), bridge.Feed{Source: src, Account: bridge.Account{User: user}}); err != nil {
		e.t.Fatalf("Poll: %v", err)
	}
	return ids
}

func (e *testEnv) appendMsg(user, msg string) bridge.UID {
	e.t.Helper()
	_, uid, err := e.user(user).Append(e.ctx, "INBOX", strings.NewReader(msg), nil, time.Date(2024, 3, 6, 10, 0, 0, 0, time.UTC))
	if err != nil {
		e.t.Fatalf("Append: %v", err)
	}
	return uid
}

// client is a raw POP3 connection for transcripts.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func (e *testEnv) dial() *client {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &client{t: e.t, conn: c, r: bufio.NewReader(c)}
}

func (e *testEnv) dialTLS() *client {
	e.t.Helper()
	c, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{RootCAs: e.pool, ServerName: "127.0.0.1"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &client{t: e.t, conn: c, r: bufio.NewReader(c)}
}

// line reads one line, CRLF removed; "" and an error at EOF.
func (c *client) line() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

func (c *client) mustLine() string {
	c.t.Helper()
	l, err := c.line()
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, l)
	}
	return l
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends a line and returns the one-line answer.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.mustLine()
}

// multi reads a multi-line body up to the terminating ".", raw bytes
// (dot-stuffing kept) without the terminator.
func (c *client) multi() []byte {
	c.t.Helper()
	var out []byte
	for {
		c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		l, err := c.r.ReadBytes('\n')
		if err != nil {
			c.t.Fatalf("read multi-line: %v", err)
		}
		if string(l) == ".\r\n" {
			return out
		}
		out = append(out, l...)
	}
}

// eof waits for the server to close the connection, failing on any
// further line.
func (c *client) eof() {
	c.t.Helper()
	if l, err := c.line(); err == nil {
		c.t.Fatalf("got %q, want the connection closed", l)
	}
}

// login logs in with USER/PASS after the greeting.
func (c *client) login(user string) string {
	c.t.Helper()
	if g := c.mustLine(); !strings.HasPrefix(g, "+OK") {
		c.t.Fatalf("greeting %q", g)
	}
	if l := c.cmd("USER " + user); l != "+OK Send PASS" {
		c.t.Fatalf("USER: %q", l)
	}
	l := c.cmd("PASS " + password)
	if !strings.HasPrefix(l, "+OK Logged in") {
		c.t.Fatalf("PASS: %q", l)
	}
	return l
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pop3front test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func slogTo(w interface{ Write([]byte) (int, error) }) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
