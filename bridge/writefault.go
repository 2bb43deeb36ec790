package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"modernc.org/sqlite"
)

// diskFault says whether err is the data directory's filesystem refusing a
// write (full, read-only, quota, I/O error), as an errno or as SQLite's
// result code, as opposed to a caller's bad input or a bug.
func diskFault(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EROFS, syscall.EDQUOT, syscall.EIO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	_, ok := sqliteDiskFault(err)
	return ok
}

// sqliteDiskFaults are the SQLite result codes of a disk refusing a write,
// with what each means in plain words.
var sqliteDiskFaults = map[int]string{
	13: "no space left on device",                // SQLITE_FULL
	8:  "read-only (file system or permissions)", // SQLITE_READONLY
	10: "I/O error",                              // SQLITE_IOERR
	14: "cannot open a file",                     // SQLITE_CANTOPEN
}

// sqliteDiskFault returns the plain words for err if it is SQLite's
// report of a disk fault.
func sqliteDiskFault(err error) (why string, ok bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return "", false
	}
	why, ok = sqliteDiskFaults[se.Code()&0xff] // the primary code of an extended one
	return why, ok
}

// describeDBFault names the state database and says in plain words what
// the disk refused, for a fault SQLite reports in its own terms ("database
// or disk is full"): the operator reading the log or /readyz learns which
// file and why. Other errors are returned as they are.
func (b *Bridge) describeDBFault(err error) error {
	why, ok := sqliteDiskFault(err)
	if !ok {
		return err
	}
	return fmt.Errorf("state database %s: %s: %w", filepath.Join(b.dir, dbFile), why, err)
}

// ProbeWrites checks, when the last write to the store failed, whether the
// store takes writes again: it writes, fsyncs and removes a small file where
// message bodies are written first, then commits an empty transaction to
// the state database. Success clears the failure Ready reports; a failure
// is recorded (and returned) like any other. With no failure recorded it
// does nothing: a readiness check can call it on every request.
//
// Without it a store that met a full or read-only disk would report not
// ready until some later write happened to succeed, which may be never
// when no mail arrives.
func (b *Bridge) ProbeWrites(ctx context.Context) error {
	if err := b.Ready(); err == nil || !errors.Is(err, ErrStoreNotWritable) {
		return err
	}
	if err := b.probeFile(); err != nil {
		b.noteWrite(fmt.Errorf("%w: %v", ErrStoreNotWritable, err))
		return err
	}
	// write records its own outcome (success clears the failure).
	if err := b.write(ctx, func(*wtx) error { return nil }); err != nil {
		return fmt.Errorf("store: probe the state database: %w", err)
	}
	return nil
}

func (b *Bridge) probeFile() error {
	f, err := os.CreateTemp(filepath.Join(b.dir, tmpDir), "probe-*")
	if err != nil {
		return fmt.Errorf("store: probe: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: probe: %w", err)
	}
	return nil
}
