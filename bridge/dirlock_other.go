//go:build !unix

package bridge

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// flockExclusive does nothing where flock(2) is missing: one process per
// data directory is then the operator's to ensure.
func flockExclusive(*os.File) error { return nil }
