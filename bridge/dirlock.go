package bridge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFile in the data directory is held (flock, exclusive) by the one
// process that has the store open for writing; it names that process.
const lockFile = "lock"

// ErrDataDirInUse: another process has the store open (Open refuses a
// second one; OpenReadOnly does not need the lock).
var ErrDataDirInUse = errors.New("data directory in use by another process")

// dirLock is a held lock on a data directory; a nil one does nothing.
type dirLock struct{ f *os.File }

// lockDataDir takes the data directory's lock without waiting. The kernel
// drops it when the process ends, however it ends, so a crash leaves
// nothing to clean up.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := flockExclusive(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, errLocked) {
			who := "another process"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who = "process " + pid
			}
			return nil, fmt.Errorf("store: data directory %s is in use by %s (another imapbridge serve on the same data_dir?): %w", dir, who, ErrDataDirInUse)
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the descriptor drops the flock
		l.f = nil
	}
}
