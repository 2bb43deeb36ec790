package login

import (
	"bytes"
	"strings"
	"testing"
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
		s, err := NewSealer(key)
		if key == "" {
			if err == nil {
				t.Fatal("a sealer without a key")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		sealed := s.Seal(user, name, plaintext)
		got, err := s.Open(user, name, sealed)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("open(seal(%q)) = %q, %v", plaintext, got, err)
		}
		refused := func(what string, b []byte, user, name string) {
			t.Helper()
			pt, err := s.Open(user, name, b)
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
		other, err := NewSealer(key + "x")
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := other.Open(user, name, sealed); err == nil {
			t.Fatalf("another key opened it, to %q", pt)
		}
	})
}
