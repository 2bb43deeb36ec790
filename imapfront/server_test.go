package imapfront_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/imapbridge/imapbridge/imapfront"
)

const (
	capsPreAuth  = "IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN ID"
	capsPostAuth = "IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- UNSELECT ENABLE IDLE UTF8=ACCEPT NAMESPACE UIDPLUS ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS MOVE STATUS=SIZE CHILDREN SPECIAL-USE CREATE-SPECIAL-USE APPENDLIMIT=67108864 ID"
)

func TestCapabilities(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	if got := c.ok("CAPABILITY"); len(got) != 1 || got[0] != "* CAPABILITY "+capsPreAuth {
		t.Errorf("before login: %q", got)
	}
	_, status := c.cmd("LOGIN alice " + password)
	if want := "OK [CAPABILITY " + capsPostAuth + "] Logged in"; status != want {
		t.Errorf("LOGIN:\n got %q\nwant %q", status, want)
	}
	if got := c.ok("CAPABILITY"); len(got) != 1 || got[0] != "* CAPABILITY "+capsPostAuth {
		t.Errorf("after login: %q", got)
	}
	for _, c := range strings.Fields(capsPostAuth) {
		switch c {
		case "CONDSTORE", "SORT", "THREAD", "QRESYNC", "BINARY":
			t.Errorf("advertises %s", c)
		}
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, cmd, want string
	}{
		{"good", "LOGIN alice " + password, "OK [CAPABILITY " + capsPostAuth + "] Logged in"},
		{"bad password", "LOGIN alice wrong", "NO [AUTHENTICATIONFAILED] Authentication failed"},
		{"unknown user", "LOGIN mallory " + password, "NO [AUTHENTICATIONFAILED] Authentication failed"},
		// AGFsaWNlAHNlY3JldA== is "\0alice\0secret".
		{"authenticate plain", "AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "OK [CAPABILITY " + capsPostAuth + "] PLAIN authentication successful"},
		// AGFsaWNlAHdyb25n is "\0alice\0wrong".
		{"authenticate plain bad", "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n", "NO [AUTHENTICATIONFAILED] Authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			if _, got := c.cmd(tt.cmd); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	e.metrics.mu.Lock()
	defer e.metrics.mu.Unlock()
	if e.metrics.auth["success"] != 2 || e.metrics.auth["failure"] != 3 {
		t.Errorf("auth metrics %v", e.metrics.auth)
	}
}

func TestTooManyAuthFailures(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	for i := 0; i < 2; i++ {
		if _, got := c.cmd("LOGIN alice wrong"); got != "NO [AUTHENTICATIONFAILED] Authentication failed" {
			t.Fatalf("attempt %d: %q", i+1, got)
		}
	}
	c.send("a9 LOGIN alice wrong")
	if got := c.line(); got != "* BYE Too many authentication failures" {
		t.Errorf("third failure: %q", got)
	}
}

func TestLoginWithClient(t *testing.T) {
	e := newEnv(t)
	c := e.client("")
	err := c.Login("alice", "nope").Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("bad login: %v", err)
	}
	if err := c.Authenticate(sasl.NewPlainClient("", "alice", password)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if !c.Caps().Has(imap.CapIdle) {
		t.Errorf("caps after auth: %v", c.Caps())
	}
}

func TestLoginDisabledWithoutTLS(t *testing.T) {
	e := newEnv(t, withServer(func(o *imapfront.Options) { o.AllowInsecureAuth = false }))
	c := e.raw()
	if got := c.ok("CAPABILITY"); got[0] != "* CAPABILITY IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- LOGINDISABLED ID" {
		t.Errorf("capabilities %q", got)
	}
	if _, got := c.cmd("LOGIN alice " + password); got != "NO [PRIVACYREQUIRED] TLS is required to authenticate" {
		t.Errorf("LOGIN: %q", got)
	}
	if _, got := c.cmd("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=="); got != "NO [PRIVACYREQUIRED] TLS is required to authenticate" {
		t.Errorf("AUTHENTICATE: %q", got)
	}
}

func TestStartTLSAndImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	e := newEnv(t, withServer(func(o *imapfront.Options) {
		o.AllowInsecureAuth = false
		o.TLSConfig = serverTLS
	}))

	raw := e.raw()
	if got := raw.ok("CAPABILITY"); got[0] != "* CAPABILITY IMAP4rev2 IMAP4rev1 SASL-IR LITERAL- STARTTLS LOGINDISABLED ID" {
		t.Errorf("plain capabilities %q", got)
	}

	c, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: clientTLS})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login("alice", password).Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	// The guard does STARTTLS itself and stays above TLS: ID, the SEARCH
	// nesting cap and the rest of its checks hold over STARTTLS too.
	if caps, err := c.Capability().Wait(); err != nil || !caps.Has("ID") || caps.Has("STARTTLS") || caps.Has("LOGINDISABLED") {
		t.Errorf("capabilities after STARTTLS: %v, %v", caps, err)
	}
	if id, err := c.ID(&imap.IDData{Name: "test-client"}).Wait(); err != nil || id.Name != "imapbridge" {
		t.Errorf("ID over STARTTLS: %+v, %v", id, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	deep := &imap.SearchCriteria{}
	for range 150 {
		deep = &imap.SearchCriteria{Not: []imap.SearchCriteria{*deep}}
	}
	_, err = c.Search(deep, nil).Wait()
	if ie := (*imap.Error)(nil); !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeBad || ie.Text != "SEARCH nested too deeply (limit 100 levels)" {
		t.Errorf("deep SEARCH over STARTTLS: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeTLS(ln) }()
	tc, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: clientTLS})
	if err != nil {
		t.Fatalf("implicit TLS: %v", err)
	}
	defer tc.Close()
	if err := tc.Login("bob", password).Wait(); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
	if tc.Caps().Has(imap.CapStartTLS) {
		t.Error("STARTTLS advertised on a TLS connection")
	}
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, imapfront.ErrServerClosed) {
		t.Errorf("ServeTLS: %v", err)
	}
}

func TestShutdownSaysBye(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))
	idler := e.raw()
	idler.login("alice")
	idler.ok("SELECT INBOX")
	idler.send("i1 IDLE")
	if got := idler.line(); got != "+ idling" {
		t.Fatalf("IDLE: %q", got)
	}
	plain := e.raw()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	for _, c := range []*rawClient{idler, plain} {
		if got := c.line(); got != "* BYE Server shutting down" {
			t.Errorf("got %q, want BYE", got)
		}
	}
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
	e.metrics.mu.Lock()
	defer e.metrics.mu.Unlock()
	if e.metrics.conns != 0 || e.metrics.idle != 0 {
		t.Errorf("after shutdown: %d connections, %d idling", e.metrics.conns, e.metrics.idle)
	}
}

