package mboxstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// DefaultBufferSize is the read buffer of Scan: large enough that the
// SIMD searches run over long stretches and that syscalls are rare, small
// enough to stay in the CPU's L2 cache while several passes run over it.
const DefaultBufferSize = 256 << 10

// Message is one message found in a spool. All offsets are byte offsets in
// the spool file.
type Message struct {
	// Offset is the start of the From_ line.
	Offset int64
	// ContentOffset is the start of the message (after the From_ line).
	ContentOffset int64
	// End is the end of the message (exclusive); the empty separator line
	// and the next From_ line follow.
	End int64
	// Sender and Date come from the From_ line; Date is zero if the line
	// has no date that parses.
	Sender string
	Date   time.Time
	// Size is the size of the message as Fetch returns it: unescaped, with
	// CRLF line endings.
	Size int64
	// Key is the content key (zero unless ScanOptions.Keys).
	Key Key
	// Internal marks the mail store's pseudo message ("DON'T DELETE THIS
	// MESSAGE -- FOLDER INTERNAL DATA", an X-IMAP field in the first
	// message) that UW-IMAP and Dovecot keep at the start of a spool. Only
	// set when keys are computed.
	Internal bool
}

// ScanOptions control Scan.
type ScanOptions struct {
	// Start is where reading starts: 0, or the offset of a From_ line
	// that a previous Scan returned as Result.Next.
	Start int64
	// Size is how much of the file to read (its size when it was stat'ed).
	Size int64
	// Complete says the spool is known to be complete (unchanged since it
	// was last looked at): a last message that is not followed by a From_
	// line is then accepted, and a spool that ends in the middle of a line
	// is reported as truncated. Otherwise such a last message is returned
	// as Result.Tail and not in Result.Messages.
	Complete bool
	// Keys asks for the content key of every message.
	Keys bool
	// Location is the time zone of From_ dates that have none (what the
	// MDA wrote: local time). Nil means time.Local.
	Location *time.Location
	// BufferSize is the read buffer size; 0 means DefaultBufferSize.
	BufferSize int
}

// Result is what Scan found.
type Result struct {
	// Messages are the complete messages, in spool order.
	Messages []Message
	// Tail is a last message held back because it is not followed by a
	// From_ line and the spool was not known to be complete; nil if there
	// is none or its From_ line is not complete yet.
	Tail *Message
	// Next is where the part of the file that Messages cover ends, and
	// where a later Scan of the grown file starts: the offset of the next
	// From_ line, of the held-back data, of a corruption, or Size.
	Next int64
}

// Scan reads the mbox messages of r (named name in errors) between
// opts.Start and opts.Size. A spool that is not valid mbox gives an error
// wrapping ErrCorrupt that names the file and the byte offset; the messages
// before the corruption are returned with it. Other errors (I/O, ctx) come
// with no messages.
func Scan(ctx context.Context, r io.ReaderAt, name string, opts ScanOptions) (Result, error) {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = DefaultBufferSize
	}
	opts.BufferSize = max(opts.BufferSize, 64)
	res := Result{Next: opts.Start}
	if opts.Start < 0 || opts.Start > opts.Size {
		return res, fmt.Errorf("mboxstore: %s: scan from byte %d of %d", name, opts.Start, opts.Size)
	}
	s := &scanner{
		ctx:  ctx,
		r:    r,
		name: name,
		opts: opts,
		buf:  make([]byte, opts.BufferSize),
		base: opts.Start,
	}
	s.d.init(opts.Keys)
	off := opts.Start
	for off < opts.Size {
		m, end, err := s.message(off)
		if err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) {
				return res, err
			}
			return Result{Next: opts.Start}, err
		}
		switch end.kind {
		case endBoundary:
			res.Messages = append(res.Messages, m)
			off = end.next
			res.Next = off
		case endCorrupt:
			res.Messages = append(res.Messages, m)
			res.Next = end.next
			return res, &CorruptError{Path: name, Offset: end.next, Reason: "NUL bytes where a From_ line should be"}
		case endEOF:
			switch {
			case !opts.Complete:
				res.Tail = &m
			case end.unterminated:
				return res, &CorruptError{Path: name, Offset: m.Offset, Reason: "last message is truncated (no newline at the end of the file)"}
			default:
				res.Messages = append(res.Messages, m)
				res.Next = opts.Size
			}
			return res, nil
		case endPartialFrom:
			if opts.Complete {
				return res, &CorruptError{Path: name, Offset: off, Reason: "truncated From_ line at the end of the file"}
			}
			return res, nil
		}
	}
	return res, nil
}

