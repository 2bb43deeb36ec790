package pop3front_test

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/pop3front"
)

// STLS on a server that refuses plaintext logins: CAPA changes, the login
// works over TLS, USER given before STLS is forgotten (RFC 2595 section 4).
func TestSTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *pop3front.Options) { o.AllowInsecureAuth = false })
	fill(e)
	c := e.dial()
	c.mustLine()
	if l := c.cmd("STLS x"); l != "-ERR STLS takes no argument" {
		t.Fatalf("STLS x: %q", l)
	}
	if l := c.cmd("STLS"); l != "+OK Begin TLS negotiation" {
		t.Fatalf("STLS: %q", l)
	}
	tc := tls.Client(c.conn, &tls.Config{RootCAs: e.pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x", v)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.send("CAPA")
	capa := []string{"+OK Capability list follows", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN", "IMPLEMENTATION imapbridge", "."}
	for _, w := range capa {
		if l := c.mustLine(); l != w {
			t.Fatalf("CAPA after STLS: %q, want %q", l, w)
		}
	}
	if l := c.cmd("STLS"); l != "-ERR TLS already active" {
		t.Fatalf("second STLS: %q", l)
	}
	if l := c.cmd("PASS " + password); l != "-ERR USER first" {
		t.Fatalf("PASS: %q", l)
	}
	if l := c.cmd("USER alice"); l != "+OK Send PASS" {
		t.Fatal(l)
	}
	if l := c.cmd("PASS " + password); !strings.HasPrefix(l, "+OK Logged in, 3 messages") {
		t.Fatal(l)
	}
	if l := c.cmd("UIDL 1"); !strings.HasPrefix(l, "+OK 1 1-") {
		t.Fatalf("UIDL 1 over TLS: %q", l)
	}
}

// Plaintext pipelined behind STLS is never answered; the connection
// closes (CVE-2011-0411).
func TestSTLSInjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.dial()
	c.mustLine()
	c.send("STLS\r\nUSER alice")
	c.eof()
	if n := e.metrics.get(e.metrics.limits, "stls_injection"); n != 1 {
		t.Errorf("stls_injection counted %d times", n)
	}
}

// The implicit-TLS listener: no STLS offered, USER allowed even without
// AllowInsecureAuth, TLS 1.1 refused.
func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *pop3front.Options) {
		o.AllowInsecureAuth = false
		o.TLSConfig.MinVersion = tls.VersionTLS10
	})
	fill(e)
	c := e.dialTLS()
	c.mustLine()
	c.send("CAPA")
	var capa []string
	for {
		l := c.mustLine()
		capa = append(capa, l)
		if l == "." {
			break
		}
	}
	if got := strings.Join(capa, "|"); got != "+OK Capability list follows|TOP|UIDL|RESP-CODES|AUTH-RESP-CODE|PIPELINING|USER|SASL PLAIN|IMPLEMENTATION imapbridge|." {
		t.Errorf("CAPA on pop3s: %s", got)
	}
	if l := c.cmd("STLS"); l != "-ERR TLS already active" {
		t.Errorf("STLS on pop3s: %q", l)
	}
	if l := c.cmd("AUTH PLAIN " + b64("\x00alice\x00"+password)); !strings.HasPrefix(l, "+OK Logged in") {
		t.Fatal(l)
	}

	_, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{RootCAs: e.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("a TLS 1.1 client: %v, want a protocol version alert", err)
	}
}
