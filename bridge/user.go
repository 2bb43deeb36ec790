package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// User is one bridge user: a set of mailboxes fed by sources and changed by
// IMAP sessions. A *User is shared by every session of that user.
type User struct {
	b    *Bridge
	id   int64
	name string

	// mu serialises changes to the mailbox list (create, delete, rename).
	mu sync.Mutex

	hooksMu sync.Mutex
	hooks   userHooks

	// loginMu guards the IMAP logins recorded (see RecordLogin): the
	// latest, the latest saved, and when each client was saved last.
	loginMu      sync.Mutex
	lastLogin    time.Time
	savedLogin   time.Time
	clientsSaved map[string]time.Time
}

// userHooks let the sync engine hear about sessions.
type userHooks struct {
	pollNow func()
	idle    func(delta int)
}

// User returns the user called name, creating it and its default mailboxes
// (INBOX, Sent, Drafts, Trash, Archive, Junk) on first use.
func (b *Bridge) User(ctx context.Context, name string) (*User, error) {
	if name == "" {
		return nil, errors.New("store: empty user name")
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrStoreClosed
	}
	if u, ok := b.users[name]; ok {
		b.mu.Unlock()
		return u, nil
	}
	b.mu.Unlock()

	u := &User{b: b, name: name}
	err := b.write(ctx, func(tx *wtx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE name=?`, name).Scan(&u.id)
		if errors.Is(err, sql.ErrNoRows) {
			res, err := tx.ExecContext(ctx, `INSERT INTO users(name, created) VALUES (?, ?)`, name, time.Now().Unix())
			if err != nil {
				return err
			}
			u.id, _ = res.LastInsertId()
		} else if err != nil {
			return err
		}
		for _, d := range defaultMailboxes {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=? AND name=?`, u.id, d.name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			if d.use != "" {
				// A user who renamed the folder keeps it; don't add a second.
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=? AND special_use=?`, u.id, d.use).Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					continue
				}
			}
			if _, err := insertMailbox(ctx, tx, u.id, d.name, d.use, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: user %q: %w", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if existing, ok := b.users[name]; ok {
		return existing, nil
	}
	b.users[name] = u
	return u, nil
}

// childEnd bounds the names below a mailbox: SQLite compares TEXT byte by
// byte, and every name below "a" lies in ["a/", "a0"), "0" being the
// character after "/".
const childEnd = "0"

// insertMailbox adds a mailbox; subscribe also subscribes it (the default
// mailboxes of a new user). A client's CREATE does not subscribe: a
// subscription is the client's to make (RFC 3501 section 6.3.6), and
// clients that show only subscribed mailboxes SUBSCRIBE after CREATE.
func insertMailbox(ctx context.Context, tx *wtx, userID int64, name, use string, subscribe bool) (MailboxID, error) {
	v, err := nextUIDValidity(ctx, tx.Tx)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO mailboxes(user_id, name, special_use, uid_validity) VALUES (?, ?, ?, ?)`, userID, name, use, v)
	if err != nil {
		return 0, err
	}
	id, _ := res.LastInsertId()
	if !subscribe {
		return MailboxID(id), nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES (?, ?)`, userID, name); err != nil {
		return 0, err
	}
	return MailboxID(id), nil
}

// Name is the user's login name.
func (u *User) Name() string { return u.name }

// MailboxInfo describes a mailbox at one moment.
type MailboxInfo struct {
	ID         MailboxID
	Name       string
	SpecialUse string
	// Subscribed is set by ListMailboxes only.
	Subscribed    bool
	UIDValidity   UIDValidity
	UIDNext       UID
	HighestModSeq ModSeq
	Messages      uint32
	Unseen        uint32
	Deleted       uint32
	Size          int64
	// Recent counts the messages no session has taken as recent yet.
	Recent uint32
	// Keywords are the keywords (flags without a backslash) in use, sorted.
	Keywords []string
}

// ListMailboxes returns every mailbox of the user, sorted by name (INBOX
// first), with Subscribed set.
func (u *User) ListMailboxes(ctx context.Context) ([]MailboxInfo, error) {
	subs, err := u.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	subscribed := make(map[string]bool, len(subs))
	for _, s := range subs {
		subscribed[s] = true
	}
	rows, err := u.b.rd.QueryContext(ctx, `SELECT id, name, special_use, uid_validity, uid_next, highest_modseq, recent_uid FROM mailboxes WHERE user_id=?`, u.id)
	if err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	var cold []MailboxInfo // not loaded: their summary comes from the store
	var recent []UID
	out := make([]MailboxInfo, 0, 8)
	for rows.Next() {
		var info MailboxInfo
		var rec UID
		if err := rows.Scan(&info.ID, &info.Name, &info.SpecialUse, &info.UIDValidity, &info.UIDNext, &info.HighestModSeq, &rec); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list mailboxes: %w", err)
		}
		u.b.mu.Lock()
		mb := u.b.mailboxes[info.ID]
		u.b.mu.Unlock()
		if mb != nil {
			info = mb.Info()
			info.Subscribed = subscribed[info.Name]
			out = append(out, info)
			continue
		}
		cold = append(cold, info)
		recent = append(recent, rec)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list mailboxes: %w", err)
	}
	// A mailbox no session has open is summed up by the store (one row
	// per distinct flag set) instead of loading its whole index into
	// memory just to be listed.
	for i, info := range cold {
		if err := u.b.summarize(ctx, &info, recent[i]); err != nil {
			return nil, err
		}
		info.Subscribed = subscribed[info.Name]
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return nameLess(out[i].Name, out[j].Name) })
	return out, nil
}

// summarize fills in the message counts of info (a mailbox not loaded)
// from the store, exactly as Mailbox.Info would give them.
func (b *Bridge) summarize(ctx context.Context, info *MailboxInfo, recentUID UID) error {
	rows, err := b.rd.QueryContext(ctx, `SELECT m.flags, count(*), coalesce(sum(b.size), 0), coalesce(sum(m.uid > ?), 0) FROM messages m JOIN blobs b ON b.id=m.blob_id WHERE m.mailbox_id=? GROUP BY m.flags`, recentUID, info.ID)
	if err != nil {
		return fmt.Errorf("store: summarize mailbox %d: %w", info.ID, err)
	}
	defer rows.Close()
	keywords := map[string]bool{}
	for rows.Next() {
		var flags string
		var n, recent uint32
		var size int64
		if err := rows.Scan(&flags, &n, &size, &recent); err != nil {
			return fmt.Errorf("store: summarize mailbox %d: %w", info.ID, err)
		}
		info.Messages += n
		info.Size += size
		info.Recent += recent
		seen := false
		for _, f := range splitFlags(flags) {
			switch {
			case f == FlagSeen:
				seen = true
			case f == FlagDeleted:
				info.Deleted += n
			case !strings.HasPrefix(f, `\`):
				keywords[f] = true
			}
		}
		if !seen {
			info.Unseen += n
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: summarize mailbox %d: %w", info.ID, err)
	}
	for k := range keywords {
		info.Keywords = append(info.Keywords, k)
	}
	sort.Strings(info.Keywords)
	return nil
}

// nameLess orders mailbox names: INBOX first, then by name.
func nameLess(a, b string) bool {
	if (a == InboxName) != (b == InboxName) {
		return a == InboxName
	}
	return a < b
}

// Subscriptions returns the names the user is subscribed to, sorted (INBOX
// first). A subscription outlives its mailbox: a deleted mailbox's name
// stays until it is unsubscribed (RFC 9051 section 6.3.7).
func (u *User) Subscriptions(ctx context.Context) ([]string, error) {
	return subscriptionsOf(ctx, u.b.rd, u.id, "list subscriptions")
}

// subscriptionsOf reads a user's subscriptions through q (the store's
// reader, or a snapshot's transaction), sorted as LIST sorts them; what
// names the step in errors.
func subscriptionsOf(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, userID int64, what string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM subscriptions WHERE user_id=?`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	sort.Slice(out, func(i, j int) bool { return nameLess(out[i], out[j]) })
	return out, nil
}

// Mailbox returns the live mailbox called name (INBOX in any case).
func (u *User) Mailbox(ctx context.Context, name string) (*Mailbox, error) {
	cn, err := CanonicalName(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchMailbox, name)
	}
	var id MailboxID
	err = u.b.rd.QueryRowContext(ctx, `SELECT id FROM mailboxes WHERE user_id=? AND name=?`, u.id, cn).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchMailbox, name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: mailbox %q: %w", name, err)
	}
	return u.b.mailboxByID(ctx, u, id)
}

// CreateMailbox creates a mailbox, and any missing parent levels of its
// name, none of them subscribed. specialUse may be empty or one of the
// Special* attributes.
func (u *User) CreateMailbox(ctx context.Context, name, specialUse string) error {
	cn, err := CanonicalName(name)
	if err != nil {
		return err
	}
	use, err := CanonicalSpecialUse(specialUse)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.b.write(ctx, func(tx *wtx) error {
		levels := strings.Split(cn, Delimiter)
		if err := u.checkMailboxes(ctx, tx, missingLevels(ctx, tx, u.id, levels)); err != nil {
			return err
		}
		for i := range levels {
			n := strings.Join(levels[:i+1], Delimiter)
			var count int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=? AND name=?`, u.id, n).Scan(&count); err != nil {
				return err
			}
			if count > 0 {
				if i == len(levels)-1 {
					return fmt.Errorf("%w: %q", ErrMailboxExists, cn)
				}
				continue
			}
			mbUse := ""
			if i == len(levels)-1 {
				mbUse = use
			}
			if _, err := insertMailbox(ctx, tx, u.id, n, mbUse, false); err != nil {
				return err
			}
		}
		return nil
	})
}

// missingLevels counts the levels of a name (its parents and itself) that
// do not exist yet: the mailboxes CreateMailbox would make. A failed query
// counts as none missing; the insert then fails on its own.
func missingLevels(ctx context.Context, tx *wtx, userID int64, levels []string) int {
	n := 0
	for i := range levels {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=? AND name=?`, userID, strings.Join(levels[:i+1], Delimiter)).Scan(&count); err != nil {
			return 0
		}
		if count == 0 {
			n++
		}
	}
	return n
}

// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be
// deleted; neither can a mailbox with children.
func (u *User) DeleteMailbox(ctx context.Context, name string) error {
	mb, err := u.Mailbox(ctx, name)
	if err != nil {
		return err
	}
	if mb.Name() == InboxName {
		return ErrInboxProtected
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.gone {
		return fmt.Errorf("%w: %q", ErrNoSuchMailbox, name)
	}
	var expunged []UID
	err = u.b.write(ctx, func(tx *wtx) error {
		var children int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=? AND name >= ? AND name < ?`, u.id, mb.name+Delimiter, mb.name+childEnd).Scan(&children); err != nil {
			return err
		}
		if children > 0 {
			return fmt.Errorf("%w: %q", ErrHasChildren, mb.name)
		}
		uids := make([]UID, len(mb.msgs))
		for i, e := range mb.msgs {
			uids[i] = e.uid
		}
		if err := removeMessages(ctx, tx, mb.id, uids); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE id=?`, mb.id); err != nil {
			return err
		}
		expunged = uids
		return nil
	})
	if err != nil {
		return err
	}
	if len(expunged) > 0 {
		mb.expungedLocked(expunged)
	}
	mb.gone = true
	mb.msgs = nil
	u.b.mu.Lock()
	delete(u.b.mailboxes, mb.id)
	u.b.mu.Unlock()
	return nil
}

// RenameMailbox renames a mailbox and its children. Renaming INBOX moves
// its messages into a new mailbox of the new name and leaves INBOX empty
// (RFC 9051 section 6.3.6).
func (u *User) RenameMailbox(ctx context.Context, from, to string) error {
	src, err := u.Mailbox(ctx, from)
	if err != nil {
		return err
	}
	cto, err := CanonicalName(to)
	if err != nil {
		return err
	}
	if src.Name() == InboxName {
		if cto == InboxName {
			return fmt.Errorf("%w: %q", ErrMailboxExists, cto)
		}
		if err := u.CreateMailbox(ctx, cto, ""); err != nil {
			return err
		}
		dst, err := u.Mailbox(ctx, cto)
		if err != nil {
			return err
		}
		// One transaction: every message moves, or none does and the new
		// mailbox goes again.
		if _, _, _, err := src.MoveTo(ctx, src.UIDs(), dst, nil); err != nil {
			if derr := u.DeleteMailbox(ctx, cto); derr != nil {
				u.b.log.Warn("store: rename INBOX failed and the new mailbox could not be removed", "mailbox", cto, "err", derr)
			}
			return err
		}
		return nil
	}
	if cto == InboxName {
		return fmt.Errorf("%w: %q", ErrMailboxExists, cto)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	old := src.Name()
	if cto == old {
		return fmt.Errorf("%w: %q", ErrMailboxExists, cto)
	}
	if strings.HasPrefix(cto, old+Delimiter) {
		return fmt.Errorf("%w: cannot rename %q into itself", ErrInvalidName, old)
	}
	renamed := map[MailboxID]string{}
	err = u.b.write(ctx, func(tx *wtx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=? AND (name=? OR (name >= ? AND name < ?))`, u.id, cto, cto+Delimiter, cto+childEnd).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %q", ErrMailboxExists, cto)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, name FROM mailboxes WHERE user_id=? AND (name=? OR (name >= ? AND name < ?))`, u.id, old, old+Delimiter, old+childEnd)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id MailboxID
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				rows.Close()
				return err
			}
			renamed[id] = cto + name[len(old):]
		}
		rows.Close()
		for id, name := range renamed {
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name=? WHERE id=?`, name, id); err != nil {
				return err
			}
		}
		// Subscriptions follow the mailboxes they name.
		if _, err := tx.ExecContext(ctx, `UPDATE OR REPLACE subscriptions SET name=?||substr(name, ?) WHERE user_id=? AND (name=? OR (name >= ? AND name < ?))`,
			cto, utf8.RuneCountInString(old)+1, u.id, old, old+Delimiter, old+childEnd); err != nil {
			return err
		}
		// Create missing parents of the new name.
		levels := strings.Split(cto, Delimiter)
		for i := 1; i < len(levels); i++ {
			p := strings.Join(levels[:i], Delimiter)
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=? AND name=?`, u.id, p).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				if _, err := insertMailbox(ctx, tx, u.id, p, "", false); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	u.b.mu.Lock()
	live := make(map[MailboxID]*Mailbox)
	for id := range renamed {
		if mb, ok := u.b.mailboxes[id]; ok {
			live[id] = mb
		}
	}
	u.b.mu.Unlock()
	for id, mb := range live {
		mb.mu.Lock()
		mb.name = renamed[id]
		mb.mu.Unlock()
	}
	return nil
}

// SetSubscribed subscribes to a mailbox, which must exist, or removes a
// subscription, which need not (unsubscribing a name not subscribed, or
// whose mailbox is gone, succeeds).
func (u *User) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	cn, err := CanonicalName(name)
	if err != nil {
		return err
	}
	if subscribed {
		if _, err := u.Mailbox(ctx, cn); err != nil {
			return err
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.b.write(ctx, func(tx *wtx) error {
		var err error
		if subscribed {
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES (?, ?)`, u.id, cn)
		} else {
			_, err = tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE user_id=? AND name=?`, u.id, cn)
		}
		return err
	})
}

// Append stores a message in the named mailbox, with flags and an internal
// date (zero: now), and returns its UID.
func (u *User) Append(ctx context.Context, mailbox string, r io.Reader, flags []string, date time.Time) (UIDValidity, UID, error) {
	mb, err := u.Mailbox(ctx, mailbox)
	if err != nil {
		return 0, 0, err
	}
	blob, err := u.b.putBlob(ctx, r)
	if err != nil {
		return 0, 0, err
	}
	defer blob.discard()
	if date.IsZero() {
		date = time.Now()
	}
	uid, err := mb.add(ctx, blob, NormalizeFlags(flags), date, nil)
	if err != nil {
		return 0, 0, err
	}
	return mb.Info().UIDValidity, uid, nil
}

// PollNow asks the sync engine to poll the user's sources at once (a client
// just logged in or started IDLE). It never blocks.
func (u *User) PollNow() {
	u.hooksMu.Lock()
	f := u.hooks.pollNow
	u.hooksMu.Unlock()
	if f != nil {
		f()
	}
}

// IdleStarted and IdleStopped tell the sync engine a session of the user is
// idling, so it polls at the shorter idle interval meanwhile.
func (u *User) IdleStarted() { u.idle(1) }

// IdleStopped undoes IdleStarted.
func (u *User) IdleStopped() { u.idle(-1) }

func (u *User) idle(delta int) {
	u.hooksMu.Lock()
	f := u.hooks.idle
	u.hooksMu.Unlock()
	if f != nil {
		f(delta)
	}
}

func (u *User) setHooks(h userHooks) {
	u.hooksMu.Lock()
	u.hooks = h
	u.hooksMu.Unlock()
}
