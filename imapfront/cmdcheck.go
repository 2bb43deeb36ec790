package imapfront

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is what the guard (guard.go) does with the first line of each
// command before go-imap sees it. go-imap v2 beta.8 answers some input
// wrongly before any session method runs: an unknown command before login
// gets BYE, a line without a tag closes the connection, ID is unknown, a
// LOGIN literal over 4096 bytes is refused and then waited on forever, and
// a name that is not modified UTF-7, an unknown SEARCH key or a bad date
// become "NO [SERVERBUG]". SEARCH nesting costs memory in its recursive
// parser before anything can refuse it. The guard answers those commands
// itself, in order, and hands the rest on untouched (or, for a LIST
// pattern, rewritten).

// MaxSearchDepth is how deeply SEARCH keys may nest (NOT, OR and
// parenthesised lists count a level each). Deeper gets BAD before go-imap
// parses it.
const MaxSearchDepth = 100

// ID limits (RFC 2971 section 3.3).
const (
	maxIDPairs = 30
	maxIDField = 30
	maxIDValue = 1024
	// maxOwnedCommand bounds what the guard keeps of a command it answers
	// itself (an ID with 30 literal values of 1024 bytes fits).
	maxOwnedCommand = 64 << 10
)

// knownCommands are the commands go-imap dispatches.
var knownCommands = map[string]bool{
	"NOOP": true, "CHECK": true, "LOGOUT": true, "CAPABILITY": true, "STARTTLS": true,
	"AUTHENTICATE": true, "UNAUTHENTICATE": true, "LOGIN": true, "ENABLE": true,
	"CREATE": true, "DELETE": true, "RENAME": true, "SUBSCRIBE": true, "UNSUBSCRIBE": true,
	"STATUS": true, "LIST": true, "LSUB": true, "NAMESPACE": true, "IDLE": true,
	"SELECT": true, "EXAMINE": true, "CLOSE": true, "UNSELECT": true, "APPEND": true,
	"FETCH": true, "UID FETCH": true, "EXPUNGE": true, "UID EXPUNGE": true,
	"STORE": true, "UID STORE": true, "COPY": true, "UID COPY": true,
	"MOVE": true, "UID MOVE": true, "SEARCH": true, "UID SEARCH": true,
}

// ownedCmd is a command the guard answers itself. With keep it collects
// the command (lines and literal data) for finish; without, it swallows
// the rest of the command and answers reply.
type ownedCmd struct {
	tag, name  string
	keep       bool
	buf        []byte
	lit        int64 // literal bytes still to come
	maxLiteral int64
	reply      []byte
	finish     func(cmd []byte) ([]byte, *ClientID)
}

// cmdCheck is what inspectCommand decided about a command's first line.
type cmdCheck struct {
	tag, name string
	own       *ownedCmd   // the guard answers it
	rewrite   []byte      // go-imap gets this line instead
	search    *searchScan // later lines of a SEARCH go through this
}

func statusLine(tag, status, text string) []byte {
	if tag == "" {
		tag = "*"
	}
	return []byte(tag + " " + status + " " + text + "\r\n")
}

func badLine(tag, text string) []byte { return statusLine(tag, "BAD", text) }

// answered makes the guard answer the command with reply.
func answered(c cmdCheck, reply []byte) cmdCheck {
	c.own = &ownedCmd{tag: c.tag, name: c.name, reply: reply}
	return c
}

