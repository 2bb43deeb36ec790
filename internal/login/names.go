package login

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/imapbridge/imapbridge/internal/config"
)

// ErrBadName is wrapped by the error of a login whose name is no login
// name at all: empty, longer than MaxNameLength, not UTF-8, or holding a
// space or a control character. Such a login is refused before any
// check; the error's text says what was wrong, for the client.
var ErrBadName = errors.New("login name refused")

// MaxNameLength is the longest login name, in bytes (users[].name has the
// same limit).
const MaxNameLength = config.MaxUserNameLength

// CheckName returns nil for a name that may be checked at all, or an
// error wrapping ErrBadName saying why not. It does not say whether such
// a user exists.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, MaxNameLength)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadName)
	}
	for _, r := range name {
		// Cc: C0, DEL, C1; Cf: invisible format characters (zero-width
		// space, direction overrides); Z*: every kind of space.
		if unicode.IsSpace(r) || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zs, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("%w: contains a space or a control character", ErrBadName)
		}
	}
	return nil
}
