package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
)

// pendingBlob is a message body about to become part of the store: held
// in memory when it is small (inline), else written to a temp file.
// commitBlobs (inside a write transaction) makes it a blob; discard drops
// whatever is left.
type pendingBlob struct {
	b    *Bridge
	tmp  string // the temp file; "" for an inline body
	hash string
	size int64
	idx  []byte
	// body is the whole message of an inline blob: one shorter than
	// inlineLimit bytes, stored in the state database with its row rather
	// than in a file of its own (see commitBlobs).
	body   []byte
	inline bool
	// synced: the temp file's data was fsync'd when it was written. A
	// blob written for a batch is not (see syncBlobs): one sync covers
	// the whole batch.
	synced bool
}

// maxBlobSize bounds a single message; anything larger is refused with
// ErrTooBig rather than filling the disk.
const maxBlobSize = 1 << 30

// inlineLimit: a message shorter than this is stored inline, in the state
// database, rather than as a file: most mail. A file per message costs an
// inode, a rename and a directory entry, each a journalled metadata update
// that stalls behind every sync of the filesystem; on the 2-core test VM
// creating the files alone took half of a 10,000-message first sync. An
// inline body is one more row in the transaction that records the message
// anyway, made durable by the same commit. It is also the size of the copy
// buffer: a message that ends before the first buffer is full is inline
// (one that fills it exactly is not: telling would take another read).
const inlineLimit = 64 << 10

// copyBufs are the buffers blobs are written through: one 64 KiB buffer
// per message in flight instead of a fresh one per message.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, inlineLimit); return &b }}

// putBlob takes r's bytes for the store, fsyncing the temp file of a
// large one, and runs the indexer over them. Nothing is visible to anyone
// until commit.
func (b *Bridge) putBlob(ctx context.Context, r io.Reader) (*pendingBlob, error) {
	p, err := b.writeBlob(ctx, r, true, b.createTemp)
	if err != nil {
		return nil, err
	}
	b.indexBlob(p)
	return p, nil
}

// writeBlob reads r, hashing as it goes. A message shorter than
// inlineLimit stays in memory, to be stored inline; a larger one
// is streamed to a file from newFile (an empty temp file), in 64 KiB
// pieces, never held in memory whole, with an fsync of the file only if
// sync is set. The index is left to indexBlob.
func (b *Bridge) writeBlob(ctx context.Context, r io.Reader, sync bool, newFile func() (*os.File, error)) (*pendingBlob, error) {
	p := &pendingBlob{b: b, synced: sync}
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	cr := &ctxReader{ctx: ctx, r: r}
	n, rerr := fillBuf(cr, *buf)
	if rerr == io.EOF {
		p.body = bytes.Clone((*buf)[:n])
		p.inline = true
		h.Write(p.body)
		p.size = int64(n)
		p.hash = hex.EncodeToString(h.Sum(nil))
		return p, nil
	}
	if rerr != nil {
		return nil, rerr
	}
	f, err := newFile()
	if err != nil {
		return nil, err
	}
	p.tmp = f.Name()
	h.Write((*buf)[:n])
	total := int64(n)
	if _, err = f.Write((*buf)[:n]); err == nil {
		total, err = copyBlob(f, h, cr, *buf, total)
	}
	if err == nil && sync {
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
	p.size = total
	p.hash = hex.EncodeToString(h.Sum(nil))
	return p, nil
}

// fillBuf reads from r until buf is full or r fails; io.EOF means r ended
// within buf (a network reader hands over a few KiB per Read).
func fillBuf(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// indexBlob runs the indexer (if any) over a pending blob: from its inline
// body, or else from its temp file. A message that cannot be indexed, or
// whose indexer fails or panics, is still stored, without an index (FETCH
// and SEARCH then read the message itself).
func (b *Bridge) indexBlob(p *pendingBlob) {
	if b.index == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			b.metrics.Recovered.Inc()
			b.log.Error("store: panic indexing a message; storing it without an index", "panic", r, "stack", string(debug.Stack()))
			p.idx = nil
		}
	}()
	var (
		idx []byte
		err error
	)
	if p.inline {
		idx, err = b.index(bytes.NewReader(p.body))
	} else {
		var rf *os.File
		if rf, err = os.Open(p.tmp); err == nil {
			idx, err = b.index(rf)
			rf.Close()
		}
	}
	if err != nil {
		b.log.Warn("store: could not index message; storing it without", "err", err)
		idx = nil
	}
	p.idx = idx
}

