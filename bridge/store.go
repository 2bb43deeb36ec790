package bridge

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the embedded, pure-Go SQLite driver
)

// Indexer computes, once at ingest, what the front end serves without
// re-reading a body (for IMAP: ENVELOPE and BODYSTRUCTURE). The bridge stores
// the result opaque, next to the blob.
type Indexer func(r io.Reader) ([]byte, error)

// Options configure a Bridge.
type Options struct {
	// DataDir holds everything: the state database and the message blobs.
	DataDir string
	// Logger receives the store's and the sync engine's logs.
	Logger *slog.Logger
	// Index is called once per stored blob. Nil stores no index.
	Index Indexer
	// IndexCurrent tells which stored indexes Index would write as they
	// are; Reindex rewrites the others. Nil: Reindex does nothing.
	IndexCurrent IndexCurrent
	// Metrics receives counts; nil means none are kept.
	Metrics *Metrics
	// MaxKeywordsPerMailbox caps the distinct keywords in use in one
	// mailbox: a STORE, APPEND or COPY that would bring more fails with a
	// LimitError. 0 means DefaultMaxKeywordsPerMailbox; negative, no cap.
	MaxKeywordsPerMailbox int
	// MaxMailboxesPerUser caps one user's mailboxes (INBOX and the
	// special-use ones included). 0 means DefaultMaxMailboxesPerUser;
	// negative, no cap.
	MaxMailboxesPerUser int
	// Quota returns a user's quota (APPEND and COPY past it fail with a
	// QuotaError; mail from the sources is always stored). Nil: none.
	Quota func(user string) Quota
	// NoSyncFS makes a batch of fetched messages durable file by file
	// (fsync of each blob and of each directory) even where one syncfs(2)
	// of the data directory's filesystem could do it. For a data directory
	// on a filesystem shared with heavy unrelated writers, where syncfs
	// would flush their data too.
	NoSyncFS bool
}

// Bridge is the durable state of every user: mailboxes, messages, flags,
// the source-id map that keeps UIDs stable, and the change fan-out.
type Bridge struct {
	dir     string
	log     *slog.Logger
	index   Indexer
	metrics *Metrics
	limits  limits
	// indexCurrent: see Options.IndexCurrent.
	indexCurrent IndexCurrent
	// syncfs: one syncfs(2) makes a batch of blob files durable (see
	// syncBlobs); otherwise each file is fsync'd when it is written.
	syncfs bool
	// afterBlobSync, if set, runs once the blobs of a commit are placed
	// and durable, before the transaction that records them commits (a
	// test hook: the crash campaign kills the process there).
	afterBlobSync func(n int)

	db *sql.DB // one connection for writes (serialised by writeMu)
	rd *sql.DB // a pool for reads (WAL lets them run beside the writer)
	// readBody reads an inline body (prepared once: FETCH BODY[] of a
	// whole mailbox runs it once a message).
	readBody *sql.Stmt

	// known caches the source-id maps between polls.
	known *knownCache
	// now is the clock of polls (a test sets it).
	now func() time.Time
	// feeds holds the feed records polls update (see status.go).
	feeds feedRecords

	writeMu sync.Mutex
	// blobDirs are the hash-prefix directories known to exist durably
	// (guarded by writeMu).
	blobDirs map[string]bool
	gen      uint64 // commit generation, for rollback detection
	genSave  time.Time

	mu        sync.Mutex
	closed    bool
	users     map[string]*User
	mailboxes map[MailboxID]*Mailbox
	observers []Observer
	storeID   string
	writeErr  error // last write failure, for readiness
	dirLock   *dirLock
}

const (
	dbFile        = "state.db"
	highwaterFile = "highwater.json"
	blobDir       = "blobs"
	tmpDir        = "tmp"
)

