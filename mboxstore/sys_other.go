//go:build !unix

package mboxstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// mbox spools and their fcntl locks are a Unix matter; elsewhere the
// package builds (so the binary does) but cannot lock a spool.

const oNoFollow = 0

type lockType int16

const (
	lockRead lockType = iota
	lockWrite
	lockNone
)

func fcntlSetLock(*os.File, lockType) error {
	return fmt.Errorf("fcntl locks on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func lockConflict(error) bool { return false }

func isReadOnlyFS(error) bool { return false }

func isSymlinkLoop(error) bool { return false }

func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }
