package bridge

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// IndexCurrent tells whether a stored ingest index was written by the
// current Indexer (Options.IndexCurrent). Reindex rewrites the others.
type IndexCurrent func(idx []byte) bool

// reindexBatch is how many blobs Reindex reads per query and rewrites per
// transaction: a short hold of the write lock, however large the store.
const reindexBatch = 200

// Reindex re-runs Options.Index over every stored message whose index
// Options.IndexCurrent does not accept (written by an older version of the
// front end, or missing), so an upgrade that changes what the index holds
// reaches the mail stored before it. The front end must not depend on it
// having run: until it has, it parses those messages itself. It works in
// small batches, returns the number of records rewritten, and stops at
// ctx's end; run it in the background after Open. Without Index or
// IndexCurrent it does nothing.
func (b *Bridge) Reindex(ctx context.Context) (int, error) {
	if b.index == nil || b.indexCurrent == nil {
		return 0, nil
	}
	type stale struct {
		id     int64
		hash   string
		inline bool
	}
	done := 0
	var after int64
	for {
		rows, err := b.rd.QueryContext(ctx, `SELECT id, hash, inline, idx FROM blobs WHERE id > ? ORDER BY id LIMIT ?`, after, reindexBatch)
		if err != nil {
			return done, fmt.Errorf("store: reindex: list blobs: %w", err)
		}
		var batch []stale
		n := 0
		for rows.Next() {
			var s stale
			var idx []byte
			if err := rows.Scan(&s.id, &s.hash, &s.inline, &idx); err != nil {
				rows.Close()
				return done, fmt.Errorf("store: reindex: list blobs: %w", err)
			}
			n++
			after = s.id
			if !b.indexCurrent(idx) {
				batch = append(batch, s)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return done, fmt.Errorf("store: reindex: list blobs: %w", err)
		}
		type result struct {
			s   stale
			idx []byte
		}
		var out []result
		for _, s := range batch {
			raw, err := b.readBlob(ctx, s.id, s.hash, s.inline)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, sql.ErrNoRows) {
				continue // expunged meanwhile
			}
			if err != nil {
				return done, fmt.Errorf("store: reindex: read blob %d: %w", s.id, err)
			}
			idx, err := b.index(bytes.NewReader(raw))
			if err != nil {
				b.log.Warn("store: reindex: message not indexed; the front end parses it", "blob", s.id, "err", err)
				continue
			}
			out = append(out, result{s, idx})
		}
		if len(out) > 0 {
			err := b.write(ctx, func(tx *wtx) error {
				for _, r := range out {
					// The hash guards against a blob removed and its id
					// reused meanwhile.
					if _, err := tx.ExecContext(ctx, `UPDATE blobs SET idx=? WHERE id=? AND hash=?`, r.idx, r.s.id, r.s.hash); err != nil {
						return fmt.Errorf("store: reindex: update blob %d: %w", r.s.id, err)
					}
				}
				return nil
			})
			if err != nil {
				return done, err
			}
			done += len(out)
		}
		if n < reindexBatch {
			if done > 0 {
				b.log.Info("store: messages re-indexed", "count", done)
			}
			return done, nil
		}
		if err := ctx.Err(); err != nil {
			return done, err
		}
	}
}

// readBlob reads one stored body whole.
func (b *Bridge) readBlob(ctx context.Context, id int64, hash string, inline bool) ([]byte, error) {
	if inline {
		var raw []byte
		err := b.readBody.QueryRowContext(ctx, id).Scan(&raw)
		return raw, err
	}
	f, err := os.Open(b.blobPath(hash))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
