package imapfront_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/imapbridge/imapbridge/bridge"
)

// mutf7 is modified UTF-7 (RFC 3501 section 5.1.3), the IMAP4rev1 form of
// a mailbox name: printable ASCII as itself ("&" as "&-"), every run of
// other characters as "&" + modified base64 of its UTF-16 + "-".
func mutf7(s string) string {
	enc := base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		units := utf16.Encode(run)
		raw := make([]byte, 0, 2*len(units))
		for _, u := range units {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteString("&" + enc.EncodeToString(raw) + "-")
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// nameSession is a raw session for FuzzMailboxName.
type nameSession struct {
	c   io.ReadWriteCloser
	r   *bufio.Reader
	tag int
}

// cmd sends a command whose last argument is a literal (LITERAL-, so no
// wait for a continuation) and returns the untagged lines and the status.
func (s *nameSession) cmd(verb, before, literal string) ([]string, string, error) {
	s.tag++
	tag := fmt.Sprintf("n%d", s.tag)
	if _, err := fmt.Fprintf(s.c, "%s %s %s{%d+}\r\n%s\r\n", tag, verb, before, len(literal), literal); err != nil {
		return nil, "", err
	}
	var untagged []string
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", verb, err)
		}
		l = strings.TrimSuffix(l, "\r\n")
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest, nil
		}
		untagged = append(untagged, l)
	}
}

// FuzzMailboxName: any name under "fz/", sent in modified UTF-7, is
// created exactly when bridge.CanonicalName accepts it (else NO [CANNOT]
// with the reason), is then listed under its canonical name in the same
// encoding, and is deleted again.
func FuzzMailboxName(f *testing.F) {
	for _, s := range []string{
		"plain", "Grüße/März", "日本語", "a&b", "&", "a/", "a//b", "..", "a/./b", "x*", "%",
		"emoji \U0001F600 and \u00e9", "inbox", "INBOX/x", "\x00", "tab\there", "\u2028", "\xff",
		strings.Repeat("é", 260), "a\"b\\c",
	} {
		f.Add(s)
	}
	e := newEnv(f)
	ln := newPipeListener()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()
	f.Cleanup(func() {
		ln.Close()
		<-served
	})
	conn, err := ln.dial()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	s := &nameSession{c: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(time.Hour))
	if _, err := s.r.ReadString('\n'); err != nil {
		f.Fatal(err)
	}
	if _, st, err := s.cmd("LOGIN", "alice ", password); err != nil || !strings.HasPrefix(st, "OK") {
		f.Fatalf("LOGIN: %s %v", st, err)
	}

	f.Fuzz(func(t *testing.T, name string) {
		if len(name) > 300 {
			return
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		full := "fz/" + name
		want, werr := bridge.CanonicalName(strings.TrimSuffix(full, "/"))
		if werr == nil && want == "fz" {
			return // the parent every run shares
		}
		_, st, err := s.cmd("CREATE", "", mutf7(full))
		if err != nil {
			t.Fatal(err)
		}
		if werr != nil {
			if !strings.HasPrefix(st, "NO [CANNOT] ") && !strings.HasPrefix(st, "BAD ") {
				t.Fatalf("CREATE %q (%q): %s; want NO [CANNOT] (%v)", full, mutf7(full), st, werr)
			}
			return
		}
		if !strings.HasPrefix(st, "OK") {
			t.Fatalf("CREATE %q (%q): %s; CanonicalName accepts it as %q", full, mutf7(full), st, want)
		}
		untagged, st, err := s.cmd("LIST", `"" `, mutf7(want))
		if err != nil || !strings.HasPrefix(st, "OK") {
			t.Fatalf("LIST %q: %s %v", want, st, err)
		}
		if len(untagged) != 1 || !listNames(untagged[0], mutf7(want)) {
			t.Fatalf("LIST %q (%q) gives %q", want, mutf7(want), untagged)
		}
		// Delete it and every level created for it below "fz".
		levels := strings.Split(want, "/")
		for i := len(levels); i > 1; i-- {
			level := strings.Join(levels[:i], "/")
			_, st, err := s.cmd("DELETE", "", mutf7(level))
			if err != nil {
				t.Fatal(err)
			}
			if i == len(levels) && !strings.HasPrefix(st, "OK") {
				t.Fatalf("DELETE %q: %s", level, st)
			}
		}
	})
}

// listNames reports whether a LIST line names the mailbox enc (as an atom,
// a quoted string or a literal header line).
func listNames(line, enc string) bool {
	quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(enc) + `"`
	return strings.HasSuffix(line, " "+enc) || strings.HasSuffix(line, " "+quoted)
}
