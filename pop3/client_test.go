package pop3

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func dial(t *testing.T, addr string, opts Options) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func login(t *testing.T, c *Client) {
	t.Helper()
	if err := c.Login(context.Background(), "alice", "secret"); err != nil {
		t.Fatalf("Login: %v", err)
	}
}

// bodyOf reads a whole RETR or TOP reply: bodyOf(t)(c.Retr(ctx, 1)).
func bodyOf(t *testing.T) func(*Body, error) string {
	return func(b *Body, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(b)
		if err != nil {
			t.Fatalf("reading body: %v", err)
		}
		return string(data)
	}
}

// mustNoop proves the session is still in step.
func mustNoop(t *testing.T, c *Client) {
	t.Helper()
	if err := c.Noop(context.Background()); err != nil {
		t.Fatalf("NOOP after the command: %v (session out of step?)", err)
	}
}

// The failures go-pop3 v1.0.0 showed against a real Dovecot, each shown
// here against a server that sends exactly those bytes.
func TestGoPop3Regressions(t *testing.T) {
	line20k := strings.Repeat("0123456789", 2000)
	msgs := []string{
		"Subject: dots\r\n\r\n.x\r\n..\r\n.\r\nend\r\n",
		"Subject: long\r\n\r\n" + line20k + "\r\n",
		"Subject: 4096\r\n\r\n" + long4096 + "\r\n.\r\nafter the dot line\r\n",
		"Subject: next\r\n\r\nsecond half of the session\r\n",
	}
	fs := newFaultServer(t, faultConfig{msgs: msgs})
	c := dial(t, fs.Addr(), Options{})
	login(t, c)
	ctx := context.Background()

	t.Run("stuffing dot removed", func(t *testing.T) {
		got := bodyOf(t)(c.Retr(ctx, 1))
		if got != msgs[0] {
			t.Fatalf("RETR 1 = %q, want %q", got, msgs[0])
		}
	})
	t.Run("no CRLF inserted in long lines", func(t *testing.T) {
		got := bodyOf(t)(c.Retr(ctx, 2))
		if got != msgs[1] || strings.Count(got, "\r\n") != 3 {
			t.Fatalf("RETR 2: %d bytes with %d CRLFs, want %d bytes with 3", len(got), strings.Count(got, "\r\n"), len(msgs[1]))
		}
	})
	t.Run("4096-byte line then dot line does not end the message", func(t *testing.T) {
		got := bodyOf(t)(c.Retr(ctx, 3))
		if got != msgs[2] {
			t.Fatalf("RETR 3: got %d bytes ending %q, want %d bytes", len(got), got[max(0, len(got)-30):], len(msgs[2]))
		}
		// and the session is in step: the next RETR returns message 4
		if got := bodyOf(t)(c.Retr(ctx, 4)); got != msgs[3] {
			t.Fatalf("RETR 4 after RETR 3 = %q, want %q", got, msgs[3])
		}
	})
}

func TestStallTimesOut(t *testing.T) {
	stallAt := map[string]func(c *faultConn){
		"status": func(c *faultConn) {},
		"mid-body": func(c *faultConn) {
			c.sendRaw("+OK\r\nSubject: x\r\n\r\npart of a li")
		},
		"before terminator": func(c *faultConn) {
			c.sendRaw("+OK\r\nSubject: x\r\n\r\nall of it\r\n")
		},
	}
	for name, stall := range stallAt {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
				if verb == "RETR" {
					stall(c) // and then nothing, until the test ends
					return true
				}
				return false
			}})
			c := dial(t, fs.Addr(), Options{Timeout: 200 * time.Millisecond})
			b, err := c.Retr(context.Background(), 1)
			if err == nil {
				_, err = io.ReadAll(b)
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.HasPrefix(err.Error(), "pop3: retr 1: ") ||
				!strings.Contains(err.Error(), "i/o timeout") {
				t.Fatalf("err = %v, want a timeout naming retr 1", err)
			}
			err = c.Noop(context.Background())
			if !errors.Is(err, ErrClosed) || !strings.HasPrefix(err.Error(), "pop3: noop: connection closed (") {
				t.Fatalf("after a timeout, Noop = %v; want ErrClosed", err)
			}
		})
	}
	t.Run("greeting", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				defer c.Close()
				io.Copy(io.Discard, c) // never greet
			}
		}()
		_, err = Dial(context.Background(), ln.Addr().String(), Options{Timeout: 200 * time.Millisecond})
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.HasPrefix(err.Error(), "pop3: greeting: ") {
			t.Fatalf("Dial to a silent server = %v; want a greeting timeout", err)
		}
	})
}

