package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

// startFacesApp runs the app in process with the LMTP intake and the POP3
// face on free loopback ports: alice is fed by delivery alone, and a pop3
// source with auth passthrough (at a closed port) stands for a legacy host.
func startFacesApp(t *testing.T) (*app, *syncBuffer, func() error) {
	t.Helper()
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	yaml := fmt.Sprintf(`data_dir: %s
imap: {listen: 127.0.0.1:0, allow_insecure_auth: true}
admin: {listen: 127.0.0.1:0}
login: {fold_case: true}
lmtp: {listen: 127.0.0.1:0, hostname: bridge.test}
pop3: {listen: 127.0.0.1:0, allow_insecure_auth: true}
sources:
  - {name: legacy, type: pop3, address: 127.0.0.1:1, tls: none, auth: passthrough, timeout: 2s}
users:
  - {name: alice, password_hash: %q, sources: []}
`, filepath.Join(dir, "data"), hash)
	cfg, _, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a, err := startApp(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceValue(func() error { return a.shutdown(quickShutdown) })
	t.Cleanup(func() {
		if err := stop(); err != nil && !strings.Contains(t.Name(), "Shutdown") {
			t.Errorf("shutdown: %v\n%s", err, logs.String())
		}
		if strings.Contains(logs.String(), "s3cret-pass") {
			t.Errorf("a password appears in the logs")
		}
	})
	return a, logs, stop
}

// lineConn is a raw text protocol client: send a line, read a reply.
type lineConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialLines(t *testing.T, addr net.Addr) *lineConn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &lineConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (l *lineConn) send(line string) {
	l.t.Helper()
	if _, err := fmt.Fprintf(l.c, "%s\r\n", line); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lineConn) line() string {
	l.t.Helper()
	s, err := l.r.ReadString('\n')
	if err != nil {
		l.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// smtpReply reads a (multi-line) SMTP/LMTP reply and returns its last line.
func (l *lineConn) smtpReply() string {
	l.t.Helper()
	for {
		s := l.line()
		if len(s) < 4 || s[3] != '-' {
			return s
		}
	}
}

// TestLMTPRecipientsAndPOP3Face, in process: LMTP takes a configured user
// by its local part (case folded), a passthrough user the store has seen,
// and refuses a name it has never seen, with a reply per recipient after
// DATA; the delivery is on the POP3 face under a generated UIDL; a wrong
// POP3 password is an [AUTH] failure counted in the POP3 family; every
// LMTP result is pre-set to 0 in the metrics.
func TestLMTPRecipientsAndPOP3Face(t *testing.T) {
	a, _, _ := startFacesApp(t)
	ctx := context.Background()
	fams, _ := scrape(t, a.adminAddr.String())
	for _, r := range lmtpfront.Results {
		if v, ok := value(fams, "imapbridge_lmtp_deliveries_total", "result", r); !ok || v != 0 {
			t.Errorf("imapbridge_lmtp_deliveries_total{result=%q} = %v, %v before any delivery; want a 0 sample", r, v, ok)
		}
	}
	for _, name := range []string{"imapbridge_lmtp_connections", "imapbridge_lmtp_limits_total", "imapbridge_pop3_commands_total",
		"imapbridge_pop3_connections", "imapbridge_pop3_auth_attempts_total", "imapbridge_pop3_limits_total", "imapbridge_pop3_deleted_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("family %s missing", name)
		}
	}
	// pete logged in once through the passthrough host: the store has him.
	if _, err := a.bridge.User(ctx, "pete"); err != nil {
		t.Fatal(err)
	}

	l := dialLines(t, a.lmtpAddr)
	if g := l.smtpReply(); !strings.HasPrefix(g, "220 bridge.test ") {
		t.Fatalf("greeting %q", g)
	}
	for _, step := range []struct{ send, want string }{
		{"LHLO mta.test", "250 "},
		{"MAIL FROM:<sender@remote.test>", "250 "},
		{"RCPT TO:<Alice@Example.ORG>", "250 "},
		{"RCPT TO:<pete@example.org>", "250 "},
		{"RCPT TO:<stranger@example.org>", "550 5.1.1 "},
		{"DATA", "354 "},
	} {
		l.send(step.send)
		if got := l.smtpReply(); !strings.HasPrefix(got, step.want) {
			t.Fatalf("%s: %q, want %s…", step.send, got, step.want)
		}
	}
	l.send("Subject: to two\r\n\r\nhello\r\n.")
	for _, rcpt := range []string{"Alice@Example.ORG", "pete@example.org"} {
		if got := l.smtpReply(); !strings.HasPrefix(got, "250 2.0.0 <"+rcpt+"> Saved as UID 1") {
			t.Errorf("reply for %s: %q", rcpt, got)
		}
	}
	l.send("QUIT")
	l.smtpReply()

	fams, _ = scrape(t, a.adminAddr.String())
	for r, want := range map[string]float64{"delivered": 2, "unknown_recipient": 1, "temp_failure": 0} {
		if v, _ := value(fams, "imapbridge_lmtp_deliveries_total", "result", r); v != want {
			t.Errorf("imapbridge_lmtp_deliveries_total{result=%q} = %v, want %v", r, v, want)
		}
	}

	p := dialLines(t, a.pop3Addr)
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("POP3 greeting %q", g)
	}
	p.send("USER alice")
	p.line()
	p.send("PASS wrong-pass")
	if got := p.line(); !strings.HasPrefix(got, "-ERR [AUTH]") {
		t.Errorf("wrong password: %q, want -ERR [AUTH] …", got)
	}
	p.send("USER ALICE")
	p.line()
	p.send("PASS s3cret-pass")
	if got := p.line(); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	p.send("UIDL")
	if got := p.line(); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("UIDL: %q", got)
	}
	var uidls []string
	for s := p.line(); s != "."; s = p.line() {
		uidls = append(uidls, s)
	}
	alice, err := a.bridge.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := alice.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("1 ib.%d.1", inbox.Info().UIDValidity); len(uidls) != 1 || uidls[0] != want {
		t.Errorf("UIDL listing %q, want [%q]", uidls, want)
	}
	p.send("QUIT")
	p.line()
	fams, _ = scrape(t, a.adminAddr.String())
	for r, want := range map[string]float64{"success": 1, "failure": 1} {
		if v, _ := value(fams, "imapbridge_pop3_auth_attempts_total", "result", r); v != want {
			t.Errorf("imapbridge_pop3_auth_attempts_total{result=%q} = %v, want %v", r, v, want)
		}
	}
	if v, _ := value(fams, "imapbridge_pop3_commands_total", "command", "UIDL", "result", "ok"); v != 1 {
		t.Errorf("imapbridge_pop3_commands_total{command=UIDL,result=ok} = %v, want 1", v)
	}
}

