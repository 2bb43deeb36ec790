package imapfront

import (
	"strconv"
	"unicode/utf8"
)

// maxLogField is how much of a client-supplied value (a user name, a
// mailbox name, a command, an ID value) goes into a log line.
const maxLogField = 256

// Clip shortens a client-supplied value for a log line: at most
// maxLogField bytes, cut at a character boundary and marked with the
// whole length ("alice…[45012 bytes]"), so that a client cannot make the
// log grow faster than its own lines. Every such value in this package
// goes through it, and so should the authenticator's (cmd/imapbridge).
func Clip(s string) string {
	if len(s) <= maxLogField {
		return s
	}
	cut := maxLogField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[" + strconv.Itoa(len(s)) + " bytes]"
}
