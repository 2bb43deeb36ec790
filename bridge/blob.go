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

// pendingBlob is a message body written to a temp file, not yet part of
// the store. commitBlobs (inside a write transaction) makes it a blob;
// discard removes whatever is left.
type pendingBlob struct {
	b    *Bridge
	tmp  string
	hash string
	size int64
	idx  []byte
	// small is the whole body while it waits for indexBlob, when it fit
	// in one copy buffer; nil otherwise and after indexing.
	small []byte
	// synced: the temp file's data was fsync'd when it was written. A
	// blob written for a batch is not (see syncBlobs): one sync covers
	// the whole batch.
	synced bool
}

// maxBlobSize bounds a single message; anything larger is refused with
// ErrTooBig rather than filling the disk.
const maxBlobSize = 1 << 30

// copyBufs are the buffers blobs are written through: one 64 KiB buffer
// per message in flight instead of a fresh one per message.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// putBlob streams r into a temp file under the data directory, hashing as
// it goes, fsyncs it and runs the indexer over it. Nothing is visible to
// anyone until commit.
func (b *Bridge) putBlob(ctx context.Context, r io.Reader) (*pendingBlob, error) {
	p, err := b.writeBlob(ctx, r, true, nil)
	if err != nil {
		return nil, err
	}
	b.indexBlob(p)
	return p, nil
}

// writeBlob streams r into f (an empty temp file from tempFiles) or, if f
// is nil, a new temp file, hashing as it goes, with an fsync of the file
// only if sync is set. The body goes from r to the file in 64 KiB pieces:
// it is never held in memory whole. The index is left to indexBlob; a
// message that fits in one piece keeps its bytes in memory for it, so
// that indexing it need not read the file back.
func (b *Bridge) writeBlob(ctx context.Context, r io.Reader, sync bool, f *os.File) (*pendingBlob, error) {
	if f == nil {
		var err error
		if f, err = b.createTemp(); err != nil {
			return nil, err
		}
	}
	p := &pendingBlob{b: b, tmp: f.Name(), synced: sync}
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	n, err := copyBlob(f, h, &ctxReader{ctx: ctx, r: r}, *buf)
	if err == nil && b.index != nil && n <= int64(len(*buf)) {
		// copyBlob fills buf from its start each round, and a message
		// this small took one round: buf holds all of it.
		p.small = bytes.Clone((*buf)[:n])
	}
	copyBufs.Put(buf)
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
	p.size = n
	p.hash = hex.EncodeToString(h.Sum(nil))
	return p, nil
}

// indexBlob runs the indexer (if any) over a written blob: from the bytes
// writeBlob kept, or else from its temp file. A message that cannot be
// indexed, or whose indexer fails or panics, is still stored, without an
// index (FETCH and SEARCH then read the message itself).
func (b *Bridge) indexBlob(p *pendingBlob) {
	if b.index == nil {
		return
	}
	defer func() {
		p.small = nil
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
	if p.small != nil || p.size == 0 {
		idx, err = b.index(bytes.NewReader(p.small))
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

// copyBlob copies r to f and h in pieces of len(buf), filling buf before
// each write (a network reader hands over a few KiB per Read: one write
// per Read would cost a system call each). It stops with ErrTooBig past
// maxBlobSize. Only io.EOF from r ends the copy as complete.
func copyBlob(f io.Writer, h io.Writer, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n := 0
		var rerr error
		for n < len(buf) && rerr == nil {
			var m int
			m, rerr = r.Read(buf[n:])
			n += m
		}
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
// a reference and its temp file is dropped; a new one is renamed into
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
	ins, err := tx.PrepareContext(ctx, `INSERT INTO blobs(hash, size, refs, idx) VALUES (?, ?, 1, ?)`)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
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
		final := tx.b.blobPath(p.hash)
		dir := filepath.Dir(final)
		if !tx.b.blobDirs[dir] {
			switch err := os.Mkdir(dir, 0o700); {
			case err == nil:
				// A new hash-prefix directory: its own entry must be
				// made durable too.
				dirs = append(dirs, filepath.Dir(dir))
			case !errors.Is(err, os.ErrExist):
				return nil, fmt.Errorf("store: blob dir: %w", err)
			}
			// Not remembered before the batch is durable: a failed
			// sync must make the next batch sync the parent again.
			made = append(made, dir)
		}
		if err := os.Rename(p.tmp, final); err != nil {
			return nil, fmt.Errorf("store: place blob: %w", err)
		}
		p.tmp = ""
		placed = append(placed, p)
		dirs = append(dirs, dir)
		res, err := ins.ExecContext(ctx, p.hash, p.size, p.idx)
		if err != nil {
			return nil, err
		}
		if id, err = res.LastInsertId(); err != nil {
			return nil, err
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
// A pack file per batch would need one sync too, but would change the
// content-addressed layout (one file per blob) that existing data
// directories have and that Mailbox.Open serves from.
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
