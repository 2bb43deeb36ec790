package dovecottest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// Fixture is one message of the hard-case corpus.
type Fixture struct {
	// Name is short and safe as a subtest name.
	Name string
	// Why says what the message exercises.
	Why string
	// Data is the message as an MDA stores it in the Maildir (LF line
	// endings unless the fixture says otherwise).
	Data []byte
}

// Corpus returns the messages that broke or would break a naive POP3 client:
// dot-stuffing, long lines, a 4,096-byte line before a "." line, From_ lines,
// 8-bit text, a multi-megabyte base64 attachment, odd endings. It is
// deterministic. ExpectedPOP3 says what Dovecot's RETR returns for each.
func Corpus() []Fixture {
	var fs []Fixture
	add := func(name, why string, body string) {
		fs = append(fs, Fixture{Name: name, Why: why, Data: []byte(header(name) + body)})
	}

	add("plain", "a short ordinary message", "Hello,\n\nthis is a plain message.\n-- \nsig\n")

	add("long-line-5k", "one 5,000-byte line (more than a 4 KiB read buffer)",
		"before\n"+pattern(5000)+"\nafter\n")
	add("long-line-25k", "one 25,000-byte line",
		"before\n"+pattern(25000)+"\nafter\n")

	add("dot-lines", `lines that are exactly ".", "..", ".x" and friends (dot-stuffed on the wire)`,
		"first\n.\n..\n.x\n...\n. \n.\t\nx.\n.\r\n.end\n.\n")

	var b strings.Builder
	b.WriteString("lines of 4,094 to 4,097 bytes, each followed by a lone dot\n")
	for _, n := range []int{4094, 4095, 4096, 4097, 8192} {
		b.WriteString(pattern(n))
		b.WriteString("\n.\n")
	}
	b.WriteString("still the same message\n")
	add("line-4096-then-dot", "a line of exactly 4,096 bytes followed by a \".\" line: ended messages early in go-pop3", b.String())

	add("dot-at-4k-offsets", "\".\" lines starting exactly at multiples of 4,096 bytes of the CRLF stream",
		dotAtOffsets(header("dot-at-4k-offsets")))

	add("from-lines", "From_ lines in the body (mbox quoting must not leak into POP3)",
		"From me to you\nFrom \n>From quoted\nFrom: not a header\n\nFrom the start\n")

	utf := "Grüße aus Köln — ünïcödé ✓ 🚀 日本語\n"
	var hi bytes.Buffer
	for c := 0x80; c <= 0xff; c++ {
		hi.WriteByte(byte(c))
	}
	fs = append(fs, Fixture{
		Name: "8bit",
		Why:  "raw 8-bit UTF-8 in headers and body, and every byte 0x80-0xFF (not valid UTF-8)",
		Data: []byte("From: Jürgen <j@example.org>\nTo: bob@example.org\nSubject: Grüße 🚀\n" +
			"Message-ID: <8bit@dovecottest>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n" +
			"Content-Transfer-Encoding: 8bit\n\n" + utf + utf + "latin-1: caf\xe9 na\xefve\nall high bytes: " + hi.String() + "\n"),
	})

	fs = append(fs, Fixture{
		Name: "base64-3mb",
		Why:  "a multipart message with a 3 MiB base64 attachment",
		Data: []byte(strings.TrimSuffix(header("base64-3mb"), "\n") +
			"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\n\n" + attachment(3<<20)),
	})

	fs = append(fs, Fixture{
		Name: "no-trailing-newline",
		Why:  "the last line has no line ending",
		Data: []byte(header("no-trailing-newline") + "the end has no newline"),
	})

	fs = append(fs, Fixture{
		Name: "crlf-stored",
		Why:  "stored with CRLF already, with dot lines",
		Data: []byte(strings.ReplaceAll(header("crlf-stored")+"crlf body\n.\n..\nlast\n", "\n", "\r\n")),
	})

	fs = append(fs, Fixture{
		Name: "headers-only",
		Why:  "no body and no blank line after the header",
		Data: []byte(strings.TrimSuffix(header("headers-only"), "\n")),
	})

	add("blank-lines", "runs of empty lines, including at the end", "\n\n\ntext\n\n\n\n")

	return fs
}

// ExpectedPOP3 is what Dovecot's RETR returns for a message stored as
// stored, after dot-unstuffing: every line ending becomes CRLF (a bare LF
// gains a CR, a CRLF stays), and a message whose last line has no line
// ending gets CRLF appended (the terminating "." must start a line).
func ExpectedPOP3(stored []byte) []byte {
	out := make([]byte, 0, len(stored)+len(stored)/20+2)
	for i, c := range stored {
		if c == '\n' && (i == 0 || stored[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

func header(name string) string {
	return "From: Alice <alice@example.org>\n" +
		"To: Bob <bob@example.org>\n" +
		"Subject: corpus " + name + "\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\n" +
		"Message-ID: <" + name + "@dovecottest>\n" +
		"\n"
}

// pattern returns n printable bytes with no line ending, varied enough that
// a dropped or duplicated chunk shows.
func pattern(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-"
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < n; i++ {
		b.WriteByte(alphabet[(i*7+i/64)%len(alphabet)])
	}
	return b.String()
}

// dotAtOffsets builds a body in which "." lines start at CRLF-stream offsets
// 4096, 8192 and 12288 of the whole message (hdr included).
func dotAtOffsets(hdr string) string {
	crlfLen := func(s string) int { return len(s) + strings.Count(s, "\n") }
	var b strings.Builder
	for _, target := range []int{4096, 8192, 12288} {
		// pad with one line so that the next line starts at target.
		have := crlfLen(hdr + b.String())
		pad := target - have - 2 // the pad line's own CRLF
		b.WriteString(pattern(pad))
		b.WriteString("\n.\n")
	}
	b.WriteString("tail\n")
	return b.String()
}

// attachment returns a multipart body carrying size pseudo-random bytes as
// base64 in 76-character lines.
func attachment(size int) string {
	raw := make([]byte, 0, size+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(raw) < size; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		sum := sha256.Sum256(ctr[:])
		raw = append(raw, sum[:]...)
	}
	raw = raw[:size]
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.Grow(len(enc) + len(enc)/76 + 512)
	b.WriteString("This is a multi-part message in MIME format.\n\n--BOUNDARY\nContent-Type: text/plain\n\nsee attached\n\n")
	b.WriteString("--BOUNDARY\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n")
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"blob-%d.bin\"\n\n", size)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\n--BOUNDARY--\n")
	return b.String()
}
