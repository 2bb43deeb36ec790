package imapfront_test

import (
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// transcript runs scripts written like the examples of the RFCs against
// the server, over real sockets, one or more sessions at once:
//
//	C2: a1 SELECT INBOX     session 2's client sends this line
//	S2: * 2 EXISTS          session 2 must receive exactly this line next
//	N2:                     session 2 must receive nothing for a moment
//	E2:                     the server must close session 2's connection
//
// "C:", "S:" and "N:" are session 1. In a line, the four characters \r\n
// stand for CRLF (for literals), and ${name} stands for a value: in an S
// line it matches a run of characters up to a space, "]", ")" or quote and
// is bound on first use, in later S and C lines it must equal / is
// replaced by the bound value. Blank lines and lines starting with # are
// comments. Sessions are opened (and logged in) with login before use.
type transcript struct {
	t     *testing.T
	e     *testEnv
	conns map[int]*rawClient
	vars  map[string]string
	lines int // script lines run so far, for error messages
}

func newTranscript(t *testing.T, e *testEnv) *transcript {
	return &transcript{t: t, e: e, conns: map[int]*rawClient{}, vars: map[string]string{}}
}

// login opens session n as user (LOGIN checked elsewhere: TestLogin).
func (tr *transcript) login(n int, user string) *transcript {
	tr.t.Helper()
	c := tr.e.raw()
	c.login(user)
	tr.conns[n] = c
	return tr
}

// set binds a value, for values the test knows (sizes).
func (tr *transcript) set(name string, v any) *transcript {
	switch v := v.(type) {
	case int:
		tr.vars[name] = strconv.Itoa(v)
	case string:
		tr.vars[name] = v
	default:
		tr.t.Fatalf("set %s: unsupported %T", name, v)
	}
	return tr
}

var transcriptVar = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

func (tr *transcript) run(script string) {
	tr.t.Helper()
	for _, raw := range strings.Split(script, "\n") {
		line := strings.TrimLeft(raw, " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tr.lines++
		who, rest, ok := strings.Cut(line, ":")
		if !ok || len(who) == 0 {
			tr.t.Fatalf("script line %q: no C:, S:, N: or E:", line)
		}
		n := 1
		if len(who) > 1 {
			var err error
			if n, err = strconv.Atoi(who[1:]); err != nil {
				tr.t.Fatalf("script line %q: bad session", line)
			}
		}
		c := tr.conns[n]
		if c == nil {
			tr.t.Fatalf("script line %q: session %d not logged in", line, n)
		}
		text := strings.ReplaceAll(strings.TrimPrefix(rest, " "), `\r\n`, "\r\n")
		switch who[0] {
		case 'C':
			c.send(tr.expand(text))
		case 'S':
			got := c.line()
			if !tr.match(text, got) {
				tr.t.Fatalf("script line %d: session %d got\n\t%q\nwant\n\t%q", tr.lines, n, got, tr.expand(text))
			}
		case 'N':
			c.noLine(100 * time.Millisecond)
		case 'E':
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if l, err := c.r.ReadString('\n'); !errors.Is(err, io.EOF) {
				tr.t.Fatalf("script line %d: session %d: got %q, %v; want the connection closed", tr.lines, n, l, err)
			}
		default:
			tr.t.Fatalf("script line %q: no C:, S: or N:", line)
		}
	}
}

// expand replaces bound ${name}s.
func (tr *transcript) expand(s string) string {
	return transcriptVar.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := tr.vars[name]
		if !ok {
			tr.t.Fatalf("${%s} used before it is bound", name)
		}
		return v
	})
}

// match compares a received line with an expected one, binding new vars.
func (tr *transcript) match(want, got string) bool {
	var re strings.Builder
	re.WriteString("^")
	var names []string
	last := 0
	for _, loc := range transcriptVar.FindAllStringSubmatchIndex(want, -1) {
		re.WriteString(regexp.QuoteMeta(want[last:loc[0]]))
		name := want[loc[2]:loc[3]]
		if v, ok := tr.vars[name]; ok {
			re.WriteString(regexp.QuoteMeta(v))
		} else {
			re.WriteString(`([^ \])"]+)`)
			names = append(names, name)
		}
		last = loc[1]
	}
	re.WriteString(regexp.QuoteMeta(want[last:]))
	re.WriteString("$")
	m := regexp.MustCompile(re.String()).FindStringSubmatch(got)
	if m == nil {
		return false
	}
	for i, name := range names {
		if v, ok := tr.vars[name]; ok && v != m[i+1] {
			return false // bound twice in one line, differently
		}
		tr.vars[name] = m[i+1]
	}
	return true
}

// num returns a bound var as a number.
func (tr *transcript) num(name string) uint64 {
	tr.t.Helper()
	v, err := strconv.ParseUint(tr.vars[name], 10, 64)
	if err != nil {
		tr.t.Fatalf("${%s} = %q: %v", name, tr.vars[name], err)
	}
	return v
}

// literal returns "{n}" for s, the octet count of a literal.
func literal(s string) string { return "{" + strconv.Itoa(len(s)) + "}" }

// scriptText writes s for a script line: CRLF as \r\n.
func scriptText(s string) string { return strings.ReplaceAll(s, "\r\n", `\r\n`) }
