package pop3

import (
	"errors"
	"strings"
)

// Response codes (RFC 2449 section 8, RFC 3206) a server may put in brackets
// at the start of a -ERR reply's text.
const (
	// CodeInUse: the maildrop is locked by another session.
	CodeInUse = "IN-USE"
	// CodeLoginDelay: the user logged in too recently; try later.
	CodeLoginDelay = "LOGIN-DELAY"
	// CodeSysTemp: a temporary system problem; try later.
	CodeSysTemp = "SYS/TEMP"
	// CodeSysPerm: a permanent system problem; retrying will not help.
	CodeSysPerm = "SYS/PERM"
	// CodeAuth: the credentials were wrong (RFC 3206), as opposed to a
	// system problem.
	CodeAuth = "AUTH"
)

var (
	// ErrMalformed is wrapped by errors about a reply that does not follow
	// the protocol (a STAT reply without numbers, a UIDL with a space, a
	// line that is not a status line).
	ErrMalformed = errors.New("malformed reply")
	// ErrClosed is wrapped by errors from a Client whose connection was
	// closed (Close, Quit, a cancelled context) or that broke off after a
	// failure that left the conversation out of step.
	ErrClosed = errors.New("connection closed")
	// ErrNotSupported is wrapped when a command needs something the server
	// did not offer (STLS, an APOP timestamp, a SASL mechanism).
	ErrNotSupported = errors.New("not offered by the server")
)

// Error is a -ERR reply.
type Error struct {
	// Command is the command that was refused, with its arguments unless
	// they are secret ("RETR 3", "PASS", "APOP alice"); "" for the greeting.
	Command string
	// Code is the response code without brackets, upper-cased ("IN-USE",
	// "SYS/TEMP"), or "" when the server gave none.
	Code string
	// Text is the server's text after the response code. Any occurrence of
	// the password in a reply to an authentication command is replaced by
	// "[redacted]".
	Text string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("server replied -ERR")
	if e.Code != "" {
		b.WriteString(" [")
		b.WriteString(e.Code)
		b.WriteString("]")
	}
	if e.Text != "" {
		b.WriteString(" ")
		b.WriteString(e.Text)
	}
	return b.String()
}

// HasCode reports whether the reply carries the response code code or one
// below it in the hierarchy: HasCode("SYS") is true for "SYS/TEMP".
func (e *Error) HasCode(code string) bool {
	code = strings.ToUpper(code)
	return e.Code == code || strings.HasPrefix(e.Code, code+"/")
}

// Temporary reports whether the reply's code says that trying again later
// may succeed (IN-USE, LOGIN-DELAY, SYS/TEMP).
func (e *Error) Temporary() bool {
	return e.HasCode(CodeInUse) || e.HasCode(CodeLoginDelay) || e.HasCode(CodeSysTemp)
}

// ErrorCode returns the response code of the *Error in err's chain, or "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
