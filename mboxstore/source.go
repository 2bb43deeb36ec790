package mboxstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// Config configures an mbox Source.
type Config struct {
	// Name is the source name used in logs and metric labels.
	Name string
	// PathTemplate is the spool path with "{user}" standing for the
	// account's user name, e.g. "/var/mail/{user}".
	PathTemplate string
	// Locks are the locks to take, in this order: "dotlock", "fcntl".
	// Nil means ["fcntl"]; use the same set and order as the local MDA.
	Locks []string
	// LockTimeout bounds each wait for a lock held elsewhere; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.PathTemplate == "" {
		errs = append(errs, errors.New("mboxstore: config: PathTemplate is empty"))
	}
	if err := validateLocks(c.Locks); err != nil {
		errs = append(errs, fmt.Errorf("mboxstore: config: Locks: %w", err))
	}
	if c.LockTimeout < 0 {
		errs = append(errs, fmt.Errorf("mboxstore: config: LockTimeout %v is negative", c.LockTimeout))
	}
	return errors.Join(errs...)
}

// SpoolPath returns the spool path of user. User names that could leave
// the spool directory ("/", "..") or that contain NUL are refused.
func (c Config) SpoolPath(user string) (string, error) {
	switch {
	case user == "":
		return "", errors.New("mboxstore: empty user name")
	case strings.ContainsAny(user, "/\x00"), strings.Contains(user, ".."):
		return "", fmt.Errorf("mboxstore: user name %q cannot name a spool file (contains \"/\", \"..\" or NUL)", user)
	}
	return strings.ReplaceAll(c.PathTemplate, "{user}", user), nil
}

func (c Config) locks() []string {
	if c.Locks == nil {
		return []string{LockFcntl}
	}
	return c.Locks
}

func (c Config) lockTimeout() time.Duration {
	if c.LockTimeout <= 0 {
		return DefaultLockTimeout
	}
	return c.LockTimeout
}

// Source is a bridge.Source over mbox spool files, one per user.
//
// It keeps, per spool, the previous listing (device and inode, size,
// mtime, the end of the last complete message, the messages and a
// fingerprint of the bytes at both ends of the listed part). A spool that
// has only grown is read from the end of the listed part; one that was
// rewritten or truncated is read again in full, and its messages keep
// their ids because ids are content keys. A last message that is not yet
// followed by a From_ line is listed only once the spool was seen
// unchanged (size and mtime) by two Lists in a row, or once it is followed
// by another message, or if its key was already listed before.
//
// Sessions on one spool are serialised within the process (fcntl locks
// belong to the process, so two sessions of one process would not exclude
// each other, and closing one's descriptor would drop the other's lock).
//
// Deletions are committed at Close by rewriting the spool in place (same
// inode) under an fcntl write lock, after checking that the spool still
// holds exactly what was listed (size, mtime, and the content key of every
// message to delete); otherwise nothing is deleted. A crash during the
// rewrite can leave torn or duplicated messages but loses none that the
// bridge had not stored (see README.md).
type Source struct {
	cfg    Config
	logger *slog.Logger

	mu     sync.Mutex
	spools map[string]*spool
}

var (
	_ bridge.Source        = (*Source)(nil)
	_ bridge.SourceSession = (*session)(nil)
)

// spool is the per-path state of a Source.
type spool struct {
	last *listing // used only by the session holding the spool (holdSpool)
}

// listing is what the previous List of a spool saw.
type listing struct {
	dev, ino uint64
	size     int64
	mtime    int64 // ns
	next     int64 // end of the listed part (Result.Next)
	fp       [sha256.Size]byte
	msgs     []entry // in spool order; shared, never modified in place
	// byID indexes msgs by id. A listing that only adds messages to the
	// previous one extends the previous one's map (which is not used
	// again), so a poll of a grown spool costs what it adds, not what
	// the spool holds. Built on first use when nil.
	byID map[bridge.SourceID]int
	// out is what List returns (the messages that are not internal),
	// kept and extended the same way.
	out []bridge.SourceMessage
}

type entry struct {
	Message
	id bridge.SourceID
}

// NewSource returns an mbox source. A nil logger discards.
func NewSource(cfg Config, logger *slog.Logger) *Source {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		cfg:    cfg,
		logger: logger.With("source", cfg.Name),
		spools: map[string]*spool{},
	}
}

// Name returns the configured source name.
func (s *Source) Name() string { return s.cfg.Name }

func (s *Source) spool(path string) *spool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spools[path]
	if sp == nil {
		sp = &spool{}
		s.spools[path] = sp
	}
	return sp
}

