package imapfront_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapbridge/imapbridge/imapfront"
)

// limitCounts returns the metrics' Limit counts (the env's hooks do not
// keep them).
type limitCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func withLimitCounts(lc *limitCounts, f func(*imapfront.Options)) envOption {
	lc.n = map[string]int{}
	return withServer(func(o *imapfront.Options) {
		o.Metrics.Limit = func(l string) { lc.mu.Lock(); lc.n[l]++; lc.mu.Unlock() }
		f(o)
	})
}

func (lc *limitCounts) get(l string) int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.n[l]
}

// dialGreeting connects and returns the client with its greeting line.
func dialGreeting(t testing.TB, addr string) (*rawClient, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	return c, c.line()
}

// closed checks that the server closed the connection: EOF (or a reset)
// with no further response.
func (c *rawClient) closed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\n')
	if l != "" {
		c.t.Fatalf("got %q, want the connection closed", l)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("connection still open")
	}
}

func TestMaxConnectionsPerAddress(t *testing.T) {
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(o *imapfront.Options) { o.MaxConnectionsPerAddress = 2 }))
	first := e.raw()
	e.raw()
	over, greeting := dialGreeting(t, e.addr)
	if greeting != "* BYE Too many connections from your address (limit 2)" {
		t.Fatalf("third connection from 127.0.0.1: %q", greeting)
	}
	over.closed()
	if n := lc.get("max_connections_per_address"); n != 1 {
		t.Errorf("limit counted %d times, want 1", n)
	}
	// A slot freed is a slot taken again.
	first.ok("LOGOUT")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, g := dialGreeting(t, e.addr)
		if strings.HasPrefix(g, "* OK ") {
			c.login("alice")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after LOGOUT still refused: %q", g)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMaxConnectionsPerUser(t *testing.T) {
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(o *imapfront.Options) { o.MaxConnectionsPerUser = 2 }))
	a1, a2 := e.raw(), e.raw()
	a1.login("alice")
	a2.login("alice")

	c := e.raw()
	const refused = "NO [LIMIT] Too many connections for this user (limit 2); log out elsewhere and try again"
	// More refusals than maxAuthFailures: none of them is a failure, so no BYE.
	for i := 0; i < 4; i++ {
		if _, got := c.cmd("LOGIN alice " + password); got != refused {
			t.Fatalf("LOGIN %d over the limit: %q", i, got)
		}
	}
	if _, got := c.cmd("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=="); got != refused {
		t.Fatalf("AUTHENTICATE over the limit: %q", got)
	}
	c.login("bob") // another user on the same connection
	if n := lc.get("max_connections_per_user"); n != 5 {
		t.Errorf("limit counted %d times, want 5", n)
	}
	e.metrics.mu.Lock()
	failures, successes := e.metrics.auth["failure"], e.metrics.auth["success"]
	e.metrics.mu.Unlock()
	if failures != 0 || successes != 3 {
		t.Errorf("%d authentication failures and %d successes counted, want 0 and 3", failures, successes)
	}

	a1.ok("LOGOUT")
	deadline := time.Now().Add(5 * time.Second)
	d := e.raw()
	for {
		_, got := d.cmd("LOGIN alice " + password)
		if strings.HasPrefix(got, "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after LOGOUT of one session: %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoginTimeout(t *testing.T) {
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(o *imapfront.Options) { o.LoginTimeout = time.Second }))
	loggedIn := e.raw()
	loggedIn.login("alice")

	// Busy but never logging in: NOOP and CAPABILITY do not extend it.
	c := e.raw()
	start := time.Now()
	var last string
	for time.Since(start) < 3*time.Second {
		c.send("n NOOP")
		if last = c.line(); last != "n OK NOOP completed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last != "* BYE Login timeout" {
		t.Fatalf("after %v: %q, want BYE", time.Since(start), last)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("BYE after %v, before the timeout", d)
	}
	c.closed()
	if n := lc.get("login_timeout"); n != 1 {
		t.Errorf("login_timeout counted %d times", n)
	}
	// The session that logged in is not touched.
	loggedIn.ok("NOOP")
}

