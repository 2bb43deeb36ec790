package mboxstore

import (
	"bytes"
)

var (
	fromSP   = []byte("From ")
	gtFromSP = []byte(">From ")
	nlFromSP = []byte("\nFrom ")
	crlf     = []byte("\r\n")
	gts      = bytes.Repeat([]byte{'>'}, 64)
)

// unescaper turns the raw content of an mbox message into the message
// (mboxrd: one '>' is removed from every line matching ^>+From ). It is fed
// the raw bytes in chunks cut anywhere and passes the unescaped bytes on to
// emit, in order. A line start that might be an escape but is cut by the
// end of a chunk is held (as counts, not bytes) until the next chunk decides.
type unescaper struct {
	emit      func([]byte)
	lineStart bool // the next byte starts a line
	pending   bool // a possible escape straddles the end of the last chunk
	gt        int  // '>' bytes of the pending line start
	fr        int  // bytes of "From " matched after them
}

func (u *unescaper) reset() {
	u.lineStart = true
	u.pending = false
	u.gt, u.fr = 0, 0
}

// emitPrefix emits n '>' bytes and the first fr bytes of "From ".
func (u *unescaper) emitPrefix(n, fr int) {
	for n > 0 {
		k := min(n, len(gts))
		u.emit(gts[:k])
		n -= k
	}
	if fr > 0 {
		u.emit(fromSP[:fr])
	}
}

func (u *unescaper) write(p []byte) {
	if len(p) == 0 {
		return
	}
	i := 0
	if u.pending {
		for i < len(p) {
			c := p[i]
			if u.fr == 0 && c == '>' {
				u.gt++
				i++
				continue
			}
			if c == fromSP[u.fr] {
				u.fr++
				i++
				if u.fr == len(fromSP) {
					break
				}
				continue
			}
			break
		}
		switch {
		case u.fr == len(fromSP):
			u.emitPrefix(u.gt-1, u.fr) // an escape: drop one '>'
		case i < len(p):
			u.emitPrefix(u.gt, u.fr) // decided: not an escape
		default:
			return // still undecided
		}
		u.pending = false
		u.lineStart = false
	}
	seg, j := i, i
	for {
		k := bytes.Index(p[j:], gtFromSP)
		if k < 0 {
			break
		}
		k += j
		s := k
		for s > i && p[s-1] == '>' {
			s--
		}
		if (s > i && p[s-1] == '\n') || (s == 0 && u.lineStart) {
			u.emit(p[seg:s])
			seg = s + 1
		}
		j = k + len(gtFromSP)
	}
	// Does the last line of the chunk start like an escape?
	t := -1
	if nl := bytes.LastIndexByte(p[i:], '\n'); nl >= 0 {
		t = i + nl + 1
	} else if i == 0 && u.lineStart {
		t = 0
	}
	if t >= seg && t < len(p) && p[t] == '>' {
		q := t
		for q < len(p) && p[q] == '>' {
			q++
		}
		if rest := p[q:]; len(rest) < len(fromSP) && bytes.HasPrefix(fromSP, rest) {
			u.emit(p[seg:t])
			u.pending = true
			u.gt, u.fr = q-t, len(rest)
			return
		}
	}
	u.emit(p[seg:])
	u.lineStart = p[len(p)-1] == '\n'
}

// flush ends the message: a held line start is emitted as it was.
func (u *unescaper) flush() {
	if u.pending {
		u.emitPrefix(u.gt, u.fr)
		u.pending = false
	}
}

// crlfSize counts the bytes of a stream once every bare LF has become CRLF.
type crlfSize struct {
	n      int64
	prevCR bool
}

func (c *crlfSize) write(p []byte) {
	if len(p) == 0 {
		return
	}
	lf := bytes.Count(p, []byte{'\n'})
	if lf > 0 {
		withCR := 0
		if bytes.IndexByte(p, '\r') >= 0 {
			withCR = bytes.Count(p, crlf)
		}
		if c.prevCR && p[0] == '\n' {
			withCR++
		}
		lf -= withCR
	}
	c.n += int64(len(p) + lf)
	c.prevCR = p[len(p)-1] == '\r'
}

// appendCRLF appends p to dst with every bare LF turned into CRLF; prevCR
// says whether the byte before p was a CR, and the result says whether the
// last byte of p is one.
func appendCRLF(dst, p []byte, prevCR bool) ([]byte, bool) {
	for len(p) > 0 {
		k := bytes.IndexByte(p, '\n')
		if k < 0 {
			dst = append(dst, p...)
			return dst, p[len(p)-1] == '\r'
		}
		cr := (k > 0 && p[k-1] == '\r') || (k == 0 && prevCR)
		dst = append(dst, p[:k]...)
		if cr {
			dst = append(dst, '\n')
		} else {
			dst = append(dst, '\r', '\n')
		}
		p = p[k+1:]
		prevCR = false
	}
	return dst, prevCR
}