// inspectCommand looks at the first line of a command (up to and including
// its LF; marker, nonSync and size describe a literal announced at its
// end). sess may be nil.
func inspectCommand(line []byte, marker, nonSync bool, size int64, sess *session) cmdCheck {
	tag, name, rest, ok := parseHead(line)
	c := cmdCheck{tag: tag, name: name}
	switch {
	case !ok && tag == "" && len(trimEOL(line)) == 0:
		return answered(c, badLine("", "Empty command line"))
	case !ok && tag == "":
		return answered(c, badLine("", "Invalid command line: a command starts with a tag and a command name"))
	case !ok:
		return answered(c, badLine(tag, "Missing or invalid command name"))
	case name == "ID":
		c.own = &ownedCmd{tag: tag, name: name, keep: true, maxLiteral: maxIDValue,
			finish: func(cmd []byte) ([]byte, *ClientID) { return answerID(tag, cmd, sess) }}
		return c
	case !knownCommands[name]:
		return answered(c, badLine(tag, "Unknown command"))
	}
	if marker && !nonSync && size > maxNonSyncLiteral && name != "APPEND" {
		// go-imap would refuse the literal and then wait for the rest of
		// the line, which the client does not send.
		return answered(c, statusLine(tag, "NO", fmt.Sprintf("[TOOBIG] Literal of %d bytes refused (limit %d bytes outside APPEND)", size, maxNonSyncLiteral)))
	}
	switch name {
	case "SEARCH", "UID SEARCH":
		scan := &searchScan{}
		if err := scan.feedLine(rest); err != nil {
			return answered(c, badLine(tag, err.Error()))
		}
		scan.depthOnly = true
		c.search = scan
	case "LIST", "LSUB":
		return checkList(c, line, len(line)-len(rest))
	case "AUTHENTICATE":
		toks, err := tokens(rest, false)
		if err == nil && len(toks) >= 2 {
			ir := string(trimEOL(rest[toks[1].start:]))
			if ir != "=" {
				if _, err := base64.StdEncoding.DecodeString(ir); err != nil {
					return answered(c, badLine(tag, "Malformed SASL initial response: not base64"))
				}
			}
		}
	default:
		pos := mailboxArgs[name]
		if pos == nil {
			break
		}
		toks, err := tokens(rest, false)
		if err != nil {
			break // go-imap says what is wrong with the syntax
		}
		for _, i := range pos {
			if i < len(toks) && (toks[i].kind == 'a' || toks[i].kind == 'q') {
				if err := checkMailboxName(toks[i].val); err != nil {
					return answered(c, statusLine(tag, "NO", "[CANNOT] "+err.Error()))
				}
			}
		}
		if name == "APPEND" {
			if marker && !nonSync && size > maxNonSyncLiteral && len(toks) == 1 {
				return answered(c, statusLine(tag, "NO", fmt.Sprintf("[TOOBIG] Literal of %d bytes refused for a mailbox name (limit %d bytes)", size, maxNonSyncLiteral)))
			}
			if err := checkAppendDate(toks); err != nil {
				return answered(c, badLine(tag, err.Error()))
			}
		}
	}
	return c
}

// mailboxArgs are the positions of mailbox names among a command's
// arguments.
var mailboxArgs = map[string][]int{
	"SELECT": {0}, "EXAMINE": {0}, "CREATE": {0}, "DELETE": {0}, "SUBSCRIBE": {0},
	"UNSUBSCRIBE": {0}, "STATUS": {0}, "APPEND": {0}, "RENAME": {0, 1},
	"COPY": {1}, "UID COPY": {1}, "MOVE": {1}, "UID MOVE": {1},
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// isAtomChar is go-imap's ATOM-CHAR.
func isAtomChar(ch byte) bool {
	switch ch {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return ch > 0x1f && ch < 0x7f
}

// parseHead splits "tag SP name" (name upper-cased, "UID name" for UID
// commands) off a command line, as go-imap reads them.
func parseHead(line []byte) (tag, name string, rest []byte, ok bool) {
	b := trimEOL(line)
	atom := func(b []byte) int {
		i := 0
		for i < len(b) && isAtomChar(b[i]) {
			i++
		}
		return i
	}
	i := atom(b)
	if i == 0 || i > 256 {
		return "", "", nil, false
	}
	tag = string(b[:i])
	if i >= len(b) || b[i] != ' ' {
		return tag, "", nil, false
	}
	j := atom(b[i+1:])
	if j == 0 {
		return tag, "", nil, false
	}
	name = strings.ToUpper(string(b[i+1 : i+1+j]))
	k := i + 1 + j
	if name == "UID" && k < len(b) && b[k] == ' ' {
		if m := atom(b[k+1:]); m > 0 {
			name += " " + strings.ToUpper(string(b[k+1:k+1+m]))
			k += 1 + m
		}
	}
	if len(name) > 64 {
		return tag, "", nil, false
	}
	return tag, name, line[k:], true
}

// tok is one token of a command's arguments.
type tok struct {
	kind       byte   // 'a' atom, 'q' quoted string, 'l' literal, '(' or ')'
	val        string // the string's value (an atom's, from tokens only)
	raw        []byte // an atom, from scanTokens
	start, end int    // offsets in the scanned bytes
	size       int64
}

var errSyntax = errors.New("syntax")

// clientErr is what was wrong with a client's command, in words for the
// client (capitalised, as response texts are).
type clientErr string

func (e clientErr) Error() string { return string(e) }

func clientErrf(format string, args ...any) error { return clientErr(fmt.Sprintf(format, args...)) }

// tokens splits command arguments. With data, a literal's bytes follow its
// marker's CRLF and become its value; without, a literal ends the input.
func tokens(b []byte, data bool) ([]tok, error) {
	var out []tok
	err := scanTokens(b, data, func(t tok) bool {
		if t.kind == 'a' {
			t.val = string(t.raw)
		}
		out = append(out, t)
		return true
	})
	return out, err
}

// scanTokens is tokens one at a time, without keeping them; yield returns
// false to stop. An atom is only in raw (part of b).
func scanTokens(b []byte, data bool, yield func(tok) bool) error {
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == ' ':
			i++
		case c == '\r' || c == '\n':
			if data {
				i++
				continue
			}
			return nil
		case c == '(' || c == ')':
			if !yield(tok{kind: c, start: i, end: i + 1}) {
				return nil
			}
			i++
		case c == '"':
			var sb strings.Builder
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\r' || b[j] == '\n' {
					return errSyntax
				}
				if b[j] == '\\' && j+1 < len(b) {
					j++
				}
				sb.WriteByte(b[j])
			}
			if j >= len(b) {
				return errSyntax
			}
			if !yield(tok{kind: 'q', val: sb.String(), start: i, end: j + 1}) {
				return nil
			}
			i = j + 1
		case c == '{' || (c == '~' && i+1 < len(b) && b[i+1] == '{'):
			j := i + 1
			if c == '~' {
				j++
			}
			k := j
			for k < len(b) && b[k] >= '0' && b[k] <= '9' {
				k++
			}
			n, err := strconv.ParseInt(string(b[j:k]), 10, 64)
			if err != nil {
				return errSyntax
			}
			if k < len(b) && b[k] == '+' {
				k++
			}
			if k >= len(b) || b[k] != '}' {
				return errSyntax
			}
			k++
			t := tok{kind: 'l', start: i, size: n}
			if !data {
				t.end = k
				yield(t)
				return nil
			}
			for k < len(b) && (b[k] == ' ' || b[k] == '\r') {
				k++
			}
			if k >= len(b) || b[k] != '\n' || int64(len(b)-k-1) < n {
				return errSyntax
			}
			k++
			t.val, t.end = string(b[k:k+int(n)]), k+int(n)
			if !yield(t) {
				return nil
			}
			i = t.end
		default:
			j := i
			for j < len(b) && b[j] != ' ' && b[j] != '(' && b[j] != ')' && b[j] != '"' && b[j] != '\r' && b[j] != '\n' {
				j++
			}
			if !yield(tok{kind: 'a', raw: b[i:j], start: i, end: j}) {
				return nil
			}
			i = j
		}
	}
	return nil
}

