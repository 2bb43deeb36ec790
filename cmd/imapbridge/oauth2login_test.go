package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/oauthtest"
)

// TestOAuth2LoginDeviceFlow: oauth2-login prints the verification URI and
// the user code, waits until the user approves at the (fake) IdP, and
// stores the refresh token sealed, which the bridge's token source then
// refreshes with.
func TestOAuth2LoginDeviceFlow(t *testing.T) {
	idp := oauthtest.New(oauthtest.Options{ClientID: "imapbridge-client", ClientSecret: "cs"})
	defer idp.Close()
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("key", "sealing key for the test\n")
	write("client-secret", "cs\n")
	write("imapbridge.yaml", fmt.Sprintf(`data_dir: ./data
secrets:
  key_file: key
sources:
  - name: m365
    type: pop3
    address: 127.0.0.1:1
    tls: none
    auth: static
users:
  - name: alice
    password_hash: "$2a$10$D6FOXPJLJhZE9v0v0oluw.upLsutpWl9fIFHgzmWp3EKNRPxes/rK"
    sources: [m365]
    source_user: alice@contoso.example
    source_oauth2:
      token_url: %s
      device_auth_url: %s
      client_id: imapbridge-client
      client_secret_file: client-secret
      refresh_token_file: alice.refresh
      scopes: [pop, offline_access]
`, idp.TokenURL(), idp.DeviceURL()))
	cfgPath := filepath.Join(dir, "imapbridge.yaml")

	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := run([]string{"oauth2-login", "-config", cfgPath, "-user", "alice", "-account", "0"}, nil, pw, &stderr)
		pw.Close()
		done <- code
	}()
	out := bufio.NewScanner(pr)
	if !out.Scan() {
		t.Fatalf("no output; stderr %s", stderr.String())
	}
	first := out.Text()
	m := regexp.MustCompile(`^To sign in, open (\S+) and enter the code (\S+)$`).FindStringSubmatch(first)
	if m == nil || m[1] != idp.URL()+oauthtest.VerifyPath {
		t.Fatalf("first line %q", first)
	}
	if !out.Scan() || out.Text() != "Waiting for the sign-in …" {
		t.Fatalf("second line %q", out.Text())
	}
	if !idp.Approve(m[2], "alice@contoso.example") {
		t.Fatalf("the IdP does not know the code %q", m[2])
	}
	var rest []string
	for out.Scan() {
		rest = append(rest, out.Text())
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	cfg, _, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := oauth2TokensFor(cfg, "alice", 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"refresh token stored sealed in " + tok.SealedPath()}; strings.Join(rest, "\n") != want[0] {
		t.Fatalf("rest of the output %q, want %q", rest, want)
	}
	// The file named in the config does not exist: the sealed token is used.
	if _, fresh, err := tok.Token(context.Background()); err != nil || !fresh {
		t.Fatalf("Token after oauth2-login: %v", err)
	}
	if idp.Count("device_grant") != 1 || idp.Count("refresh") != 1 {
		t.Fatalf("device grants %d, refreshes %d", idp.Count("device_grant"), idp.Count("refresh"))
	}
	if stderr.Len() > 0 {
		t.Fatalf("stderr: %s", stderr.String())
	}
}

func TestOAuth2LoginRefusals(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfgPath, []byte(`data_dir: ./data
sources:
  - {name: spool, type: mbox, path: "/var/mail/{user}"}
users:
  - name: bob
    password_hash: "$2a$10$D6FOXPJLJhZE9v0v0oluw.upLsutpWl9fIFHgzmWp3EKNRPxes/rK"
    sources: [spool]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"-config", cfgPath}, 2, "imapbridge oauth2-login: -config FILE and -user NAME are required"},
		{[]string{"-config", cfgPath, "-user", "carol"}, 1, `imapbridge oauth2-login: no user "carol" in the config`},
		{[]string{"-config", cfgPath, "-user", "bob"}, 1, `imapbridge oauth2-login: user "bob" has no source_oauth2`},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"oauth2-login"}, tc.args...), nil, &stdout, &stderr)
		if first, _, _ := strings.Cut(stderr.String(), "\n"); code != tc.code || first != tc.err {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.err)
		}
	}
}
