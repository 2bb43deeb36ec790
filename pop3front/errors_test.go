package pop3front_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/pop3front"
)

// What the client is told when the authenticator or the store fails: the
// response codes of RFC 2449 and 3206, never the error's text.
func TestFailuresAnswered(t *testing.T) {
	t.Parallel()
	t.Run("authenticator", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(o *pop3front.Options) {
			auth := o.Authenticate
			o.Authenticate = func(ctx context.Context, user, pw string, r net.Addr) (*bridge.User, error) {
				switch user {
				case "down":
					return nil, errors.New("legacy host at 10.0.0.1:110 timed out")
				case "refused":
					return nil, fmt.Errorf("check: %w", bridge.ErrSourceAuth)
				case "nobody":
					return nil, nil
				case "stale":
					// A user of a store closed since.
					b2, err := bridge.Open(ctx, bridge.Options{DataDir: t.TempDir()})
					if err != nil {
						return nil, err
					}
					u, err := b2.User(ctx, "stale")
					b2.Close()
					return u, err
				}
				return auth(ctx, user, pw, r)
			}
		})
		c := e.dial()
		c.mustLine()
		for _, tc := range []struct{ user, want string }{
			{"down", "-ERR [SYS/TEMP] Authentication temporarily unavailable"},
			{"nobody", "-ERR [SYS/TEMP] Authentication temporarily unavailable"},
			{"refused", "-ERR [AUTH] Authentication failed"},
			{"stale", "-ERR [SYS/TEMP] Maildrop temporarily unavailable"},
		} {
			if tc.user == "stale" {
				c.cmd("USER stale")
				if l := c.cmd("PASS " + password); l != tc.want {
					t.Errorf("user %s: %q, want %q", tc.user, l, tc.want)
				}
				c.eof()
				continue
			}
			c.cmd("USER " + tc.user)
			if l := c.cmd("PASS " + password); l != tc.want {
				t.Errorf("user %s: %q, want %q", tc.user, l, tc.want)
			}
		}
		if n := e.metrics.get(e.metrics.auth, "error"); n != 2 {
			t.Errorf("auth errors counted %d", n)
		}
		if n := e.metrics.get(e.metrics.auth, "failure"); n != 1 {
			t.Errorf("auth failures counted %d", n)
		}
		if strings.Contains(e.logs.String(), "10.0.0.1") == false {
			t.Error("the authenticator's error is not logged")
		}
	})
	t.Run("store closed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		fill(e)
		c := e.dial()
		c.login("alice")
		c.cmd("DELE 1")
		e.b.Close()
		if l := c.cmd("RETR 2"); l != "-ERR [SYS/TEMP] Message temporarily unavailable" {
			t.Errorf("RETR with the store closed: %q", l)
		}
		if l := c.cmd("QUIT"); l != "-ERR [SYS/TEMP] Some deleted messages not removed" {
			t.Errorf("QUIT with the store closed: %q", l)
		}
		c.eof()
		// The authenticator cannot load the user either.
		c = e.dial()
		c.mustLine()
		c.cmd("USER alice")
		if l := c.cmd("PASS " + password); l != "-ERR [SYS/TEMP] Authentication temporarily unavailable" {
			t.Errorf("login with the store closed: %q", l)
		}
	})
}
