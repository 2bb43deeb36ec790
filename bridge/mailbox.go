package bridge

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
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
	subscribed    bool
	uidValidity   UIDValidity
	uidNext       UID
	highestModSeq ModSeq
	msgs          []entry // ascending UID
}

type entry struct {
	uid    UID
	flags  []string
	size   int64
	date   int64 // unix nanoseconds
	modseq ModSeq
	blob   int64
	hash   [32]byte
}

func (b *Bridge) mailboxByID(ctx context.Context, u *User, id MailboxID) (*Mailbox, error) {
	b.mu.Lock()
	if mb, ok := b.mailboxes[id]; ok {
		b.mu.Unlock()
		return mb, nil
	}
	b.mu.Unlock()
	mb := &Mailbox{b: b, user: u, id: id}
	var uv, next, hms int64
	err := b.rd.QueryRowContext(ctx, `SELECT name, special_use, subscribed, uid_validity, uid_next, highest_modseq FROM mailboxes WHERE id=? AND user_id=?`, id, u.id).
		Scan(&mb.name, &mb.specialUse, &mb.subscribed, &uv, &next, &hms)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoSuchMailbox
	}
	if err != nil {
		return nil, fmt.Errorf("store: load mailbox %d: %w", id, err)
	}
	mb.uidValidity, mb.uidNext, mb.highestModSeq = UIDValidity(uv), UID(next), ModSeq(hms)
	rows, err := b.rd.QueryContext(ctx, `SELECT m.uid, m.flags, m.internal_date, m.modseq, b.id, b.size, b.hash FROM messages m JOIN blobs b ON b.id=m.blob_id WHERE m.mailbox_id=? ORDER BY m.uid`, id)
	if err != nil {
		return nil, fmt.Errorf("store: load mailbox %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e entry
		var flags, hash string
		if err := rows.Scan(&e.uid, &flags, &e.date, &e.modseq, &e.blob, &e.size, &hash); err != nil {
			return nil, fmt.Errorf("store: load mailbox %d: %w", id, err)
		}
		e.flags = splitFlags(flags)
		hex.Decode(e.hash[:], []byte(hash))
		mb.msgs = append(mb.msgs, e)
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
		Subscribed:    m.subscribed,
		UIDValidity:   m.uidValidity,
		UIDNext:       m.uidNext,
		HighestModSeq: m.highestModSeq,
		Messages:      uint32(len(m.msgs)),
	}
	for _, e := range m.msgs {
		if !hasFlag(e.flags, FlagSeen) {
			info.Unseen++
		}
		if hasFlag(e.flags, FlagDeleted) {
			info.Deleted++
		}
		info.Size += e.size
	}
	return info
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
			out = append(out, Message{UID: e.uid, Flags: e.flags, InternalDate: time.Unix(0, e.date), Size: e.size, ModSeq: e.modseq})
		}
	}
	m.mu.Unlock()
	if !withIndex || len(out) == 0 {
		return out, nil
	}
	rows, err := m.b.rd.QueryContext(ctx, `SELECT m.uid, b.idx FROM messages m JOIN blobs b ON b.id=m.blob_id WHERE m.mailbox_id=? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`, m.id, out[0].UID, out[len(out)-1].UID)
	if err != nil {
		return nil, fmt.Errorf("store: fetch index: %w", err)
	}
	defer rows.Close()
	k := 0
	for rows.Next() {
		var uid UID
		var idx []byte
		if err := rows.Scan(&uid, &idx); err != nil {
			return nil, fmt.Errorf("store: fetch index: %w", err)
		}
		for k < len(out) && out[k].UID < uid {
			k++
		}
		if k < len(out) && out[k].UID == uid {
			out[k].Index = idx
		}
	}
	return out, rows.Err()
}

// Open opens a message's body for reading: the bytes exactly as stored.
func (m *Mailbox) Open(ctx context.Context, uid UID) (*os.File, error) {
	m.mu.Lock()
	e, ok := m.findLocked(uid)
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: uid %d", ErrNoSuchMessage, uid)
	}
	f, err := os.Open(m.b.blobPath(hex.EncodeToString(e.hash[:])))
	if err != nil {
		return nil, fmt.Errorf("store: open message %d: %w", uid, err)
	}
	return f, nil
}

func (m *Mailbox) findLocked(uid UID) (entry, bool) {
	i := sort.Search(len(m.msgs), func(i int) bool { return m.msgs[i].uid >= uid })
	if i < len(m.msgs) && m.msgs[i].uid == uid {
		return m.msgs[i], true
	}
	return entry{}, false
}

