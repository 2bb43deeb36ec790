package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
)

// End-to-end tests of logins (issue 12 B1, B6): the built binary, IMAP
// over a real listener, clients bound to chosen loopback addresses
// (net.Dialer.LocalAddr: all of 127.0.0.0/8 is this machine's).

// loginFrom dials addr from the local IP from and sends LOGIN; nil: logged
// in (and logged out again).
func loginFrom(from, addr, user, pass string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("dial from %s: %w", from, err)
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("select after login: %w", err)
	}
	c.Logout().Wait()
	return nil
}

// flood sends one wrong LOGIN for user from each of froms, all at once,
// and fails the test unless each is answered NO [AUTHENTICATIONFAILED].
func flood(t *testing.T, addr, user string, froms []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(froms))
	for i, from := range froms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = loginFrom(from, addr, user, "wrong-"+from)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Code != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("wrong password from %s: %v, want NO [AUTHENTICATIONFAILED]", froms[i], err)
		}
	}
}

func addrs(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s.%d", prefix, i))
	}
	return out
}

// checkLockout is the scenario of issue 12 B1 against a running bridge:
// 11 wrong passwords for user from 127.0.3.1–11, then the right one from
// 127.0.4.1 is accepted; 10 wrong from 127.0.5.1 alone, then the right
// one from there is refused (rate limited) and from 127.0.4.2 accepted.
func checkLockout(t *testing.T, imapAddr, adminAddr, user, pass string) {
	t.Helper()
	flood(t, imapAddr, user, addrs("127.0.3", 1, 11))
	if err := loginFrom("127.0.4.1", imapAddr, user, pass); err != nil {
		t.Fatalf("after 11 wrong passwords from 11 addresses, the right one from 127.0.4.1: %v (a stranger locked the user out)", err)
	}
	if n := p3MetricSum(adminAddr, "imapbridge_auth_attempts_total", `result="ratelimited"`); n != 0 {
		t.Errorf("ratelimited logins after the spread-out flood: %v, want 0", n)
	}
	same := make([]string, 10)
	for i := range same {
		same[i] = "127.0.5.1"
	}
	flood(t, imapAddr, user, same)
	var ie *imap.Error
	if err := loginFrom("127.0.5.1", imapAddr, user, pass); !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("after 10 wrong passwords from 127.0.5.1, the right one from there: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	if n := p3MetricSum(adminAddr, "imapbridge_auth_attempts_total", `result="ratelimited"`); n != 1 {
		t.Errorf("ratelimited logins after the flood from one address: %v, want 1", n)
	}
	if err := loginFrom("127.0.4.2", imapAddr, user, pass); err != nil {
		t.Errorf("the right password from 127.0.4.2 after the flood from 127.0.5.1: %v", err)
	}
}

// TestLoginNoLockoutByStrangers (issue 12 B1): wrong passwords from many
// addresses slow a static user's logins down but never refuse the right
// password from another address; from the guessing address they are
// refused.
func TestLoginNoLockoutByStrangers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	imapAddr, adminAddr := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`data_dir: %q
imap: {listen: %q, allow_insecure_auth: true}
admin: {listen: %q}
sources: [{name: spool, type: mbox, path: %q}]
users: [{name: alice, password_hash: %q, sources: [spool]}]
`, filepath.Join(dir, "data"), imapAddr, adminAddr, filepath.Join(dir, "{user}"), p3IMAPHash(t))
	path := filepath.Join(dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	p := p3LaunchBridge(t, path, imapAddr, adminAddr, logs)
	defer p.stop()
	checkLockout(t, imapAddr, adminAddr, "alice", p3IMAPPassword)
	if t.Failed() {
		t.Logf("bridge log:\n%s", p3Tail(logs.String(), 80))
	}
}

// TestLoginNoLockoutPassthrough (issue 12 B1) is the same for a user
// that only the real Dovecot knows (auth: passthrough, no users entry):
// every wrong password costs a POP3 login at the host; the right one from
// another address still logs in and the mail arrives.
func TestLoginNoLockoutPassthrough(t *testing.T) {
	t.Parallel()
	const bobPOP = "pop-Bob-Lock-3"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "bob", Password: bobPOP}}})
	msg := p3GenMessage("lockout", 1, 3000)
	e.srv.Deliver("bob", msg)
	cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr(), Auth: "passthrough"}}, nil).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()
	checkLockout(t, e.imap, e.admin, "bob", bobPOP)
	_, msgs := p3WaitCount(t, e.imap, "bob", bobPOP, "INBOX", 1, 15*time.Second)
	p3CheckMessages(t, "bob's INBOX", msgs, map[string][]byte{p3MessageID(msg): dovecottest.ExpectedPOP3(msg)})
	p3CheckNoSecrets(t, e.logs, bobPOP)
}

