package bridge

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// The read API for export: a consistent snapshot of the whole store, taken
// on a running server without disturbing it.
//
// A snapshot is one SQLite read transaction. In WAL mode a reader sees the
// database as of its first read and never blocks the writer (nor is blocked
// by it), so every mailbox, UIDNEXT, flag and subscription the snapshot
// shows belongs to one commit. Inline bodies are read inside the same
// transaction. A body stored as a file is opened by its hash; the one thing
// a snapshot cannot hold back is the removal of such a file after a later
// commit expunged its last message: Open then reports ErrNoSuchMessage
// ("expunged since the snapshot was taken"), and the caller takes a new
// snapshot. While a snapshot is open the WAL cannot be checkpointed past
// it and grows with the server's writes; close it when done.

// ErrNoSuchUser: the store has no user of that name.
var ErrNoSuchUser = errors.New("no such user")

// OpenReadOnly opens the state store in opts.DataDir for reading only: for
// an export beside a server that has the same data directory open (the
// store takes no lock on it), or of a stopped server's data. Unlike Open it
// creates nothing, migrates nothing, sweeps nothing (the server's temp
// blobs and just-placed files stay untouched), does not check for or
// record rollbacks, and every write through the returned Bridge fails with
// ErrStoreNotWritable. The store must be at the schema version this binary
// writes: an older one is migrated by starting the server once, a newer
// one is read with the binary that wrote it.
func OpenReadOnly(ctx context.Context, opts Options) (*Bridge, error) {
	if opts.DataDir == "" {
		return nil, errors.New("store: no data directory configured")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(opts.DataDir, dbFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: open %s read-only: %w", path, err)
	}
	b := &Bridge{
		dir:       opts.DataDir,
		log:       logger,
		index:     opts.Index,
		metrics:   opts.Metrics.fill(),
		users:     make(map[string]*User),
		mailboxes: make(map[MailboxID]*Mailbox),
		blobDirs:  make(map[string]bool),
		known:     newKnownCache(knownBudget),
	}
	dsn := "file:" + sqliteURIPath(path) + "?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)"
	var err error
	// Both handles read only: a write through this Bridge fails in
	// SQLite ("attempt to write a readonly database"), which write
	// reports as ErrStoreNotWritable.
	if b.db, err = sql.Open("sqlite", dsn); err != nil {
		return nil, fmt.Errorf("store: open %s read-only: %w", path, err)
	}
	b.db.SetMaxOpenConns(1)
	if b.rd, err = sql.Open("sqlite", dsn); err != nil {
		b.db.Close()
		return nil, fmt.Errorf("store: open %s read-only: %w", path, err)
	}
	b.rd.SetMaxOpenConns(4)
	fail := func(err error) (*Bridge, error) {
		b.rd.Close()
		b.db.Close()
		return nil, err
	}
	var version int
	if err := b.rd.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fail(fmt.Errorf("store: read schema version of %s: %w", path, err))
	}
	switch {
	case version > len(schema):
		return fail(fmt.Errorf("store: %s has schema version %d, newer than this binary knows (%d): read it with the binary that wrote it", path, version, len(schema)))
	case version < len(schema):
		return fail(fmt.Errorf("store: %s has schema version %d, older than this binary's (%d): start the server once to migrate it", path, version, len(schema)))
	}
	if b.readBody, err = b.rd.PrepareContext(ctx, `SELECT body FROM bodies WHERE blob_id=?`); err != nil {
		return fail(fmt.Errorf("store: prepare: %w", err))
	}
	return b, nil
}

// ReadSnapshot is the whole store as of one commit. It is used from one
// goroutine at a time; Close it when done.
type ReadSnapshot struct {
	b               *Bridge
	tx              *sql.Tx
	gen             uint64
	lastUIDValidity UIDValidity
	at              time.Time
}

// SnapshotMailbox is a mailbox as the snapshot holds it.
type SnapshotMailbox struct {
	ID            MailboxID
	Name          string
	SpecialUse    string
	Subscribed    bool
	UIDValidity   UIDValidity
	UIDNext       UID
	HighestModSeq ModSeq
}