// Open starts a session on acct's spool: it waits for another session of
// this process on the same spool to end, then takes the configured locks
// (dotlock, then an fcntl read lock), each wait bounded by LockTimeout
// (an error wrapping bridge.ErrSourceBusy) and by ctx. The locks are held
// until Close or Abort. A spool file that does not exist is an empty
// mailbox. The spool must be a regular file; a symbolic link is refused.
func (s *Source) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	if err := s.cfg.Validate(); err != nil {
		return nil, err
	}
	path, err := s.cfg.SpoolPath(acct.User)
	if err != nil {
		return nil, err
	}
	timeout := s.cfg.lockTimeout()
	release, err := holdSpool(ctx, path, timeout)
	if err != nil {
		return nil, err
	}
	ss := &session{
		src:     s,
		sp:      s.spool(path),
		unhold:  release,
		path:    path,
		logger:  s.logger.With("user", acct.User, "file", path),
		timeout: timeout,
	}
	if err := ss.lock(ctx); err != nil {
		ss.release()
		return nil, err
	}
	return ss, nil
}

// session is one open session on a spool. It is used from one goroutine.
type session struct {
	src     *Source
	sp      *spool
	path    string
	logger  *slog.Logger
	timeout time.Duration
	unhold  func() // gives up the process-wide slot of the spool

	dot      *dotlock
	f        *os.File // nil: no spool file
	writable bool
	released bool

	listed  *listing // what List returned, with the file state it saw
	byID    map[bridge.SourceID]int
	deletes map[bridge.SourceID]bool
}

// lock takes the locks and opens the spool.
func (ss *session) lock(ctx context.Context) error {
	locks := ss.src.cfg.locks()
	if hasLock(locks, LockDotlock) {
		dl, err := takeDotlock(ctx, ss.path, ss.timeout, ss.logger)
		if err != nil {
			return err
		}
		ss.dot = dl
	}
	for attempt := 0; ; attempt++ {
		f, writable, err := openSpool(ss.path)
		if errors.Is(err, fs.ErrNotExist) {
			ss.dot.release() // nothing to protect
			ss.dot = nil
			return nil
		}
		if err != nil {
			return err
		}
		if hasLock(locks, LockFcntl) {
			if err := lockFcntl(ctx, f, false, ss.timeout); err != nil {
				f.Close()
				return err
			}
		}
		// The path may have been replaced (renamed over) or removed while
		// we waited for the lock: then lock the file it names now.
		fi, err1 := f.Stat()
		pi, err2 := os.Lstat(ss.path)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			ss.f, ss.writable = f, writable
			return nil
		}
		f.Close()
		if attempt == 3 {
			return fmt.Errorf("mboxstore: %s: the spool file keeps being replaced while locking it: %w", ss.path, bridge.ErrSourceBusy)
		}
	}
}

// openSpool opens the spool read-write if permitted (a rewrite needs it;
// an fcntl write lock needs a descriptor open for writing), else read-only.
func openSpool(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|oNoFollow, 0)
	writable := err == nil
	if errors.Is(err, fs.ErrPermission) || isReadOnlyFS(err) {
		f, err = os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	}
	if isSymlinkLoop(err) {
		return nil, false, fmt.Errorf("mboxstore: %s: the spool is a symbolic link; refusing to follow it", path)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("mboxstore: %s: open: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("mboxstore: %s: %w", path, err)
	}
	return f, writable, nil
}

type fileState struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func stat(f *os.File) (fileState, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileState{}, fmt.Errorf("mboxstore: %s: stat: %w", f.Name(), err)
	}
	st := fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	st.dev, st.ino = fileID(fi)
	return st, nil
}

func (l *listing) sameFile(st fileState) bool {
	return l != nil && l.dev == st.dev && l.ino == st.ino
}

