package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// pendingBlob is a message body written and fsync'd to a temp file, not yet
// part of the store. commit (inside a write transaction) makes it a blob;
// discard removes whatever is left.
type pendingBlob struct {
	b    *Bridge
	tmp  string
	hash string
	size int64
	idx  []byte
}

// maxBlobSize bounds a single message; anything larger is refused with
// ErrTooBig rather than filling the disk.
const maxBlobSize = 1 << 30

// putBlob streams r into a temp file under the data directory, hashing as
// it goes, fsyncs it and runs the indexer over it. Nothing is visible to
// anyone until commit.
func (b *Bridge) putBlob(ctx context.Context, r io.Reader) (*pendingBlob, error) {
	f, err := os.CreateTemp(filepath.Join(b.dir, tmpDir), "blob-*")
	if err != nil {
		b.noteWrite(fmt.Errorf("%w: %v", ErrStoreNotWritable, err))
		return nil, fmt.Errorf("store: create temp blob: %w (%w)", err, ErrStoreNotWritable)
	}
	p := &pendingBlob{b: b, tmp: f.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, maxBlobSize+1)})
	if err == nil && n > maxBlobSize {
		err = fmt.Errorf("%w: over %d bytes", ErrTooBig, maxBlobSize)
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("store: fsync blob: %w", err)
			b.noteWrite(fmt.Errorf("%w: %v", ErrStoreNotWritable, err))
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: close blob: %w", cerr)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path == p.tmp {
			// The temp file failed (disk full, read-only, I/O error),
			// not the source being read.
			err = fmt.Errorf("store: %s blob %s: %w (%w)", pe.Op, pe.Path, pe.Err, ErrStoreNotWritable)
			b.noteWrite(err)
		}
		p.discard()
		return nil, err
	}
	p.size = n
	p.hash = hex.EncodeToString(h.Sum(nil))
	if b.index != nil {
		rf, err := os.Open(p.tmp)
		if err != nil {
			p.discard()
			return nil, fmt.Errorf("store: reopen blob: %w", err)
		}
		p.idx, err = b.index(rf)
		rf.Close()
		if err != nil {
			// An unparseable message is still stored; it just has no index.
			b.log.Warn("store: could not index message; storing it without", "err", err)
			p.idx = nil
		}
	}
	return p, nil
}

// commit makes the blob part of the store inside tx and returns its row id.
// The file is renamed into place (and the directory fsync'd) under the
// write lock, so a concurrent removal of an identical blob cannot race it.
func (p *pendingBlob) commit(ctx context.Context, tx *wtx) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM blobs WHERE hash=?`, p.hash).Scan(&id)
	if err == nil {
		if _, err := tx.ExecContext(ctx, `UPDATE blobs SET refs=refs+1 WHERE id=?`, id); err != nil {
			return 0, err
		}
		return id, nil
	}
	final := p.b.blobPath(p.hash)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return 0, fmt.Errorf("store: blob dir: %w", err)
	}
	if err := os.Rename(p.tmp, final); err != nil {
		return 0, fmt.Errorf("store: place blob: %w", err)
	}
	p.tmp = ""
	if err := syncDir(filepath.Dir(final)); err != nil {
		return 0, fmt.Errorf("store: fsync blob dir: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO blobs(hash, size, refs, idx) VALUES (?, ?, 1, ?)`, p.hash, p.size, p.idx)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func (p *pendingBlob) discard() {
	if p.tmp != "" {
		os.Remove(p.tmp)
		p.tmp = ""
	}
}

// unref drops one reference to each blob; blobs left with none are removed
// (row now, file after commit).
func unrefBlobs(ctx context.Context, tx *wtx, blobIDs []int64) error {
	for _, id := range blobIDs {
		var refs int64
		var hash string
		if err := tx.QueryRowContext(ctx, `UPDATE blobs SET refs=refs-1 WHERE id=? RETURNING refs, hash`, id).Scan(&refs, &hash); err != nil {
			return fmt.Errorf("unref blob %d: %w", id, err)
		}
		if refs <= 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE id=?`, id); err != nil {
				return err
			}
			tx.removeFiles = append(tx.removeFiles, tx.b.blobPath(hash))
		}
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