// Origin names the source message a stored message came from.
type Origin struct {
	// Source is the configured source name.
	Source string
	// ID is the source's id of the message (for a POP3 source: the UIDL,
	// or the id the pop3 package derived when the UIDL was missing or not
	// unique).
	ID SourceID
}

// SnapshotMessage is a message as the snapshot holds it.
type SnapshotMessage struct {
	UID          UID
	Flags        []string // normalized, sorted (see NormalizeFlags)
	InternalDate time.Time
	Size         int64
	ModSeq       ModSeq
	// Origin is where the message came from; nil for one that came from
	// no source (APPEND, LMTP delivery). Copies keep their original's.
	Origin *Origin

	blob   int64
	hash   string
	inline bool
}

// ReadSnapshot begins a snapshot of the store as of now.
func (b *Bridge) ReadSnapshot(ctx context.Context) (*ReadSnapshot, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, ErrStoreClosed
	}
	tx, err := b.rd.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin snapshot: %w", err)
	}
	s := &ReadSnapshot{b: b, tx: tx, at: time.Now()}
	// The first read fixes what the transaction sees.
	var gen string
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='generation'`).Scan(&gen); err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("store: begin snapshot: %w", err)
	}
	s.gen, _ = strconv.ParseUint(gen, 10, 64)
	var last string
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='last_uidvalidity'`).Scan(&last); err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("store: begin snapshot: %w", err)
	}
	v, _ := strconv.ParseUint(last, 10, 32)
	s.lastUIDValidity = UIDValidity(v)
	return s, nil
}

// Close ends the snapshot.
func (s *ReadSnapshot) Close() error {
	if err := s.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("store: end snapshot: %w", err)
	}
	return nil
}

// Generation is the commit the snapshot shows (the store's commit counter).
func (s *ReadSnapshot) Generation() uint64 { return s.gen }

// LastUIDValidity is the highest UIDVALIDITY the store has handed out,
// to any mailbox of any user, deleted ones included: a server taking over
// must give new mailboxes values above it, so that a mailbox deleted and
// created again never gets its old UIDVALIDITY.
func (s *ReadSnapshot) LastUIDValidity() UIDValidity { return s.lastUIDValidity }

// Taken is when the snapshot began.
func (s *ReadSnapshot) Taken() time.Time { return s.at }