type endKind int

const (
	endBoundary    endKind = iota // a blank line and the next From_ line follow
	endEOF                        // the file ends
	endCorrupt                    // NUL bytes follow a blank line
	endPartialFrom                // the file ends inside the From_ line
)

type msgEnd struct {
	kind         endKind
	next         int64 // endBoundary: next From_ line; endCorrupt: the NUL
	unterminated bool  // endEOF: the last line has no LF
}

// scanner reads a spool through one buffer that holds the file bytes
// [base, base+n).
type scanner struct {
	ctx  context.Context
	r    io.ReaderAt
	name string
	opts ScanOptions
	buf  []byte
	base int64
	n    int
	d    digester
}

func (s *scanner) end() int64 { return s.base + int64(s.n) }

func (s *scanner) eof() bool { return s.end() >= s.opts.Size }

// at returns the byte at file offset off, which must be buffered.
func (s *scanner) at(off int64) byte { return s.buf[off-s.base] }

// fill drops the bytes before keep and reads more. It reports whether the
// buffer grew.
func (s *scanner) fill(keep int64) (bool, error) {
	if err := s.ctx.Err(); err != nil {
		return false, err
	}
	if keep > s.base {
		drop := int(min(keep-s.base, int64(s.n)))
		copy(s.buf, s.buf[drop:s.n])
		s.n -= drop
		s.base += int64(drop)
	}
	want := min(int64(len(s.buf)-s.n), s.opts.Size-s.end())
	if want <= 0 {
		return false, nil
	}
	got, err := s.r.ReadAt(s.buf[s.n:s.n+int(want)], s.end())
	s.n += got
	if got == int(want) {
		return true, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = fmt.Errorf("file is shorter than %d bytes (truncated while reading?)", s.opts.Size)
	}
	return got > 0, fmt.Errorf("mboxstore: %s at byte %d: read: %w", s.name, s.end(), err)
}

