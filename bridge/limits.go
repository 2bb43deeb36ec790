package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Defaults of the growth limits (Options). A public server bounds what one
// user can make the store hold: 25,000 keywords on one mailbox made every
// SELECT's FLAGS line hundreds of kilobytes, and repeated COPY 1:* doubled
// a mailbox each time.
const (
	DefaultMaxKeywordsPerMailbox = 256
	DefaultMaxMailboxesPerUser   = 1000
)

// ErrLimit is wrapped by a LimitError: a per-mailbox or per-user cap was
// reached. The IMAP front end answers NO [LIMIT].
var ErrLimit = errors.New("limit reached")

// ErrOverQuota is wrapped by a QuotaError: the change would take the user
// past a quota. The IMAP front end answers NO [OVERQUOTA]; an LMTP intake
// answers 552 5.2.2.
var ErrOverQuota = errors.New("over quota")

// LimitError names the limit that refused a change.
type LimitError struct {
	What  string // "keywords in a mailbox", "mailboxes"
	Limit int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("too many %s (limit %d)", e.What, e.Limit)
}

func (e *LimitError) Unwrap() error { return ErrLimit }

// Quota is a user's allowance over all their mailboxes; a zero field has
// no limit. Every copy of a message counts (COPY adds to usage, MOVE and
// EXPUNGE do not).
type Quota struct {
	Bytes    int64
	Messages int64
}

// QuotaError says which resource a change would exceed.
type QuotaError struct {
	Resource string // "STORAGE" (bytes) or "MESSAGE" (RFC 9208 names)
	Usage    int64  // before the change
	Adding   int64
	Limit    int64
}

func (e *QuotaError) Error() string {
	unit := "bytes"
	if e.Resource == "MESSAGE" {
		unit = "messages"
	}
	return fmt.Sprintf("quota exceeded: %d %s stored, %d more would pass the limit of %d", e.Usage, unit, e.Adding, e.Limit)
}

func (e *QuotaError) Unwrap() error { return ErrOverQuota }

// limits are the Options' caps with their defaults applied; a cap of 0
// means none.
type limits struct {
	keywords  int
	mailboxes int
	quota     func(user string) Quota
}

func newLimits(o Options) limits {
	l := limits{keywords: o.MaxKeywordsPerMailbox, mailboxes: o.MaxMailboxesPerUser, quota: o.Quota}
	switch {
	case l.keywords == 0:
		l.keywords = DefaultMaxKeywordsPerMailbox
	case l.keywords < 0:
		l.keywords = 0
	}
	switch {
	case l.mailboxes == 0:
		l.mailboxes = DefaultMaxMailboxesPerUser
	case l.mailboxes < 0:
		l.mailboxes = 0
	}
	return l
}

// checkKeywordsLocked refuses flag lists that would bring the mailbox past
// its keyword cap: the keywords among lists not in use in the mailbox yet,
// added to those in use. Called with m.mu held.
func (m *Mailbox) checkKeywordsLocked(lists ...[]string) error {
	max := m.b.limits.keywords
	if max == 0 {
		return nil
	}
	var fresh map[string]bool
	for _, l := range lists {
		for _, f := range l {
			if strings.HasPrefix(f, `\`) || m.keywords[f] > 0 || fresh[f] {
				continue
			}
			if fresh == nil {
				fresh = map[string]bool{}
			}
			fresh[f] = true
		}
	}
	if len(m.keywords)+len(fresh) > max {
		return &LimitError{What: "keywords in a mailbox", Limit: max}
	}
	return nil
}

// checkQuota refuses adding msgs messages of bytes bytes to u's mailboxes
// past u's quota. It runs inside the write transaction that adds them, so
// concurrent additions cannot both pass.
func (u *User) checkQuota(ctx context.Context, tx *wtx, msgs, bytes int64) error {
	if u.b.limits.quota == nil {
		return nil
	}
	q := u.b.limits.quota(u.name)
	if q.Bytes <= 0 && q.Messages <= 0 {
		return nil
	}
	count, size, err := u.usage(ctx, tx)
	if err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	if q.Messages > 0 && count+msgs > q.Messages {
		return &QuotaError{Resource: "MESSAGE", Usage: count, Adding: msgs, Limit: q.Messages}
	}
	if q.Bytes > 0 && size+bytes > q.Bytes {
		return &QuotaError{Resource: "STORAGE", Usage: size, Adding: bytes, Limit: q.Bytes}
	}
	return nil
}

// usage is the number and total size of u's messages, every copy counted.
func (u *User) usage(ctx context.Context, tx *wtx) (count, size int64, err error) {
	err = tx.QueryRowContext(ctx, `SELECT count(*), COALESCE(SUM(b.size), 0) FROM messages m JOIN mailboxes x ON x.id=m.mailbox_id JOIN blobs b ON b.id=m.blob_id WHERE x.user_id=?`, u.id).Scan(&count, &size)
	return count, size, err
}

// Usage is what counts against u's quota now: messages and bytes.
func (u *User) Usage(ctx context.Context) (Quota, error) {
	var q Quota
	err := u.b.rd.QueryRowContext(ctx, `SELECT count(*), COALESCE(SUM(b.size), 0) FROM messages m JOIN mailboxes x ON x.id=m.mailbox_id JOIN blobs b ON b.id=m.blob_id WHERE x.user_id=?`, u.id).Scan(&q.Messages, &q.Bytes)
	if err != nil {
		return q, fmt.Errorf("store: usage of %q: %w", u.name, err)
	}
	return q, nil
}

// checkMailboxes refuses creating n more mailboxes for u past the cap.
func (u *User) checkMailboxes(ctx context.Context, tx *wtx, n int) error {
	max := u.b.limits.mailboxes
	if max == 0 || n == 0 {
		return nil
	}
	var count int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE user_id=?`, u.id).Scan(&count); err != nil {
		return fmt.Errorf("count mailboxes: %w", err)
	}
	if count+n > max {
		return &LimitError{What: "mailboxes", Limit: max}
	}
	return nil
}
