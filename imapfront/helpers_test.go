package imapfront_test

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
	"github.com/imapbridge/imapbridge/imapfront"
)

const password = "secret"

// testEnv is a bridge in a temp dir with an IMAP server on 127.0.0.1:0.
type testEnv struct {
	t        testing.TB
	ctx      context.Context
	b        *bridge.Bridge
	srv      *imapfront.Server
	addr     string
	src      *bridgetest.Source
	metrics  *testMetrics
	serveErr chan error
	stop     sync.Once
	stopFn   func()
}

type testMetrics struct {
	mu        sync.Mutex
	commands  map[string]int // "CMD result"
	conns     int
	auth      map[string]int
	idle      int
	recovered atomic.Int64
}

func (m *testMetrics) hooks() *imapfront.Metrics {
	return &imapfront.Metrics{
		CommandDone: func(cmd, result string, _ time.Duration) {
			m.mu.Lock()
			m.commands[cmd+" "+result]++
			m.mu.Unlock()
		},
		Connections: func(_ string, d int) { m.mu.Lock(); m.conns += d; m.mu.Unlock() },
		AuthAttempt: func(r string) { m.mu.Lock(); m.auth[r]++; m.mu.Unlock() },
		IdleSessions: func(d int) {
			m.mu.Lock()
			m.idle += d
			m.mu.Unlock()
		},
		Recovered: func() { m.recovered.Add(1) },
	}
}

func (m *testMetrics) command(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commands[key]
}

type envOption func(*imapfront.Options, *bridge.Options)

func withoutIndex() envOption {
	return func(_ *imapfront.Options, b *bridge.Options) { b.Index = nil }
}

func withDataDir(dir string) envOption {
	return func(_ *imapfront.Options, b *bridge.Options) { b.DataDir = dir }
}

func withIndexer(index bridge.Indexer, current bridge.IndexCurrent) envOption {
	return func(_ *imapfront.Options, b *bridge.Options) { b.Index, b.IndexCurrent = index, current }
}

func withBridge(f func(*bridge.Options)) envOption {
	return func(_ *imapfront.Options, b *bridge.Options) { f(b) }
}

