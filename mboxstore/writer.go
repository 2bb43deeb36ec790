package mboxstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Writer writes messages in mboxrd format: a From_ line with the envelope
// sender and an asctime date, the message with LF line endings (CRLF in the
// input becomes LF, other CRs are kept) and every line matching ^>*From
// given one more '>', a final LF if the message lacks one, and an empty
// separator line. Each message is written with one Write call. Reading a
// written message back gives the input with LF turned into CRLF, so the
// CRLF form a reader returns is written back unchanged.
type Writer struct {
	w   io.Writer
	buf []byte
	// Location is the time zone the From_ date is written in (asctime has
	// none; readers assume the local zone). Nil means time.Local.
	Location *time.Location
}

// NewWriter returns a Writer appending to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteMessage writes one message. An empty sender is written as
// MAILER-DAEMON; a zero date as the Unix epoch.
func (w *Writer) WriteMessage(sender string, date time.Time, msg []byte) error {
	loc := w.Location
	if loc == nil {
		loc = time.Local
	}
	w.buf = appendMessage(w.buf[:0], sender, date, msg, loc)
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("mboxstore: write message: %w", err)
	}
	return nil
}

// appendMessage appends the mboxrd form of msg, separator included.
func appendMessage(dst []byte, sender string, date time.Time, msg []byte, loc *time.Location) []byte {
	dst = formatFromLine(dst, sender, date, loc)
	for len(msg) > 0 {
		var line []byte
		if k := bytes.IndexByte(msg, '\n'); k >= 0 {
			line, msg = msg[:k], msg[k+1:]
			// CRLF becomes LF, except after another CR: "\r\r\n" stays,
			// so that reading it back gives the same bytes.
			if n := len(line); n > 0 && line[n-1] == '\r' && (n < 2 || line[n-2] != '\r') {
				line = line[:n-1]
			}
		} else {
			line, msg = msg, nil
		}
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), fromSP) {
			dst = append(dst, '>')
		}
		dst = append(dst, line...)
		dst = append(dst, '\n')
	}
	return append(dst, '\n')
}

// DeliverOptions control Deliver.
type DeliverOptions struct {
	// Locks to take, in this order; nil means ["fcntl"].
	Locks []string
	// LockTimeout bounds each lock wait; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// Location of the From_ date; nil means time.Local.
	Location *time.Location
	// Logger for stale dotlocks; nil discards.
	Logger *slog.Logger
}

// Deliver appends one message to the spool at path the way a local MDA
// does: under the configured locks (dotlock, then an fcntl write lock),
// after making sure the file ends with an empty line, with one write, then
// fsync. A failed write is cut off again so the spool is never left with a
// partial message. The file is created (mode 0600) if missing. Deliver is
// meant for tests, demos and tooling; the bridge itself only reads spools.
func Deliver(ctx context.Context, path string, opts DeliverOptions, sender string, date time.Time, msg []byte) (err error) {
	locks := opts.Locks
	if locks == nil {
		locks = []string{LockFcntl}
	}
	if err := validateLocks(locks); err != nil {
		return fmt.Errorf("mboxstore: deliver to %s: %w", path, err)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	release, err := holdSpool(ctx, path, timeout)
	if err != nil {
		return err
	}
	defer release()
	if hasLock(locks, LockDotlock) {
		dl, err := takeDotlock(ctx, path, timeout, logger)
		if err != nil {
			return err
		}
		defer dl.release()
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|oNoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("mboxstore: deliver to %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("mboxstore: deliver to %s: %w", path, cerr)
		}
	}()
	if hasLock(locks, LockFcntl) {
		if err := lockFcntl(ctx, f, true, timeout); err != nil {
			return err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mboxstore: deliver to %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("mboxstore: deliver to %s: not a regular file", path)
	}
	size := fi.Size()
	var buf []byte
	if size > 0 {
		// End the previous message with an LF and an empty line.
		var tail [2]byte
		t := tail[:min(size, 2)]
		if _, err := f.ReadAt(t, size-int64(len(t))); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("mboxstore: deliver to %s: %w", path, err)
		}
		switch {
		case t[len(t)-1] != '\n':
			buf = append(buf, '\n', '\n')
		case len(t) < 2 || t[0] != '\n':
			buf = append(buf, '\n')
		}
	}
	buf = appendMessage(buf, sender, date, msg, loc)
	if _, err := f.Write(buf); err != nil {
		if terr := f.Truncate(size); terr != nil {
			err = errors.Join(err, terr)
		}
		return fmt.Errorf("mboxstore: deliver to %s at byte %d: %w", path, size, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("mboxstore: deliver to %s: fsync: %w", path, err)
	}
	return nil
}