func TestIdleTimeoutAndIdleDuration(t *testing.T) {
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(o *imapfront.Options) {
		o.IdleTimeout = time.Second
		o.MaxIdleDuration = 2500 * time.Millisecond
	}))
	e.deliver("alice", simpleMsg(1))

	silent := e.raw()
	silent.login("alice")
	busy := e.raw()
	busy.login("alice")
	idler := e.raw()
	idler.login("alice")
	idler.ok("SELECT INBOX")
	idler.send("i IDLE")
	if got := idler.line(); got != "+ idling" {
		t.Fatalf("IDLE: %q", got)
	}
	idleStart := time.Now()

	// NOOP keeps a session alive past the idle timeout.
	for i := 0; i < 12; i++ {
		busy.ok("NOOP")
		time.Sleep(100 * time.Millisecond)
	}
	if got := silent.lineWithin(3 * time.Second); got != "* BYE Autologout; idle for too long" {
		t.Fatalf("silent session: %q", got)
	}
	silent.closed()
	busy.ok("NOOP")
	busy.ok("LOGOUT")

	// IDLE outlives the idle timeout but not MaxIdleDuration.
	if got := idler.lineWithin(4 * time.Second); got != "* BYE Autologout; IDLE for too long" {
		t.Fatalf("idling session: %q", got)
	}
	if d := time.Since(idleStart); d < 2500*time.Millisecond {
		t.Errorf("IDLE ended after %v, before MaxIdleDuration", d)
	}
	idler.closed()

	// DONE ends IDLE; the session is then subject to the idle timeout.
	again := e.raw()
	again.login("alice")
	again.ok("SELECT INBOX")
	again.send("j IDLE")
	again.line()
	time.Sleep(1300 * time.Millisecond) // past IdleTimeout, within MaxIdleDuration
	again.send("DONE")
	if got := again.line(); got != "j OK IDLE completed" {
		t.Fatalf("DONE: %q", got)
	}
	again.ok("NOOP")
	if got := again.lineWithin(3 * time.Second); got != "* BYE Autologout; idle for too long" {
		t.Fatalf("after IDLE: %q", got)
	}
	if lc.get("idle_timeout") != 2 || lc.get("idle_duration") != 1 {
		t.Errorf("limits counted: %v", lc.n)
	}
}

// writeAll streams n bytes of fill (after head) until done or the
// connection fails; it returns how many bytes went out.
func writeAll(conn net.Conn, head string, fill []byte, n int64) int64 {
	conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	w, err := io.WriteString(conn, head)
	sent := int64(w)
	for err == nil && sent < n {
		chunk := fill
		if int64(len(chunk)) > n-sent {
			chunk = chunk[:n-sent]
		}
		w, err = conn.Write(chunk)
		sent += int64(w)
	}
	return sent
}

func TestCommandLength(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))

	// Just under the limit is a command like any other.
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	set := strings.Repeat("1,", (imapfront.MaxCommandLength-64)/2) + "1"
	if got := c.ok("UID FETCH " + set + " (FLAGS)"); len(got) != 1 {
		t.Errorf("FETCH with a %d-byte set: %q", len(set), got)
	}

	xs := make([]byte, 64<<10)
	for i := range xs {
		xs[i] = 'x'
	}
	for _, tc := range []struct {
		name, head string
		login      bool
	}{
		{"tag", "", false},
		{"NOOP argument", "a NOOP ", true},
		{"LOGIN argument", "a LOGIN ", false},
		{"quoted string", `a SEARCH SUBJECT "`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.raw()
			if tc.login {
				c.login("alice")
				c.ok("SELECT INBOX")
			}
			// Kernel buffers on loopback hold up to ~36 MB here (4 MB
			// tcp_wmem + 32 MB tcp_rmem): send far more than that.
			const total = 128 << 20
			done := make(chan int64, 1)
			go func() { done <- writeAll(c.conn, tc.head, xs, total) }()
			if got := c.line(); got != fmt.Sprintf("* BYE Command line too long (limit %d bytes)", imapfront.MaxCommandLength) {
				t.Fatalf("%q", got)
			}
			c.closed()
			if sent := <-done; sent >= total {
				t.Errorf("the server took all %d bytes", sent)
			}
		})
	}
}

