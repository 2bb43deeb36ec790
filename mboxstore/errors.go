package mboxstore

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error about a spool that cannot be read as
// an mbox file (see CorruptError).
var ErrCorrupt = errors.New("corrupt mbox")

// ErrChanged is wrapped by errors about a spool that no longer holds what
// was listed at the offsets of a message: another program rewrote it
// without honouring the locks. Listing again resolves it.
var ErrChanged = errors.New("spool changed since it was listed")

// CorruptError says where a spool stops being a valid mbox file. Messages
// before Offset are intact and are returned together with the error.
type CorruptError struct {
	Path   string // the spool file
	Offset int64  // byte offset of the problem
	Reason string // what is wrong there
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("mboxstore: %s at byte %d: %v: %s", e.Path, e.Offset, ErrCorrupt, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
