package pop3

import (
	"bufio"
	"bytes"
	"io"
)

// dotReader reads the data of a multi-line reply (RFC 1939 section 3) from
// r and returns it with the byte-stuffing undone: a line that starts with
// "." loses that dot, and the line "." ends the data (and is not returned).
// Everything else passes byte for byte: line endings, 8-bit bytes, and lines
// of any length (no line is ever held whole in memory).
//
// A terminating line of ".\n" is accepted as well as ".\r\n", for servers
// that end lines with LF alone.
type dotReader struct {
	r     *bufio.Reader
	state int
}

const (
	dotBeginLine = iota // at the start of a line
	dotMidLine          // inside a line
	dotDone             // the terminating line was read
)

// Read implements io.Reader. It returns io.EOF after the terminating line,
// and io.ErrUnexpectedEOF if the stream ends before it.
func (d *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if d.state == dotDone {
			break
		}
		if d.state == dotBeginLine {
			// Looking at the start of a line may need more input; don't
			// block for it while holding data for the caller.
			if n > 0 && d.r.Buffered() < 3 {
				return n, nil
			}
			b, err := d.r.Peek(1)
			if err != nil {
				return n, unexpected(err)
			}
			if b[0] == '.' {
				b, err = d.r.Peek(2)
				if err != nil {
					return n, unexpected(err)
				}
				switch {
				case b[1] == '\n':
					d.r.Discard(2)
					d.state = dotDone
					continue
				case b[1] == '\r':
					b, err = d.r.Peek(3)
					if err != nil {
						return n, unexpected(err)
					}
					if b[2] == '\n' {
						d.r.Discard(3)
						d.state = dotDone
						continue
					}
				}
				d.r.Discard(1) // the stuffed dot
			}
			d.state = dotMidLine
		}
		// Copy from the buffer up to the next line start that holds a dot
		// (which needs the check above), or as much as fits.
		if d.r.Buffered() == 0 {
			if n > 0 {
				return n, nil
			}
			if _, err := d.r.Peek(1); err != nil {
				return n, unexpected(err)
			}
		}
		buf, _ := d.r.Peek(min(d.r.Buffered(), len(p)-n))
		if i := bytes.Index(buf, []byte("\n.")); i >= 0 {
			buf = buf[:i+1]
			d.state = dotBeginLine
		} else if buf[len(buf)-1] == '\n' {
			d.state = dotBeginLine
		}
		n += copy(p[n:], buf)
		d.r.Discard(len(buf))
	}
	if d.state == dotDone {
		return n, io.EOF
	}
	return n, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
