package mboxstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// Lock names for Config.Locks and DeliverOptions.Locks.
const (
	LockDotlock = "dotlock"
	LockFcntl   = "fcntl"
)

// DefaultLockTimeout is how long a lock held by another process is waited
// for before giving up with an error wrapping bridge.ErrSourceBusy.
const DefaultLockTimeout = 10 * time.Second

// DotlockStale is the age (by mtime) after which another process's dotlock
// is considered abandoned and broken. Holders refresh theirs more often.
const DotlockStale = 5 * time.Minute

const dotlockRefresh = DotlockStale / 5

func validateLocks(locks []string) error {
	seen := map[string]bool{}
	for _, l := range locks {
		if l != LockDotlock && l != LockFcntl {
			return fmt.Errorf("unknown lock %q (want %q or %q)", l, LockDotlock, LockFcntl)
		}
		if seen[l] {
			return fmt.Errorf("lock %q listed twice", l)
		}
		seen[l] = true
	}
	return nil
}

func hasLock(locks []string, name string) bool {
	for _, l := range locks {
		if l == name {
			return true
		}
	}
	return false
}

// The spools this process has open under fcntl locks. Such locks belong to
// the process, not to a descriptor: two users of one spool in one process
// would not exclude each other, and closing any descriptor of the spool
// drops every fcntl lock the process holds on it. So every user of a spool
// in this package (Source sessions, Deliver) first takes its slot here.
var processSpools struct {
	mu    sync.Mutex
	slots map[string]chan struct{}
}

// holdSpool waits (up to timeout, and honouring ctx) until no other user in
// this process has the spool at path, and returns the release function.
func holdSpool(ctx context.Context, path string, timeout time.Duration) (release func(), err error) {
	key := path
	if abs, err := filepath.Abs(path); err == nil {
		key = abs
	}
	processSpools.mu.Lock()
	if processSpools.slots == nil {
		processSpools.slots = map[string]chan struct{}{}
	}
	slot := processSpools.slots[key]
	if slot == nil {
		slot = make(chan struct{}, 1)
		processSpools.slots[key] = slot
	}
	processSpools.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("mboxstore: %s: %w", path, ctx.Err())
	case <-t.C:
		return nil, fmt.Errorf("mboxstore: %s: in use by another session of this process for %v: %w", path, timeout, bridge.ErrSourceBusy)
	}
}

// retry calls try until it reports done, ctx ends or timeout passes, with a
// backoff from 5ms to 100ms. It returns errBusy on timeout.
func retry(ctx context.Context, timeout time.Duration, errBusy func() error, try func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		done, err := try()
		if err != nil || done {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errBusy()
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// lockFcntl takes an fcntl lock on the whole of f (a write lock if write,
// else a read lock; an existing lock of this process on f is converted),
// waiting up to timeout for another process to release a conflicting one.
// F_SETLK is polled rather than F_SETLKW used so that the wait is bounded
// and honours ctx without signals.
func lockFcntl(ctx context.Context, f *os.File, write bool, timeout time.Duration) error {
	kind, typ := "read", lockRead
	if write {
		kind, typ = "write", lockWrite
	}
	busy := func() error {
		return fmt.Errorf("mboxstore: %s: fcntl %s lock held by another process for %v: %w", f.Name(), kind, timeout, bridge.ErrSourceBusy)
	}
	return retry(ctx, timeout, busy, func() (bool, error) {
		err := fcntlSetLock(f, typ)
		switch {
		case err == nil:
			return true, nil
		case lockConflict(err):
			return false, nil
		}
		return false, fmt.Errorf("mboxstore: %s: fcntl %s lock: %w", f.Name(), kind, err)
	})
}

// dotlock is a held "<file>.lock".
type dotlock struct {
	path   string
	fi     fs.FileInfo // of the lock file as created, to remove only our own
	logger *slog.Logger
	stop   chan struct{}
	wg     sync.WaitGroup
}

// takeDotlock creates path+".lock" with O_EXCL, waiting up to timeout for
// another holder; a lock file older than DotlockStale is broken (and
// logged). While held, the lock file's mtime is refreshed so that others do
// not break it.
func takeDotlock(ctx context.Context, path string, timeout time.Duration, logger *slog.Logger) (*dotlock, error) {
	lockPath := path + ".lock"
	busy := func() error {
		return fmt.Errorf("mboxstore: %s: dotlock %s held by another process for %v: %w", path, lockPath, timeout, bridge.ErrSourceBusy)
	}
	var dl *dotlock
	err := retry(ctx, timeout, busy, func() (bool, error) {
		f, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
			fi, serr := f.Stat()
			cerr := f.Close()
			if err = errors.Join(werr, serr, cerr); err != nil {
				os.Remove(lockPath)
				return false, fmt.Errorf("mboxstore: %s: dotlock: %w", path, err)
			}
			dl = &dotlock{path: lockPath, fi: fi, logger: logger, stop: make(chan struct{})}
			return true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("mboxstore: %s: dotlock: %w", path, err)
		}
		fi, err := os.Lstat(lockPath)
		if err != nil {
			return false, nil // gone meanwhile: try again
		}
		if age := time.Since(fi.ModTime()); age > DotlockStale {
			logger.Warn("mboxstore: breaking stale dotlock", "file", lockPath, "age", age.Round(time.Second))
			if err := os.Remove(lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, fmt.Errorf("mboxstore: %s: break stale dotlock: %w", path, err)
			}
			return false, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	dl.wg.Add(1)
	go dl.refresh()
	return dl, nil
}

func (d *dotlock) refresh() {
	defer d.wg.Done()
	t := time.NewTicker(dotlockRefresh)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			if err := os.Chtimes(d.path, now, now); err != nil {
				d.logger.Warn("mboxstore: refresh dotlock", "file", d.path, "err", err)
			}
		}
	}
}

// release removes the lock file if it is still the one created.
func (d *dotlock) release() {
	if d == nil {
		return
	}
	close(d.stop)
	d.wg.Wait()
	fi, err := os.Lstat(d.path)
	if err != nil {
		d.logger.Warn("mboxstore: dotlock vanished while held", "file", d.path, "err", err)
		return
	}
	if !os.SameFile(fi, d.fi) {
		d.logger.Warn("mboxstore: dotlock was replaced by another process; leaving it", "file", d.path)
		return
	}
	if err := os.Remove(d.path); err != nil {
		d.logger.Warn("mboxstore: remove dotlock", "file", d.path, "err", err)
	}
}
