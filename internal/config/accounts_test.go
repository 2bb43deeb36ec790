package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestAccountsLoaded(t *testing.T) {
	data, err := os.ReadFile("testdata/config/good_accounts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := func(name string) (string, bool) {
		if name == "IMAPBRIDGE_ACCOUNT_PASSWORD_ALICE_1" {
			return "from-env", true
		}
		return "", false
	}
	cfg, _, err := parseTest(data, "testdata/config", env)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range cfg.Users[0].Accounts {
		got = append(got, fmt.Sprintf("%s %s %s id=%q", a.Source, a.User, a.Folder, a.ID))
		// The value is kept, never shown.
		if fmt.Sprint(a.Password) != "<redacted>" {
			t.Errorf("password prints as %q", fmt.Sprint(a.Password))
		}
	}
	want := `[oldisp alice.smith INBOX id="" campus asmith Campus/2024 id="" campus alice-alumni INBOX id="alice-alumni"]`
	if fmt.Sprint(got) != want {
		t.Errorf("accounts\n got %s\nwant %s", got, want)
	}
	pw := []string{string(cfg.Users[0].Accounts[0].Password), string(cfg.Users[0].Accounts[1].Password), string(cfg.Users[0].Accounts[2].Password)}
	if fmt.Sprint(pw) != "[secret-1 from-env secret-3]" {
		t.Errorf("passwords %q (the environment wins over the file)", pw)
	}
}

// TestAccountsREADME loads the README's accounts snippet exactly as
// written, its two password files and the password hash file in place.
func TestAccountsREADME(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "```yaml\n# accounts: several POP3 logins for one user\n"
	_, rest, ok := strings.Cut(string(data), marker)
	if !ok {
		t.Fatal("README.md has no accounts snippet")
	}
	snippet, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("the README's accounts snippet does not end")
	}
	dir := t.TempDir()
	files := map[string]string{
		"/run/secrets/alice-password-hash": "$2a$10$D6FOXPJLJhZE9v0v0oluw.upLsutpWl9fIFHgzmWp3EKNRPxes/rK",
		"/run/secrets/alice-oldisp":        "oldisp-pw\n",
		"/run/secrets/alice-campus":        "campus-pw\n",
	}
	for name, content := range files {
		local := dir + strings.ReplaceAll(name, "/run/secrets", "")
		if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		snippet = strings.ReplaceAll(snippet, name, local)
	}
	cfg, warnings, err := parseTest([]byte(snippet), dir, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("README accounts snippet: %v, warnings %q", err, warnings)
	}
	u := cfg.Users[0]
	got := fmt.Sprintf("%s/%s/%s/%s %s/%s/%s/%s", u.Accounts[0].Source, u.Accounts[0].User, u.Accounts[0].Password, u.Accounts[0].Folder,
		u.Accounts[1].Source, u.Accounts[1].User, u.Accounts[1].Password, u.Accounts[1].Folder)
	if got != "oldisp/alice.smith/<redacted>/INBOX campus/asmith/<redacted>/Campus" || u.Accounts[0].Password != "oldisp-pw" || u.Accounts[1].Password != "campus-pw" {
		t.Errorf("accounts %s", got)
	}
}
