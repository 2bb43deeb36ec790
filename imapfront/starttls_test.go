package imapfront_test

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/imapfront"
)

// TestGuardStartTLS: the guard does STARTTLS itself (so that its checks
// stay above TLS). Before TLS, authentication is refused as go-imap would
// refuse it; STARTTLS with arguments, a second time or after login is
// BAD; over TLS everything else is as on a plain connection.
func TestGuardStartTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	e := newEnv(t, withServer(func(o *imapfront.Options) {
		o.AllowInsecureAuth = false
		o.TLSConfig = serverTLS
	}))
	c := e.raw()
	for _, tc := range []struct{ cmd, want string }{
		{"LOGIN alice " + password, "NO [PRIVACYREQUIRED] TLS is required to authenticate"},
		{"AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "NO [PRIVACYREQUIRED] TLS is required to authenticate"},
		{"STARTTLS now", "BAD [CLIENTBUG] Syntax error: STARTTLS takes no arguments"},
		{`ID ("name" "raw")`, "OK ID completed"},
	} {
		if _, got := c.cmd(tc.cmd); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if _, got := c.cmd("STARTTLS"); got != "OK Begin TLS negotiation now" {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c.conn, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	untagged, status := c.cmd("CAPABILITY")
	if status != "OK CAPABILITY completed" || untagged[0] != "* CAPABILITY IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN ID" {
		t.Errorf("CAPABILITY over TLS: %q %q", untagged, status)
	}
	if _, got := c.cmd("STARTTLS"); got != "BAD STARTTLS not available" {
		t.Errorf("second STARTTLS: %q", got)
	}
	c.send("x XYZZY")
	if got := c.line(); got != "x BAD Unknown command" {
		t.Errorf("unknown command over TLS: %q", got)
	}
	c.login("alice")
	c.ok("SELECT INBOX")
	if _, got := c.cmd("SEARCH " + strings.Repeat("NOT ", 5000) + "ALL"); got != "BAD SEARCH nested too deeply (limit 100 levels)" {
		t.Errorf("deep SEARCH over TLS: %q", got)
	}
	if _, got := c.cmd("STARTTLS"); got != "BAD STARTTLS not available" {
		t.Errorf("STARTTLS after login: %q", got)
	}
	c.ok("NOOP")
}