// checkMailboxName says what go-imap's decoder would refuse in a mailbox
// name (atom or quoted string).
func checkMailboxName(s string) error {
	if strings.EqualFold(s, "INBOX") {
		return nil
	}
	if !utf8.ValidString(s) {
		return clientErr("Mailbox name is not valid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return clientErr("Mailbox name contains a control character")
		}
	}
	if _, err := decodeMUTF7(s); err != nil {
		return clientErr("Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write \"&\" as \"&-\"")
	}
	return nil
}

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// decodeMUTF7 decodes modified UTF-7 (RFC 3501 section 5.1.3) with the rules
// go-imap applies; raw UTF-8 passes.
func decodeMUTF7(s string) (string, error) {
	var sb strings.Builder
	shifted := false // the last thing was a base64 run (a second one right after is a null shift)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return "", errSyntax
		}
		if c != '&' {
			sb.WriteByte(c)
			shifted = false
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errSyntax
		}
		seg := s[i+1 : i+1+j]
		i += 1 + j
		if seg == "" {
			sb.WriteByte('&')
			shifted = false
			continue
		}
		if shifted {
			return "", errSyntax
		}
		u, ok := decodeMUTF7Run(seg)
		if !ok {
			return "", errSyntax
		}
		sb.WriteString(u)
		shifted = true
	}
	return sb.String(), nil
}

// decodeMUTF7Run decodes the base64 between "&" and "-".
func decodeMUTF7Run(seg string) (string, bool) {
	b, err := mutf7.DecodeString(seg)
	if err != nil || len(b)%2 != 0 || len(b) == 0 {
		return "", false
	}
	u := make([]uint16, len(b)/2)
	for k := range u {
		u[k] = uint16(b[2*k])<<8 | uint16(b[2*k+1])
	}
	var sb strings.Builder
	for k := 0; k < len(u); k++ {
		r := rune(u[k])
		if utf16.IsSurrogate(r) {
			if k+1 >= len(u) {
				return "", false
			}
			k++
			if r = utf16.DecodeRune(r, rune(u[k])); r == utf8.RuneError {
				return "", false
			}
		} else if r >= 0x20 && r <= 0x7e {
			return "", false // printable ASCII must not be encoded
		}
		sb.WriteRune(r)
	}
	return sb.String(), true
}