func TestCutMidRetr(t *testing.T) {
	fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
		if verb == "RETR" {
			c.sendRaw("+OK 1000 octets\r\nSubject: cut\r\n\r\nthe first li")
			c.Close()
			return true
		}
		return false
	}})
	c := dial(t, fs.Addr(), Options{})
	b, err := c.Retr(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if string(got) != "Subject: cut\r\n\r\nthe first li" {
		t.Errorf("data before the cut = %q", got)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != "pop3: retr 1: unexpected EOF" {
		t.Fatalf("err = %v, want pop3: retr 1: unexpected EOF", err)
	}
	if err := b.Close(); err == nil {
		t.Fatal("Close of a cut body = nil, want the error")
	}
	if err := c.Noop(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Noop after the cut = %v, want ErrClosed", err)
	}
}

func TestServerClosesBeforeReply(t *testing.T) {
	fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
		if verb == "STAT" {
			c.Close()
			return true
		}
		return false
	}})
	c := dial(t, fs.Addr(), Options{})
	_, _, err := c.Stat(context.Background())
	if !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != "pop3: stat: server closed the connection: unexpected EOF" {
		t.Fatalf("err = %v", err)
	}
}

func TestGarbageReplies(t *testing.T) {
	for _, tc := range []struct {
		name, reply, wantErr string
	}{
		{"not a status line", "HELLO THERE\r\n", `pop3: noop: malformed reply: not a status line: "HELLO THERE"`},
		{"empty line", "\r\n", `pop3: noop: malformed reply: not a status line: ""`},
		{"imap greeting", "* OK IMAP4rev1 ready\r\n", `pop3: noop: malformed reply: not a status line: "* OK IMAP4rev1 ready"`},
		{"continuation", "+ go on\r\n", `pop3: noop: malformed reply: unexpected continuation line "+ go on"`},
		{"overlong", "+OK " + strings.Repeat("a", 9000) + "\r\n", "pop3: noop: malformed reply: reply line longer than 8192 bytes"},
		{"overlong without newline", "+OK " + strings.Repeat("b", 70000), "pop3: noop: malformed reply: reply line longer than 8192 bytes"},
		{"binary", "\x00\xff\xfe\r\n", `pop3: noop: malformed reply: not a status line: "\x00\xff\xfe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
				if verb == "NOOP" {
					c.sendRaw(tc.reply)
					return true
				}
				return false
			}})
			c := dial(t, fs.Addr(), Options{Timeout: 5 * time.Second})
			err := c.Noop(context.Background())
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v\nwant %s", err, tc.wantErr)
			}
			// The conversation is out of step: nothing more is sent.
			if err := c.Noop(context.Background()); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Noop = %v, want ErrClosed", err)
			}
		})
	}
	t.Run("garbage greeting", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{greeting: "220 mail.example.org ESMTP"})
		_, err := Dial(context.Background(), fs.Addr(), Options{})
		if err == nil || err.Error() != `pop3: greeting: malformed reply: not a status line: "220 mail.example.org ESMTP"` {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("-ERR greeting", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{greeting: "-ERR [SYS/TEMP] too many connections"})
		_, err := Dial(context.Background(), fs.Addr(), Options{})
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeSysTemp || pe.Command != "" ||
			err.Error() != "pop3: greeting: server replied -ERR [SYS/TEMP] too many connections" {
			t.Fatalf("err = %v", err)
		}
	})
}

// Malformed STAT, LIST and UIDL replies are errors naming the command; the
// session stays usable when the reply was read to its end.
func TestMalformedListings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reply   string
		call    func(c *Client) error
		wantErr string
	}{
		{"stat no numbers", "+OK\r\n", func(c *Client) error { _, _, err := c.Stat(context.Background()); return err },
			`pop3: stat: malformed reply: want "count size", got ""`},
		{"stat words", "+OK lots of mail\r\n", func(c *Client) error { _, _, err := c.Stat(context.Background()); return err },
			`pop3: stat: malformed reply: message count "lots"`},
		{"stat negative", "+OK 2 -320\r\n", func(c *Client) error { _, _, err := c.Stat(context.Background()); return err },
			`pop3: stat: malformed reply: maildrop size "-320"`},
		{"stat huge", "+OK 99999999999999999999 1\r\n", func(c *Client) error { _, _, err := c.Stat(context.Background()); return err },
			`pop3: stat: malformed reply: message count "99999999999999999999"`},
		{"list line one field", "+OK\r\n1 100\r\n2\r\n3 300\r\n.\r\n", func(c *Client) error { _, err := c.List(context.Background()); return err },
			`pop3: list: malformed reply: want "number size", got "2"`},
		{"list zero", "+OK\r\n0 100\r\n.\r\n", func(c *Client) error { _, err := c.List(context.Background()); return err },
			`pop3: list: malformed reply: message number "0"`},
		{"list duplicate", "+OK\r\n1 100\r\n1 100\r\n.\r\n", func(c *Client) error { _, err := c.List(context.Background()); return err },
			"pop3: list: malformed reply: message 1 listed twice"},
		{"list size garbage", "+OK\r\n1 big\r\n.\r\n", func(c *Client) error { _, err := c.List(context.Background()); return err },
			`pop3: list: malformed reply: size "big" of message 1`},
		{"list one garbage", "+OK whatever\r\n", func(c *Client) error { _, err := c.ListOne(context.Background(), 3); return err },
			`pop3: list 3: malformed reply: want "number size", got "whatever"`},
		{"list one wrong number", "+OK 4 100\r\n", func(c *Client) error { _, err := c.ListOne(context.Background(), 3); return err },
			"pop3: list 3: malformed reply: asked for message 3, got 4"},
		{"uidl space", "+OK\r\n1 abc def\r\n.\r\n", func(c *Client) error { _, err := c.UIDL(context.Background()); return err },
			`pop3: uidl: malformed reply: want "number uid", got "1 abc def"`},
		{"uidl missing uid", "+OK\r\n1\r\n.\r\n", func(c *Client) error { _, err := c.UIDL(context.Background()); return err },
			`pop3: uidl: malformed reply: want "number uid", got "1"`},
		{"uidl 8bit", "+OK\r\n1 caf\xe9\r\n.\r\n", func(c *Client) error { _, err := c.UIDL(context.Background()); return err },
			"pop3: uidl: malformed reply: uid of message 1 has byte 0xe9"},
		{"uidl duplicate number", "+OK\r\n2 a\r\n2 b\r\n.\r\n", func(c *Client) error { _, err := c.UIDL(context.Background()); return err },
			"pop3: uidl: malformed reply: message 2 listed twice"},
		{"uidl duplicate out of order", "+OK\r\n1 a\r\n3 c\r\n2 b\r\n4 d\r\n3 e\r\n.\r\n", func(c *Client) error { _, err := c.UIDL(context.Background()); return err },
			"pop3: uidl: malformed reply: message 3 listed twice"},
		{"uidl duplicate of an early one", "+OK\r\n1 a\r\n2 b\r\n3 c\r\n1 d\r\n.\r\n", func(c *Client) error { _, err := c.UIDL(context.Background()); return err },
			"pop3: uidl: malformed reply: message 1 listed twice"},
		{"uidl one empty", "+OK\r\n", func(c *Client) error { _, err := c.UIDLOne(context.Background(), 1); return err },
			`pop3: uidl 1: malformed reply: want "number uid", got ""`},
		{"uidl one wrong number", "+OK 2 abc\r\n", func(c *Client) error { _, err := c.UIDLOne(context.Background(), 1); return err },
			"pop3: uidl 1: malformed reply: asked for message 1, got 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
				switch verb {
				case "STAT", "LIST", "UIDL":
					c.sendRaw(tc.reply)
					return true
				}
				return false
			}})
			c := dial(t, fs.Addr(), Options{Timeout: 5 * time.Second})
			err := tc.call(c)
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v\nwant %s", err, tc.wantErr)
			}
			mustNoop(t, c)
		})
	}
}

// Every command answered with -ERR gives a *Error with the command, the
// response code and the text; the session stays usable.
func TestErrToEveryCommand(t *testing.T) {
	fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
		if verb == "NOOP" {
			return false
		}
		c.send("-ERR [SYS/TEMP] no " + verb)
		return true
	}})
	c := dial(t, fs.Addr(), Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		call    func() error
		command string
		wantErr string
	}{
		{func() error { _, err := c.Capa(ctx); return err }, "CAPA", "pop3: capa: server replied -ERR [SYS/TEMP] no CAPA"},
		{func() error { return c.User(ctx, "alice") }, "USER", "pop3: user: server replied -ERR [SYS/TEMP] no USER"},
		{func() error { return c.Pass(ctx, "pw") }, "PASS", "pop3: pass: server replied -ERR [SYS/TEMP] no PASS"},
		{func() error { return c.APOP(ctx, "alice", "pw") }, "APOP", "pop3: apop: server replied -ERR [SYS/TEMP] no APOP"},
		{func() error { return c.AuthPlain(ctx, "", "alice", "pw") }, "AUTH PLAIN", "pop3: auth plain: server replied -ERR [SYS/TEMP] no AUTH"},
		{func() error { _, _, err := c.Stat(ctx); return err }, "STAT", "pop3: stat: server replied -ERR [SYS/TEMP] no STAT"},
		{func() error { _, err := c.List(ctx); return err }, "LIST", "pop3: list: server replied -ERR [SYS/TEMP] no LIST"},
		{func() error { _, err := c.ListOne(ctx, 2); return err }, "LIST 2", "pop3: list 2: server replied -ERR [SYS/TEMP] no LIST"},
		{func() error { _, err := c.UIDL(ctx); return err }, "UIDL", "pop3: uidl: server replied -ERR [SYS/TEMP] no UIDL"},
		{func() error { _, err := c.UIDLOne(ctx, 3); return err }, "UIDL 3", "pop3: uidl 3: server replied -ERR [SYS/TEMP] no UIDL"},
		{func() error { _, err := c.Top(ctx, 4, 0); return err }, "TOP 4 0", "pop3: top 4 0: server replied -ERR [SYS/TEMP] no TOP"},
		{func() error { _, err := c.Retr(ctx, 5); return err }, "RETR 5", "pop3: retr 5: server replied -ERR [SYS/TEMP] no RETR"},
		{func() error {
			return c.RetrMany(ctx, []MsgNum{6}, func(MsgNum, io.Reader) error { return nil })
		}, "RETR 6", "pop3: retr 6: server replied -ERR [SYS/TEMP] no RETR"},
		{func() error { return c.Dele(ctx, 7) }, "DELE 7", "pop3: dele 7: server replied -ERR [SYS/TEMP] no DELE"},
		{func() error { _, err := c.DeleMany(ctx, []MsgNum{8}); return err }, "DELE 8", "pop3: dele 8: server replied -ERR [SYS/TEMP] no DELE"},
		{func() error { return c.Rset(ctx) }, "RSET", "pop3: rset: server replied -ERR [SYS/TEMP] no RSET"},
		{func() error { return c.StartTLS(ctx, nil) }, "STLS", "pop3: stls: server replied -ERR [SYS/TEMP] no STLS"},
	} {
		err := tc.call()
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("%s: err = %v, want a *Error", tc.command, err)
		}
		if pe.Command != tc.command || pe.Code != CodeSysTemp || !pe.Temporary() || err.Error() != tc.wantErr {
			t.Errorf("%s: got %+v %q\nwant command %q, code SYS/TEMP, %q", tc.command, *pe, err, tc.command, tc.wantErr)
		}
		mustNoop(t, c)
	}
	// QUIT last: it ends the session.
	err := c.Quit(ctx)
	if ErrorCode(err) != CodeSysTemp || err.Error() != "pop3: quit: server replied -ERR [SYS/TEMP] no QUIT" {
		t.Fatalf("Quit = %v", err)
	}
	if err := c.Noop(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Noop after Quit = %v, want ErrClosed", err)
	}
}

func TestContextCancelClosesConnection(t *testing.T) {
	received := make(chan struct{}, 1)
	fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
		if verb == "STAT" {
			received <- struct{}{}
			return true // never answer
		}
		return false
	}})
	c := dial(t, fs.Addr(), Options{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-received
		cancel()
	}()
	_, _, err := c.Stat(ctx)
	if !errors.Is(err, context.Canceled) || err.Error() != "pop3: stat: context canceled" {
		t.Fatalf("Stat = %v; want pop3: stat: context canceled", err)
	}
	if err := c.Noop(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Noop after cancel = %v, want ErrClosed", err)
	}

	t.Run("deadline", func(t *testing.T) {
		c := dial(t, fs.Addr(), Options{Timeout: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, _, err := c.Stat(ctx)
		<-received
		if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "pop3: stat: context deadline exceeded" {
			t.Fatalf("Stat = %v", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		c := dial(t, fs.Addr(), Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Noop(ctx); !errors.Is(err, context.Canceled) || err.Error() != "pop3: noop: context canceled" {
			t.Fatalf("Noop = %v", err)
		}
		if fs.Sent("NOOP") {
			t.Fatal("a cancelled context still sent NOOP")
		}
	})
	t.Run("cancel while reading a body", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
			if verb == "RETR" {
				c.sendRaw("+OK\r\nfirst line\r\n")
				return true
			}
			return false
		}})
		c := dial(t, fs.Addr(), Options{Timeout: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		b, err := c.Retr(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, err := b.Read(buf)
		if err != nil || string(buf[:n]) != "first line\r\n" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		cancel()
		_, err = io.ReadAll(b)
		if !errors.Is(err, context.Canceled) || err.Error() != "pop3: retr 1: context canceled" {
			t.Fatalf("Read after cancel = %v", err)
		}
	})
}

func TestCloseAbortsABlockedCall(t *testing.T) {
	received := make(chan struct{})
	fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
		if verb == "NOOP" {
			close(received)
			return true
		}
		return false
	}})
	c := dial(t, fs.Addr(), Options{Timeout: time.Hour})
	go func() {
		<-received
		c.Close()
	}()
	err := c.Noop(context.Background())
	if !errors.Is(err, ErrClosed) || err.Error() != "pop3: noop: connection closed" {
		t.Fatalf("Noop = %v; want pop3: noop: connection closed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// Close drops the session without QUIT: nothing marked is deleted.
func TestCloseDoesNotQuit(t *testing.T) {
	fs := newFaultServer(t, faultConfig{msgs: []string{"a\r\n", "b\r\n"}})
	c := dial(t, fs.Addr(), Options{})
	login(t, c)
	if err := c.Dele(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close = %v", err)
	}
	fs.close()
	if fs.Sent("QUIT") || len(fs.Committed()) != 0 {
		t.Fatalf("Close sent QUIT: commands %q", fs.Commands())
	}
}

func TestPasswordNeverLeaks(t *testing.T) {
	const pw = "hunter2-Secret"
	echo := func(c *faultConn, verb, arg string) bool {
		switch verb {
		case "PASS", "APOP":
			c.send("-ERR [AUTH] rejected " + arg)
			return true
		case "AUTH":
			c.send("+ ")
			line, _ := c.readCmd()
			c.send("-ERR [AUTH] rejected " + line + " " + pw)
			return true
		}
		return false
	}
	fs := newFaultServer(t, faultConfig{hook: echo})
	var trace bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&trace, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := dial(t, fs.Addr(), Options{Logger: logger})
	ctx := context.Background()
	b64 := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + pw))
	for name, call := range map[string]func() error{
		"pass":        func() error { return c.Pass(ctx, pw) },
		"apop":        func() error { return c.APOP(ctx, "alice", pw) },
		"auth plain":  func() error { return c.AuthPlain(ctx, "", "alice", pw) },
		"crlf in pw":  func() error { return c.Pass(ctx, pw+"\r\nDELE 1") },
		"crlf in pw2": func() error { return c.AuthPlain(ctx, "", "alice\r\n", pw) },
	} {
		err := call()
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), b64) {
			t.Errorf("%s: error carries the password: %v", name, err)
		}
		if ErrorCode(err) == CodeAuth && !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("%s: echoed password not redacted: %v", name, err)
		}
	}
	if !fs.Sent("PASS " + pw) {
		t.Fatal("the password was not sent at all")
	}
	if fs.Sent("DELE") {
		t.Fatal("CRLF in a password injected a command")
	}
	if strings.Contains(trace.String(), pw) || strings.Contains(trace.String(), b64) {
		t.Fatalf("the trace carries the password:\n%s", trace.String())
	}
	if !strings.Contains(trace.String(), `line="PASS [redacted]"`) {
		t.Fatalf("trace lacks the redacted PASS line:\n%s", trace.String())
	}
}

func TestCommandInjectionRefused(t *testing.T) {
	fs := newFaultServer(t, faultConfig{})
	c := dial(t, fs.Addr(), Options{})
	err := c.User(context.Background(), "alice\r\nDELE 1")
	if err == nil || err.Error() != "pop3: user: command argument contains CR, LF or NUL" {
		t.Fatalf("User = %v", err)
	}
	mustNoop(t, c)
	if fs.Sent("USER") || fs.Sent("DELE") {
		t.Fatalf("sent %q", fs.Commands())
	}
}

func TestStartTLSInjectionRefused(t *testing.T) {
	fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
		if verb == "STLS" {
			c.sendRaw("+OK Begin TLS negotiation now.\r\n-ERR injected\r\n")
			return true
		}
		return false
	}})
	c := dial(t, fs.Addr(), Options{Timeout: 5 * time.Second})
	err := c.StartTLS(context.Background(), &tls.Config{InsecureSkipVerify: true})
	if err == nil || !strings.Contains(err.Error(), "pop3: stls: server sent 15 bytes after +OK, before the TLS handshake") {
		t.Fatalf("StartTLS = %v", err)
	}
	if err := c.Noop(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Noop after refused STLS = %v", err)
	}
}

func TestAPOPDigest(t *testing.T) {
	// The example of RFC 1939 section 7.
	fs := newFaultServer(t, faultConfig{greeting: "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>",
		hook: func(c *faultConn, verb, arg string) bool {
			if verb == "APOP" {
				c.send("+OK maildrop has 1 message (369 octets)")
				return true
			}
			return false
		}})
	c := dial(t, fs.Addr(), Options{})
	if ts := c.APOPTimestamp(); ts != "<1896.697170952@dbc.mtview.ca.us>" {
		t.Fatalf("APOPTimestamp = %q", ts)
	}
	if err := c.APOP(context.Background(), "mrose", "tanstaaf"); err != nil {
		t.Fatal(err)
	}
	if !fs.Sent("APOP mrose c4c9334bac560ecc979e58001b3e22fb") {
		t.Fatalf("sent %q, want the RFC 1939 digest", fs.Commands())
	}

	t.Run("no timestamp", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{greeting: "+OK ready"})
		c := dial(t, fs.Addr(), Options{})
		err := c.APOP(context.Background(), "mrose", "tanstaaf")
		if !errors.Is(err, ErrNotSupported) || err.Error() != "pop3: apop: not offered by the server: the greeting has no APOP timestamp" {
			t.Fatalf("APOP = %v", err)
		}
		if fs.Sent("APOP") {
			t.Fatal("APOP sent without a timestamp")
		}
	})
}

func TestAuthPlainWire(t *testing.T) {
	fs := newFaultServer(t, faultConfig{})
	c := dial(t, fs.Addr(), Options{})
	if err := c.AuthPlain(context.Background(), "", "alice", "pässword"); err != nil {
		t.Fatal(err)
	}
	cmds := fs.Commands()
	want := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pässword"))
	if len(cmds) != 2 || cmds[0] != "AUTH PLAIN" || cmds[1] != want {
		t.Fatalf("commands %q, want [AUTH PLAIN %s]", cmds, want)
	}

	t.Run("second challenge is cancelled", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{hook: func(c *faultConn, verb, arg string) bool {
			if verb == "AUTH" {
				c.send("+ ")
				c.readCmd()
				c.send("+ more")
				c.readCmd()
				c.send("-ERR Authentication aborted")
				return true
			}
			return false
		}})
		c := dial(t, fs.Addr(), Options{})
		err := c.AuthPlain(context.Background(), "", "alice", "pw")
		if !errors.Is(err, ErrMalformed) || err.Error() != "pop3: auth plain: malformed reply: server asked for a second step" {
			t.Fatalf("AuthPlain = %v", err)
		}
		if cmds := fs.Commands(); cmds[len(cmds)-1] != "*" {
			t.Fatalf("commands %q: the exchange was not cancelled with *", cmds)
		}
		mustNoop(t, c)
	})
}

func TestBodyLeftUnreadIsDrained(t *testing.T) {
	msgs := []string{"Subject: 1\r\n\r\n" + strings.Repeat("line one\r\n", 5000), "Subject: 2\r\n\r\ntwo\r\n"}
	fs := newFaultServer(t, faultConfig{msgs: msgs})
	c := dial(t, fs.Addr(), Options{})
	ctx := context.Background()
	b, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "Subject: 1" {
		t.Fatalf("ReadFull = %q, %v", buf, err)
	}
	// No Close: the next command reads the rest first.
	if got := bodyOf(t)(c.Retr(ctx, 2)); got != msgs[1] {
		t.Fatalf("RETR 2 = %q, want %q", got, msgs[1])
	}
	if n, err := b.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("the drained body reads %d, %v; want 0, EOF", n, err)
	}
}

func TestTop(t *testing.T) {
	msg := "Subject: top\r\nFrom: a@b\r\n\r\nbody line 1\r\n"
	fs := newFaultServer(t, faultConfig{msgs: []string{msg}})
	c := dial(t, fs.Addr(), Options{})
	if got := bodyOf(t)(c.Top(context.Background(), 1, 0)); got != "Subject: top\r\nFrom: a@b\r\n\r\n" {
		t.Fatalf("TOP 1 0 = %q", got)
	}
	if !fs.Sent("TOP 1 0") {
		t.Fatalf("sent %q", fs.Commands())
	}
	if _, err := c.Top(context.Background(), 1, -1); err == nil || err.Error() != "pop3: top 1 -1: negative line count" {
		t.Fatalf("Top(-1) = %v", err)
	}
	for _, n := range []MsgNum{0, -3} {
		if _, err := c.Retr(context.Background(), n); err == nil || err.Error() != fmt.Sprintf("pop3: retr %d: message number out of range", n) {
			t.Fatalf("Retr(%d) = %v", n, err)
		}
	}
	mustNoop(t, c)
}

func testMsgs(n int) []string {
	var msgs []string
	for i := 1; i <= n; i++ {
		msgs = append(msgs, fmt.Sprintf("Subject: %d\r\n\r\n.message %d\r\n%s\r\n", i, i, strings.Repeat("x", i*1000)))
	}
	return msgs
}

func TestRetrManyPipelines(t *testing.T) {
	msgs := testMsgs(10)
	const window = 4
	// The server answers the first RETR only once window RETRs have
	// arrived: a client that does not pipeline would never get a reply.
	fs := newFaultServer(t, faultConfig{msgs: msgs, hook: func(c *faultConn, verb, arg string) bool {
		if verb != "RETR" || arg != "1" {
			return false
		}
		args := []string{arg}
		for len(args) < window {
			line, ok := c.readCmd()
			if !ok {
				return true
			}
			args = append(args, strings.TrimPrefix(line, "RETR "))
		}
		for _, a := range args {
			c.standard("RETR", a)
		}
		return true
	}})
	c := dial(t, fs.Addr(), Options{PipelineWindow: window, Timeout: 10 * time.Second})
	ctx := context.Background()
	if _, err := c.Capa(ctx); err != nil {
		t.Fatal(err)
	}
	login(t, c)
	nums := []MsgNum{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	var got []string
	err := c.RetrMany(ctx, nums, func(n MsgNum, r io.Reader) error {
		data, err := io.ReadAll(r)
		got = append(got, fmt.Sprintf("%d:%s", n, data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("%d:%s", i+1, m); got[i] != want {
			t.Fatalf("message %d: got %.40q, want %.40q", i+1, got[i], want)
		}
	}
	if len(got) != 10 || !fs.Pipelined() {
		t.Fatalf("got %d messages, pipelined=%v", len(got), fs.Pipelined())
	}
	mustNoop(t, c)
}

func TestRetrManySequentialWithoutPipelining(t *testing.T) {
	msgs := testMsgs(5)
	fs := newFaultServer(t, faultConfig{msgs: msgs, caps: []string{"TOP", "UIDL", "USER"}})
	c := dial(t, fs.Addr(), Options{})
	ctx := context.Background()
	if _, err := c.Capa(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	err := c.RetrMany(ctx, []MsgNum{5, 4, 3, 2, 1}, func(num MsgNum, r io.Reader) error {
		data, _ := io.ReadAll(r)
		if string(data) != msgs[num-1] {
			t.Errorf("message %d: got %.30q", num, data)
		}
		n++
		return nil
	})
	if err != nil || n != 5 {
		t.Fatalf("RetrMany = %v after %d messages", err, n)
	}
	if fs.Pipelined() {
		t.Fatal("pipelined against a server without PIPELINING")
	}
}

func TestRetrManyStopsAndStaysInStep(t *testing.T) {
	msgs := testMsgs(6)
	fs := newFaultServer(t, faultConfig{msgs: msgs})
	c := dial(t, fs.Addr(), Options{PipelineWindow: 3})
	ctx := context.Background()
	if _, err := c.Capa(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("-ERR for one message", func(t *testing.T) {
		var seen []MsgNum
		err := c.RetrMany(ctx, []MsgNum{1, 2, 9, 3, 4}, func(n MsgNum, r io.Reader) error {
			seen = append(seen, n)
			return nil // leave the data unread: RetrMany discards it
		})
		var pe *Error
		if !errors.As(err, &pe) || err.Error() != "pop3: retr 9: server replied -ERR There's no message 9." {
			t.Fatalf("RetrMany = %v", err)
		}
		if fmt.Sprint(seen) != "[1 2]" {
			t.Fatalf("fn saw %v, want [1 2]", seen)
		}
		if got := bodyOf(t)(c.Retr(ctx, 5)); got != msgs[4] {
			t.Fatalf("RETR 5 after RetrMany = %.30q", got)
		}
	})
	t.Run("error from fn", func(t *testing.T) {
		stopErr := errors.New("disk full")
		var seen []MsgNum
		err := c.RetrMany(ctx, []MsgNum{1, 2, 3, 4, 5, 6}, func(n MsgNum, r io.Reader) error {
			seen = append(seen, n)
			if n == 2 {
				return stopErr
			}
			return nil
		})
		if err != stopErr {
			t.Fatalf("RetrMany = %v, want fn's error as it is", err)
		}
		if fmt.Sprint(seen) != "[1 2]" {
			t.Fatalf("fn saw %v", seen)
		}
		if got := bodyOf(t)(c.Retr(ctx, 6)); got != msgs[5] {
			t.Fatalf("RETR 6 after RetrMany = %.30q", got)
		}
	})
}

func TestDeleManyAndQuit(t *testing.T) {
	fs := newFaultServer(t, faultConfig{msgs: testMsgs(5)})
	c := dial(t, fs.Addr(), Options{})
	ctx := context.Background()
	if _, err := c.Capa(ctx); err != nil {
		t.Fatal(err)
	}
	done, err := c.DeleMany(ctx, []MsgNum{1, 3, 9, 5})
	if fmt.Sprint(done) != "[1 3 5]" || err == nil || err.Error() != "pop3: dele 9: server replied -ERR There's no message 9." {
		t.Fatalf("DeleMany = %v, %v", done, err)
	}
	if !fs.Pipelined() {
		t.Error("DELEs were not pipelined")
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	fs.close()
	if got := fmt.Sprint(fs.Committed()); got != "[[1 3 5]]" {
		t.Fatalf("committed %s", got)
	}
}

func TestStatListUIDL(t *testing.T) {
	msgs := testMsgs(3)
	fs := newFaultServer(t, faultConfig{msgs: msgs, uidls: []string{"aaa", "bbb", "ccc"}})
	c := dial(t, fs.Addr(), Options{})
	ctx := context.Background()
	count, size, err := c.Stat(ctx)
	if err != nil || count != 3 || size != int64(len(msgs[0])+len(msgs[1])+len(msgs[2])) {
		t.Fatalf("Stat = %d, %d, %v", count, size, err)
	}
	list, err := c.List(ctx)
	if err != nil || fmt.Sprint(list) != fmt.Sprintf("[{1 %d} {2 %d} {3 %d}]", len(msgs[0]), len(msgs[1]), len(msgs[2])) {
		t.Fatalf("List = %v, %v", list, err)
	}
	one, err := c.ListOne(ctx, 2)
	if err != nil || one != (MsgInfo{2, int64(len(msgs[1]))}) {
		t.Fatalf("ListOne = %v, %v", one, err)
	}
	uidls, err := c.UIDL(ctx)
	if err != nil || fmt.Sprint(uidls) != "[{1 aaa} {2 bbb} {3 ccc}]" {
		t.Fatalf("UIDL = %v, %v", uidls, err)
	}
	u, err := c.UIDLOne(ctx, 3)
	if err != nil || u != "ccc" {
		t.Fatalf("UIDLOne = %q, %v", u, err)
	}
	if err := c.Rset(ctx); err != nil {
		t.Fatal(err)
	}
}
