package imapfront

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzInspectCommand: the guard's look at a command line never panics,
// answers with whole CRLF-terminated lines, and a LIST or LSUB it rewrote
// is left alone the second time (the rewrite decodes).
func FuzzInspectCommand(f *testing.F) {
	for _, s := range []string{
		"a1 LIST \"\" !#$$&'+,-.0123456789:;<=>?@^_`|}%*\r\n",
		"a1 LIST (SUBSCRIBED) \"&\" (\"a&\" \"&b\" \"&Jjo-&Jjo-\") RETURN (CHILDREN)\r\n",
		"a1 LSUB \"\" R&D\r\n",
		"a1 SEARCH RETURN (MIN) CHARSET UTF-8 OR (NOT SEEN) SINCE 1-Feb-2024 SUBJECT {3+}\r\n",
		"a1 UID SEARCH NOT NOT NOT (((ALL))) 1:*,5\r\n",
		"a1 ID (\"name\" {5}\r\n",
		"a1 APPEND INBOX (\\Seen) \"05-Mar-2024 10:00:00 +0100\" {10}\r\n",
		"a1 CREATE \"a&Jjo\"\r\n",
		"a1 RENAME \"x\\\"y\" {3}\r\n",
		"a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
		"\r\n", "(((\r\n", "a1\r\n", "a1 UID\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		var fr framer
		end, _ := fr.stepLine(line, MaxCommandLength)
		if end < 0 {
			line = append(line, '\n')
			fr = framer{}
			if end, _ = fr.stepLine(line, MaxCommandLength); end < 0 {
				return
			}
		}
		c := inspectCommand(line, fr.marker, fr.nonSync, fr.size, nil)
		if c.own != nil && !c.own.keep {
			r := c.own.reply
			if !bytes.HasSuffix(r, []byte("\r\n")) || bytes.Count(r, []byte("\n")) != 1 {
				t.Fatalf("reply %q", r)
			}
		}
		if c.rewrite != nil {
			var fr2 framer
			if end, _ := fr2.stepLine(c.rewrite, 0); end != len(c.rewrite) {
				t.Fatalf("rewrite %q is not one line", c.rewrite)
			}
			again := inspectCommand(c.rewrite, fr2.marker, fr2.nonSync, fr2.size, nil)
			if again.rewrite != nil || again.own != nil {
				t.Fatalf("rewrite %q of %q is rewritten or refused again", c.rewrite, line)
			}
		}
		if c.own != nil && c.own.keep {
			// An ID, whole: answerID must not panic either.
			answerID(c.tag, line, nil)
		}
	})
}

// FuzzModifiedUTF7: repairMUTF7 leaves valid modified UTF-7 as it is and
// makes anything else without control characters decode.
func FuzzModifiedUTF7(f *testing.F) {
	for _, s := range []string{"Entw&APw-rfe", "R&D", "&", "&-", "&Jjo-&Jjo-", "&AGE-", "a&b-c", "&ZeVnLIqe-", "&2D3cAQ-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fixed := repairMUTF7(s)
		if _, err := decodeMUTF7(s); err == nil && fixed != s {
			t.Fatalf("valid %q repaired to %q", s, fixed)
		}
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return
		}
		if _, err := decodeMUTF7(fixed); err != nil {
			t.Fatalf("repairMUTF7(%q) = %q does not decode: %v", s, fixed, err)
		}
	})
}

// FuzzGuardInput: the guard's input side, over any stream cut anywhere,
// never panics, never hands go-imap more than the client sent, and keeps
// no more than a command line and a read.
func FuzzGuardInput(f *testing.F) {
	f.Add([]byte("a1 LOGIN {5}\r\nalice {6+}\r\nsecret\r\na2 ID (\"x\" {3+}\r\nabc)\r\na3 SEARCH NOT NOT ALL\r\n"), uint8(7))
	f.Add([]byte("\r\n(((\r\na1 X-UNKNOWN {3+}\r\nabc\r\na2 APPEND INBOX \"bad\" {3+}\r\nabc\r\n"), uint8(1))
	f.Add([]byte("a1 LIST \"\" &\r\na2 SEARCH SUBJECT {1+}\r\nx NOT NOT ALL\r\n"), uint8(200))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		g := &guardConn{pendingSync: -1}
		c := int(chunk) + 1
		for p := stream; len(p) > 0 && g.refusal == nil; {
			n := min(c, len(p))
			g.feedIn(p[:n])
			p = p[n:]
			if len(g.inbuf) > MaxCommandLength+maxOwnedCommand {
				t.Fatalf("guard keeps %d bytes", len(g.inbuf))
			}
		}
	})
}