// List returns every complete message in the spool. On a corrupt spool it
// returns the messages before the corruption together with an error
// wrapping ErrCorrupt that names the file and the byte offset.
func (ss *session) List(ctx context.Context) ([]bridge.SourceMessage, error) {
	if ss.released {
		return nil, fmt.Errorf("mboxstore: %s: list on a closed session", ss.path)
	}
	if ss.f == nil {
		ss.listed = &listing{}
		ss.byID = map[bridge.SourceID]int{}
		return []bridge.SourceMessage{}, nil
	}
	st, err := stat(ss.f)
	if err != nil {
		return nil, err
	}
	prev := ss.sp.last
	var (
		keep     []entry // messages still valid from prev
		start    int64
		complete bool
		known    map[Key]bool // keys of messages listed complete before
		mode     string
	)
	switch {
	case prev.sameFile(st) && prev.size == st.size && prev.mtime == st.mtime:
		if prev.next == st.size {
			ss.setListed(prev)
			ss.logger.Debug("mboxstore: spool unchanged", "messages", len(prev.msgs))
			return ss.result(), nil
		}
		// Unchanged since the last poll: the held-back tail is complete.
		keep, start, complete, mode = prev.msgs, prev.next, true, "settled"
	case prev.sameFile(st) && st.size > prev.size && ss.grown(prev):
		keep, start, mode = prev.msgs, prev.next, "grown"
	default:
		mode = "full"
		if prev != nil {
			known = make(map[Key]bool, len(prev.msgs))
			for _, e := range prev.msgs {
				known[e.Key] = true
			}
		}
	}
	res, scanErr := Scan(ctx, ss.f, ss.path, ScanOptions{Start: start, Size: st.size, Complete: complete, Keys: true})
	var ce *CorruptError
	if scanErr != nil && !errors.As(scanErr, &ce) {
		return nil, scanErr
	}
	if res.Tail != nil && known[res.Tail.Key] {
		// Listed complete before a rewrite by another program: still is.
		res.Messages = append(res.Messages, *res.Tail)
		res.Next = st.size
	}
	// keep is prev.msgs, which prev (replaced below) never uses past its
	// length: the new messages go after it, in its spare capacity where
	// there is some, so a grown spool's listing is not copied whole.
	msgs := keep
	if len(keep) == 0 {
		msgs = make([]entry, 0, len(res.Messages))
	}
	for _, m := range res.Messages {
		msgs = append(msgs, entry{Message: m})
	}
	assignIDsFrom(msgs, len(keep))
	l := &listing{dev: st.dev, ino: st.ino, size: st.size, mtime: st.mtime, next: res.Next, msgs: msgs}
	if l.fp, err = fingerprint(ss.f, l.next); err != nil {
		return nil, err
	}
	if len(keep) > 0 && prev.byID != nil && prev.out != nil {
		// keep is prev.msgs: the ids of the kept messages are the
		// same, at the same places. prev is replaced below.
		l.byID, prev.byID = prev.byID, nil
		l.out, prev.out = prev.out, nil
		for i := len(keep); i < len(msgs); i++ {
			l.byID[msgs[i].id] = i
			if !msgs[i].Internal {
				l.out = append(l.out, msgs[i].sourceMessage())
			}
		}
	}
	ss.sp.last = l
	ss.setListed(l)
	ss.logger.Debug("mboxstore: listed spool", "mode", mode, "from", start, "size", st.size,
		"messages", len(msgs), "new", len(res.Messages), "held_back", st.size-res.Next)
	if scanErr != nil {
		ss.logger.Warn("mboxstore: corrupt spool", "err", scanErr, "messages_before", len(msgs))
	}
	return ss.result(), scanErr
}

// grown reports whether the spool still holds what prev listed, so that it
// can be read on from prev.next: the fingerprint matches, and prev.next is
// a message boundary in the grown file (an empty line before it and "From "
// at it), exactly as a full read would find it.
func (ss *session) grown(prev *listing) bool {
	fp, err := fingerprint(ss.f, prev.next)
	if err != nil || fp != prev.fp {
		return false
	}
	if prev.next == 0 {
		return true
	}
	lo := max(0, prev.next-3)
	b := make([]byte, prev.next+int64(len(fromSP))-lo)
	n, _ := ss.f.ReadAt(b, lo)
	b = b[:n]
	cut := int(prev.next - lo)
	if len(b) < cut {
		return false
	}
	before, at := b[:cut], b[cut:]
	blank := len(before) >= 2 && before[len(before)-1] == '\n' &&
		(before[len(before)-2] == '\n' || len(before) >= 3 && before[len(before)-2] == '\r' && before[len(before)-3] == '\n')
	// A From_ line not fully written yet reads the same either way.
	return blank && bytes.HasPrefix(fromSP, at[:min(len(at), len(fromSP))])
}

// assignIDsFrom gives msgs[from:] their source ids, msgs[:from] having
// theirs already: the key numbered by occurrence among identical messages,
// counting the ones before.
func assignIDsFrom(msgs []entry, from int) {
	if from == 0 {
		assignIDs(msgs)
		return
	}
	seen := make(map[Key]int, len(msgs)-from)
	for i := from; i < len(msgs); i++ {
		seen[msgs[i].Key] = 0
	}
	if len(seen) == 0 {
		return
	}
	for i := 0; i < from; i++ {
		if n, ok := seen[msgs[i].Key]; ok {
			seen[msgs[i].Key] = n + 1
		}
	}
	for i := from; i < len(msgs); i++ {
		seen[msgs[i].Key]++
		msgs[i].id = msgs[i].Key.SourceID(seen[msgs[i].Key])
	}
}

// assignIDs gives every message its source id: the key, numbered by
// occurrence among identical messages.
func assignIDs(msgs []entry) {
	seen := make(map[Key]int, len(msgs))
	for i := range msgs {
		seen[msgs[i].Key]++
		msgs[i].id = msgs[i].Key.SourceID(seen[msgs[i].Key])
	}
}

