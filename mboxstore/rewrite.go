package mboxstore

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/imapbridge/imapbridge/bridge"
)

const rewriteChunk = 1 << 20

// rewrite commits the session's deletions by rewriting the spool in place:
// the same inode, so that an MDA waiting for the fcntl lock on it appends
// to the live file afterwards, never to an unlinked one.
//
// Before touching anything, under the fcntl write lock (the read lock is
// upgraded; the dotlock, if configured, is held since Open), it checks that
// the spool is byte for byte what List saw: same inode, size and mtime (so
// nothing was appended or rewritten since), a From_ line at every listed
// offset, and the content key of every message to delete recomputed from
// its bytes. Any difference refuses the rewrite and deletes nothing, as
// does data after the last listed message (a message still being
// delivered, or a corrupt part).
//
// Then the kept messages are shifted down over the deleted ones in
// ascending order, the file is fsync'd, truncated to its new size and
// fsync'd again. Once shifting has started, ctx is no longer honoured.
//
// A crash (or an I/O error) while shifting leaves the spool as: the
// rewritten part (correct, up to some offset), then the old bytes from that
// offset on. The old part may begin inside a message, so the last
// rewritten message may read as extended by a fragment of a deleted or
// moved message, a message being moved may be torn, and kept messages may
// appear twice. Every message in the spool was listed before the rewrite
// started, so the bridge durably stored each one (deleted and kept alike)
// before it asked for deletions: nothing is lost, but the damaged spool
// can show the bridge fragments and copies as new messages until it is
// repaired. A crash after the truncate leaves the finished spool.
func (ss *session) rewrite(ctx context.Context) (deleted int, err error) {
	l := ss.listed
	if ss.f == nil || l == nil {
		return 0, fmt.Errorf("mboxstore: %s: delete: nothing was listed", ss.path)
	}
	del := make([]bool, len(l.msgs))
	n := 0
	for i, e := range l.msgs {
		if ss.deletes[e.id] && !e.Internal {
			del[i] = true
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	if !ss.writable {
		return 0, fmt.Errorf("mboxstore: %s: cannot delete: the bridge may not write the spool", ss.path)
	}
	if l.next != l.size {
		return 0, fmt.Errorf("mboxstore: %s at byte %d: not deleting while data after the last listed message is unread (a delivery in progress or a corrupt part): %w",
			ss.path, l.next, bridge.ErrSourceBusy)
	}
	if hasLock(ss.src.cfg.locks(), LockFcntl) {
		if err := lockFcntl(ctx, ss.f, true, ss.timeout); err != nil {
			return 0, err
		}
	}
	st, err := stat(ss.f)
	if err != nil {
		return 0, err
	}
	if !l.sameFile(st) || st.size != l.size || st.mtime != l.mtime {
		return 0, fmt.Errorf("mboxstore: %s: not deleting: size %d (listed %d) or mtime changed: %w", ss.path, st.size, l.size, ErrChanged)
	}
	var head [5]byte
	for i, e := range l.msgs {
		if _, err := ss.f.ReadAt(head[:], e.Offset); err != nil || !bytes.Equal(head[:], fromSP) {
			return 0, fmt.Errorf("mboxstore: %s at byte %d: not deleting: no From_ line where one was listed: %w", ss.path, e.Offset, ErrChanged)
		}
		if !del[i] {
			continue
		}
		// Reading the message through re-computes and checks its key.
		if _, err := io.Copy(io.Discard, newMessageReader(ctx, ss.f, ss.path, e.Message)); err != nil {
			return 0, fmt.Errorf("mboxstore: %s: not deleting: %w", ss.path, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("mboxstore: %s: not deleting: %w", ss.path, err)
	}

	// Point of no return.
	kept := make([]entry, 0, len(l.msgs))
	var w, shift int64
	buf := make([]byte, rewriteChunk)
	for i, e := range l.msgs {
		end := l.size
		if i+1 < len(l.msgs) {
			end = l.msgs[i+1].Offset
		}
		if del[i] {
			shift += end - e.Offset
			continue
		}
		if shift > 0 {
			for r := e.Offset; r < end; {
				n := int(min(int64(len(buf)), end-r))
				if _, err := ss.f.ReadAt(buf[:n], r); err != nil {
					return 0, ss.torn(fmt.Errorf("read at byte %d: %w", r, err))
				}
				if _, err := ss.f.WriteAt(buf[:n], r-shift); err != nil {
					return 0, ss.torn(fmt.Errorf("write at byte %d: %w", r-shift, err))
				}
				r += int64(n)
			}
		}
		e.Offset -= shift
		e.ContentOffset -= shift
		e.End -= shift
		kept = append(kept, e)
		w = end - shift
	}
	if err := ss.f.Sync(); err != nil {
		return 0, ss.torn(fmt.Errorf("fsync: %w", err))
	}
	if err := ss.f.Truncate(w); err != nil {
		return 0, ss.torn(fmt.Errorf("truncate to %d bytes: %w", w, err))
	}
	if err := ss.f.Sync(); err != nil {
		return 0, ss.torn(fmt.Errorf("fsync: %w", err))
	}

	assignIDs(kept)
	st, err = stat(ss.f)
	if err != nil {
		ss.sp.last = nil
		return n, nil // the rewrite is done; the next List reads it afresh
	}
	nl := &listing{dev: st.dev, ino: st.ino, size: st.size, mtime: st.mtime, next: w, msgs: kept}
	if nl.fp, err = fingerprint(ss.f, w); err != nil {
		ss.sp.last = nil
		return n, nil
	}
	ss.sp.last = nl
	ss.setListed(nl)
	ss.deletes = nil
	return n, nil
}

// torn reports a failed rewrite that may have damaged the spool.
func (ss *session) torn(err error) error {
	ss.sp.last = nil
	ss.logger.Error("mboxstore: rewrite failed part-way; the spool may hold torn or duplicated messages", "err", err)
	return fmt.Errorf("mboxstore: %s: rewrite failed part-way: %w", ss.path, err)
}
