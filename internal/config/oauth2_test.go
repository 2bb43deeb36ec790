package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestOAuth2Config(t *testing.T) {
	dir := "testdata/oauth2"
	t.Run("good", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(dir, "good_source_oauth2.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, warnings, err := parseTest(data, dir, nil)
		if err != nil || len(warnings) > 0 {
			t.Fatalf("parse: %v, warnings %q", err, warnings)
		}
		got := *cfg.Users[0].SourceOAuth2
		want := OAuth2{
			TokenURL:         "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token",
			DeviceAuthURL:    "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/devicecode",
			ClientID:         "9e5f94bc-e8a4-4e73-b8be-63364c29d753",
			ClientSecretFile: filepath.Join(dir, "client-secret"),
			ClientSecret:     "client-secret-value",
			RefreshTokenFile: "/run/secrets/alice-m365-refresh",
			Scopes:           []string{"https://outlook.office.com/POP.AccessAsUser.All", "offline_access"},
			Mechanism:        "xoauth2",
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %#v\nwant %#v", got, want)
		}
	})
	t.Run("errors", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(dir, "err_source_oauth2.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = parseTest(data, dir, nil)
		diffLines(t, "problems", problemsOf(t, err), []string{
			`users[1].source_oauth2.mehcanism: unknown key; did you mean mechanism?`,
			`users[0].source_oauth2: set only one of source_oauth2 and source_password`,
			`users[0].source_oauth2.token_url: must be https (http only to a loopback address): "http://login.example.com/token"`,
			`users[0].source_oauth2.client_id: required`,
			`users[0].source_oauth2.mechanism: invalid value "xoauth3" (want xoauth2 or oauthbearer)`,
			`users[0].source_oauth2.client_secret_file: file "testdata/oauth2/missing-secret" does not exist`,
			`users[0].source_oauth2.scopes[0]: invalid scope "a b" (one scope per item, no spaces)`,
			`users[0].source_oauth2.scopes[1]: invalid scope "" (one scope per item, no spaces)`,
			`users[0].source_oauth2: needs secrets.key_file (or $IMAPBRIDGE_SECRET_KEY): a rotated refresh token is stored sealed with it`,
			`users[1].source_oauth2.token_url: not an http(s) URL: "ftp:/nohost"`,
			`users[1].source_oauth2: needs secrets.key_file (or $IMAPBRIDGE_SECRET_KEY): a rotated refresh token is stored sealed with it`,
		})
	})
}

// TestOAuth2READMESnippet loads the README's OAuth2 example exactly as
// written (the secret key from the environment, which wins over key_file).
func TestOAuth2READMESnippet(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "### OAuth2 toward POP3 hosts\n")
	if !ok {
		t.Fatal("README.md has no OAuth2 section")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("the README's OAuth2 section has no yaml block")
	}
	env := func(name string) (string, bool) {
		if name == "IMAPBRIDGE_SECRET_KEY" {
			return "a key", true
		}
		return "", false
	}
	cfg, warnings, err := parseTest([]byte(block), t.TempDir(), env)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("README snippet: %v, warnings %q", err, warnings)
	}
	o := cfg.Users[0].SourceOAuth2
	if o == nil || o.Mechanism != "xoauth2" || o.RefreshTokenFile != "/etc/imapbridge/alice-m365.refresh" || len(o.Scopes) != 2 || o.ClientSecret != "" {
		t.Fatalf("source_oauth2 %+v", o)
	}
}