// TestShutdownDrainsPOP3AndLMTP: a POP3 session waiting for a command ends
// in the drain phase (the client is told "-ERR [SYS/TEMP]"). An LMTP
// client that keeps its connection open between transactions holds the
// drain phase to its budget (go-smtp waits for the client to close; Postfix
// does within lmtp_connection_cache_time_limit, 2 s): then the connection
// is cut, which loses nothing (no transaction was open), and the phase's
// error names LMTP. The listeners stop taking connections, and every phase
// logs its line.
func TestShutdownDrainsPOP3AndLMTP(t *testing.T) {
	a, logs, stop := startFacesApp(t)
	p := dialLines(t, a.pop3Addr)
	p.line()
	p.send("USER alice")
	p.line()
	p.send("PASS s3cret-pass")
	if got := p.line(); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	l := dialLines(t, a.lmtpAddr)
	l.smtpReply()
	l.send("LHLO mta.test")
	l.smtpReply()
	pop3Addr, lmtpAddr := a.pop3Addr.String(), a.lmtpAddr.String()

	err := stop()
	if err == nil || !strings.Contains(err.Error(), "lmtp: shutdown: context deadline exceeded") || strings.Contains(err.Error(), "pop3") {
		t.Fatalf("shutdown: %v, want only the LMTP drain's deadline\n%s", err, logs.String())
	}
	if got, err := p.r.ReadString('\n'); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Errorf("the POP3 session was told %q (%v), want -ERR [SYS/TEMP] …", got, err)
	}
	if got, err := l.r.ReadString('\n'); err == nil && !strings.HasPrefix(got, "421") {
		t.Errorf("the LMTP session was told %q, want 421 or the connection closed", got)
	}
	for _, addr := range []string{pop3Addr, lmtpAddr} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still takes connections after shutdown", addr)
		}
	}
	for _, msg := range []string{"shutdown: stopped accepting", `msg="shutdown: phase failed" phase=2`, "shutdown: pollers stopped", "shutdown: store closed"} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("no %q in the log:\n%s", msg, logs.String())
		}
	}
}