// add commits a pending blob as a new message at the end of the mailbox.
// originID links it to the source-id map (nil for APPEND).
func (m *Mailbox) add(ctx context.Context, p *pendingBlob, flags []string, date time.Time, origin *originRef) (UID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return 0, ErrNoSuchMailbox
	}
	var e entry
	err := m.b.write(ctx, func(tx *wtx) error {
		blobID, err := p.commit(ctx, tx)
		if err != nil {
			return err
		}
		var originID sql.NullInt64
		if origin != nil {
			id, err := origin.insert(ctx, tx)
			if err != nil {
				return err
			}
			originID = sql.NullInt64{Int64: id, Valid: true}
		}
		e = entry{uid: m.uidNext, flags: flags, size: p.size, date: date.UnixNano(), modseq: m.highestModSeq + 1, blob: blobID}
		hex.Decode(e.hash[:], []byte(p.hash))
		if _, err := tx.ExecContext(ctx, `INSERT INTO messages(mailbox_id, uid, blob_id, flags, internal_date, modseq, origin_id) VALUES (?,?,?,?,?,?,?)`,
			m.id, e.uid, blobID, joinFlags(flags), e.date, e.modseq, originID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uid_next=?, highest_modseq=? WHERE id=?`, e.uid+1, e.modseq, m.id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: add message to %q: %w", m.name, err)
	}
	m.msgs = append(m.msgs, e)
	m.uidNext = e.uid + 1
	m.highestModSeq = e.modseq
	for _, o := range m.b.observerList() {
		o.Appended(m, []UID{e.uid})
	}
	return e.uid, nil
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
		m.msgs[c.i].flags = c.flags
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
	if err := m.removeLocked(ctx, del, true); err != nil {
		return nil, err
	}
	return del, nil
}

// removeLocked deletes messages (which must exist) in one transaction,
// applies it to the index and tells the observers.
func (m *Mailbox) removeLocked(ctx context.Context, del []UID, userExpunge bool) error {
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
	m.highestModSeq++
	gone := make(map[UID]bool, len(del))
	for _, u := range del {
		gone[u] = true
	}
	kept := m.msgs[:0]
	for _, e := range m.msgs {
		if !gone[e.uid] {
			kept = append(kept, e)
		}
	}
	for i := len(kept); i < len(m.msgs); i++ {
		m.msgs[i] = entry{}
	}
	m.msgs = kept
	for _, o := range m.b.observerList() {
		o.Expunged(m, del)
	}
	return nil
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
	var added []entry
	var srcUIDs, dstUIDs []UID
	next := dest.uidNext
	modseq := dest.highestModSeq
	err := m.b.write(ctx, func(tx *wtx) error {
		for _, e := range src {
			modseq++
			ne := e
			ne.uid = next
			ne.modseq = modseq
			next++
			originExpr := "NULL"
			if move {
				originExpr = "(SELECT origin_id FROM messages WHERE mailbox_id=? AND uid=?)"
			}
			args := []any{dest.id, ne.uid, e.blob, joinFlags(e.flags), e.date, ne.modseq}
			if move {
				args = append(args, m.id, e.uid)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO messages(mailbox_id, uid, blob_id, flags, internal_date, modseq, origin_id) VALUES (?,?,?,?,?,?,`+originExpr+`)`, args...); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE blobs SET refs=refs+1 WHERE id=?`, e.blob); err != nil {
				return err
			}
			added = append(added, ne)
			srcUIDs = append(srcUIDs, e.uid)
			dstUIDs = append(dstUIDs, ne.uid)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_next=?, highest_modseq=? WHERE id=?`, next, modseq, dest.id); err != nil {
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
	dest.msgs = append(dest.msgs, added...)
	dest.uidNext = next
	dest.highestModSeq = modseq
	obs := m.b.observerList()
	for _, o := range obs {
		o.Appended(dest, dstUIDs)
	}
	if move {
		m.highestModSeq++
		gone := make(map[UID]bool, len(srcUIDs))
		for _, u := range srcUIDs {
			gone[u] = true
		}
		kept := make([]entry, 0, len(m.msgs)-len(srcUIDs))
		for _, e := range m.msgs {
			if !gone[e.uid] {
				kept = append(kept, e)
			}
		}
		m.msgs = kept
		for _, o := range obs {
			o.Expunged(m, srcUIDs)
		}
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
