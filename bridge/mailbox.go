package bridge

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Mailbox is one live mailbox, shared by every session that has it open.
// It keeps an in-memory index of its messages (UID, flags, size, date) in
// step with the store: every change is committed first, then applied to the
// index and told to the observers, all under the mailbox's lock.
type Mailbox struct {
	b    *Bridge
	user *User
	id   MailboxID

	mu            sync.Mutex
	gone          bool
	name          string
	specialUse    string
	uidValidity   UIDValidity
	uidNext       UID
	highestModSeq ModSeq
	msgs          []entry // ascending UID
	// recentUID is the highest UID a session has taken as recent; the
	// messages above it are recent for the next session that opens the
	// mailbox (see Watch).
	recentUID UID
	// watches are the sessions that have the mailbox open, oldest first.
	watches []*Watch
	// The summary, kept in step with msgs so that STATUS, LIST-STATUS and
	// SELECT never walk the index.
	unseen, deleted uint32
	size            int64
	keywords        map[string]int // keyword → messages carrying it
}

type entry struct {
	uid    UID
	flags  []string
	size   int64
	date   int64 // unix nanoseconds
	zone   int32 // seconds east of UTC the date was given in
	zoned  bool  // false for messages stored before zones were kept
	modseq ModSeq
	blob   int64
	inline bool // the body is in the bodies table, not a file
	hash   [32]byte
}

