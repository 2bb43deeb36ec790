package bridge

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// The data directory holds every message body (blobs, and SQLite's WAL
// before a checkpoint): nobody but the service's own user may read it,
// whatever the umask or an operator's mkdir left behind. Directories are
// 0700 and files 0600. A directory that exists with wider modes is
// tightened at Open, and logged; state.db is created 0600 before SQLite
// opens it, because SQLite gives its -wal and -shm files the database
// file's mode.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// securePermissions creates (or tightens) the data directory and its
// blobs/ and tmp/ directories, and the state database and its SQLite
// companions.
func securePermissions(dir string, log *slog.Logger) error {
	for _, d := range []string{dir, filepath.Join(dir, blobDir), filepath.Join(dir, tmpDir)} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return fmt.Errorf("store: create %s: %w", d, err)
		}
		if err := tighten(d, dirMode, log); err != nil {
			return err
		}
	}
	db := filepath.Join(dir, dbFile)
	f, err := os.OpenFile(db, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("store: create %s: %w", db, err)
	}
	f.Close()
	for _, p := range []string{db, db + "-wal", db + "-shm", db + "-journal", filepath.Join(dir, highwaterFile)} {
		if err := tighten(p, fileMode, log); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// tighten removes from path's mode every permission bit beyond want
// (never adds one), logging what it changed.
func tighten(path string, want fs.FileMode, log *slog.Logger) error {
	fi, err := os.Stat(path) // a symlinked data directory: its target
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("store: stat %s: %w", path, err)
	}
	have := fi.Mode().Perm()
	if have&^want == 0 {
		return nil
	}
	if err := os.Chmod(path, have&want); err != nil {
		return fmt.Errorf("store: %s has mode %04o, readable by others, and cannot be tightened to %04o: %w", path, have, have&want, err)
	}
	log.Warn("store: tightened permissions: the data directory holds every message", "path", path, "was", fmt.Sprintf("%04o", have), "now", fmt.Sprintf("%04o", have&want))
	return nil
}
