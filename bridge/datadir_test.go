package bridge_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDataDirWithURICharacters: the state store lives inside the data
// directory whatever characters its path holds. The path went into a
// "file:" SQLite URI unescaped, so "/srv/mail#2" opened "/srv/mail" (and
// "/srv/mail#1" the same file), '?' mixed the path into the parameters,
// and "%41" read as "A". FuzzHighwater found it: fuzz seeds run in
// directories named "…seed#0".
func TestDataDirWithURICharacters(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	names := []string{"mail#1", "mail#2", "what?x=1", "pct%41", "spa ce"}
	for i, name := range names {
		dir := filepath.Join(root, name)
		b := openStore(t, dir)
		u, err := b.User(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j <= i; j++ {
			appendTo(t, u, "INBOX", j, nil, time.Now())
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "state.db")); err != nil {
			t.Errorf("data dir %q: state.db not inside it: %v", name, err)
		}
	}
	for i, name := range names {
		b := openStore(t, filepath.Join(root, name))
		u, err := b.User(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if n := len(mailbox(t, u, "INBOX").UIDs()); n != i+1 {
			t.Errorf("data dir %q: INBOX has %d messages, want %d (stores shared a file?)", name, n, i+1)
		}
		b.Close()
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != len(names) {
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		t.Errorf("the temp dir holds %q; want only the %d data directories", got, len(names))
	}
}