// message reads the message whose From_ line starts at off.
func (s *scanner) message(off int64) (Message, msgEnd, error) {
	m := Message{Offset: off}
	// The From_ line.
	for s.end()-off < int64(len(fromSP)) && !s.eof() {
		if _, err := s.fill(off); err != nil {
			return m, msgEnd{}, err
		}
	}
	head := s.buf[off-s.base : min(s.n, int(off-s.base)+len(fromSP))]
	if !bytes.Equal(head, fromSP) {
		if len(head) < len(fromSP) && bytes.HasPrefix(fromSP, head) {
			return m, msgEnd{kind: endPartialFrom}, nil
		}
		reason := "no From_ line (not an mbox file?)"
		if len(head) > 0 && head[0] == 0 {
			reason = "NUL bytes where a From_ line should be"
		}
		return m, msgEnd{}, &CorruptError{Path: s.name, Offset: off, Reason: reason}
	}
	lineEnd := int64(-1)
	var lineText []byte
	for search := off + int64(len(fromSP)); ; {
		if k := bytes.IndexByte(s.buf[search-s.base:s.n], '\n'); k >= 0 {
			lineEnd = search + int64(k)
			break
		}
		search = s.end()
		if s.eof() {
			return m, msgEnd{kind: endPartialFrom}, nil
		}
		if lineText == nil && s.end()-off >= maxFromLine {
			// Absurdly long: parse the start, skip the rest.
			lineText = bytes.Clone(s.buf[off-s.base+int64(len(fromSP)) : off-s.base+maxFromLine])
		}
		keep := off
		if lineText != nil {
			keep = s.end()
		} else if s.n == len(s.buf) && s.base == off {
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		if _, err := s.fill(keep); err != nil {
			return m, msgEnd{}, err
		}
	}
	if lineText == nil {
		lineText = s.buf[off-s.base+int64(len(fromSP)) : min(lineEnd, off+maxFromLine)-s.base]
	}
	m.Sender, m.Date = parseFromLine(lineText, s.opts.Location)

	// The content: find "\nFrom " after a blank line, or NUL bytes right
	// after a blank line (garbage where the next From_ line should be).
	cs := lineEnd + 1
	m.ContentOffset = cs
	s.d.reset()
	fed := cs        // the digester has seen [cs, fed)
	search := cs - 1 // next offset where "\nFrom " may start
	nul := cs        // next offset to look for NUL bytes at
	// blankEnd returns the content end if the line ending at the LF at
	// off q is empty, -1 otherwise. The From_ line's own LF at cs-1
	// counts as the end of the line before.
	blankEnd := func(q int64) int64 {
		if q-1 >= cs-1 && s.at(q-1) == '\n' {
			return q
		}
		if q-2 >= cs-1 && s.at(q-1) == '\r' && s.at(q-2) == '\n' {
			return q - 1
		}
		return -1
	}
	for {
		// First boundary in the buffer.
		bEnd, bNext := int64(-1), int64(-1)
		for q := search; ; {
			k := bytes.Index(s.buf[q-s.base:s.n], nlFromSP)
			if k < 0 {
				break
			}
			q += int64(k)
			if e := blankEnd(q); e >= 0 {
				bEnd, bNext = e, q+1
				break
			}
			q++
		}
		// First NUL at the start of a line after a blank line.
		cEnd, cAt := int64(-1), int64(-1)
		for z := nul; z < s.end(); {
			k := bytes.IndexByte(s.buf[z-s.base:s.n], 0)
			if k < 0 {
				break
			}
			z += int64(k)
			if bNext >= 0 && z > bNext {
				break
			}
			if z-1 >= cs && s.at(z-1) == '\n' {
				if e := blankEnd(z - 1); e >= 0 {
					cEnd, cAt = e, z
					break
				}
			}
			// Only the first byte of a line matters: skip to the next line.
			nl := bytes.IndexByte(s.buf[z-s.base:s.n], '\n')
			if nl < 0 {
				break
			}
			z += int64(nl) + 1
		}
		switch {
		case cAt >= 0 && (bNext < 0 || cAt < bNext):
			s.feed(fed, cEnd)
			m = s.d.finish(m, cEnd)
			return m, msgEnd{kind: endCorrupt, next: cAt}, nil
		case bNext >= 0:
			s.feed(fed, bEnd)
			m = s.d.finish(m, bEnd)
			return m, msgEnd{kind: endBoundary, next: bNext}, nil
		}
		if s.eof() {
			end := s.end()
			unterminated := end > cs && s.at(end-1) != '\n'
			if !unterminated && end-1 >= cs {
				if e := blankEnd(end - 1); e >= 0 {
					end = e // the separator line of the last message
				}
			}
			s.feed(fed, end)
			m = s.d.finish(m, end)
			return m, msgEnd{kind: endEOF, unterminated: unterminated}, nil
		}
		// Nothing in this buffer: a boundary may still start in its last
		// five bytes, and content ends at least a byte before that.
		search = max(search, s.end()-int64(len(nlFromSP)-1))
		nul = s.end()
		s.feed(fed, search-1)
		fed = max(fed, search-1)
		if _, err := s.fill(max(min(fed, search-3), cs-1)); err != nil {
			return m, msgEnd{}, err
		}
	}
}

// feed passes the content bytes [from, to) to the digester.
func (s *scanner) feed(from, to int64) {
	if to > from {
		s.d.write(s.buf[from-s.base : to-s.base])
	}
}

// digester computes a message's size and, if asked, its key.
type digester struct {
	u    unescaper
	size crlfSize
	key  *keyHasher
}

func (d *digester) init(keys bool) {
	if keys {
		d.key = newKeyHasher()
	}
	d.u.emit = func(p []byte) {
		d.size.write(p)
		if d.key != nil {
			d.key.write(p)
		}
	}
}

func (d *digester) reset() {
	d.u.reset()
	d.size = crlfSize{}
	if d.key != nil {
		d.key.reset()
	}
}

func (d *digester) write(p []byte) { d.u.write(p) }

func (d *digester) finish(m Message, end int64) Message {
	d.u.flush()
	m.End = end
	m.Size = d.size.n
	if d.key != nil {
		m.Key = d.key.sum()
		m.Internal = m.Offset == 0 && d.key.xIMAP
	}
	return m
}