// repairMUTF7 writes every "&" that does not begin valid modified UTF-7 as
// "&-", so that a LIST pattern of any ATOM-CHARs (RFC 3501 list-char)
// matches those characters literally instead of failing to decode.
func repairMUTF7(s string) string {
	var sb strings.Builder
	shifted := false
	for i := 0; i < len(s); i++ {
		if s[i] != '&' {
			sb.WriteByte(s[i])
			shifted = false
			continue
		}
		if j := strings.IndexByte(s[i+1:], '-'); j >= 0 {
			seg := s[i+1 : i+1+j]
			if seg == "" {
				sb.WriteString("&-")
				i += 1 + j
				shifted = false
				continue
			}
			if _, ok := decodeMUTF7Run(seg); ok && !shifted {
				sb.WriteString(s[i : i+2+j])
				i += 1 + j
				shifted = true
				continue
			}
		}
		sb.WriteString("&-")
		shifted = false
	}
	return sb.String()
}

func quoteIMAP(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	sb.WriteByte('"')
	return sb.String()
}

// checkList rewrites the reference and patterns of LIST or LSUB so that
// go-imap can decode them, and refuses those no rewriting makes valid.
// off is where the arguments start in line.
func checkList(c cmdCheck, line []byte, off int) cmdCheck {
	toks, err := tokens(line[off:], false)
	if err != nil {
		return c
	}
	i := 0
	if c.name == "LIST" && len(toks) > 0 && toks[0].kind == '(' {
		for i < len(toks) && toks[i].kind != ')' {
			i++
		}
		i++
	}
	var names []int // token indexes of the reference and the patterns
	if i < len(toks) {
		names = append(names, i)
		i++
	}
	if i < len(toks) && toks[i].kind == '(' && c.name == "LIST" {
		for i++; i < len(toks) && toks[i].kind != ')'; i++ {
			names = append(names, i)
		}
	} else if i < len(toks) {
		names = append(names, i)
	}
	var out []byte
	last := 0
	for _, k := range names {
		t := toks[k]
		if t.kind != 'a' && t.kind != 'q' {
			continue
		}
		if !utf8.ValidString(t.val) {
			return answered(c, badLine(c.tag, "Mailbox pattern is not valid UTF-8"))
		}
		for j := 0; j < len(t.val); j++ {
			if t.val[j] < 0x20 || t.val[j] == 0x7f {
				return answered(c, badLine(c.tag, "Mailbox pattern contains a control character"))
			}
		}
		fixed := repairMUTF7(t.val)
		if fixed == t.val {
			continue
		}
		out = append(out, line[last:off+t.start]...)
		out = append(out, quoteIMAP(fixed)...)
		last = off + t.end
	}
	if out != nil {
		c.rewrite = append(out, line[last:]...)
	}
	return c
}

// checkAppendDate checks the date-time of an APPEND (its arguments: the
// mailbox, optional flags, the optional quoted date-time, the literal).
func checkAppendDate(toks []tok) error {
	i := 1
	if i < len(toks) && toks[i].kind == '(' {
		for i < len(toks) && toks[i].kind != ')' {
			i++
		}
		i++
	}
	if i >= len(toks) || toks[i].kind != 'q' {
		return nil
	}
	if _, err := time.Parse("_2-Jan-2006 15:04:05 -0700", toks[i].val); err != nil {
		return clientErrf("Invalid date-time %s in APPEND (expected the form \"05-Mar-2024 10:00:00 +0100\")", quoteIMAP(clipText(toks[i].val, 40)))
	}
	return nil
}

// clipText shortens client text quoted back in a response, printable
// ASCII only.
func clipText(s string, n int) string {
	var sb strings.Builder
	for i := 0; i < len(s) && sb.Len() < n; i++ {
		if s[i] >= 0x20 && s[i] < 0x7f {
			sb.WriteByte(s[i])
		} else {
			sb.WriteByte('?')
		}
	}
	if len(s) > n {
		sb.WriteString("...")
	}
	return sb.String()
}

// searchKeyArgs is how many arguments each SEARCH key go-imap knows takes.
var searchKeyArgs = map[string]int{
	"ALL": 0, "ANSWERED": 0, "DELETED": 0, "DRAFT": 0, "FLAGGED": 0, "RECENT": 0, "SEEN": 0,
	"UNANSWERED": 0, "UNDELETED": 0, "UNDRAFT": 0, "UNFLAGGED": 0, "UNSEEN": 0,
	"NEW": 0, "OLD": 0, "$": 0,
	"UID": 1, "KEYWORD": 1, "UNKEYWORD": 1,
	"BCC": 1, "CC": 1, "FROM": 1, "SUBJECT": 1, "TO": 1, "BODY": 1, "TEXT": 1,
	"LARGER": 1, "SMALLER": 1,
	"SINCE": 1, "BEFORE": 1, "ON": 1, "SENTSINCE": 1, "SENTBEFORE": 1, "SENTON": 1,
	"HEADER": 2,
}