func TestMaxConnections(t *testing.T) {
	e := newEnv(t, withServer(func(o *imapfront.Options) { o.MaxConnections = 2 }))
	e.raw()
	e.raw()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &rawClient{t: t, conn: conn, r: newReader(conn)}
	if got := c.line(); got != "* BYE Too many connections, try again later" {
		t.Errorf("third connection: %q", got)
	}
}

func TestNamespaceAndEnable(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	c.login("alice")
	if got := c.ok("NAMESPACE"); len(got) != 1 || got[0] != `* NAMESPACE (("" "/")) NIL NIL` {
		t.Errorf("NAMESPACE: %q", got)
	}
	if got := c.ok("ENABLE IMAP4rev2"); len(got) != 1 || got[0] != "* ENABLED IMAP4rev2" {
		t.Errorf("ENABLE: %q", got)
	}
}

func TestCommandMetrics(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	c.cmd("SELECT Nope")
	c.cmd("CREATE ..")
	if e.metrics.command("SELECT ok") != 1 || e.metrics.command("SELECT no") != 1 || e.metrics.command("CREATE no") != 1 || e.metrics.command("LOGIN ok") != 1 {
		e.metrics.mu.Lock()
		t.Errorf("metrics %v", e.metrics.commands)
		e.metrics.mu.Unlock()
	}
}

// TestShutdownDuringFetch: Shutdown during a FETCH of many large messages
// to a client that keeps reading. BYE goes out between two messages and
// the connection closes, so the FETCH's next write fails part-way through
// a message: that must still release go-imap's encoder, or the session
// blocks for good in its next response and Shutdown waits out its context.
func TestShutdownDuringFetch(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("x", 76) + "\r\n"
	for i := 0; i < 40; i++ {
		e.deliver("alice", fmt.Sprintf("Subject: big %d\r\n\r\n%s", i, strings.Repeat(big, 1<<14)))
	}
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	c.send("f1 FETCH 1:* BODY[]")
	if got := c.line(); !strings.HasPrefix(got, "* 1 FETCH ") {
		t.Fatalf("FETCH: %q", got)
	}
	// The server is now blocked writing the first message. Shutdown asks
	// for BYE, which waits for that message; then the client reads on.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- e.srv.Shutdown(ctx) }()
	go io.Copy(io.Discard, c.r)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown with a FETCH in flight: %v", err)
	}
}
