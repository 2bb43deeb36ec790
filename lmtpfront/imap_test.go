package lmtpfront_test

// This test file (only) imports imapfront, to show a delivery end to end:
// the package itself imports bridge and go-smtp alone.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
)

// TestIMAPIdleSeesDelivery: an IMAP client idling on INBOX hears of the
// LMTP delivery ("* 1 EXISTS") while it idles, and BODY[] over IMAP is the
// delivered copy byte for byte: Return-Path, Delivered-To, the message.
func TestIMAPIdleSeesDelivery(t *testing.T) {
	e := newEnv(t, "", nil, "alice")
	imap := imapfront.New(imapfront.Options{
		Bridge:            e.b,
		AllowInsecureAuth: true,
		Authenticate: func(ctx context.Context, user, pass string, _ net.Addr) (*bridge.User, error) {
			if user == "alice" && pass == "secret" {
				return e.users["alice"], nil
			}
			return nil, imapfront.ErrAuthFailed
		},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); imap.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		imap.Shutdown(ctx)
		<-done
	})

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(conn)
	tp := textproto.NewReader(r)
	readUntil := func(prefix string) []string {
		t.Helper()
		var lines []string
		for {
			line, err := tp.ReadLine()
			if err != nil {
				t.Fatalf("waiting for %q after %q: %v", prefix, lines, err)
			}
			lines = append(lines, line)
			if strings.HasPrefix(line, prefix) {
				return lines
			}
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(conn, s+"\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	readUntil("* OK")
	send("a LOGIN alice secret")
	readUntil("a OK")
	send("b SELECT INBOX")
	readUntil("b OK")
	send("c IDLE")
	readUntil("+ ")

	msg := message("pushed")
	c := e.dial()
	c.send("LHLO mta.test\nMAIL FROM:<sender@remote.example>\nRCPT TO:<alice@test.example>\nDATA\n" + msg + ".\n")
	if got := c.replies(5)[4]; got != "250 2.0.0 <alice@test.example> Saved as UID 1" {
		t.Fatalf("LMTP reply %q", got)
	}
	readUntil("* 1 EXISTS")
	send("DONE")
	readUntil("c OK")

	want := crlf("Return-Path: <sender@remote.example>\nDelivered-To: alice@test.example\n" + msg)
	send("d UID FETCH 1 (BODY.PEEK[])")
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}", len(want))
	if line != head {
		t.Fatalf("FETCH line %q, want %q", line, head)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("BODY[] %q, want %q", got, want)
	}
	readUntil("d OK")
}