// Open opens (or creates) the state store in opts.DataDir. The directory is
// created 0700. A store that looks rolled back (restored from an older copy
// while clients may hold higher UIDs) is reported and every mailbox gets a
// new UIDVALIDITY, so clients resynchronise instead of trusting stale UIDs.
func Open(ctx context.Context, opts Options) (*Bridge, error) {
	if opts.DataDir == "" {
		return nil, errors.New("store: no data directory configured")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := securePermissions(opts.DataDir, logger); err != nil {
		return nil, err
	}
	// One process at a time: a second one would sweep the first one's
	// blobs in flight and interleave its UIDs.
	lock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	b, err := openLocked(ctx, opts, logger)
	if err != nil {
		lock.release()
		return nil, err
	}
	b.dirLock = lock
	return b, nil
}

// openLocked is Open once the data directory is locked.
func openLocked(ctx context.Context, opts Options, logger *slog.Logger) (*Bridge, error) {
	b := &Bridge{
		dir:          opts.DataDir,
		log:          logger,
		index:        opts.Index,
		indexCurrent: opts.IndexCurrent,
		limits:       newLimits(opts),
		metrics:      opts.Metrics.fill(),
		syncfs:       syncfsUsable() && !opts.NoSyncFS,
		users:        make(map[string]*User),
		mailboxes:    make(map[MailboxID]*Mailbox),
		blobDirs:     make(map[string]bool),
		known:        newKnownCache(knownBudget),
		now:          time.Now,
	}
	path := filepath.Join(opts.DataDir, dbFile)
	dsn := "file:" + sqliteURIPath(path) + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	var err error
	if b.db, err = sql.Open("sqlite", dsn); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	b.db.SetMaxOpenConns(1)
	if err := b.migrate(ctx); err != nil {
		b.db.Close()
		return nil, err
	}
	if b.rd, err = sql.Open("sqlite", "file:"+sqliteURIPath(path)+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)"); err != nil {
		b.db.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	b.rd.SetMaxOpenConns(4)
	if b.readBody, err = b.rd.PrepareContext(ctx, `SELECT body FROM bodies WHERE blob_id=?`); err != nil {
		b.rd.Close()
		b.db.Close()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	if err := b.checkRollback(ctx); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.sweep(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Close closes the store. Pollers and sessions must be stopped first.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	var errs []error
	if b.storeID != "" {
		if err := b.saveHighwater(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.readBody != nil {
		errs = append(errs, b.readBody.Close())
	}
	if b.rd != nil {
		errs = append(errs, b.rd.Close())
	}
	errs = append(errs, b.db.Close())
	b.dirLock.release()
	return errors.Join(errs...)
}

// AddObserver registers o for every mailbox change of every user.
func (b *Bridge) AddObserver(o Observer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observers = append(b.observers, o)
}

func (b *Bridge) observerList() []Observer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.observers
}

// Ready reports whether the store can take writes: nil, or the reason not.
func (b *Bridge) Ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrStoreClosed
	}
	return b.writeErr
}

func (b *Bridge) noteWrite(err error) {
	b.mu.Lock()
	b.writeErr = err
	b.mu.Unlock()
	if err != nil {
		b.metrics.StoreWriteErrors.Inc()
	}
}

// schema holds the migrations, in order; the store's user_version says how
// many have been applied. Never edit one that has shipped: add another.
var schema = []string{
	// 1: the initial layout.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE users (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		created INTEGER NOT NULL
	);
	CREATE TABLE mailboxes (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id),
		name TEXT NOT NULL,
		special_use TEXT NOT NULL DEFAULT '',
		subscribed INTEGER NOT NULL DEFAULT 1,
		uid_validity INTEGER NOT NULL,
		uid_next INTEGER NOT NULL DEFAULT 1,
		highest_modseq INTEGER NOT NULL DEFAULT 1,
		UNIQUE(user_id, name)
	);
	CREATE TABLE blobs (
		id INTEGER PRIMARY KEY,
		hash TEXT NOT NULL UNIQUE,
		size INTEGER NOT NULL,
		refs INTEGER NOT NULL,
		idx BLOB
	);
	CREATE TABLE origins (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id),
		source TEXT NOT NULL,
		source_id TEXT NOT NULL,
		size INTEGER NOT NULL,
		stored_at INTEGER NOT NULL,
		state INTEGER NOT NULL DEFAULT 0,
		UNIQUE(user_id, source, source_id)
	);
	CREATE TABLE messages (
		mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
		uid INTEGER NOT NULL,
		blob_id INTEGER NOT NULL REFERENCES blobs(id),
		flags TEXT NOT NULL DEFAULT '',
		internal_date INTEGER NOT NULL,
		modseq INTEGER NOT NULL,
		origin_id INTEGER REFERENCES origins(id),
		PRIMARY KEY(mailbox_id, uid)
	) WITHOUT ROWID;
	CREATE INDEX messages_origin ON messages(origin_id) WHERE origin_id IS NOT NULL;
	CREATE TABLE uidvalidity_resets (
		at INTEGER NOT NULL,
		mailbox_id INTEGER NOT NULL,
		old INTEGER NOT NULL,
		new INTEGER NOT NULL,
		reason TEXT NOT NULL
	);`,
	// 2: sealed per-user secrets (source credentials for passthrough auth).
	`CREATE TABLE secrets (
		user_id INTEGER NOT NULL REFERENCES users(id),
		name TEXT NOT NULL,
		value BLOB NOT NULL,
		updated INTEGER NOT NULL,
		PRIMARY KEY(user_id, name)
	);`,
	// 3: the UTC offset an internal date was given with (seconds east of
	// UTC; NULL for messages stored before, shown in the server's zone),
	// and the highest UID a session has taken as recent (\Recent is given
	// to one session only: the first to open the mailbox after the message
	// arrived). Messages already stored are not recent.
	`ALTER TABLE messages ADD COLUMN date_zone INTEGER;
	ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
	UPDATE mailboxes SET recent_uid = uid_next - 1;`,
	// 4: subscriptions by name, apart from mailboxes: a subscription
	// outlives the mailbox it names (RFC 9051 section 6.3.7), and LIST
	// (SUBSCRIBED) shows it as \NonExistent.
	`CREATE TABLE subscriptions (
		user_id INTEGER NOT NULL REFERENCES users(id),
		name TEXT NOT NULL,
		PRIMARY KEY(user_id, name)
	) WITHOUT ROWID;
	INSERT INTO subscriptions(user_id, name) SELECT user_id, name FROM mailboxes WHERE subscribed;`,
	// 5: message bodies shorter than inlineLimit bytes stored inline, in
	// bodies, instead of as files under blobs/ (inline = 1). Blobs
	// stored before stay files.
	`ALTER TABLE blobs ADD COLUMN inline INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE bodies (
		blob_id INTEGER PRIMARY KEY REFERENCES blobs(id),
		body BLOB NOT NULL
	);`,
	// 6: what Status reports. feeds: one row per (user, source) the
	// syncer was given (active = still configured), with the settings
	// and what the last polls found; times are unix seconds, 0 for
	// never. feed_history: messages at the host over time (the drain
	// chart), bounded per feed. users.last_login and clients: the IMAP
	// logins. Origins gain the states 3 (deleting: our DELE sent, its
	// commit not yet confirmed) and 4 (gone: taken off the host by
	// another client), set by polls from now on.
	`CREATE TABLE feeds (
		user_id INTEGER NOT NULL REFERENCES users(id),
		source TEXT NOT NULL,
		active INTEGER NOT NULL DEFAULT 1,
		mode TEXT NOT NULL DEFAULT 'serve',
		delete_policy TEXT NOT NULL DEFAULT 'keep',
		delete_after INTEGER NOT NULL DEFAULT 0,
		last_poll INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '',
		last_error_at INTEGER NOT NULL DEFAULT 0,
		host_listed INTEGER NOT NULL DEFAULT 0,
		host_messages INTEGER NOT NULL DEFAULT 0,
		host_bytes INTEGER NOT NULL DEFAULT 0,
		pending INTEGER NOT NULL DEFAULT 0,
		would_delete INTEGER NOT NULL DEFAULT 0,
		foreign_deletions INTEGER NOT NULL DEFAULT 0,
		last_foreign_deletion INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY(user_id, source)
	) WITHOUT ROWID;
	CREATE TABLE feed_history (
		user_id INTEGER NOT NULL REFERENCES users(id),
		source TEXT NOT NULL,
		at INTEGER NOT NULL,
		host_messages INTEGER NOT NULL,
		PRIMARY KEY(user_id, source, at)
	) WITHOUT ROWID;
	ALTER TABLE users ADD COLUMN last_login INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE clients (
		user_id INTEGER NOT NULL REFERENCES users(id),
		name TEXT NOT NULL,
		version TEXT NOT NULL,
		os TEXT NOT NULL DEFAULT '',
		vendor TEXT NOT NULL DEFAULT '',
		last_seen INTEGER NOT NULL,
		PRIMARY KEY(user_id, name, version)
	) WITHOUT ROWID;`,
	// 7: the POP3 face's sizes and hidden messages (pop3face.go).
	pop3FaceSchema,
}

func (b *Bridge) migrate(ctx context.Context) error {
	var version int
	if err := b.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if version > len(schema) {
		return fmt.Errorf("store: %s has schema version %d, newer than this binary knows (%d): refusing to touch it", filepath.Join(b.dir, dbFile), version, len(schema))
	}
	for v := version; v < len(schema); v++ {
		tx, err := b.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, schema[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
		if v == 0 {
			id := make([]byte, 16)
			rand.Read(id)
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES ('store_id', ?), ('generation', '0'), ('last_uidvalidity', '0')`, hex.EncodeToString(id)); err != nil {
				tx.Rollback()
				return fmt.Errorf("store: migrate to %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
		b.log.Info("store schema migrated", "version", v+1)
	}
	return nil
}