// searchScan follows SEARCH arguments token by token, across the lines of
// a command with literals: the nesting depth, and (on the first line) the
// keys and dates.
type searchScan struct {
	stack     []int8 // per open level: keys still needed (NOT 1, OR 2), or -1 for "("
	args      int    // arguments the current key still takes
	argKey    string
	started   bool // past RETURN and CHARSET
	retNext   bool // RETURN was read: its list follows
	inReturn  int  // nesting inside RETURN (...)
	charset   bool // the next token is the charset
	depthOnly bool // later lines: only the depth is checked
}

func (s *searchScan) feedLine(b []byte) error {
	var ferr error
	scanTokens(b, false, func(t tok) bool {
		ferr = s.feed(t)
		return ferr == nil
	})
	return ferr
}

func (s *searchScan) feed(t tok) error {
	switch {
	case s.retNext:
		s.retNext = false
		if t.kind == '(' {
			s.inReturn = 1
		}
		return nil
	case s.inReturn > 0:
		if t.kind == '(' {
			s.inReturn++
		} else if t.kind == ')' {
			s.inReturn--
		}
		return nil
	case s.charset:
		s.charset = false
		return nil
	case s.args > 0:
		s.args--
		if !s.depthOnly && t.kind != 'l' {
			switch s.argKey {
			case "SINCE", "BEFORE", "ON", "SENTSINCE", "SENTBEFORE", "SENTON":
				v := t.val
				if t.kind == 'a' {
					v = string(t.raw)
				}
				if _, err := time.Parse("2-Jan-2006", v); err != nil {
					return clientErrf("Invalid date %s for SEARCH %s (expected the form 5-Mar-2024)", quoteIMAP(clipText(v, 40)), s.argKey)
				}
			}
		}
		if s.args == 0 {
			s.complete()
		}
		return nil
	}
	switch t.kind {
	case '(':
		s.started = true
		return s.push(-1)
	case ')':
		if n := len(s.stack); n > 0 && s.stack[n-1] == -1 {
			s.stack = s.stack[:n-1]
			s.complete()
		}
		return nil
	case 'a':
	default:
		return nil // go-imap reports the syntax error
	}
	var kb [16]byte
	if len(t.raw) > len(kb) {
		if s.depthOnly {
			s.complete()
			return nil
		}
		return clientErrf("Unknown SEARCH key %s", quoteIMAP(clipText(string(t.raw), 40)))
	}
	for i, ch := range t.raw {
		if 'a' <= ch && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		kb[i] = ch
	}
	key := kb[:len(t.raw)]
	if !s.started {
		switch string(key) {
		case "RETURN":
			s.retNext = true
			return nil
		case "CHARSET":
			s.charset = true
			s.started = true
			return nil
		}
	}
	s.started = true
	switch string(key) {
	case "NOT":
		return s.push(1)
	case "OR":
		return s.push(2)
	}
	if n, ok := searchKeyArgs[string(key)]; ok {
		if n == 0 {
			s.complete()
		} else {
			s.args, s.argKey = n, string(key)
		}
		return nil
	}
	if s.depthOnly || isSeqSet(string(key)) {
		s.complete()
		return nil
	}
	return clientErrf("Unknown SEARCH key %s", quoteIMAP(clipText(string(t.raw), 40)))
}

func (s *searchScan) push(n int8) error {
	s.stack = append(s.stack, n)
	if len(s.stack) > MaxSearchDepth {
		return clientErrf("SEARCH nested too deeply (limit %d levels)", MaxSearchDepth)
	}
	return nil
}

// complete notes that one search key ended.
func (s *searchScan) complete() {
	for n := len(s.stack); n > 0; n = len(s.stack) {
		top := &s.stack[n-1]
		if *top < 0 {
			return
		}
		if *top--; *top > 0 {
			return
		}
		s.stack = s.stack[:n-1] // NOT or OR has its keys: it is a key itself
	}
}

// isSeqSet reports whether s is a sequence set: nz-number or "*", ranges
// with ":", joined with ",".
func isSeqSet(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(r, ":")
		if !isSeqNum(a) || (isRange && !isSeqNum(b)) {
			return false
		}
	}
	return true
}

func isSeqNum(s string) bool {
	if s == "*" {
		return true
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && n > 0
}