// copyBlob copies the rest of r to f and h in pieces of len(buf), filling
// buf before each write (one write per network Read would cost a system
// call each), counting from total bytes already copied. It stops with
// ErrTooBig past maxBlobSize. Only io.EOF from r ends the copy as
// complete.
func copyBlob(f io.Writer, h io.Writer, r io.Reader, buf []byte, total int64) (int64, error) {
	for {
		n, rerr := fillBuf(r, buf)
		total += int64(n)
		if total > maxBlobSize {
			return total, fmt.Errorf("%w: over %d bytes", ErrTooBig, maxBlobSize)
		}
		if n > 0 {
			h.Write(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return total, err
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// commitBlobs makes the blobs part of the store inside tx and returns their
// row ids, in order. A blob already stored (the same bytes, by hash) gains
// a reference and its temp file is dropped; a new inline one becomes a row
// of bodies, durable with the transaction; a new large one is renamed into
// place. The renames happen under the write lock, so a concurrent removal
// of an identical blob cannot race them. Before it returns, every placed
// file and its directory entry is durable (syncBlobs): the caller commits
// the rows only after that, so a committed row never names a file that a
// crash could take away.
func commitBlobs(ctx context.Context, tx *wtx, ps []*pendingBlob) ([]int64, error) {
	ids := make([]int64, len(ps))
	sel, err := tx.PrepareContext(ctx, `SELECT id FROM blobs WHERE hash=?`)
	if err != nil {
		return nil, err
	}
	defer sel.Close()
	ref, err := tx.PrepareContext(ctx, `UPDATE blobs SET refs=refs+1 WHERE id=?`)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO blobs(hash, size, refs, idx, inline) VALUES (?, ?, 1, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	var insBody *sql.Stmt // prepared on the first inline blob
	var (
		fresh  map[string]int64 // blobs placed in this batch, by hash
		placed []*pendingBlob
		dirs   []string // to sync
		made   []string // hash-prefix directories known to exist after the sync
	)
	for i, p := range ps {
		id, ok := fresh[p.hash]
		if !ok {
			err := sel.QueryRowContext(ctx, p.hash).Scan(&id)
			switch {
			case err == nil:
				ok = true
			case !errors.Is(err, sql.ErrNoRows):
				return nil, fmt.Errorf("store: look up blob: %w", err)
			}
		}
		if ok {
			if _, err := ref.ExecContext(ctx, id); err != nil {
				return nil, err
			}
			p.discard()
			ids[i] = id
			continue
		}
		if !p.inline {
			final := tx.b.blobPath(p.hash)
			dir := filepath.Dir(final)
			if !tx.b.blobDirs[dir] {
				switch err := os.Mkdir(dir, 0o700); {
				case err == nil:
					// A new hash-prefix directory: its own entry
					// must be made durable too.
					dirs = append(dirs, filepath.Dir(dir))
				case !errors.Is(err, os.ErrExist):
					return nil, fmt.Errorf("store: blob dir: %w", err)
				}
				// Not remembered before the batch is durable: a
				// failed sync must make the next batch sync the
				// parent again.
				made = append(made, dir)
			}
			if err := os.Rename(p.tmp, final); err != nil {
				return nil, fmt.Errorf("store: place blob: %w", err)
			}
			p.tmp = ""
			placed = append(placed, p)
			dirs = append(dirs, dir)
		}
		res, err := ins.ExecContext(ctx, p.hash, p.size, p.idx, p.inline)
		if err != nil {
			return nil, err
		}
		if id, err = res.LastInsertId(); err != nil {
			return nil, err
		}
		if p.inline {
			if insBody == nil {
				if insBody, err = tx.PrepareContext(ctx, `INSERT INTO bodies(blob_id, body) VALUES (?, ?)`); err != nil {
					return nil, err
				}
				defer insBody.Close()
			}
			if _, err := insBody.ExecContext(ctx, id, p.body); err != nil {
				return nil, err
			}
		}
		if fresh == nil {
			fresh = make(map[string]int64)
		}
		fresh[p.hash] = id
		ids[i] = id
	}
	if err := tx.b.syncBlobs(placed, dirs); err != nil {
		return nil, err
	}
	if tx.b.afterBlobSync != nil {
		tx.b.afterBlobSync(len(placed))
	}
	for _, d := range made {
		tx.b.blobDirs[d] = true
	}
	return ids, nil
}

// syncBlobs makes placed blob files (and the directory entries that name
// them) durable with as few syncs as it can:
//
//   - Files written with their own fsync (one APPEND, or any blob where
//     syncfs is not available) need only their directories: one fsync per
//     distinct directory of the batch.
//   - Files written without (a batch of fetched messages) are flushed, with
//     every directory entry, by one syncfs(2) of the data directory's
//     filesystem (Linux 5.8 and later, where syncfs reports write-back
//     errors). One call costs one journal commit where a file-by-file
//     fsync costs one per file and one per directory: that is what makes a
//     first sync of thousands of messages run at network speed. Its price
//     is that it also flushes whatever else is dirty on that filesystem;
//     batches bound how often it is paid. Where syncfs is not usable,
//     writeBlob fsyncs each file instead (syncfsUsable false) and only the
//     directories are left to this function.
//
// Inline blobs (most mail, see inlineLimit) have no file: the transaction's
// own commit makes them durable, and a batch of only those needs no sync
// here at all.
func (b *Bridge) syncBlobs(placed []*pendingBlob, dirs []string) error {
	if len(placed) == 0 {
		return nil
	}
	all := true
	for _, p := range placed {
		all = all && p.synced
	}
	if !all {
		if b.syncfs {
			if err := syncFS(b.dir); err != nil {
				return fmt.Errorf("store: syncfs %s: %w", b.dir, err)
			}
			return nil
		}
		// Not reached (writeBlob syncs every file when syncfs is not
		// usable), but never trust that for durability.
		for _, p := range placed {
			if !p.synced {
				if err := syncFile(b.blobPath(p.hash)); err != nil {
					return fmt.Errorf("store: fsync blob: %w", err)
				}
			}
		}
	}
	done := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		if done[d] {
			continue
		}
		done[d] = true
		if err := syncDir(d); err != nil {
			return fmt.Errorf("store: fsync blob dir: %w", err)
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (p *pendingBlob) discard() {
	if p.tmp != "" {
		os.Remove(p.tmp)
		p.tmp = ""
	}
	p.body = nil
}

// unref drops one reference to each blob; blobs left with none are removed
// (row now, file after commit).
func unrefBlobs(ctx context.Context, tx *wtx, blobIDs []int64) error {
	for _, id := range blobIDs {
		var refs int64
		var hash string
		var inline bool
		if err := tx.QueryRowContext(ctx, `UPDATE blobs SET refs=refs-1 WHERE id=? RETURNING refs, hash, inline`, id).Scan(&refs, &hash, &inline); err != nil {
			return fmt.Errorf("unref blob %d: %w", id, err)
		}
		if refs <= 0 {
			if inline {
				if _, err := tx.ExecContext(ctx, `DELETE FROM bodies WHERE blob_id=?`, id); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE id=?`, id); err != nil {
				return err
			}
			if !inline {
				tx.removeFiles = append(tx.removeFiles, tx.b.blobPath(hash))
			}
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

func (b *Bridge) createTemp() (*os.File, error) {
	f, err := os.CreateTemp(filepath.Join(b.dir, tmpDir), "blob-*")
	if err != nil {
		b.noteWrite(fmt.Errorf("%w: %v", ErrStoreNotWritable, err))
		return nil, fmt.Errorf("store: create temp blob: %w (%w)", err, ErrStoreNotWritable)
	}
	return f, nil
}

// tempFiles creates empty temp files ahead of need on a goroutine of its
// own, so that creating a file (a journalled metadata update, the costliest
// step of writing a small blob) overlaps reading the next message from the
// network. get never waits for it: with none ready it returns nil and the
// caller creates its own. stop ends the goroutine and removes what was not
// used; a crash leaves them in tmp/, which Open sweeps.
type tempFiles struct {
	ch   chan *os.File
	stop chan struct{}
	done chan struct{}
}

func (b *Bridge) startTempFiles(ahead, workers int) *tempFiles {
	t := &tempFiles{ch: make(chan *os.File, ahead), stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go t.fill(b, &wg)
	}
	go func() {
		wg.Wait()
		close(t.done)
	}()
	return t
}

func (t *tempFiles) fill(b *Bridge, wg *sync.WaitGroup) {
	defer wg.Done()
	{
		for {
			f, err := b.createTemp()
			if err != nil {
				return // the fetch side creates its own and reports the error
			}
			select {
			case t.ch <- f:
			case <-t.stop:
				f.Close()
				os.Remove(f.Name())
				return
			}
		}
	}
}

func (t *tempFiles) get() *os.File {
	select {
	case f := <-t.ch:
		return f
	default:
		return nil
	}
}

func (t *tempFiles) close() {
	close(t.stop)
	<-t.done
	for {
		select {
		case f := <-t.ch:
			f.Close()
			os.Remove(f.Name())
		default:
			return
		}
	}
}
