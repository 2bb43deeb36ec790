package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/internal/config"
)

// TestDeployExampleAccounts: the accounts example of
// deploy/imapbridge.example.yaml (its lines marked "#> "), uncommented
// as the file says, passes `imapbridge check` and gives the accounts it
// describes. Only the two /run/secrets files are made in a temp dir.
func TestDeployExampleAccounts(t *testing.T) {
	data, err := os.ReadFile("../../deploy/imapbridge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if n := strings.Count(text, "#> "); n < 15 {
		t.Fatalf("the example has %d lines marked #> ; the accounts example is missing", n)
	}
	text = strings.ReplaceAll(text, "#> ", "")
	dir := t.TempDir()
	for _, name := range []string{"carol-campus", "carol-alumni"} {
		local := filepath.Join(dir, name)
		if err := os.WriteFile(local, []byte("pw-"+name+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, "/run/secrets/"+name, local)
	}
	// The example's admin.token_file is a file beside it in deploy/.
	token, err := os.ReadFile(filepath.Join("..", "..", "deploy", "admin-token.example"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin-token.example"), token, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := runCheck([]string{"-config", path}, &out, &errb); code != 0 {
		t.Fatalf("check = %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	cfg, _, err := config.ParseEnv([]byte(text), dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range cfg.Users {
		for _, a := range u.Accounts {
			got = append(got, fmt.Sprintf("%s: %s@%s -> %s (%s) id %q", u.Name, a.User, a.Source, a.Folder, a.Password, a.ID))
		}
	}
	want := `[carol: csmith@campus -> Campus (<redacted>) id "" carol: carol.alumni@campus -> Campus/Alumni (<redacted>) id "carol.alumni"]`
	if fmt.Sprint(got) != want {
		t.Errorf("accounts\n got %s\nwant %s", got, want)
	}
}
