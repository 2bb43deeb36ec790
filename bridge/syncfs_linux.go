package bridge

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// syncFS flushes every dirty file and directory entry of the filesystem
// that holds dir (syncfs(2)). golang.org/x/sys/unix is already in the
// build through the SQLite driver; the standard library's syscall package
// has no syncfs on every architecture.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err := unix.Syncfs(int(f.Fd()))
		if err != unix.EINTR {
			return os.NewSyscallError("syncfs", err)
		}
	}
}

// syncfsUsable reports whether syncFS can stand in for per-file fsyncs:
// Linux reports write-back errors from syncfs only since 5.8; before, a
// failed write-back would go unnoticed, so older kernels fsync each file.
func syncfsUsable() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var sb strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		sb.WriteByte(c)
	}
	return kernelAtLeast(sb.String(), 5, 8)
}

// kernelAtLeast parses the "major.minor" start of a kernel release string.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr := 0
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(parts[1])
	}
	mnr, err2 := strconv.Atoi(parts[1][:digits])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}
