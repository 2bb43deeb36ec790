package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imapbridge/imapbridge/bridge"
)

// FuzzCanonicalName: a mailbox name from a client is either refused with an
// ErrInvalidName that says why, or accepted in a form that is canonical
// (accepting it again changes nothing), differs from the input only in the
// case of a leading INBOX, and holds nothing the checks exist to keep out.
func FuzzCanonicalName(f *testing.F) {
	for _, s := range []string{
		"INBOX", "inbox", "InBoX/Sub", "Sent", "Archive/2024/März", "a/b/c", "",
		"a//b", "/a", "a/", ".", "a/../b", "a/./b", "a*", "a%b", "\x00", "a\x7fb",
		"\xff\xfe", "日本語/メール", "&AOQ-", "INBOXfoo", "inbox.sub", "a\u2028b",
		strings.Repeat("x", 513), strings.Repeat("é", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := bridge.CanonicalName(name)
		if err != nil {
			if !errors.Is(err, bridge.ErrInvalidName) {
				t.Fatalf("CanonicalName(%q): error %v does not wrap ErrInvalidName", name, err)
			}
			if msg := err.Error(); !strings.Contains(msg, ": ") || len(msg) <= len(bridge.ErrInvalidName.Error())+2 {
				t.Fatalf("CanonicalName(%q): error %q does not say what is wrong", name, msg)
			}
			return
		}
		again, err := bridge.CanonicalName(got)
		if err != nil || again != got {
			t.Fatalf("CanonicalName(%q) = %q, which gives %q, %v: not canonical", name, got, again, err)
		}
		if len(got) != len(name) || !strings.EqualFold(got, name) {
			t.Fatalf("CanonicalName(%q) = %q: changed more than case", name, got)
		}
		if got != name && !(strings.HasPrefix(got, bridge.InboxName) && got[len(bridge.InboxName):] == name[len(bridge.InboxName):]) {
			t.Fatalf("CanonicalName(%q) = %q: changed something but the INBOX level", name, got)
		}
		if !utf8.ValidString(got) || len(got) > 512 {
			t.Fatalf("accepted %q: invalid UTF-8 or too long", got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || r == '*' || r == '%' || r == utf8.RuneError {
				t.Fatalf("accepted %q with %U", got, r)
			}
		}
		for _, l := range strings.Split(got, bridge.Delimiter) {
			if l == "" || l == "." || l == ".." {
				t.Fatalf("accepted %q with level %q", got, l)
			}
		}
		first, _, _ := strings.Cut(got, bridge.Delimiter)
		if strings.EqualFold(first, bridge.InboxName) && first != bridge.InboxName {
			t.Fatalf("accepted %q without canonical INBOX", got)
		}
	})
}

// FuzzNormalizeFlags: the stored form of a flag list is sorted, without
// duplicates (compared case-insensitively), without \Recent or empty
// flags, system flags in their one spelling, every flag of the input
// still there; normalising it again changes nothing.
func FuzzNormalizeFlags(f *testing.F) {
	f.Add(`\seen \SEEN $Label1 \Recent  \flagged $label1 \Deleted \Draft \Answered`)
	f.Add(`\Seen`)
	f.Add(``)
	f.Add("a\x00b \\ \\\\ Ü ü")
	f.Fuzz(func(t *testing.T, list string) {
		in := strings.Split(list, " ")
		got := bridge.NormalizeFlags(in)
		if !slices.IsSorted(got) {
			t.Fatalf("NormalizeFlags(%q) = %q: not sorted", in, got)
		}
		seen := map[string]bool{}
		for _, fl := range got {
			k := strings.ToLower(fl)
			if fl == "" || k == `\recent` || seen[k] {
				t.Fatalf("NormalizeFlags(%q) = %q: empty, \\Recent or duplicate %q", in, got, fl)
			}
			seen[k] = true
			for _, sys := range []string{bridge.FlagSeen, bridge.FlagAnswered, bridge.FlagFlagged, bridge.FlagDeleted, bridge.FlagDraft} {
				if strings.EqualFold(fl, sys) && fl != sys {
					t.Fatalf("NormalizeFlags(%q) = %q: %q not spelt %q", in, got, fl, sys)
				}
			}
		}
		for _, fl := range in {
			if k := strings.ToLower(fl); fl != "" && k != `\recent` && !seen[k] {
				t.Fatalf("NormalizeFlags(%q) = %q: lost %q", in, got, fl)
			}
		}
		if again := bridge.NormalizeFlags(got); !slices.Equal(again, got) {
			t.Fatalf("NormalizeFlags not idempotent: %q then %q", got, again)
		}
	})
}

// FuzzHighwater: highwater.json is read at every start to detect a store
// restored from an older copy. Whatever the file holds, the store opens;
// mailboxes keep their UIDVALIDITY unless the file names this very store
// with a later commit than the store has; and the file is rewritten as
// valid JSON naming the store.
func FuzzHighwater(f *testing.F) {
	ctx := context.Background()
	template := f.TempDir()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: template})
	if err != nil {
		f.Fatal(err)
	}
	u, err := b.User(ctx, "alice")
	if err != nil {
		f.Fatal(err)
	}
	appendTo(f, u, "INBOX", 1, nil, time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC))
	uv := mailbox(f, u, "INBOX").Info().UIDValidity
	if err := b.Close(); err != nil {
		f.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(template, "highwater.json"))
	if err != nil {
		f.Fatal(err)
	}
	var hw struct {
		StoreID    string `json:"store_id"`
		Generation uint64 `json:"generation"`
	}
	if err := json.Unmarshal(orig, &hw); err != nil {
		f.Fatal(err)
	}
	f.Add(orig)
	f.Add([]byte(`{"store_id":"` + hw.StoreID + `","generation":18446744073709551615}`))
	f.Add([]byte(`{"store_id":"` + hw.StoreID + `","generation":-1}`))
	f.Add([]byte(`{"store_id":12,"generation":"7"}`))
	f.Add([]byte(`{"generation":1e400}`))
	f.Add([]byte("\x00\xff{"))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(template)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "highwater.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
		if err != nil {
			t.Fatalf("Open with highwater.json %q: %v", data, err)
		}
		defer b.Close()
		u, err := b.User(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		got := mailbox(t, u, "INBOX").Info().UIDValidity
		var in struct {
			StoreID    string `json:"store_id"`
			Generation uint64 `json:"generation"`
		}
		rollback := json.Unmarshal(data, &in) == nil && in.StoreID == hw.StoreID && in.Generation > hw.Generation
		if rollback == (got == uv) {
			t.Fatalf("highwater.json %q (store generation %d): UIDVALIDITY %d → %d; rollback expected: %v", data, hw.Generation, uv, got, rollback)
		}
		out, err := os.ReadFile(filepath.Join(dir, "highwater.json"))
		if err != nil {
			t.Fatal(err)
		}
		var after struct {
			StoreID    string `json:"store_id"`
			Generation uint64 `json:"generation"`
		}
		if err := json.Unmarshal(out, &after); err != nil || after.StoreID != hw.StoreID {
			t.Fatalf("highwater.json rewritten as %q (%v)", out, err)
		}
		if rollback && after.Generation < in.Generation || bytes.Equal(out, nil) {
			t.Fatalf("after a rollback the mark went back: %q after %q", out, data)
		}
	})
}
