package mboxstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

const fetchChunk = 64 << 10

// messageReader streams one message from the spool: the raw bytes of its
// range, unescaped, with CRLF line endings. While streaming it recomputes
// the message's size and (if it was listed with one) its key; if they no
// longer match the listing (the spool was rewritten behind the locks) the
// stream ends with an error wrapping ErrChanged instead of io.EOF.
type messageReader struct {
	ctx    context.Context
	r      io.ReaderAt
	path   string
	m      Message
	pos    int64
	raw    []byte
	out    []byte
	outPos int
	u      unescaper
	prevCR bool
	key    *keyHasher
	n      int64 // bytes of output so far
	err    error
}

func newMessageReader(ctx context.Context, r io.ReaderAt, path string, m Message) *messageReader {
	mr := &messageReader{
		ctx:  ctx,
		r:    r,
		path: path,
		m:    m,
		pos:  m.ContentOffset,
		raw:  make([]byte, min(fetchChunk, max(m.End-m.ContentOffset, 1))),
	}
	if !m.Key.IsZero() {
		mr.key = newKeyHasher()
		mr.key.reset()
	}
	mr.u.reset()
	mr.u.emit = func(p []byte) {
		before := len(mr.out)
		mr.out, mr.prevCR = appendCRLF(mr.out, p, mr.prevCR)
		mr.n += int64(len(mr.out) - before)
		if mr.key != nil {
			mr.key.write(p)
		}
	}
	return mr
}

func (mr *messageReader) Read(p []byte) (int, error) {
	for mr.outPos == len(mr.out) {
		if mr.err != nil {
			return 0, mr.err
		}
		mr.refill()
	}
	n := copy(p, mr.out[mr.outPos:])
	mr.outPos += n
	return n, nil
}

func (mr *messageReader) refill() {
	mr.out, mr.outPos = mr.out[:0], 0
	if err := mr.ctx.Err(); err != nil {
		mr.err = err
		return
	}
	if mr.pos >= mr.m.End {
		mr.u.flush()
		changed := mr.n != mr.m.Size
		if mr.key != nil {
			changed = changed || mr.key.sum() != mr.m.Key
		}
		switch {
		case changed:
			mr.err = fmt.Errorf("mboxstore: %s at byte %d: message %s: content differs from the listing: %w", mr.path, mr.m.Offset, mr.m.Key, ErrChanged)
		default:
			mr.err = io.EOF
		}
		return
	}
	want := int(min(int64(len(mr.raw)), mr.m.End-mr.pos))
	got, err := mr.r.ReadAt(mr.raw[:want], mr.pos)
	if got < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("spool ends before the message does: %w", ErrChanged)
		}
		mr.err = fmt.Errorf("mboxstore: %s at byte %d: read: %w", mr.path, mr.pos+int64(got), err)
		return
	}
	mr.pos += int64(got)
	mr.u.write(mr.raw[:got])
}

func (mr *messageReader) Close() error {
	if mr.err == nil {
		mr.err = errors.New("mboxstore: read of a closed message")
	}
	return nil
}