// TestLongLineInLiteral: the command length does not count literal data,
// so a message with a 1 MB line is appended and fetched back intact.
// Lines inside it that look like a huge non-synchronizing literal or a
// STARTTLS are data too. The APPEND is pipelined after a NOOP: the NOOP's
// answer does not settle the literal, the "+" does.
func TestLongLineInLiteral(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	c.login("alice")
	msg := "Subject: long\r\n\r\n" + strings.Repeat("y", 1<<20) + "\r\n" +
		"x APPEND INBOX {99999999+}\r\n" + "s STARTTLS\r\n" + "end\r\n"
	c.conn.Write([]byte(fmt.Sprintf("n NOOP\r\na APPEND INBOX {%d}\r\n", len(msg))))
	if got := c.line(); got != "n OK NOOP completed" {
		t.Fatalf("NOOP: %q", got)
	}
	if got := c.line(); !strings.HasPrefix(got, "+ ") {
		t.Fatalf("APPEND: %q", got)
	}
	c.conn.Write([]byte(msg + "\r\n"))
	if got := c.line(); !strings.HasPrefix(got, "a OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", got)
	}
	c.ok("SELECT INBOX")
	got := c.ok("FETCH 1 BODY.PEEK[]")
	if want := fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s)", len(msg), msg); len(got) != 1 || got[0] != want {
		t.Errorf("FETCH: %d responses, first %d bytes, want %d", len(got), len(got[0]), len(want))
	}
	// The server's own literal (the FETCH above) held lines starting with
	// "x" and "s": the next synchronizing literal is still followed.
	small := "Subject: s\r\n\r\nhi\r\n"
	c.send(fmt.Sprintf("b APPEND INBOX {%d}", len(small)))
	if got := c.line(); !strings.HasPrefix(got, "+ ") {
		t.Fatalf("second APPEND: %q", got)
	}
	c.conn.Write([]byte(small + "\r\n"))
	got2 := c.line()
	for strings.HasPrefix(got2, "* ") { // EXISTS of the selected INBOX
		got2 = c.line()
	}
	if !strings.HasPrefix(got2, "b OK [APPENDUID ") {
		t.Fatalf("second APPEND: %q", got2)
	}
}

func TestOversizeLiterals(t *testing.T) {
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(o *imapfront.Options) { o.AppendLimit = 1 << 20 }))

	// Synchronizing: refused before the client sends a byte of it.
	c := e.raw()
	c.login("alice")
	if _, got := c.cmd("APPEND INBOX {1073741824}"); got != "NO [TOOBIG] Literals are limited to 1048576 bytes for this command" {
		t.Fatalf("1 GB APPEND: %q", got)
	}
	c.ok("NOOP") // the connection goes on

	// Non-synchronizing over LITERAL-'s 4096: BYE, the bytes are never
	// read as commands.
	for _, size := range []int{1 << 30, 4097} {
		c := e.raw()
		c.login("alice")
		c.send(fmt.Sprintf("b APPEND INBOX {%d+}\r\nc DELETE INBOX\r\nd CREATE Smuggled", size))
		if got := c.line(); got != fmt.Sprintf("* BYE Non-synchronizing literal of %d bytes refused (LITERAL- allows 4096)", size) {
			t.Fatalf("{%d+}: %q", size, got)
		}
		c.closed()
	}
	if n := lc.get("literal_size"); n != 2 {
		t.Errorf("literal_size counted %d times", n)
	}
	// Nothing was smuggled.
	d := e.raw()
	d.login("alice")
	if got := d.ok(`LIST "" Smuggled`); len(got) != 0 {
		t.Errorf("LIST Smuggled: %q", got)
	}

	// Up to 4096 a non-synchronizing literal is taken.
	msg := "Subject: small\r\n\r\n" + strings.Repeat("z", 4096-20) + "\r\n"
	d.send(fmt.Sprintf("e APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	if got := d.line(); !strings.HasPrefix(got, "e OK [APPENDUID ") {
		t.Fatalf("{4096+}: %q", got)
	}
}

func TestBadCommandsInARow(t *testing.T) {
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(*imapfront.Options) {}))
	c := e.raw()
	c.login("alice")
	for i := 0; i < imapfront.MaxBadCommands-1; i++ {
		if _, got := c.cmd("FROB"); got != "BAD Unknown command" {
			t.Fatalf("FROB: %q", got)
		}
	}
	c.ok("NOOP") // resets the count
	for i := 0; i < imapfront.MaxBadCommands; i++ {
		if _, got := c.cmd("FROB"); got != "BAD Unknown command" {
			t.Fatalf("FROB %d: %q", i, got)
		}
	}
	c.send("z NOOP")
	if got := c.line(); got != "* BYE Too many invalid commands" {
		t.Fatalf("after %d BAD: %q", imapfront.MaxBadCommands, got)
	}
	c.closed()
	if n := lc.get("bad_commands"); n != 1 {
		t.Errorf("bad_commands counted %d times", n)
	}
}

