package bridge_test

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestDataDirPermissionsPreexisting: with umask 022 and a data directory an operator
// made 0755 (with a 0755 blobs/ and a 0644 state.db from an older
// release), Open tightens the directories to 0700 (and logs it), and every
// file of the store — state.db, SQLite's -wal and -shm (which hold message
// bodies before a checkpoint), blob files, highwater.json — is 0600 after
// writes of inline and file blobs, and after a reopen.
func TestDataDirPermissionsPreexisting(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	for _, d := range []string{dir, filepath.Join(dir, "blobs")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "state.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, nil))
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	u, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("x"), 200<<10)...)
	for i := 0; i < 5; i++ {
		appendTo(t, u, "INBOX", i, nil, time.Now())
		if _, _, err := u.Append(ctx, "INBOX", bytes.NewReader(append(big, byte('0'+i))), nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"state.db-wal", "state.db-shm"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not there while the store is open (the test proves less): %v", f, err)
		}
	}
	checkModes(t, dir, "while open")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkModes(t, dir, "after close")
	for _, want := range []string{`path=` + dir + ` was=0755 now=0700`, `path=` + filepath.Join(dir, "blobs") + ` was=0755 now=0700`, `path=` + filepath.Join(dir, "state.db") + ` was=0644 now=0600`} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logBuf.String())
		}
	}
	b = openStore(t, dir)
	checkModes(t, dir, "after reopen")
	b.Close()
}

func checkModes(t *testing.T, dir, when string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: %s has mode %04o, want %04o", when, p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 {
		t.Errorf("%s: only %d files under %s", when, files, dir)
	}
}
