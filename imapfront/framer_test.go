package imapfront

import (
	"bytes"
	"fmt"
	"testing"
)

// frames runs a framer over stream cut into chunks of the given size and
// records every line: its end offset, head, and literal marker.
func frames(stream []byte, chunk int, line func(*framer, []byte) (int, bool)) []string {
	var f framer
	var out []string
	off := 0
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		p := stream[:n]
		for i := 0; i < len(p); {
			if f.lit > 0 {
				i += f.skipLiteral(len(p) - i)
				continue
			}
			end, _ := line(&f, p[i:])
			if end < 0 {
				break
			}
			i += end
			rec := string(f.head())
			if f.marker {
				rec += " +literal"
				if f.nonSync {
					rec += "+"
				}
				f.lit = f.size
				f.marker = false
			}
			out = append(out, fmt.Sprintf("%d %s", off+i, rec))
			f.reset()
		}
		stream = stream[n:]
		off += n
	}
	return out
}

// FuzzFramerSkip: the server-side framer, which skips the middle of long
// lines, finds the same lines, heads and literals as stepping byte by
// byte, however the stream is cut.
func FuzzFramerSkip(f *testing.F) {
	long := bytes.Repeat([]byte("x"), 300)
	f.Add([]byte("* 1 FETCH (BODY[] {5}\r\nhello)\r\na OK done\r\n"), uint8(7))
	f.Add(append(append([]byte("* 2 FETCH (ENVELOPE (\""), long...), []byte("\") BODY[] {12345678901234567+}\r\nabc\r\n")...), uint8(3))
	f.Add(append(append([]byte("* 3 FETCH ("), long...), []byte(" {3} \r\nabc)\r\n")...), uint8(200))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		c := int(chunk) + 1
		fast := frames(stream, c, func(f *framer, p []byte) (int, bool) { return f.line(p, 0) })
		slow := frames(stream, c, func(f *framer, p []byte) (int, bool) { return f.stepLine(p, 0) })
		if len(fast) != len(slow) {
			t.Fatalf("%d lines skipping, %d stepping", len(fast), len(slow))
		}
		for i := range fast {
			if fast[i] != slow[i] {
				t.Fatalf("line %d: %q skipping, %q stepping", i, fast[i], slow[i])
			}
		}
	})
}