// rawIMAP is a line-level IMAP client, for exact wire text.
type rawIMAP struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawIMAP {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawIMAP{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.line() // greeting
	return c
}

func (c *rawIMAP) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *rawIMAP) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// tagged reads until the line of tag and returns it.
func (c *rawIMAP) tagged(tag string) string {
	c.t.Helper()
	for range 1000 {
		if l := c.line(); strings.HasPrefix(l, tag+" ") {
			return l
		}
	}
	c.t.Fatalf("no tagged %s reply", tag)
	return ""
}

// TestLoginNames (issue 12 B6): names with a space or a control character
// (quoted, or in a literal, or in AUTHENTICATE PLAIN) and names over 256
// bytes are refused with a NO that says why, on a connection that stays
// usable; with login.fold_case, ALICE and Alice log in as alice and see
// alice's mail.
func TestLoginNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	imapAddr, adminAddr := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`data_dir: %q
imap: {listen: %q, allow_insecure_auth: true}
admin: {listen: %q}
login: {fold_case: true}
sources: [{name: spool, type: mbox, path: %q, poll_interval: 200ms}]
users: [{name: Alice, password_hash: %q, sources: [spool]}]
`, filepath.Join(dir, "data"), imapAddr, adminAddr, filepath.Join(dir, "{user}"), p3IMAPHash(t))
	path := filepath.Join(dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The spool of the folded name: {user} is "alice".
	writeSpool(t, filepath.Join(dir, "alice"), testSpool()[:2], false)
	logs := &syncBuffer{}
	p := startBridge(t, path, imapAddr, adminAddr, logs)
	defer p.stop()

	const space = "a1 NO [AUTHENTICATIONFAILED] Login name refused: contains a space or a control character"
	c := dialRaw(t, imapAddr)
	for i, step := range []struct {
		send []string // parts; a part after "{n}" waits for the continuation
		want string
	}{
		{[]string{`LOGIN "alice smith" x`}, space},
		{[]string{`LOGIN " alice" x`}, space},
		{[]string{"LOGIN {6}", "al\x01ice x"}, space},
		{[]string{"LOGIN {7}", "ali\tce  x"}, space},
		{[]string{"LOGIN {7}", "alice\xc2\x85 x"}, space},
		{[]string{"LOGIN {6}", "alice\xff x"}, "a1 NO [AUTHENTICATIONFAILED] Login name refused: not valid UTF-8"},
		{[]string{"LOGIN " + strings.Repeat("a", 257) + " x"}, "a1 NO [AUTHENTICATIONFAILED] Login name refused: longer than 256 bytes"},
		{[]string{"AUTHENTICATE PLAIN AGFsaWNlIGJvYgB4"}, space}, // "\x00alice bob\x00x"
	} {
		tag := fmt.Sprintf("a%d", i+1)
		for j, part := range step.send {
			if j == 0 {
				part = tag + " " + part
			}
			c.send(part + "\r\n")
			if j < len(step.send)-1 {
				if l := c.line(); !strings.HasPrefix(l, "+") {
					t.Fatalf("step %d: %q, want a continuation", i+1, l)
				}
			}
		}
		want := tag + strings.TrimPrefix(step.want, "a1")
		if got := c.tagged(tag); got != want {
			t.Errorf("step %d (%q): %q, want %q", i+1, step.send, got, want)
		}
	}
	// The connection is still usable: the right login works on it.
	c.send("b1 LOGIN ALICE " + p3IMAPPassword + "\r\n")
	if got := c.tagged("b1"); !strings.HasPrefix(got, "b1 OK") {
		t.Fatalf("LOGIN ALICE after the refusals: %q", got)
	}
	c.send("b2 SELECT INBOX\r\n")
	exists := ""
	for l := c.line(); !strings.HasPrefix(l, "b2 "); l = c.line() {
		if strings.HasSuffix(l, " EXISTS") {
			exists = l
		}
	}
	if exists != "* 2 EXISTS" {
		t.Errorf("ALICE's INBOX: %q, want * 2 EXISTS (alice's spool)", exists)
	}
	// Alice, alice: the same user, the same mailbox.
	for _, name := range []string{"Alice", "alice"} {
		s := p3LoginIMAP(t, imapAddr, name, p3IMAPPassword)
		sel, err := s.c.Select("INBOX", nil).Wait()
		if err != nil || sel.NumMessages != 2 {
			t.Errorf("%s: SELECT INBOX %v, %v; want 2 messages", name, sel, err)
		}
		s.c.Logout().Wait()
	}
	if strings.Contains(logs.String(), "alice smith") || strings.Contains(logs.String(), "\x01") {
		t.Errorf("a refused name was logged:\n%s", logs.String())
	}
}