// TestStartTLSInjection: plaintext pipelined after STARTTLS (CVE-2011-0411
// style) is never answered; the connection is closed.
func TestStartTLSInjection(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(o *imapfront.Options) { o.TLSConfig = serverTLS }))
	c := e.raw()
	if _, err := c.conn.Write([]byte("a STARTTLS\r\nb CAPABILITY\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := c.line(); got != "a OK Begin TLS negotiation now" {
		t.Fatalf("STARTTLS: %q", got)
	}
	c.closed()
	if n := lc.get("starttls_injection"); n != 1 {
		t.Errorf("starttls_injection counted %d times", n)
	}

	// Without the injection STARTTLS works, and the guard then stays out of
	// the way of the TLS records.
	tc, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: clientTLS})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer tc.Close()
	if err := tc.Login("alice", password).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := tc.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestTLSMinVersion: a configuration allowing TLS 1.0 is raised to 1.2 on
// both listeners.
func TestTLSMinVersion(t *testing.T) {
	// Go's own server default is TLS 1.2 since Go 1.22; tls10server=1 brings
	// back the old default (1.0), which the Server must override.
	t.Setenv("GODEBUG", "tls10server=1")
	serverTLS, clientTLS := selfSignedTLS(t)
	e := newEnv(t, withServer(func(o *imapfront.Options) { o.TLSConfig = serverTLS }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln)

	for _, tc := range []struct {
		name     string
		version  uint16
		accepted bool
	}{
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientTLS.Clone()
			cfg.MinVersion, cfg.MaxVersion = tc.version, tc.version
			c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: cfg})
			if err == nil {
				err = c.Login("alice", password).Wait()
				c.Close()
			}
			if tc.accepted != (err == nil) {
				t.Errorf("implicit TLS: err %v", err)
			}
			s, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: cfg})
			if err == nil {
				err = s.Login("alice", password).Wait()
				s.Close()
			}
			if tc.accepted != (err == nil) {
				t.Errorf("STARTTLS: err %v", err)
			}
		})
	}
}

// TestLimitsOverImplicitTLS: with implicit TLS the guard sits above TLS,
// sees the client's plaintext and enforces the same limits; the listener
// still offers LOGIN (no LOGINDISABLED, no STARTTLS).
func TestLimitsOverImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	e := newEnv(t, withServer(func(o *imapfront.Options) {
		o.TLSConfig = serverTLS
		o.AllowInsecureAuth = false
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln)
	dial := func() *rawClient {
		conn, err := tls.Dial("tcp", ln.Addr().String(), clientTLS)
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
	c := dial()
	if got := c.ok("CAPABILITY"); got[0] != "* CAPABILITY IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN ID" {
		t.Errorf("capabilities over TLS: %q", got)
	}
	c.login("alice")
	c.send("b APPEND INBOX {5000+}")
	if got := c.line(); got != "* BYE Non-synchronizing literal of 5000 bytes refused (LITERAL- allows 4096)" {
		t.Errorf("{5000+} over TLS: %q", got)
	}

	c = dial()
	go writeAll(c.conn, "a NOOP ", []byte(strings.Repeat("x", 64<<10)), 1<<20)
	if got := c.line(); got != fmt.Sprintf("* BYE Command line too long (limit %d bytes)", imapfront.MaxCommandLength) {
		t.Errorf("long line over TLS: %q", got)
	}
}

// TestSilentTLSClient: a client that opens the implicit-TLS port and sends
// no hello is dropped at the login timeout.
func TestSilentTLSClient(t *testing.T) {
	serverTLS, _ := selfSignedTLS(t)
	e := newEnv(t, withServer(func(o *imapfront.Options) {
		o.TLSConfig = serverTLS
		o.LoginTimeout = 300 * time.Millisecond
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln)
	start := time.Now() // before the server can accept: its timer starts there
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after 10 s")
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %v, want the 300ms login timeout", d)
	}
}