// count adds (sign 1) or removes (sign -1) e's share of the summary.
// Called with m.mu held.
func (m *Mailbox) count(e *entry, sign int) {
	seen := false
	for _, f := range e.flags {
		switch {
		case f == FlagSeen:
			seen = true
		case f == FlagDeleted:
			m.deleted = uint32(int(m.deleted) + sign)
		case !strings.HasPrefix(f, `\`):
			if m.keywords == nil {
				m.keywords = make(map[string]int)
			}
			if n := m.keywords[f] + sign; n > 0 {
				m.keywords[f] = n
			} else {
				delete(m.keywords, f)
			}
		}
	}
	if !seen {
		m.unseen = uint32(int(m.unseen) + sign)
	}
	m.size += int64(sign) * e.size
}

// internalDate is the entry's date in the zone it was given in.
func (e *entry) internalDate() time.Time {
	t := time.Unix(0, e.date)
	if e.zoned {
		return t.In(zoneAt(e.zone))
	}
	return t
}

var zones sync.Map // int32 → *time.Location

// zoneAt returns a fixed zone for an offset, one shared value per offset.
func zoneAt(offset int32) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	if l, ok := zones.Load(offset); ok {
		return l.(*time.Location)
	}
	l, _ := zones.LoadOrStore(offset, time.FixedZone("", int(offset)))
	return l.(*time.Location)
}

// zoneOf returns t's offset in seconds east of UTC.
func zoneOf(t time.Time) int32 {
	_, off := t.Zone()
	return int32(off)
}

func (b *Bridge) mailboxByID(ctx context.Context, u *User, id MailboxID) (*Mailbox, error) {
	b.mu.Lock()
	if mb, ok := b.mailboxes[id]; ok {
		b.mu.Unlock()
		return mb, nil
	}
	b.mu.Unlock()
	mb := &Mailbox{b: b, user: u, id: id}
	var uv, next, hms, recent int64
	err := b.rd.QueryRowContext(ctx, `SELECT name, special_use, uid_validity, uid_next, highest_modseq, recent_uid FROM mailboxes WHERE id=? AND user_id=?`, id, u.id).
		Scan(&mb.name, &mb.specialUse, &uv, &next, &hms, &recent)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoSuchMailbox
	}
	if err != nil {
		return nil, fmt.Errorf("store: load mailbox %d: %w", id, err)
	}
	mb.uidValidity, mb.uidNext, mb.highestModSeq, mb.recentUID = UIDValidity(uv), UID(next), ModSeq(hms), UID(recent)
	rows, err := b.rd.QueryContext(ctx, `SELECT m.uid, m.flags, m.internal_date, m.date_zone, m.modseq, b.id, b.size, b.hash, b.inline FROM messages m JOIN blobs b ON b.id=m.blob_id WHERE m.mailbox_id=? ORDER BY m.uid`, id)
	if err != nil {
		return nil, fmt.Errorf("store: load mailbox %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e entry
		var flags, hash string
		var zone sql.NullInt32
		if err := rows.Scan(&e.uid, &flags, &e.date, &zone, &e.modseq, &e.blob, &e.size, &hash, &e.inline); err != nil {
			return nil, fmt.Errorf("store: load mailbox %d: %w", id, err)
		}
		e.flags = splitFlags(flags)
		e.zone, e.zoned = zone.Int32, zone.Valid
		hex.Decode(e.hash[:], []byte(hash))
		mb.msgs = append(mb.msgs, e)
		mb.count(&mb.msgs[len(mb.msgs)-1], 1)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: load mailbox %d: %w", id, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if existing, ok := b.mailboxes[id]; ok {
		return existing, nil
	}
	b.mailboxes[id] = mb
	return mb, nil
}

// ID is the mailbox's store key; it survives renames.
func (m *Mailbox) ID() MailboxID { return m.id }

// User is the mailbox's owner.
func (m *Mailbox) User() *User { return m.user }

// Name is the mailbox's current name.
func (m *Mailbox) Name() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.name
}

// Info describes the mailbox now.
func (m *Mailbox) Info() MailboxInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infoLocked()
}

func (m *Mailbox) infoLocked() MailboxInfo {
	info := MailboxInfo{
		ID:            m.id,
		Name:          m.name,
		SpecialUse:    m.specialUse,
		UIDValidity:   m.uidValidity,
		UIDNext:       m.uidNext,
		HighestModSeq: m.highestModSeq,
		Messages:      uint32(len(m.msgs)),
		Unseen:        m.unseen,
		Deleted:       m.deleted,
		Size:          m.size,
		Recent:        uint32(len(m.msgs) - m.indexAbove(m.recentUID)),
	}
	if len(m.keywords) > 0 {
		info.Keywords = make([]string, 0, len(m.keywords))
		for k := range m.keywords {
			info.Keywords = append(info.Keywords, k)
		}
		sort.Strings(info.Keywords)
	}
	return info
}

// indexAbove returns the index of the first message with a UID above uid.
// Called with m.mu held.
func (m *Mailbox) indexAbove(uid UID) int {
	return sort.Search(len(m.msgs), func(i int) bool { return m.msgs[i].uid > uid })
}

// View calls fn with the mailbox's UIDs in order, under the mailbox lock:
// no change happens while fn runs, and every change after it is told to the
// observers. fn must not call back into the mailbox.
func (m *Mailbox) View(fn func(info MailboxInfo, uids []UID)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	uids := make([]UID, len(m.msgs))
	for i, e := range m.msgs {
		uids[i] = e.uid
	}
	fn(m.infoLocked(), uids)
}

// Snapshot is a mailbox as a Watch found it when it began.
type Snapshot struct {
	Info MailboxInfo
	// UIDs are the mailbox's messages, ascending.
	UIDs []UID
	// FirstUnseen is the lowest UID without \Seen, 0 if there is none.
	FirstUnseen UID
	// FirstRecent: the messages with this UID or above are recent for the
	// watch (UIDNext when none is).
	FirstRecent UID
	// Watch is the watch being opened, set before fn runs, so that an
	// observer can record it under the mailbox lock and recognise it in
	// the events that follow (Appended's recentFor) from the first one.
	Watch *Watch
}

// Watch is one session's hold on a mailbox it has open (an IMAP SELECT or
// EXAMINE). Watches decide where \Recent goes: a message is recent in
// exactly one session, the first to open the mailbox after it arrived.
// A claiming watch (a read-write session) takes every message not yet
// taken as recent when it opens, and every message that arrives while it
// is the oldest claiming watch open. A watch that does not claim (read-only)
// sees as recent what nobody has taken, and takes nothing.
type Watch struct {
	mb     *Mailbox
	claim  bool
	closed bool
}

// Watch opens the mailbox for a session. Under the mailbox lock it takes
// the recent messages (if claim) and calls fn with the snapshot, so that
// the snapshot and the observer events after it fit together exactly; fn
// must not call back into the mailbox. Taking the recent messages is
// recorded in the store; if that write fails the watch still opens (the
// messages are recent again after a restart, which is harmless).
func (m *Mailbox) Watch(ctx context.Context, claim bool, fn func(Snapshot)) (*Watch, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchMailbox, m.name)
	}
	snap := Snapshot{Info: m.infoLocked(), UIDs: make([]UID, len(m.msgs)), FirstRecent: m.recentUID + 1}
	for i := range m.msgs {
		e := &m.msgs[i]
		snap.UIDs[i] = e.uid
		if snap.FirstUnseen == 0 && !hasFlag(e.flags, FlagSeen) {
			snap.FirstUnseen = e.uid
		}
	}
	if last := m.uidNext - 1; claim && last > m.recentUID {
		err := m.b.write(ctx, func(tx *wtx) error {
			_, err := tx.ExecContext(ctx, `UPDATE mailboxes SET recent_uid=? WHERE id=?`, last, m.id)
			return err
		})
		if err != nil {
			m.b.log.Warn("store: could not record recent messages as seen by a session", "mailbox", m.name, "err", err)
		}
		m.recentUID = last
	}
	w := &Watch{mb: m, claim: claim}
	m.watches = append(m.watches, w)
	snap.Watch = w
	fn(snap)
	return w, nil
}

// Mailbox is the watched mailbox.
func (w *Watch) Mailbox() *Mailbox { return w.mb }

// Close ends the watch. fn, if not nil, runs under the mailbox lock once
// the watch no longer gets messages, so an observer can drop its state for
// the session without an event slipping in between. Close is idempotent.
func (w *Watch) Close(fn func()) {
	m := w.mb
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	for i, x := range m.watches {
		if x == w {
			m.watches = append(m.watches[:i], m.watches[i+1:]...)
			break
		}
	}
	if fn != nil {
		fn()
	}
}

// UIDs returns the mailbox's UIDs in order.
func (m *Mailbox) UIDs() []UID {
	var out []UID
	m.View(func(_ MailboxInfo, uids []UID) { out = uids })
	return out
}

// Message is what the store knows of one message without reading its body.
type Message struct {
	UID          UID
	Flags        []string
	InternalDate time.Time
	Size         int64
	ModSeq       ModSeq
	// Index is what the Indexer computed at ingest (nil without one).
	Index []byte
}

// Messages returns the messages among uids still in the mailbox, in UID
// order. withIndex loads the ingest index too (one query for the lot).
func (m *Mailbox) Messages(ctx context.Context, uids []UID, withIndex bool) ([]Message, error) {
	sorted := append([]UID(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	m.mu.Lock()
	if m.gone {
		m.mu.Unlock()
		return nil, ErrNoSuchMailbox
	}
	out := make([]Message, 0, len(sorted))
	j := 0
	for _, uid := range sorted {
		for j < len(m.msgs) && m.msgs[j].uid < uid {
			j++
		}
		if j < len(m.msgs) && m.msgs[j].uid == uid {
			e := m.msgs[j]
			out = append(out, Message{UID: e.uid, Flags: e.flags, InternalDate: e.internalDate(), Size: e.size, ModSeq: e.modseq})
		}
	}
	m.mu.Unlock()
	if !withIndex || len(out) == 0 {
		return out, nil
	}
	if err := m.loadIndex(ctx, out); err != nil {
		return nil, fmt.Errorf("store: fetch index: %w", err)
	}
	return out, nil
}

// maxInList bounds the UIDs named in one "uid IN (…)" query (a variable
// so that a test can make it small).
var maxInList = 500

// loadIndex fills in the ingest index of msgs (ascending UIDs). A dense
// set is read as one UID range; a sparse one (fewer than a quarter of the
// range's UIDs) by naming its UIDs, so "1,90000" reads two rows, not 90000.
func (m *Mailbox) loadIndex(ctx context.Context, msgs []Message) error {
	first, last := msgs[0].UID, msgs[len(msgs)-1].UID
	if span := int64(last) - int64(first) + 1; int64(len(msgs))*4 >= span {
		return m.scanIndex(ctx, msgs, `SELECT m.uid, b.idx FROM messages m JOIN blobs b ON b.id=m.blob_id WHERE m.mailbox_id=? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`, m.id, first, last)
	}
	for start := 0; start < len(msgs); start += maxInList {
		chunk := msgs[start:min(start+maxInList, len(msgs))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, m.id)
		for _, msg := range chunk {
			args = append(args, msg.UID)
		}
		if err := m.scanIndex(ctx, chunk, `SELECT m.uid, b.idx FROM messages m JOIN blobs b ON b.id=m.blob_id WHERE m.mailbox_id=? AND m.uid IN (`+placeholders(len(chunk))+`) ORDER BY m.uid`, args...); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mailbox) scanIndex(ctx context.Context, msgs []Message, query string, args ...any) error {
	rows, err := m.b.rd.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	k := 0
	for rows.Next() {
		var uid UID
		var idx []byte
		if err := rows.Scan(&uid, &idx); err != nil {
			return err
		}
		for k < len(msgs) && msgs[k].UID < uid {
			k++
		}
		if k < len(msgs) && msgs[k].UID == uid {
			msgs[k].Index = idx
		}
	}
	return rows.Err()
}

// Body is a stored message's bytes, exactly as stored, open for reading
// from the start or at any offset. Close it when done.
type Body interface {
	io.Reader
	io.ReaderAt
	io.Closer
	// Size is the message's length in bytes (RFC822.SIZE).
	Size() int64
}

// fileBody is a message stored as a file of its own.
type fileBody struct {
	*os.File
	size int64
}

func (f fileBody) Size() int64 { return f.size }

// inlineBody is a message stored inline, read whole from the database.
type inlineBody struct{ *bytes.Reader }

func (inlineBody) Close() error { return nil }

// Open opens a message's body for reading: the bytes exactly as stored.
func (m *Mailbox) Open(ctx context.Context, uid UID) (Body, error) {
	m.mu.Lock()
	e, ok := m.findLocked(uid)
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: uid %d", ErrNoSuchMessage, uid)
	}
	var (
		body Body
		err  error
		gone bool
	)
	if e.inline {
		var raw []byte
		err = m.b.readBody.QueryRowContext(ctx, e.blob).Scan(&raw)
		gone = errors.Is(err, sql.ErrNoRows)
		body = inlineBody{bytes.NewReader(raw)}
	} else {
		var f *os.File
		f, err = os.Open(m.b.blobPath(hex.EncodeToString(e.hash[:])))
		gone = errors.Is(err, fs.ErrNotExist)
		body = fileBody{f, e.size}
	}
	if err != nil {
		// An expunge may have taken the message, and removed its blob,
		// between the lookup above and the read: that is a message
		// gone, not a store failure.
		if gone {
			m.mu.Lock()
			_, still := m.findLocked(uid)
			m.mu.Unlock()
			if !still {
				return nil, fmt.Errorf("%w: uid %d", ErrNoSuchMessage, uid)
			}
		}
		return nil, fmt.Errorf("store: open message %d: %w", uid, err)
	}
	return body, nil
}

func (m *Mailbox) findLocked(uid UID) (entry, bool) {
	i := sort.Search(len(m.msgs), func(i int) bool { return m.msgs[i].uid >= uid })
	if i < len(m.msgs) && m.msgs[i].uid == uid {
		return m.msgs[i], true
	}
	return entry{}, false
}

// newMessage is a message about to be added at the end of a mailbox.
type newMessage struct {
	blob  *pendingBlob
	flags []string
	date  time.Time
	// origin links it to the source-id map (nil for APPEND).
	origin *originRef
}

// add commits a pending blob as a new message at the end of the mailbox.
// origin links it to the source-id map (nil for APPEND).
func (m *Mailbox) add(ctx context.Context, p *pendingBlob, flags []string, date time.Time, origin *originRef) (UID, error) {
	uids, err := m.addBatch(ctx, []newMessage{{blob: p, flags: flags, date: date, origin: origin}})
	if err != nil {
		return 0, err
	}
	return uids[0], nil
}

// addBatch commits msgs as new messages at the end of the mailbox, in
// order, in one write transaction: their blobs are placed and made durable
// together (commitBlobs), then one commit records them all. Observers hear
// of the batch in one Appended call. Either every message of the batch is
// stored or none is.
func (m *Mailbox) addBatch(ctx context.Context, msgs []newMessage) ([]UID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return nil, ErrNoSuchMailbox
	}
	// A client's APPEND (no origin) is held to the caps and the quota;
	// mail from a source is always stored (it would be polled again and
	// again otherwise, and it brings no keywords).
	appended := true
	var flagLists [][]string
	var size int64
	for _, nm := range msgs {
		appended = appended && nm.origin == nil
		flagLists = append(flagLists, nm.flags)
		size += nm.blob.size
	}
	if appended {
		if err := m.checkKeywordsLocked(flagLists...); err != nil {
			return nil, fmt.Errorf("store: add to %q: %w", m.name, err)
		}
	}
	entries := make([]entry, len(msgs))
	err := m.b.write(ctx, func(tx *wtx) error {
		if appended {
			if err := m.user.checkQuota(ctx, tx, int64(len(msgs)), size); err != nil {
				return err
			}
		}
		blobs := make([]*pendingBlob, len(msgs))
		for i := range msgs {
			blobs[i] = msgs[i].blob
		}
		blobIDs, err := commitBlobs(ctx, tx, blobs)
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO messages(mailbox_id, uid, blob_id, flags, internal_date, date_zone, modseq, origin_id) VALUES (?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		var org *sql.Stmt
		uid, modseq := m.uidNext, m.highestModSeq
		for i, nm := range msgs {
			var originID sql.NullInt64
			if nm.origin != nil {
				if org == nil {
					if org, err = tx.PrepareContext(ctx, insertOrigin); err != nil {
						return err
					}
					defer org.Close()
				}
				id, err := nm.origin.insert(ctx, org)
				if err != nil {
					return err
				}
				originID = sql.NullInt64{Int64: id, Valid: true}
			}
			modseq++
			e := entry{uid: uid, flags: nm.flags, size: nm.blob.size, date: nm.date.UnixNano(), zone: zoneOf(nm.date), zoned: true, modseq: modseq, blob: blobIDs[i], inline: nm.blob.inline}
			hex.Decode(e.hash[:], []byte(nm.blob.hash))
			if _, err := ins.ExecContext(ctx, m.id, e.uid, e.blob, joinFlags(nm.flags), e.date, e.zone, e.modseq, originID); err != nil {
				return err
			}
			entries[i] = e
			uid++
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uid_next=?, highest_modseq=?, recent_uid=? WHERE id=?`, uid, modseq, m.recentAfterLocked(uid-1), m.id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: add %d messages to %q: %w", len(msgs), m.name, err)
	}
	var origins []*originRef
	for _, nm := range msgs {
		if nm.origin != nil {
			origins = append(origins, nm.origin)
		}
	}
	m.b.known.stored(origins)
	uids := make([]UID, len(entries))
	arrived := make([]MessageFlags, len(entries))
	for i, e := range entries {
		m.msgs = append(m.msgs, e)
		m.count(&m.msgs[len(m.msgs)-1], 1)
		uids[i] = e.uid
		arrived[i] = MessageFlags{UID: e.uid, Flags: e.flags}
	}
	last := entries[len(entries)-1]
	m.uidNext = last.uid + 1
	m.highestModSeq = last.modseq
	m.arrivedLocked(arrived)
	return uids, nil
}

// recentAfterLocked is what recentUID becomes when messages up to last
// arrive: they are taken as recent at once if a claiming watch is open.
func (m *Mailbox) recentAfterLocked(last UID) UID {
	if m.claimerLocked() != nil {
		return last
	}
	return m.recentUID
}

// arrivedLocked records new messages (already in m.msgs) as recent for the
// oldest claiming watch, if any, and tells the observers.
func (m *Mailbox) arrivedLocked(msgs []MessageFlags) {
	w := m.claimerLocked()
	if w != nil {
		m.recentUID = msgs[len(msgs)-1].UID
	}
	for _, o := range m.b.observerList() {
		o.Appended(m, msgs, w)
	}
}

func (m *Mailbox) claimerLocked() *Watch {
	for _, w := range m.watches {
		if w.claim {
			return w
		}
	}
	return nil
}

// FlagOp says how Store changes flags.
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// MessageFlags is one message's flags after a Store.
type MessageFlags struct {
	UID   UID
	Flags []string
}

// Store changes the flags of the messages among uids still present and
// returns every matched message's flags afterwards. Observers hear of each
// message whose flags really changed, with origin passed along.
func (m *Mailbox) Store(ctx context.Context, uids []UID, op FlagOp, flags []string, origin any) ([]MessageFlags, error) {
	flags = NormalizeFlags(flags)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return nil, ErrNoSuchMailbox
	}
	type change struct {
		i     int
		flags []string
	}
	var changes []change
	var out []MessageFlags
	for _, uid := range uids {
		i := sort.Search(len(m.msgs), func(i int) bool { return m.msgs[i].uid >= uid })
		if i >= len(m.msgs) || m.msgs[i].uid != uid {
			continue
		}
		cur := m.msgs[i].flags
		var next []string
		switch op {
		case FlagsSet:
			next = flags
		case FlagsAdd:
			next = NormalizeFlags(append(append([]string(nil), cur...), flags...))
		case FlagsRemove:
			for _, f := range cur {
				if !hasFlag(flags, f) {
					next = append(next, f)
				}
			}
		}
		next = NormalizeFlags(next)
		out = append(out, MessageFlags{UID: uid, Flags: next})
		if joinFlags(next) != joinFlags(cur) {
			changes = append(changes, change{i, next})
		}
	}
	if len(changes) == 0 {
		return out, nil
	}
	lists := make([][]string, len(changes))
	for i, c := range changes {
		lists[i] = c.flags
	}
	if err := m.checkKeywordsLocked(lists...); err != nil {
		return nil, fmt.Errorf("store: flags in %q: %w", m.name, err)
	}
	modseq := m.highestModSeq
	err := m.b.write(ctx, func(tx *wtx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE messages SET flags=?, modseq=? WHERE mailbox_id=? AND uid=?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range changes {
			modseq++
			if _, err := stmt.ExecContext(ctx, joinFlags(c.flags), modseq, m.id, m.msgs[c.i].uid); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET highest_modseq=? WHERE id=?`, modseq, m.id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: flags in %q: %w", m.name, err)
	}
	obs := m.b.observerList()
	ms := m.highestModSeq
	for _, c := range changes {
		ms++
		m.count(&m.msgs[c.i], -1)
		m.msgs[c.i].flags = c.flags
		m.count(&m.msgs[c.i], 1)
		m.msgs[c.i].modseq = ms
		for _, o := range obs {
			o.FlagsChanged(m, m.msgs[c.i].uid, c.flags, origin)
		}
	}
	m.highestModSeq = modseq
	return out, nil
}

// Expunge removes the messages flagged \Deleted, limited to uids when uids
// is not nil, and returns the UIDs removed.
func (m *Mailbox) Expunge(ctx context.Context, uids []UID) ([]UID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return nil, ErrNoSuchMailbox
	}
	var limit map[UID]bool
	if uids != nil {
		limit = make(map[UID]bool, len(uids))
		for _, u := range uids {
			limit[u] = true
		}
	}
	var del []UID
	for _, e := range m.msgs {
		if hasFlag(e.flags, FlagDeleted) && (limit == nil || limit[e.uid]) {
			del = append(del, e.uid)
		}
	}
	if len(del) == 0 {
		return nil, nil
	}
	if err := m.removeLocked(ctx, del); err != nil {
		return nil, err
	}
	return del, nil
}

// removeLocked deletes messages (uids ascending, every one in the
// mailbox) in one transaction, as a user's expunge (an on_expunge source
// deletes them at the host), then applies it to the index and tells the
// observers. It returns once the change is durable. Called with m.mu held.
func (m *Mailbox) removeLocked(ctx context.Context, del []UID) error {
	err := m.b.write(ctx, func(tx *wtx) error {
		if err := removeMessages(ctx, tx, m.id, del); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highest_modseq=highest_modseq+1 WHERE id=?`, m.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: expunge in %q: %w", m.name, err)
	}
	m.expungedLocked(del)
	return nil
}

// expungedLocked applies an expunge just committed (uids ascending, every
// one in the mailbox, highest_modseq bumped by one in the store) to the
// index and tells the observers: the one path of every expunge (EXPUNGE,
// MOVE, DELETE of the mailbox). Called with m.mu held.
func (m *Mailbox) expungedLocked(uids []UID) {
	m.highestModSeq++
	gone := make(map[UID]bool, len(uids))
	for _, u := range uids {
		gone[u] = true
	}
	kept := m.msgs[:0]
	for i := range m.msgs {
		if gone[m.msgs[i].uid] {
			m.count(&m.msgs[i], -1)
			continue
		}
		kept = append(kept, m.msgs[i])
	}
	for i := len(kept); i < len(m.msgs); i++ {
		m.msgs[i] = entry{}
	}
	m.msgs = kept
	for _, o := range m.b.observerList() {
		o.Expunged(m, uids)
	}
}

// removeMessages deletes message rows, drops their blob references and
// marks their origins as expunged by the user (so an on_expunge policy
// deletes them at the source).
func removeMessages(ctx context.Context, tx *wtx, mailbox MailboxID, uids []UID) error {
	var blobs []int64
	var origins []int64
	stmt, err := tx.PrepareContext(ctx, `DELETE FROM messages WHERE mailbox_id=? AND uid=? RETURNING blob_id, origin_id`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, uid := range uids {
		var blob int64
		var origin sql.NullInt64
		if err := stmt.QueryRowContext(ctx, mailbox, uid).Scan(&blob, &origin); err != nil {
			return fmt.Errorf("remove uid %d: %w", uid, err)
		}
		blobs = append(blobs, blob)
		if origin.Valid {
			origins = append(origins, origin.Int64)
		}
	}
	for _, o := range origins {
		if _, err := tx.ExecContext(ctx, `UPDATE origins SET state=? WHERE id=? AND state=? AND NOT EXISTS (SELECT 1 FROM messages WHERE origin_id=?)`, originExpunged, o, originLive, o); err != nil {
			return err
		}
	}
	if len(origins) > 0 {
		tx.originsChanged = true
	}
	return unrefBlobs(ctx, tx, blobs)
}

// CopyTo copies messages to dest, keeping flags and internal dates, and
// returns dest's UIDVALIDITY with the source and new UIDs, pairwise.
func (m *Mailbox) CopyTo(ctx context.Context, uids []UID, dest *Mailbox) (UIDValidity, []UID, []UID, error) {
	return m.transfer(ctx, uids, dest, false, nil)
}

// MoveTo moves messages to dest atomically: one transaction, and observers
// of both mailboxes told under both locks.
func (m *Mailbox) MoveTo(ctx context.Context, uids []UID, dest *Mailbox, origin any) (UIDValidity, []UID, []UID, error) {
	return m.transfer(ctx, uids, dest, true, origin)
}

func (m *Mailbox) transfer(ctx context.Context, uids []UID, dest *Mailbox, move bool, _ any) (UIDValidity, []UID, []UID, error) {
	if dest.user != m.user {
		return 0, nil, nil, errors.New("store: copy across users")
	}
	// Lock both in ID order; the same mailbox is locked once.
	first, second := m, dest
	if second.id < first.id {
		first, second = second, first
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != first {
		second.mu.Lock()
		defer second.mu.Unlock()
	}
	if m.gone || dest.gone {
		return 0, nil, nil, ErrNoSuchMailbox
	}
	sorted := append([]UID(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var src []entry
	for _, uid := range sorted {
		if e, ok := m.findLocked(uid); ok {
			src = append(src, e)
		}
	}
	if len(src) == 0 {
		return dest.uidValidity, nil, nil, nil
	}
	// A COPY adds to the user's usage and may bring keywords; a MOVE
	// brings keywords but adds nothing to the usage (a user at the quota
	// can still move mail to Trash).
	lists := make([][]string, len(src))
	var size int64
	for i, e := range src {
		lists[i] = e.flags
		size += e.size
	}
	if err := dest.checkKeywordsLocked(lists...); err != nil {
		return 0, nil, nil, fmt.Errorf("store: copy to %q: %w", dest.name, err)
	}
	var added []entry
	var srcUIDs, dstUIDs []UID
	next := dest.uidNext
	modseq := dest.highestModSeq
	err := m.b.write(ctx, func(tx *wtx) error {
		if !move {
			if err := m.user.checkQuota(ctx, tx, int64(len(src)), size); err != nil {
				return err
			}
		}
		for _, e := range src {
			modseq++
			ne := e
			ne.uid = next
			ne.modseq = modseq
			next++
			// The copy keeps the link to the source message (copies and
			// moves alike): the source message counts as expunged by the
			// user only once every copy is gone, so a client that moves by
			// COPY + EXPUNGE never triggers an on_expunge deletion.
			zone := sql.NullInt32{Int32: e.zone, Valid: e.zoned}
			args := []any{dest.id, ne.uid, e.blob, joinFlags(e.flags), e.date, zone, ne.modseq, m.id, e.uid}
			if _, err := tx.ExecContext(ctx, `INSERT INTO messages(mailbox_id, uid, blob_id, flags, internal_date, date_zone, modseq, origin_id) VALUES (?,?,?,?,?,?,?,(SELECT origin_id FROM messages WHERE mailbox_id=? AND uid=?))`, args...); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE blobs SET refs=refs+1 WHERE id=?`, e.blob); err != nil {
				return err
			}
			added = append(added, ne)
			srcUIDs = append(srcUIDs, e.uid)
			dstUIDs = append(dstUIDs, ne.uid)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_next=?, highest_modseq=?, recent_uid=? WHERE id=?`, next, modseq, dest.recentAfterLocked(next-1), dest.id); err != nil {
			return err
		}
		if move {
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET origin_id=NULL WHERE mailbox_id=? AND uid IN (`+placeholders(len(srcUIDs))+`)`, append([]any{m.id}, uidArgs(srcUIDs)...)...); err != nil {
				return err
			}
			if err := removeMessages(ctx, tx, m.id, srcUIDs); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highest_modseq=highest_modseq+1 WHERE id=?`, m.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		op := "copy"
		if move {
			op = "move"
		}
		return 0, nil, nil, fmt.Errorf("store: %s %q to %q: %w", op, m.name, dest.name, err)
	}
	// Expunge from the source first when moving within one mailbox, so
	// the index stays ascending.
	if move && m == dest {
		m.expungedLocked(srcUIDs)
	}
	arrived := make([]MessageFlags, len(added))
	for i := range added {
		dest.msgs = append(dest.msgs, added[i])
		dest.count(&dest.msgs[len(dest.msgs)-1], 1)
		arrived[i] = MessageFlags{UID: added[i].uid, Flags: added[i].flags}
	}
	dest.uidNext = next
	dest.highestModSeq = modseq
	dest.arrivedLocked(arrived)
	if move && m != dest {
		m.expungedLocked(srcUIDs)
	}
	return dest.uidValidity, srcUIDs, dstUIDs, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func uidArgs(uids []UID) []any {
	out := make([]any, len(uids))
	for i, u := range uids {
		out[i] = u
	}
	return out
}
