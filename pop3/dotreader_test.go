package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// dotStuff is the server's side of RFC 1939 byte-stuffing: a dot at the
// start of a line is doubled, and ".\r\n" ends the data. data must end with
// a line ending.
func dotStuff(data string) string {
	var b strings.Builder
	atStart := true
	for i := 0; i < len(data); i++ {
		if atStart && data[i] == '.' {
			b.WriteByte('.')
		}
		b.WriteByte(data[i])
		atStart = data[i] == '\n'
	}
	b.WriteString(".\r\n")
	return b.String()
}

var long4096 = strings.Repeat("x", 4096)

// dotCases are wire data (stuffed, terminated) and what must come out.
var dotCases = []struct {
	name string
	wire string
	want string
}{
	{"empty", ".\r\n", ""},
	{"one line", "hello\r\n.\r\n", "hello\r\n"},
	{"stuffed dot line", "..\r\n.\r\n", ".\r\n"},
	{"double dot", "...\r\n.\r\n", "..\r\n"},
	{"dot x", "..x\r\n.\r\n", ".x\r\n"},
	{"unstuffed dot x (lenient)", ".x\r\n.\r\n", "x\r\n"},
	{"dot in middle", "a.b\r\n.\r\n", "a.b\r\n"},
	{"lf only terminator", "a\n.\n", "a\n"},
	{"dot cr not lf", "..\rx\r\n.\r\n", ".\rx\r\n"},
	{"bare cr kept", "a\rb\r\n.\r\n", "a\rb\r\n"},
	{"8bit", "caf\xc3\xa9 \xff\xfe\r\n.\r\n", "caf\xc3\xa9 \xff\xfe\r\n"},
	{"nul byte", "a\x00b\r\n.\r\n", "a\x00b\r\n"},
	{"4096 line then dot", dotStuff(long4096 + "\r\n.\r\nafter\r\n"), long4096 + "\r\n.\r\nafter\r\n"},
	{"4094+crlf then dot", dotStuff(long4096[:4094] + "\r\n.\r\n"), long4096[:4094] + "\r\n.\r\n"},
	{"long line 70k", dotStuff(strings.Repeat("y", 70000) + "\r\n"), strings.Repeat("y", 70000) + "\r\n"},
	{"dots everywhere", dotStuff(".\r\n..\r\n.x\r\n\r\n.\r\n"), ".\r\n..\r\n.x\r\n\r\n.\r\n"},
	{"From line", "From me\r\n>From you\r\n.\r\n", "From me\r\n>From you\r\n"},
}

func readAllDot(t *testing.T, wire string, bufSize int, wrap func(io.Reader) io.Reader, readSize int) (string, []byte) {
	t.Helper()
	var src io.Reader = strings.NewReader(wire + "NEXT")
	if wrap != nil {
		src = wrap(src)
	}
	br := bufio.NewReaderSize(src, bufSize)
	d := &dotReader{r: br}
	var out bytes.Buffer
	buf := make([]byte, readSize)
	for i := 0; ; i++ {
		if i > 10*len(wire)+10 {
			t.Fatal("dotReader makes no progress")
		}
		n, err := d.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	rest, _ := io.ReadAll(br)
	return out.String(), rest
}

func TestDotReader(t *testing.T) {
	wraps := map[string]func(io.Reader) io.Reader{
		"plain":   nil,
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
		"dataerr": iotest.DataErrReader,
	}
	for _, tc := range dotCases {
		for wname, wrap := range wraps {
			for _, bufSize := range []int{16, 4096, 64 << 10} {
				for _, readSize := range []int{1, 3, 4096, 100000} {
					got, rest := readAllDot(t, tc.wire, bufSize, wrap, readSize)
					if got != tc.want {
						t.Fatalf("%s (%s, buf %d, read %d): got %d bytes %.60q, want %d bytes %.60q",
							tc.name, wname, bufSize, readSize, len(got), got, len(tc.want), tc.want)
					}
					// The reader stops exactly after the terminator: the
					// next reply is untouched.
					if string(rest) != "NEXT" {
						t.Fatalf("%s (%s, buf %d, read %d): left %q after the data, want \"NEXT\"",
							tc.name, wname, bufSize, readSize, rest)
					}
				}
			}
		}
	}
}

func TestDotReaderUnexpectedEOF(t *testing.T) {
	for _, wire := range []string{"", "abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r", "..\r\n", strings.Repeat("z", 9000)} {
		d := &dotReader{r: bufio.NewReaderSize(strings.NewReader(wire), 16)}
		_, err := io.ReadAll(d)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("wire %.30q: err = %v, want io.ErrUnexpectedEOF", wire, err)
		}
	}
}

func TestDotReaderAfterEOF(t *testing.T) {
	d := &dotReader{r: bufio.NewReader(strings.NewReader("a\r\n.\r\nb\r\n.\r\n"))}
	got, err := io.ReadAll(d)
	if err != nil || string(got) != "a\r\n" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if n, err := d.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after end = %d, %v; want 0, EOF", n, err)
	}
}
