package pop3

import (
	"fmt"
	"strconv"
	"strings"
)

// The reply parsers are pure functions of one line so that they can be
// table-tested and fuzzed without a connection.

// MsgNum is a message number: the 1-based position of a message in the
// maildrop for the length of one session. It is not stable across sessions.
type MsgNum int

// UIDL is a server's unique id of a message (RFC 1939 section 7): 1 to 70
// characters in the range 0x21-0x7E, stable across sessions on a correct
// server.
type UIDL string

// MsgInfo is one line of a LIST reply.
type MsgInfo struct {
	Num  MsgNum
	Size int64 // octets, as the server counts them (normally CRLF size)
}

// UIDLInfo is one line of a UIDL reply.
type UIDLInfo struct {
	Num  MsgNum
	UIDL UIDL
}

// Limits on what a server may send in one line that is not message data.
const (
	maxReplyLine = 8 << 10
	// maxUIDLLen is lenient: RFC 1939 allows 70 characters; some servers
	// send longer ids, which are kept.
	maxUIDLLen = 512
	// maxListEntries bounds a LIST, UIDL or CAPA listing.
	maxListEntries = 1 << 22
	// maxMsgNum bounds message numbers (and the count in STAT).
	maxMsgNum = 1<<31 - 1
)

// status is a parsed status line.
type status struct {
	ok   bool   // +OK
	cont bool   // "+ " SASL continuation
	code string // response code of a -ERR (also parsed for +OK)
	text string // the text after indicator and code
}

// parseStatus parses a status line (without its line ending). The
// indicators are matched case-insensitively; anything else is malformed.
func parseStatus(line string) (status, error) {
	var st status
	switch {
	case hasPrefixFold(line, "+OK"):
		st.ok = true
		line = line[3:]
	case hasPrefixFold(line, "-ERR"):
		line = line[4:]
	case line == "+" || strings.HasPrefix(line, "+ "):
		st.cont = true
		st.text = strings.TrimPrefix(strings.TrimPrefix(line, "+"), " ")
		return st, nil
	default:
		return st, fmt.Errorf("%w: not a status line: %s", ErrMalformed, quote(line))
	}
	line = strings.TrimLeft(line, " \t")
	st.code, st.text = splitCode(line)
	return st, nil
}

// splitCode separates an RFC 2449 response code ("[SYS/TEMP] text") from
// the text. A bracket that is not a well-formed code stays in the text.
func splitCode(text string) (code, rest string) {
	if !strings.HasPrefix(text, "[") {
		return "", text
	}
	end := strings.IndexByte(text, ']')
	if end < 2 || end > 64 {
		return "", text
	}
	code = text[1:end]
	for _, level := range strings.Split(code, "/") {
		if level == "" {
			return "", text
		}
		for i := 0; i < len(level); i++ {
			if c := level[i]; c <= 0x20 || c >= 0x7f || c == '[' {
				return "", text
			}
		}
	}
	return strings.ToUpper(code), strings.TrimLeft(text[end+1:], " \t")
}

// parseStat parses the text of a +OK reply to STAT: "count size", anything
// after is allowed (RFC 1939).
func parseStat(text string) (count int, size int64, err error) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("%w: want \"count size\", got %s", ErrMalformed, quote(text))
	}
	c, err := parseCount(f[0], maxMsgNum)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: message count %s", ErrMalformed, quote(f[0]))
	}
	s, err := parseCount(f[1], 1<<62)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: maildrop size %s", ErrMalformed, quote(f[1]))
	}
	return int(c), s, nil
}

// parseListLine parses one line of a LIST listing, or the text of a +OK
// reply to LIST n: "num size", anything after is allowed.
func parseListLine(line string) (MsgInfo, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return MsgInfo{}, fmt.Errorf("%w: want \"number size\", got %s", ErrMalformed, quote(line))
	}
	n, err := parseMsgNum(f[0])
	if err != nil {
		return MsgInfo{}, err
	}
	s, err := parseCount(f[1], 1<<62)
	if err != nil {
		return MsgInfo{}, fmt.Errorf("%w: size %s of message %d", ErrMalformed, quote(f[1]), n)
	}
	return MsgInfo{Num: n, Size: s}, nil
}

// parseUIDLLine parses one line of a UIDL listing, or the text of a +OK
// reply to UIDL n: "num uid". The uid must be printable ASCII without
// spaces; nothing may follow it.
func parseUIDLLine(line string) (UIDLInfo, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return UIDLInfo{}, fmt.Errorf("%w: want \"number uid\", got %s", ErrMalformed, quote(line))
	}
	n, err := parseMsgNum(f[0])
	if err != nil {
		return UIDLInfo{}, err
	}
	u := f[1]
	if len(u) > maxUIDLLen {
		return UIDLInfo{}, fmt.Errorf("%w: uid of message %d is %d bytes long", ErrMalformed, n, len(u))
	}
	for i := 0; i < len(u); i++ {
		if c := u[i]; c < 0x21 || c > 0x7e {
			return UIDLInfo{}, fmt.Errorf("%w: uid of message %d has byte 0x%02x", ErrMalformed, n, c)
		}
	}
	return UIDLInfo{Num: n, UIDL: UIDL(u)}, nil
}

// parseCapaLine adds one line of a CAPA listing to caps.
func parseCapaLine(caps Capabilities, line string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return
	}
	caps[strings.ToUpper(f[0])] = f[1:]
}

func parseMsgNum(s string) (MsgNum, error) {
	n, err := parseCount(s, maxMsgNum)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: message number %s", ErrMalformed, quote(s))
	}
	return MsgNum(n), nil
}

// parseCount parses a decimal number in [0, limit] without sign.
func parseCount(s string, limit int64) (int64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, err
	}
	if int64(n) > limit {
		return 0, strconv.ErrRange
	}
	return int64(n), nil
}

// apopTimestamp extracts the RFC 1939 APOP timestamp ("<pid.clock@host>")
// from a greeting's text, or "".
func apopTimestamp(greeting string) string {
	i := strings.IndexByte(greeting, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(greeting[i:], '>')
	if j < 2 || j > 256 {
		return ""
	}
	ts := greeting[i : i+j+1]
	if strings.ContainsAny(ts[1:len(ts)-1], "<> \t") {
		return ""
	}
	return ts
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// quote renders server text for an error message: quoted, and cut short.
func quote(s string) string {
	const max = 120
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
