package bridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// Spool is one incoming message read once (from an LMTP DATA, say) and
// delivered to any number of users' INBOXes, each copy with a header of its
// own put in front (Return-Path, Delivered-To). A small message is held in
// memory; a larger one in a temp file of the store's data directory, which
// Close removes (and Open sweeps after a crash). A Spool is not durable:
// only what Deliver returned from is.
type Spool struct {
	p *pendingBlob
}

// NewSpool reads r to its end. An error reading r is returned as it is (a
// reader that reports a message as too large keeps its error); a failure of
// the temp file is ErrStoreNotWritable; more than the store's message limit
// (1 GiB) is ErrTooBig.
func (b *Bridge) NewSpool(ctx context.Context, r io.Reader) (*Spool, error) {
	// Not synced: the spool is never what makes a delivery durable; each
	// copy Deliver makes is written and synced on its own.
	p, err := b.writeBlob(ctx, r, false, b.createTemp)
	if err != nil {
		return nil, err
	}
	return &Spool{p: p}, nil
}

// Size is the number of bytes spooled.
func (s *Spool) Size() int64 { return s.p.size }

// Deliver appends header followed by the spooled message to u's INBOX, with
// no flags and date as its internal date (zero: now), through the same
// durable path as an IMAP APPEND: when it returns without error the message
// is committed and every session of u watching INBOX has been told (IDLE
// push). header must be empty or whole header lines ending in CRLF.
func (s *Spool) Deliver(ctx context.Context, u *User, header []byte, date time.Time) (UIDValidity, UID, error) {
	var body io.Reader
	if s.p.inline {
		body = bytes.NewReader(s.p.body)
	} else {
		f, err := os.Open(s.p.tmp)
		if err != nil {
			return 0, 0, fmt.Errorf("store: reopen spooled message: %w (%w)", err, ErrStoreNotWritable)
		}
		defer f.Close()
		body = f
	}
	return u.Append(ctx, InboxName, io.MultiReader(bytes.NewReader(header), body), nil, date)
}

// Close drops the spooled copy. Deliveries already made stay.
func (s *Spool) Close() error {
	s.p.discard()
	return nil
}
