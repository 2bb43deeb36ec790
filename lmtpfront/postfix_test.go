package lmtpfront_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/postfixtest"
	"github.com/imapbridge/imapbridge/internal/testtool"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

// startPostfix starts a private Postfix delivering test.example over LMTP
// to lmtpAddr (host:port).
func startPostfix(t *testing.T, lmtpAddr string) *postfixtest.Instance {
	t.Helper()
	return startPostfixTo(t, "inet:"+lmtpAddr)
}

// startPostfixTo starts it delivering to dest ("inet:host:port" or
// "unix:/path").
func startPostfixTo(t *testing.T, dest string) *postfixtest.Instance {
	t.Helper()
	testtool.Require(t, postfixtest.Available(), postfixtest.InstallCommand)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pf, err := postfixtest.Start(ctx, postfixtest.Options{Domain: "test.example", LMTP: dest})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("POSTFIXTEST_LOG") != "" {
			t.Logf("postfix maillog:\n%s", pf.Log())
		}
		if err := pf.Stop(); err != nil {
			t.Error(err)
		}
	})
	return pf
}

// TestPostfixDelivers: a real Postfix takes a message over SMTP for two
// users and one unknown address, and delivers it over LMTP: each user's
// INBOX holds the message byte for byte after Postfix's own headers and
// the two the intake adds; Postfix logs status=sent for the users and
// bounces the unknown one with our 550 5.1.1.
func TestPostfixDelivers(t *testing.T) {
	e := newEnv(t, "", func(o *lmtpfront.Options) { o.MaxMessageSize = 1 << 20 }, "alice", "bob")
	pf := startPostfix(t, e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	msg := crlf("From: sender@remote.example\nTo: alice@test.example, bob@test.example\nSubject: via postfix\nMessage-ID: <pf1@remote.example>\n\nHello over SMTP and LMTP.\n.leading dot\n" + strings.Repeat("long ", 150) + "\n")
	if err := pf.Send(ctx, "sender@remote.example", []string{"alice@test.example", "bob@test.example", "nobody@test.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	off := 0
	sent := map[string]bool{}
	for len(sent) < 2 {
		line, next, err := pf.WaitLog(ctx, off, regexp.MustCompile(`to=<(alice|bob)@test\.example>.*status=sent`))
		if err != nil {
			t.Fatal(err)
		}
		off = next
		sent[regexp.MustCompile(`to=<(\w+)@`).FindStringSubmatch(line)[1]] = true
		if !strings.Contains(line, "relay=127.0.0.1[127.0.0.1]") || !strings.Contains(line, "250 2.0.0 <") || !strings.Contains(line, "> Saved as UID 1)") {
			t.Errorf("log line %q", line)
		}
	}
	bounce, _, err := pf.WaitLog(ctx, 0, regexp.MustCompile(`to=<nobody@test\.example>.*status=bounced`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bounce, "said: 550 5.1.1 <nobody@test.example> User unknown") {
		t.Errorf("bounce line %q", bounce)
	}
	for _, user := range []string{"alice", "bob"} {
		_, bodies := e.inbox(user)
		if len(bodies) != 1 {
			t.Fatalf("%s has %d messages", user, len(bodies))
		}
		got := bodies[0]
		prefix := "Return-Path: <sender@remote.example>\r\nDelivered-To: " + user + "@test.example\r\n"
		if !strings.HasPrefix(got, prefix) {
			t.Errorf("%s's copy starts %q", user, got[:min(len(got), 200)])
		}
		// Postfix adds Received (and nothing else to a message that has
		// From, To, Subject, Message-ID and no Date? it adds Date); the
		// message itself follows its headers unchanged.
		_, gotBody, _ := strings.Cut(got, "\r\n\r\n")
		_, wantBody, _ := strings.Cut(msg, "\r\n\r\n")
		if gotBody != wantBody {
			t.Errorf("%s's body %q, want %q", user, gotBody, wantBody)
		}
		if !strings.Contains(got, "\r\nSubject: via postfix\r\n") || !strings.Contains(got, "\r\nReceived: from client.remote.example") {
			t.Errorf("%s's headers %q", user, got[:strings.Index(got, "\r\n\r\n")])
		}
	}
	if got, want := e.counts(), map[string]int{"delivered": 2, "unknown_recipient": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}

// TestPostfixHonoursSize: Postfix reads SIZE from the LHLO reply and
// bounces a larger message itself, without sending it; nothing is stored.
func TestPostfixHonoursSize(t *testing.T) {
	e := newEnv(t, "", nil, "alice") // MaxMessageSize 1000
	pf := startPostfix(t, e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg := crlf("Subject: big\n\n" + strings.Repeat("x", 2000) + "\n")
	if err := pf.Send(ctx, "sender@remote.example", []string{"alice@test.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	line, _, err := pf.WaitLog(ctx, 0, regexp.MustCompile(`to=<alice@test\.example>.*status=bounced`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "dsn=5.3.4") || !strings.Contains(line, "exceeds size limit 1000 of server 127.0.0.1") {
		t.Errorf("log line %q", line)
	}
	if _, bodies := e.inbox("alice"); len(bodies) != 0 {
		t.Errorf("stored %d", len(bodies))
	}
}

// TestPostfixOverUnixSocket: the usual production set-up, Postfix's lmtp
// (running as the user postfix) delivering to a Unix socket.
func TestPostfixOverUnixSocket(t *testing.T) {
	testtool.Require(t, postfixtest.Available(), postfixtest.InstallCommand)
	// A directory the user postfix can reach (a test's TempDir is 0700).
	dir, err := os.MkdirTemp("", "lmtpsock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "lmtp.sock")
	e := newEnv(t, "unix:"+sock, nil, "alice")
	pf := startPostfixTo(t, "unix:"+sock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg := crlf("Subject: over a socket\n\nHi.\n")
	if err := pf.Send(ctx, "sender@remote.example", []string{"alice@test.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	line, _, err := pf.WaitLog(ctx, 0, regexp.MustCompile(`to=<alice@test\.example>.*status=sent`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "["+sock+"]") || !strings.Contains(line, "(250 2.0.0 <alice@test.example> Saved as UID 1)") {
		t.Errorf("log line %q", line)
	}
	// Postfix adds Received, Message-Id, Date and From to this bare message.
	if _, bodies := e.inbox("alice"); len(bodies) != 1 || !strings.HasPrefix(bodies[0], "Return-Path: <sender@remote.example>\r\nDelivered-To: alice@test.example\r\nReceived: ") ||
		!strings.Contains(bodies[0], "\r\nSubject: over a socket\r\n") || !strings.HasSuffix(bodies[0], "\r\n\r\nHi.\r\n") {
		t.Errorf("INBOX %q", bodies)
	}
}
