package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// FuzzSealer: a sealed secret opens to what was sealed, for the same user
// and name only; a sealed value with any byte changed, cut short or made
// up is refused with one of the two fixed errors (never a panic, never the
// plaintext or the key in the message).
func FuzzSealer(f *testing.F) {
	f.Add("key", "alice", "source_password", []byte("hunter2"), []byte{1, 2, 3}, uint(5))
	f.Add("k", "", "", []byte(""), []byte{}, uint(0))
	f.Add("long key with spaces", "bob@example.org", "x", bytes.Repeat([]byte("p"), 300), bytes.Repeat([]byte{1}, 60), uint(1000))
	f.Fuzz(func(t *testing.T, key, user, name string, plaintext, junk []byte, pos uint) {
		s, err := newSealer(key)
		if key == "" {
			if err == nil {
				t.Fatal("a sealer without a key")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		sealed := s.seal(user, name, plaintext)
		got, err := s.open(user, name, sealed)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("open(seal(%q)) = %q, %v", plaintext, got, err)
		}
		refused := func(what string, b []byte, user, name string) {
			t.Helper()
			pt, err := s.open(user, name, b)
			if err == nil {
				t.Fatalf("%s opened, to %q", what, pt)
			}
			msg := err.Error()
			if msg != "secrets: sealed value malformed" && msg != "secrets: cannot open sealed value (wrong key, or tampered)" {
				t.Fatalf("%s: unexpected error %q", what, msg)
			}
		}
		// Another user or name: refused (user and name are bound; NUL is
		// their separator, so pairs that differ only in where a NUL falls
		// are the same binding and left out).
		if !strings.Contains(user+name, "\x00") {
			refused("for another user", sealed, user+"x", name)
			refused("under another name", sealed, user, name+"x")
		}
		// Every kind of damage is refused.
		flipped := bytes.Clone(sealed)
		flipped[pos%uint(len(flipped))] ^= 1 << (pos % 8)
		refused("one bit flipped", flipped, user, name)
		refused("cut short", sealed[:pos%uint(len(sealed))], user, name)
		refused("with a byte added", append(bytes.Clone(sealed), byte(pos)), user, name)
		if !bytes.Equal(junk, sealed) {
			refused("made up", junk, user, name)
		}
		// Another key does not open it.
		other, err := newSealer(key + "x")
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := other.open(user, name, sealed); err == nil {
			t.Fatalf("another key opened it, to %q", pt)
		}
	})
}

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
		var cerr *ConfigError
		if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
			t.Fatalf("error %v is not a *ConfigError with problems", err)
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