type highwater struct {
	StoreID    string `json:"store_id"`
	Generation uint64 `json:"generation"`
}

// checkRollback compares the store's commit generation with the highest one
// this data directory has seen (kept in a small side file). A store behind
// its side file was restored from an older copy: its UIDs may already have
// been handed out for other messages, so every mailbox gets a new
// UIDVALIDITY and the event is logged and counted.
func (b *Bridge) checkRollback(ctx context.Context) error {
	var gen string
	if err := b.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='store_id'`).Scan(&b.storeID); err != nil {
		return fmt.Errorf("store: read store id: %w", err)
	}
	if err := b.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='generation'`).Scan(&gen); err != nil {
		return fmt.Errorf("store: read generation: %w", err)
	}
	b.gen, _ = strconv.ParseUint(gen, 10, 64)
	data, err := os.ReadFile(filepath.Join(b.dir, highwaterFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: read %s: %w", highwaterFile, err)
	}
	if err == nil {
		var hw highwater
		if err := json.Unmarshal(data, &hw); err != nil {
			b.log.Warn("store: high-water file unreadable; rollback detection starts afresh", "err", err)
		} else if hw.StoreID == b.storeID && hw.Generation > b.gen {
			reason := fmt.Sprintf("state store is at commit %d but this data directory has seen commit %d: it was restored from an older copy", b.gen, hw.Generation)
			b.log.Error("store: rollback detected; assigning new UIDVALIDITY to every mailbox so clients resynchronise", "reason", reason)
			b.metrics.RollbacksDetected.Inc()
			if err := b.resetAllUIDValidity(ctx, reason); err != nil {
				return err
			}
			// Continue counting from above the high-water mark.
			b.gen = hw.Generation
		}
	}
	return b.saveHighwater()
}