// Users returns the names of every user in the store, sorted.
func (s *ReadSnapshot) Users(ctx context.Context) ([]string, error) {
	rows, err := s.tx.QueryContext(ctx, `SELECT name FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: snapshot users: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: snapshot users: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: snapshot users: %w", err)
	}
	return out, nil
}

func (s *ReadSnapshot) userID(ctx context.Context, user string) (int64, error) {
	var id int64
	err := s.tx.QueryRowContext(ctx, `SELECT id FROM users WHERE name=?`, user).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %q", ErrNoSuchUser, user)
	}
	if err != nil {
		return 0, fmt.Errorf("store: snapshot user %q: %w", user, err)
	}
	return id, nil
}

// Mailboxes returns every mailbox of user, sorted by name (INBOX first),
// with Subscribed set.
func (s *ReadSnapshot) Mailboxes(ctx context.Context, user string) ([]SnapshotMailbox, error) {
	uid, err := s.userID(ctx, user)
	if err != nil {
		return nil, err
	}
	subs, err := s.subscriptions(ctx, uid)
	if err != nil {
		return nil, err
	}
	subscribed := make(map[string]bool, len(subs))
	for _, n := range subs {
		subscribed[n] = true
	}
	rows, err := s.tx.QueryContext(ctx, `SELECT id, name, special_use, uid_validity, uid_next, highest_modseq FROM mailboxes WHERE user_id=?`, uid)
	if err != nil {
		return nil, fmt.Errorf("store: snapshot mailboxes of %q: %w", user, err)
	}
	defer rows.Close()
	var out []SnapshotMailbox
	for rows.Next() {
		var m SnapshotMailbox
		if err := rows.Scan(&m.ID, &m.Name, &m.SpecialUse, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq); err != nil {
			return nil, fmt.Errorf("store: snapshot mailboxes of %q: %w", user, err)
		}
		m.Subscribed = subscribed[m.Name]
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: snapshot mailboxes of %q: %w", user, err)
	}
	sort.Slice(out, func(i, j int) bool { return nameLess(out[i].Name, out[j].Name) })
	return out, nil
}

// Subscriptions returns the names user is subscribed to, sorted (INBOX
// first); a subscription may name a mailbox that no longer exists.
func (s *ReadSnapshot) Subscriptions(ctx context.Context, user string) ([]string, error) {
	uid, err := s.userID(ctx, user)
	if err != nil {
		return nil, err
	}
	return s.subscriptions(ctx, uid)
}

func (s *ReadSnapshot) subscriptions(ctx context.Context, userID int64) ([]string, error) {
	return subscriptionsOf(ctx, s.tx, userID, "snapshot subscriptions")
}

// Messages returns the messages of a mailbox of the snapshot, ascending
// by UID.
func (s *ReadSnapshot) Messages(ctx context.Context, mailbox MailboxID) ([]SnapshotMessage, error) {
	rows, err := s.tx.QueryContext(ctx, `SELECT m.uid, m.flags, m.internal_date, m.date_zone, m.modseq, b.id, b.size, b.hash, b.inline, o.source, o.source_id
		FROM messages m JOIN blobs b ON b.id=m.blob_id LEFT JOIN origins o ON o.id=m.origin_id
		WHERE m.mailbox_id=? ORDER BY m.uid`, mailbox)
	if err != nil {
		return nil, fmt.Errorf("store: snapshot messages of mailbox %d: %w", mailbox, err)
	}
	defer rows.Close()
	var out []SnapshotMessage
	for rows.Next() {
		var m SnapshotMessage
		var flags string
		var date int64
		var zone sql.NullInt32
		var src, srcID sql.NullString
		if err := rows.Scan(&m.UID, &flags, &date, &zone, &m.ModSeq, &m.blob, &m.Size, &m.hash, &m.inline, &src, &srcID); err != nil {
			return nil, fmt.Errorf("store: snapshot messages of mailbox %d: %w", mailbox, err)
		}
		m.Flags = splitFlags(flags)
		e := entry{date: date, zone: zone.Int32, zoned: zone.Valid}
		m.InternalDate = e.internalDate()
		if src.Valid {
			m.Origin = &Origin{Source: src.String, ID: SourceID(srcID.String)}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: snapshot messages of mailbox %d: %w", mailbox, err)
	}
	return out, nil
}

// Open opens a message's body: the bytes exactly as stored. A body stored
// as a file that a commit after the snapshot removed (its last message was
// expunged) is reported with an error wrapping ErrNoSuchMessage.
func (s *ReadSnapshot) Open(ctx context.Context, m SnapshotMessage) (Body, error) {
	if m.inline {
		var raw []byte
		if err := s.tx.QueryRowContext(ctx, `SELECT body FROM bodies WHERE blob_id=?`, m.blob).Scan(&raw); err != nil {
			return nil, fmt.Errorf("store: snapshot body of uid %d: %w", m.UID, err)
		}
		return inlineBody{bytes.NewReader(raw)}, nil
	}
	f, err := os.Open(s.b.blobPath(m.hash))
	if errors.Is(err, fs.ErrNotExist) {
		// Gone since the snapshot began, or lost? The store as it is
		// now tells.
		var n int
		if qerr := s.b.rd.QueryRowContext(ctx, `SELECT count(*) FROM blobs WHERE hash=?`, m.hash).Scan(&n); qerr == nil && n == 0 {
			return nil, fmt.Errorf("store: snapshot body of uid %d: %w: expunged since the snapshot was taken", m.UID, ErrNoSuchMessage)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: snapshot body of uid %d: %w", m.UID, err)
	}
	return fileBody{f, m.Size}, nil
}
