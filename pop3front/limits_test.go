package pop3front_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/pop3front"
)

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  func(*pop3front.Options)
		limit string
		want  string
	}{
		{"total", func(o *pop3front.Options) { o.MaxConnections = 2 }, "max_connections", "-ERR [SYS/TEMP] Too many connections, try again later"},
		{"per address", func(o *pop3front.Options) { o.MaxConnectionsPerAddress = 2 }, "max_connections_per_address", "-ERR [SYS/TEMP] Too many connections from your address (limit 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.opts)
			a, b := e.dial(), e.dial()
			for _, c := range []*client{a, b} {
				if l := c.mustLine(); !strings.HasPrefix(l, "+OK") {
					t.Fatalf("greeting %q", l)
				}
			}
			over := e.dial()
			if l := over.mustLine(); l != tc.want {
				t.Errorf("over the limit: %q, want %q", l, tc.want)
			}
			over.eof()
			if n := e.metrics.get(e.metrics.limits, tc.limit); n != 1 {
				t.Errorf("%s counted %d", tc.limit, n)
			}
			// A slot freed is a slot to use.
			a.cmd("QUIT")
			waitFor(t, "the first session to end", func() bool { return e.metrics.open() == 1 })
			if l := e.dial().mustLine(); !strings.HasPrefix(l, "+OK") {
				t.Errorf("after one left: %q", l)
			}
		})
	}
}

func TestPerUserLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *pop3front.Options) { o.MaxConnectionsPerUser = 1 })
	fill(e)
	a := e.dial()
	a.login("alice")
	b := e.dial()
	b.mustLine()
	b.cmd("USER alice")
	if l := b.cmd("PASS " + password); l != "-ERR [IN-USE] Too many connections for this user (limit 1); try again later" {
		t.Fatalf("second session: %q", l)
	}
	if n := e.metrics.get(e.metrics.auth, "failure"); n != 0 {
		t.Errorf("the refusal counted as %d failed logins", n)
	}
	a.cmd("QUIT")
	waitFor(t, "the first session to end", func() bool { return e.metrics.open() == 1 })
	b.cmd("USER alice")
	if l := b.cmd("PASS " + password); !strings.HasPrefix(l, "+OK Logged in") {
		t.Errorf("after the first left: %q", l)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	t.Run("login", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(o *pop3front.Options) { o.LoginTimeout = 300 * time.Millisecond })
		c := e.dial()
		c.mustLine()
		// However busy the client is, the login deadline holds.
		for i := 0; ; i++ {
			if i == 100000 {
				t.Fatal("no login timeout")
			}
			c.send("CAPA")
			l := c.mustLine()
			if l == "-ERR Login timeout" {
				break
			}
			for l != "." {
				if l = c.mustLine(); l == "-ERR Login timeout" {
					t.Fatal("login timeout in the middle of a CAPA answer")
				}
			}
		}
		c.eof()
		if n := e.metrics.get(e.metrics.limits, "login_timeout"); n != 1 {
			t.Errorf("login_timeout counted %d", n)
		}
	})
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(o *pop3front.Options) { o.IdleTimeout = 300 * time.Millisecond })
		fill(e)
		c := e.dial()
		c.login("alice")
		c.cmd("DELE 1")
		if l := c.mustLine(); l != "-ERR Autologout; idle for too long" {
			t.Fatalf("idle: %q", l)
		}
		c.eof()
		waitFor(t, "the session to end", func() bool { return e.metrics.open() == 0 })
		if got := fmt.Sprint(e.inbox("alice").UIDs()); got != "[1 2 3]" {
			t.Errorf("INBOX after an autologout: %s, want nothing deleted", got)
		}
		if n := e.metrics.get(e.metrics.limits, "idle_timeout"); n != 1 {
			t.Errorf("idle_timeout counted %d", n)
		}
	})
}

func TestCommandLimits(t *testing.T) {
	t.Parallel()
	t.Run("length", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(o *pop3front.Options) { o.MaxCommandLength = 512 })
		c := e.dial()
		c.mustLine()
		if l := c.cmd("NOOP " + strings.Repeat("x", 505)); l != "-ERR Not logged in" {
			t.Fatalf("a 512-byte line: %q", l)
		}
		c.send("NOOP " + strings.Repeat("x", 3000))
		if l := c.mustLine(); l != "-ERR Command line too long (limit 512 bytes)" {
			t.Fatalf("a long line: %q", l)
		}
		c.eof()
	})
	t.Run("bad commands", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(o *pop3front.Options) { o.MaxBadCommands = 3 })
		fill(e)
		c := e.dial()
		c.login("alice")
		c.cmd("JUNK")
		c.cmd("LIST x")
		c.cmd("STAT") // a valid command starts the count again
		c.cmd("JUNK")
		c.cmd("RETR nope")
		if l := c.cmd("FOO"); l != "-ERR Unknown command" {
			t.Fatal(l)
		}
		if l := c.mustLine(); l != "-ERR Too many invalid commands" {
			t.Fatalf("after 3 invalid commands: %q", l)
		}
		c.eof()
		if n := e.metrics.get(e.metrics.limits, "bad_commands"); n != 1 {
			t.Errorf("bad_commands counted %d", n)
		}
		if n := e.metrics.get(e.metrics.commands, "unknown err"); n != 3 {
			t.Errorf("unknown commands counted %d", n)
		}
	})
}

// Shutdown tells a waiting session and deletes nothing it marked; new
// connections are refused.
func TestShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fill(e)
	c := e.dial()
	c.login("alice")
	c.cmd("DELE 1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if l := c.mustLine(); l != "-ERR [SYS/TEMP] Server shutting down" {
		t.Errorf("at shutdown: %q", l)
	}
	c.eof()
	if got := fmt.Sprint(e.inbox("alice").UIDs()); got != "[1 2 3]" {
		t.Errorf("INBOX after shutdown: %s", got)
	}
	if err := e.srv.Serve(listen(t)); !errors.Is(err, pop3front.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

// The log names the user and the remote, never the password; a name the
// client sent is capped and loses its control characters.
func TestLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fill(e)
	c := e.dial()
	c.mustLine()
	c.cmd("USER evil\x1b[31m" + strings.Repeat("n", 200))
	c.cmd("PASS " + password)
	c.cmd("USER alice")
	c.cmd("PASS " + password)
	c.cmd("QUIT")
	waitFor(t, "the session to end", func() bool { return e.metrics.open() == 0 })
	logs := e.logs.String()
	for _, want := range []string{`msg="pop3: authentication failed" remote=127.0.0.1:`, `user=evil?[31m` + strings.Repeat("n", 55) + "… attempt=1", `msg="pop3: logged in" remote=127.0.0.1:`, "user=alice listener=pop3 messages=3"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, bad := range []string{password, "\x1b", strings.Repeat("n", 100)} {
		if strings.Contains(logs, bad) {
			t.Errorf("log holds %q", bad)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	e := newEnv(t)
	o := e.opts
	o.Dele = "sometimes"
	if _, err := pop3front.New(o); err == nil || err.Error() != `pop3front: dele "sometimes" is not "expunge" or "keep"` {
		t.Errorf("New with a bad dele: %v", err)
	}
	o = e.opts
	o.Authenticate = nil
	if _, err := pop3front.New(o); err == nil {
		t.Error("New without Authenticate accepted")
	}
}