func withServer(f func(*imapfront.Options)) envOption {
	return func(o *imapfront.Options, _ *bridge.Options) { f(o) }
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("IMAPFRONT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	ctx := context.Background()
	bopts := bridge.Options{DataDir: t.TempDir(), Index: imapfront.Index, IndexCurrent: imapfront.IndexCurrent, Logger: testLogger(t)}
	m := &testMetrics{commands: map[string]int{}, auth: map[string]int{}}
	var b *bridge.Bridge
	sopts := imapfront.Options{
		Logger:            testLogger(t),
		AllowInsecureAuth: true,
		Metrics:           m.hooks(),
		Authenticate: func(ctx context.Context, username, pw string, _ net.Addr) (*bridge.User, error) {
			if pw != password || (username != "alice" && username != "bob") {
				return nil, fmt.Errorf("check %q: %w", username, imapfront.ErrAuthFailed)
			}
			return b.User(ctx, username)
		},
	}
	for _, o := range opts {
		o(&sopts, &bopts)
	}
	b, err := bridge.Open(ctx, bopts)
	if err != nil {
		t.Fatalf("bridge.Open: %v", err)
	}
	sopts.Bridge = b
	srv := imapfront.New(sopts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, ctx: ctx, b: b, srv: srv, addr: ln.Addr().String(), src: bridgetest.NewSource("test"), metrics: m, serveErr: make(chan error, 1)}
	go func() { e.serveErr <- srv.Serve(ln) }()
	e.stopFn = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-e.serveErr; !errors.Is(err, imapfront.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if n := m.recovered.Load(); n != 0 {
			t.Errorf("%d panics recovered", n)
		}
		b.Close()
	}
	t.Cleanup(e.close)
	return e
}

// close shuts the server down and closes the store, once (a test may do it
// early, to reopen the data directory).
func (e *testEnv) close() { e.stop.Do(e.stopFn) }

func (e *testEnv) user(name string) *bridge.User {
	u, err := e.b.User(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// deliver puts messages at the source and polls them into alice's INBOX.
func (e *testEnv) deliver(user string, msgs ...string) {
	e.t.Helper()
	for _, m := range msgs {
		e.src.Deliver(user, []byte(m), time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC))
	}
	feed := bridge.Feed{Source: e.src, Account: bridge.Account{User: user}}
	if _, err := e.b.Poll(e.ctx, e.user(user), feed); err != nil {
		e.t.Fatalf("Poll: %v", err)
	}
}

// appendMsg appends through the bridge (not IMAP).
func (e *testEnv) appendMsg(user, mailbox, msg string, flags []string, date time.Time) bridge.UID {
	e.t.Helper()
	_, uid, err := e.user(user).Append(e.ctx, mailbox, strings.NewReader(msg), flags, date)
	if err != nil {
		e.t.Fatalf("Append: %v", err)
	}
	return uid
}

func (e *testEnv) client(user string) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialInsecure(e.addr, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if user != "" {
		if err := c.Login(user, password).Wait(); err != nil {
			e.t.Fatalf("Login: %v", err)
		}
	}
	return c
}

// rawClient speaks IMAP line by line, for transcripts where the exact wire
// text matters.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

func (e *testEnv) raw() *rawClient {
	e.t.Helper()
	return dialRaw(e.t, e.addr)
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.line(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write([]byte(s + "\r\n")); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// line reads one response, with any literals it announces inlined, without
// the final CRLF.
func (c *rawClient) line() string {
	c.t.Helper()
	return c.lineWithin(5 * time.Second)
}

func (c *rawClient) lineWithin(d time.Duration) string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	var b strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (so far %q)", err, b.String()+l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		n, ok := literalSize(l)
		if !ok {
			return b.String()
		}
		buf := make([]byte, n)
		if _, err := ioReadFull(c.r, buf); err != nil {
			c.t.Fatalf("read literal: %v", err)
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// noLine checks that nothing arrives for a moment.
func (c *rawClient) noLine(d time.Duration) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	l, err := c.r.ReadString('\n')
	if err == nil || l != "" {
		c.t.Fatalf("unexpected response %q", l)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("read: %v", err)
	}
}

func literalSize(l string) (int, bool) {
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndex(l, "{")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
	return n, err == nil
}

// cmd sends a tagged command and returns the untagged responses and the
// tagged completion (without the tag).
func (c *rawClient) cmd(s string) ([]string, string) {
	c.t.Helper()
	c.tag++
	tag := fmt.Sprintf("a%d", c.tag)
	c.send(tag + " " + s)
	var untagged []string
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// ok runs a command that must succeed and returns its untagged responses.
func (c *rawClient) ok(s string) []string {
	c.t.Helper()
	untagged, status := c.cmd(s)
	if !strings.HasPrefix(status, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", s, status, untagged)
	}
	return untagged
}

func (c *rawClient) login(user string) {
	c.t.Helper()
	c.ok("LOGIN " + user + " " + password)
}

func newReader(conn net.Conn) *bufio.Reader { return bufio.NewReader(conn) }

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// selfSignedTLS returns a server configuration with a fresh certificate for
// 127.0.0.1 and a client configuration that trusts it.
func selfSignedTLS(t testing.TB) (*tls.Config, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// Fixtures.

func simpleMsg(i int) string {
	return fmt.Sprintf("From: Alice Example <alice@example.org>\r\n"+
		"To: Bob <bob@example.org>\r\n"+
		"Subject: note %d\r\n"+
		"Date: Tue, 05 Mar 2024 10:%02d:00 +0100\r\n"+
		"Message-ID: <note-%d@example.org>\r\n"+
		"\r\n"+
		"This is note number %d.\r\n", i, i%60, i, i)
}

// multipartMsg has an encoded-word subject, a quoted-printable UTF-8 text,
// an HTML alternative and a base64 attachment.
const multipartMsg = "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\r\n" +
	"To: Alice <alice@example.org>, team@example.org\r\n" +
	"Cc: Carol <carol@example.net>\r\n" +
	"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=\r\n" +
	"Date: Wed, 06 Mar 2024 08:30:00 +0100\r\n" +
	"Message-ID: <mp-1@example.de>\r\n" +
	"In-Reply-To: <note-1@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"This is a multi-part message in MIME format.\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Sch=C3=B6ne Gr=C3=BC=C3=9Fe, the quarterly figures are attached.\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9fe</p>\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"figures.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"figures.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK\r\n" +
	"--outer--\r\n"

// latin1Msg is a single-part ISO-8859-1 quoted-printable message.
const latin1Msg = "From: Hans <hans@example.de>\r\n" +
	"To: Alice <alice@example.org>\r\n" +
	"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n" +
	"Date: Thu, 07 Mar 2024 12:00:00 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=iso-8859-1\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Viele Gr=FC=DFe aus M=FCnchen\r\n"
