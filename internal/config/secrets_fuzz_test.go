package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// FuzzPasswordHashFile: users[].password_hash_file may hold anything. A
// valid bcrypt hash (line ending trimmed) is taken as is; anything else is
// a problem that names the key and does not echo the file's content (a
// hash, or a password put there by mistake).
func FuzzPasswordHashFile(f *testing.F) {
	f.Add([]byte(testHash + "\n"))
	f.Add([]byte(testHash + "\r\n\r\n"))
	f.Add([]byte("$2b$04$" + strings.Repeat("a", 53)))
	f.Add([]byte("$2y$31$" + strings.Repeat(".", 53)))
	f.Add([]byte("hunter2-plaintext-password\n"))
	f.Add([]byte("\n"))
	f.Add([]byte(""))
	f.Add([]byte(" " + testHash))
	f.Add(bytes.Repeat([]byte("x"), maxSecretFile+1))
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "hash"), content, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := "sources:\n  - name: spool\n    type: mbox\n    path: /var/mail/{user}\n" +
			"users:\n  - name: alice\n    password_hash_file: hash\n    sources: [spool]\n"
		c, _, err := parseTest([]byte(cfg), dir, nil)
		want := strings.TrimRight(string(content), "\r\n")
		if err == nil {
			got := string(c.Users[0].PasswordHash)
			if got != want {
				t.Fatalf("hash %q read as %q", want, got)
			}
			if _, err := bcrypt.Cost([]byte(got)); err != nil {
				t.Fatalf("accepted %q, which bcrypt refuses: %v", got, err)
			}
			return
		}
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
			t.Fatalf("error %v is not a *Error with problems", err)
		}
		for _, p := range cerr.Problems {
			if !strings.HasPrefix(p, "users[0].password_hash_file: ") {
				t.Errorf("problem %q does not name users[0].password_hash_file", p)
			}
			if len(want) >= 8 && strings.Contains(p, want) {
				t.Errorf("problem %q shows the file's content", p)
			}
		}
	})
}
