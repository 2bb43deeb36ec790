package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/dovecottest/dovecotrun"
	"github.com/imapbridge/imapbridge/internal/oauthtest"
)

// TestOAuth2ServeAgainstDovecot: `imapbridge serve` with a user's
// source_oauth2 polls a real Dovecot POP3 (oauth2 passdb, tokens checked
// at the test's FakeIDP) with AUTH XOAUTH2; the mail arrives over IMAP
// byte-exact; one refresh serves many polls. When the IdP revokes
// everything, the next poll's token is refused, the refresh gets
// invalid_grant, imapbridge_oauth2_refresh_total{result="revoked"} is 1,
// the log says polling stopped, and later polls never ask the IdP again.
func TestOAuth2ServeAgainstDovecot(t *testing.T) {
	t.Parallel()
	idp := oauthtest.New(oauthtest.Options{ClientID: "imapbridge", ClientSecret: "client-Secret-42", AccessTTL: time.Hour})
	defer idp.Close()
	ddir := filepath.Join(t.TempDir(), "dovecot")
	extra, err := dovecotrun.OAuth2Config(ddir, dovecotrun.OAuth2Passdb{IntrospectionURL: idp.IntrospectURL()})
	if err != nil {
		t.Fatal(err)
	}
	e := newP3Env(t, dovecottest.Options{Dir: ddir, ExtraConfig: extra, Users: []dovecottest.User{{Name: "alice", Password: "unused-Pop-Pw"}}})
	msgs := [][]byte{
		[]byte("Message-ID: <o1@example.org>\nSubject: one\n\nfirst line\n.leading dot\n"),
		[]byte("Message-ID: <o2@example.org>\nSubject: two\n\n" + strings.Repeat("x", 2000) + "\n"),
	}
	expected := map[string][]byte{}
	for _, m := range msgs {
		e.srv.Deliver("alice", m)
		expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
	}
	rt := idp.IssueRefreshToken("alice")
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr()}}, []p3User{{Name: "alice", PasswordHash: p3IMAPHash(t), Sources: []string{"legacy"}}})
	cfg.KeyFile = write("secret.key", "key-Of-The-Test\n")
	path := cfg.write(t)
	data, _ := os.ReadFile(path)
	data = append(data, fmt.Sprintf(`    source_oauth2:
      token_url: %s
      client_id: imapbridge
      client_secret_file: %s
      refresh_token_file: %s
      scopes: [pop]
      mechanism: xoauth2
`, idp.TokenURL(), write("client-secret", "client-Secret-42\n"), write("alice.refresh", rt+"\n"))...)
	write("imapbridge.yaml", string(data))

	p := p3LaunchBridge(t, path, e.imap, e.admin, e.logs)
	defer p.stop()
	_, got := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", len(msgs), 30*time.Second)
	p3CheckMessages(t, "INBOX", got, expected)
	p3WaitPolls(t, e.admin, 3)
	if n := p3MetricSum(e.admin, "imapbridge_oauth2_refresh_total", `result="success"`); n != 1 || idp.Count("refresh") != 1 {
		t.Fatalf("refreshes: metric %v, at the IdP %d; want 1 for many polls", n, idp.Count("refresh"))
	}

	idp.Revoke("alice")
	p3WaitFor(t, 20*time.Second, "the revoked refresh token counted", func() (bool, string) {
		n := p3MetricSum(e.admin, "imapbridge_oauth2_refresh_total", `result="revoked"`)
		return n == 1, fmt.Sprintf("revoked %v", n)
	})
	// Two more failed polls (the backoff doubles the wait): neither asks
	// the IdP again.
	failed := p3MetricSum(e.admin, "imapbridge_source_polls_total", `result="auth"`)
	p3WaitFor(t, 20*time.Second, "two more refused polls", func() (bool, string) {
		n := p3MetricSum(e.admin, "imapbridge_source_polls_total", `result="auth"`)
		return n >= failed+2, fmt.Sprintf("auth failures %v, were %v", n, failed)
	})
	if n := idp.Count("refresh_rejected"); n != 1 {
		t.Fatalf("the IdP was asked %d times with the revoked token; want once", n)
	}
	if !strings.Contains(e.logs.String(), "oauth2: refresh token refused: polling stopped") {
		t.Fatalf("no log line says polling stopped")
	}
	p3CheckNoSecrets(t, e.logs, rt, "client-Secret-42")
	// The FakeIDP's access tokens are "at-" and 24 hex digits; the debug
	// trace of the POP3 sessions is in the log.
	if regexp.MustCompile(`at-[0-9a-f]{24}`).MatchString(e.logs.String()) || !strings.Contains(e.logs.String(), "AUTH XOAUTH2") {
		t.Fatalf("an access token is in the log, or the AUTH trace is missing")
	}
}
