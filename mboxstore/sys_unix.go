//go:build unix

package mboxstore

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// oNoFollow makes opening a spool that is a symbolic link fail: a user who
// can write the spool directory must not make the bridge read another file.
const oNoFollow = syscall.O_NOFOLLOW

type lockType int16

const (
	lockRead  lockType = syscall.F_RDLCK
	lockWrite lockType = syscall.F_WRLCK
	lockNone  lockType = syscall.F_UNLCK
)

// fcntlSetLock sets (F_SETLK, not waiting) an fcntl lock of type typ on
// the whole of f, for this process.
func fcntlSetLock(f *os.File, typ lockType) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	err = rc.Control(func(fd uintptr) {
		lk := syscall.Flock_t{Type: int16(typ), Whence: 0, Start: 0, Len: 0}
		lerr = syscall.FcntlFlock(fd, syscall.F_SETLK, &lk)
	})
	if err != nil {
		return err
	}
	return lerr
}

// lockConflict reports whether an F_SETLK error means another process
// holds a conflicting lock (or the call was interrupted): try again later.
func lockConflict(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EINTR)
}

func isReadOnlyFS(err error) bool { return errors.Is(err, syscall.EROFS) }

func isSymlinkLoop(err error) bool { return errors.Is(err, syscall.ELOOP) }

// fileID returns the device and inode numbers of a file.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev), uint64(sys.Ino)
	}
	return 0, 0
}