// fingerprint hashes the first and the last 4 KiB before next.
func fingerprint(r io.ReaderAt, next int64) ([sha256.Size]byte, error) {
	h := sha256.New()
	buf := make([]byte, 4096)
	for _, off := range []int64{0, max(0, next-int64(len(buf)))} {
		n := int(min(int64(len(buf)), next-off))
		if n <= 0 {
			continue
		}
		if _, err := r.ReadAt(buf[:n], off); err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("mboxstore: fingerprint at byte %d: %w", off, err)
		}
		h.Write(buf[:n])
	}
	var fp [sha256.Size]byte
	h.Sum(fp[:0])
	return fp, nil
}

func (ss *session) setListed(l *listing) {
	ss.listed = l
	if l.byID == nil {
		l.byID = make(map[bridge.SourceID]int, len(l.msgs))
		for i, e := range l.msgs {
			l.byID[e.id] = i
		}
	}
	ss.byID = l.byID
}

// result is the listing as List returns it: a slice the caller may keep
// but not modify (capped, so an append by the caller copies it).
func (ss *session) result() []bridge.SourceMessage {
	l := ss.listed
	if l.out == nil {
		l.out = make([]bridge.SourceMessage, 0, len(l.msgs))
		for _, e := range l.msgs {
			if !e.Internal {
				l.out = append(l.out, e.sourceMessage())
			}
		}
	}
	return l.out[:len(l.out):len(l.out)]
}

func (e *entry) sourceMessage() bridge.SourceMessage {
	return bridge.SourceMessage{ID: e.id, Size: e.Size, Date: e.Date}
}

func (ss *session) lookup(id bridge.SourceID) (entry, bool) {
	if ss.listed == nil {
		return entry{}, false
	}
	i, ok := ss.byID[id]
	if !ok || i >= len(ss.listed.msgs) || ss.listed.msgs[i].Internal {
		return entry{}, false
	}
	return ss.listed.msgs[i], true
}

// Fetch streams the message id of the last List: unescaped, CRLF. The
// stream re-checks the message's key and ends with an error wrapping
// ErrChanged if the spool no longer holds it there.
func (ss *session) Fetch(ctx context.Context, id bridge.SourceID) (io.ReadCloser, error) {
	if ss.released {
		return nil, fmt.Errorf("mboxstore: %s: fetch on a closed session", ss.path)
	}
	e, ok := ss.lookup(id)
	if !ok {
		return nil, fmt.Errorf("mboxstore: %s: fetch %s: %w", ss.path, id, bridge.ErrSourceGone)
	}
	return newMessageReader(ctx, ss.f, ss.path, e.Message), nil
}

// Delete marks messages of the last List for deletion at Close. Unknown ids
// are an error wrapping bridge.ErrSourceGone and mark nothing. A marked
// message that a later List of the session no longer shows is gone
// already and is not an error at Close.
func (ss *session) Delete(ctx context.Context, ids []bridge.SourceID) error {
	if ss.released {
		return fmt.Errorf("mboxstore: %s: delete on a closed session", ss.path)
	}
	for _, id := range ids {
		if _, ok := ss.lookup(id); !ok {
			return fmt.Errorf("mboxstore: %s: delete %s: %w", ss.path, id, bridge.ErrSourceGone)
		}
	}
	if ss.deletes == nil {
		ss.deletes = map[bridge.SourceID]bool{}
	}
	for _, id := range ids {
		ss.deletes[id] = true
	}
	return nil
}

// Close commits the deletions (see rewrite) and releases the locks. If the
// rewrite is refused or fails, nothing is deleted, the locks are released
// all the same, and the error says why.
func (ss *session) Close(ctx context.Context) error {
	if ss.released {
		return nil
	}
	defer ss.release()
	if len(ss.deletes) == 0 {
		return nil
	}
	n, err := ss.rewrite(ctx)
	if err != nil {
		ss.logger.Warn("mboxstore: deletions not committed", "messages", len(ss.deletes), "err", err)
		return err
	}
	if n > 0 {
		ss.logger.Info("mboxstore: deleted messages from the spool", "messages", n)
	}
	return nil
}

// Abort releases the locks and deletes nothing.
func (ss *session) Abort() { ss.release() }

// release drops the fcntl lock (by closing the only descriptor), then the
// dotlock, then the session slot. It is idempotent.
func (ss *session) release() {
	if ss.released {
		return
	}
	ss.released = true
	if ss.f != nil {
		if err := ss.f.Close(); err != nil {
			ss.logger.Warn("mboxstore: close spool", "err", err)
		}
		ss.f = nil
	}
	ss.dot.release()
	ss.dot = nil
	ss.unhold()
}
