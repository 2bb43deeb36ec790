package pop3front

import (
	"errors"
	"strings"
)

// command is one parsed command line.
type command struct {
	// name is the keyword in upper case, or "" for a line that has none.
	name string
	// args are the space-separated arguments.
	args []string
	// rest is everything after the keyword and the one space after it,
	// verbatim (PASS takes it whole: a password may hold spaces, RFC 1939
	// section 7).
	rest string
}

var (
	errEmptyCommand = errors.New("empty command line")
	errBadKeyword   = errors.New("command keyword is not 3 or 4 letters")
	errBadByte      = errors.New("command line holds a NUL or a line break")
)

// parseCommand parses one command line without its line ending. Keywords
// are case-insensitive ASCII letters (3 or 4: RFC 1939 section 3);
// arguments are separated by one or more spaces. The line may carry any
// byte but NUL, CR and LF (a password may be UTF-8).
func parseCommand(line []byte) (command, error) {
	for _, c := range line {
		if c == 0 || c == '\r' || c == '\n' {
			return command{}, errBadByte
		}
	}
	s := string(line)
	if strings.TrimLeft(s, " ") == "" {
		return command{}, errEmptyCommand
	}
	kw, rest, _ := strings.Cut(s, " ")
	if len(kw) < 3 || len(kw) > 4 {
		return command{}, errBadKeyword
	}
	name := make([]byte, len(kw))
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		switch {
		case c >= 'a' && c <= 'z':
			name[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z':
			name[i] = c
		default:
			return command{}, errBadKeyword
		}
	}
	return command{name: string(name), args: splitSpaces(rest), rest: rest}, nil
}

// splitSpaces splits s at runs of spaces (only spaces: a tab is part of
// an argument).
func splitSpaces(s string) []string {
	var out []string
	for _, f := range strings.Split(s, " ") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseNumber parses a message number or line count: decimal digits only
// (no sign), of any length; values above maxNumber are maxNumber (fetchmail
// sends "TOP n 99999999", others larger).
func parseNumber(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n = n*10 + int(c-'0'); n > maxNumber {
			n = maxNumber
		}
	}
	return n, true
}

const maxNumber = 1<<31 - 1