func (b *Bridge) resetAllUIDValidity(ctx context.Context, reason string) error {
	return b.write(ctx, func(tx *wtx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, uid_validity FROM mailboxes`)
		if err != nil {
			return err
		}
		type mb struct{ id, old int64 }
		var all []mb
		for rows.Next() {
			var m mb
			if err := rows.Scan(&m.id, &m.old); err != nil {
				rows.Close()
				return err
			}
			all = append(all, m)
		}
		rows.Close()
		for _, m := range all {
			v, err := nextUIDValidity(ctx, tx.Tx)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_validity=? WHERE id=?`, v, m.id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO uidvalidity_resets(at, mailbox_id, old, new, reason) VALUES (?,?,?,?,?)`, time.Now().Unix(), m.id, m.old, v, reason); err != nil {
				return err
			}
			b.log.Warn("store: new UIDVALIDITY", "mailbox_id", m.id, "old", m.old, "new", v, "reason", reason)
			b.metrics.UIDValidityResets.Inc()
		}
		return nil
	})
}

// saveHighwater writes the side file durably. Called with writeMu held or
// before the store is shared.
func (b *Bridge) saveHighwater() error {
	data, _ := json.Marshal(highwater{StoreID: b.storeID, Generation: b.gen})
	if err := writeFileDurable(filepath.Join(b.dir, highwaterFile), data); err != nil {
		return fmt.Errorf("store: save %s: %w", highwaterFile, err)
	}
	b.genSave = time.Now()
	return nil
}

// nextUIDValidity hands out UIDVALIDITY values: seconds since the epoch,
// but always above every value handed out before by this store, so a
// mailbox deleted and re-created by the same name never gets its old one.
func nextUIDValidity(ctx context.Context, tx *sql.Tx) (UIDValidity, error) {
	var last string
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='last_uidvalidity'`).Scan(&last); err != nil {
		return 0, fmt.Errorf("read last uidvalidity: %w", err)
	}
	l, _ := strconv.ParseUint(last, 10, 32)
	v := uint64(time.Now().Unix()) & 0xffffffff
	if v <= l {
		v = l + 1
	}
	if v == 0 || v > 0xffffffff {
		v = 1
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value=? WHERE key='last_uidvalidity'`, strconv.FormatUint(v, 10)); err != nil {
		return 0, fmt.Errorf("save last uidvalidity: %w", err)
	}
	return UIDValidity(v), nil
}

// write runs fn in one write transaction and bumps the commit generation.
// wtx is a write transaction. Blob files named in removeFiles are deleted
// after it commits, still under the write lock, so a blob's file and its row
// never disagree for anyone holding that lock.
type wtx struct {
	*sql.Tx
	b           *Bridge
	removeFiles []string
	// originsChanged: the source-id map changed in a way the known cache
	// does not follow; it is dropped after the commit.
	originsChanged bool
}

func (b *Bridge) write(ctx context.Context, fn func(tx *wtx) error) error {
	return b.writeNoting(ctx, fn, true)
}

// writeRecord is write for the bridge's own bookkeeping (what polls found,
// logins): its success says only that the state database took a small
// write, so it does not clear a failure Ready reports (a blob directory
// that cannot be written); ProbeWrites and the next real write do.
func (b *Bridge) writeRecord(ctx context.Context, fn func(tx *wtx) error) error {
	return b.writeNoting(ctx, fn, false)
}

func (b *Bridge) writeNoting(ctx context.Context, fn func(tx *wtx) error, clears bool) error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrStoreClosed
	}
	err := b.writeLocked(ctx, fn)
	if err != nil && diskFault(err) && !errors.Is(err, ErrStoreNotWritable) {
		// Callers (the IMAP front end) answer "unavailable", not "bug".
		err = fmt.Errorf("%w (%w)", b.describeDBFault(err), ErrStoreNotWritable)
	}
	if err != nil || clears {
		b.noteWrite(classifyWriteErr(err))
	}
	return err
}

func (b *Bridge) writeLocked(ctx context.Context, fn func(tx *wtx) error) error {
	stx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	tx := &wtx{Tx: stx, b: b}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value=? WHERE key='generation'`, strconv.FormatUint(b.gen+1, 10)); err != nil {
		tx.Rollback()
		return fmt.Errorf("store: bump generation: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	b.gen++
	if tx.originsChanged {
		b.known.dropAll()
	}
	for _, f := range tx.removeFiles {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			b.log.Warn("store: could not remove blob file; it will be swept at the next start", "err", err)
		}
	}
	if time.Since(b.genSave) > 5*time.Second {
		if err := b.saveHighwater(); err != nil {
			b.log.Warn("store: could not save high-water mark", "err", err)
		}
	}
	return nil
}

// classifyWriteErr keeps only failures that say the store cannot take
// writes (disk full, read-only, I/O), not a caller's bad input.
func classifyWriteErr(err error) error {
	if err == nil {
		return nil
	}
	for _, sentinel := range []error{ErrNoSuchMailbox, ErrMailboxExists, ErrInvalidName, ErrInvalidSpecialUse, ErrInboxProtected, ErrHasChildren, ErrNoSuchMessage, ErrTooBig, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, sentinel) {
			return nil
		}
	}
	return fmt.Errorf("%w: %v", ErrStoreNotWritable, err)
}

// sweep removes what a crash can leave behind: temp files of unfinished
// blob writes and blob files no committed row refers to (inline blobs
// have no file). It runs at Open,
// before anything else can write.
func (b *Bridge) sweep(ctx context.Context) error {
	tmp := filepath.Join(b.dir, tmpDir)
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("store: sweep %s: %w", tmp, err)
	}
	for _, e := range entries {
		os.Remove(filepath.Join(tmp, e.Name()))
	}
	known := make(map[string]bool)
	rows, err := b.db.QueryContext(ctx, `SELECT hash FROM blobs WHERE NOT inline`)
	if err != nil {
		return fmt.Errorf("store: sweep: %w", err)
	}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return fmt.Errorf("store: sweep: %w", err)
		}
		known[h] = true
	}
	rows.Close()
	root := filepath.Join(b.dir, blobDir)
	dirs, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("store: sweep %s: %w", root, err)
	}
	removed := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return fmt.Errorf("store: sweep: %w", err)
		}
		for _, f := range files {
			if !known[f.Name()] {
				if err := os.Remove(filepath.Join(root, d.Name(), f.Name())); err == nil {
					removed++
				}
			}
		}
	}
	if removed > 0 {
		b.log.Info("store: removed blobs left by an interrupted write", "count", removed)
	}
	return nil
}

func (b *Bridge) blobPath(hash string) string {
	return filepath.Join(b.dir, blobDir, hash[:2], hash)
}

func randomName() string {
	var x [8]byte
	rand.Read(x[:])
	return strconv.FormatUint(binary.LittleEndian.Uint64(x[:]), 36)
}

// writeFileDurable replaces path with data: temp file, fsync, rename, fsync
// of the directory.
func writeFileDurable(path string, data []byte) error {
	tmp := path + ".tmp-" + randomName()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// StoreStats are totals over the whole store.
type StoreStats struct {
	Messages int64 // message rows over every user and mailbox
	Bytes    int64 // bytes of distinct blobs
}

// Stats counts what the store holds (for the metrics endpoint).
func (b *Bridge) Stats(ctx context.Context) (StoreStats, error) {
	var st StoreStats
	if err := b.rd.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT coalesce(sum(size), 0) FROM blobs)`).Scan(&st.Messages, &st.Bytes); err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	return st, nil
}
