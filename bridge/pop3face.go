package bridge

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// What the bridge's own POP3 face (package pop3front) reads and changes:
// the maildrop listing with each message's POP3 size and UIDL, the
// messages hidden from POP3 (pop3.dele: keep), and the expunge a POP3
// QUIT commits.

// pop3FaceSchema is migration 7 (listed in schema, store.go):
//
//   - blobs.pop3_size: the octets the message has on the POP3 wire (after
//     POP3Content's line-ending repair, before dot-stuffing), filled in the
//     first time a POP3 session lists the message; NULL until then. It
//     lives with the blob, which is content-addressed, so every copy of a
//     message shares it and it goes with the blob.
//   - pop3_hidden: messages a POP3 client deleted while pop3.dele is keep:
//     the POP3 face no longer lists them; IMAP still shows them. Keyed by
//     UIDVALIDITY too, so a row can never name another message: UIDs are
//     not reused within one UIDVALIDITY, and a mailbox id reused by SQLite
//     comes with a new UIDVALIDITY.
const pop3FaceSchema = `ALTER TABLE blobs ADD COLUMN pop3_size INTEGER;
	CREATE TABLE pop3_hidden (
		mailbox_id INTEGER NOT NULL,
		uid_validity INTEGER NOT NULL,
		uid INTEGER NOT NULL,
		PRIMARY KEY(mailbox_id, uid_validity, uid)
	) WITHOUT ROWID;`

// POP3Entry is one message of a mailbox as a POP3 maildrop lists it.
type POP3Entry struct {
	UID UID
	// Size is the message's size on the POP3 wire: the octets RETR sends
	// before dot-stuffing and the terminating line (see POP3Content).
	Size int64
	// UIDL is the unique-id listing of the message: the legacy host's
	// UIDL when the message came from a POP3 host (HostUIDL true), else
	// GeneratedUIDL of the mailbox's UIDVALIDITY and the message's UID.
	UIDL     string
	HostUIDL bool
	// Hidden: a POP3 client deleted it while deletions only hide
	// (HidePOP3); the POP3 face does not list it.
	Hidden bool
}

// HostUIDLFunc says which UIDL the legacy host gave a message known by
// its source id at the named source; ok false when the source is not a
// POP3 host or the id is not a host UIDL (a fingerprint, say). The wiring
// supplies it: only it knows which sources are POP3 hosts and how their
// ids are made.
type HostUIDLFunc func(source string, id SourceID) (uidl string, ok bool)

// GeneratedUIDL is the UIDL of a message that has no legacy host UIDL
// (delivered, APPENDed, from an mbox spool): stable for as long as the
// mailbox's UIDVALIDITY is, unique in the mailbox, at most 24 printable
// characters. A new UIDVALIDITY (a store restored from an older copy)
// changes it on purpose: the UIDs behind it may then name other messages.
func GeneratedUIDL(v UIDValidity, uid UID) string {
	return "ib." + strconv.FormatUint(uint64(v), 10) + "." + strconv.FormatUint(uint64(uid), 10)
}

// ValidUIDL reports whether s may be sent as a UIDL: 1 to 70 characters in
// 0x21..0x7E (RFC 1939 section 7).
func ValidUIDL(s string) bool {
	if len(s) == 0 || len(s) > 70 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// POP3Listing lists the mailbox as a POP3 maildrop, ascending by UID:
// every message, with its wire size and UIDL, the hidden ones marked.
//
// UIDLs are unique in the listing. A message whose origin hostUIDL names
// gets that UIDL, unless it is not a valid UIDL or an earlier message
// (a lower UID: a COPY within the mailbox keeps the origin) already has
// it; every other message gets GeneratedUIDL, with "x" appended until it
// differs from every host UIDL of the listing (a host whose own UIDLs
// look like ours). hostUIDL nil gives every message a generated UIDL.
//
// Sizes not yet known (a message never listed by POP3 before) are
// computed by reading the body once through POP3Content and recorded
// with the blob; recording is best effort (a store that cannot take
// writes computes them again next time).
func (m *Mailbox) POP3Listing(ctx context.Context, hostUIDL HostUIDLFunc) ([]POP3Entry, error) {
	m.mu.Lock()
	gone, uv := m.gone, m.uidValidity
	m.mu.Unlock()
	if gone {
		return nil, ErrNoSuchMailbox
	}
	type row struct {
		POP3Entry
		blob     int64
		wire     sql.NullInt64
		source   sql.NullString
		sourceID sql.NullString
	}
	rows, err := m.b.rd.QueryContext(ctx, `SELECT m.uid, b.id, b.size, b.pop3_size, o.source, o.source_id, h.uid IS NOT NULL
		FROM messages m JOIN blobs b ON b.id=m.blob_id
		LEFT JOIN origins o ON o.id=m.origin_id
		LEFT JOIN pop3_hidden h ON h.mailbox_id=m.mailbox_id AND h.uid_validity=? AND h.uid=m.uid
		WHERE m.mailbox_id=? ORDER BY m.uid`, uv, m.id)
	if err != nil {
		return nil, fmt.Errorf("store: pop3 listing of %q: %w", m.Name(), err)
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.UID, &r.blob, &r.Size, &r.wire, &r.source, &r.sourceID, &r.Hidden); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: pop3 listing of %q: %w", m.Name(), err)
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pop3 listing of %q: %w", m.Name(), err)
	}

	// Sizes: known, or measured now and recorded.
	measured := map[int64]int64{}
	for i := range all {
		r := &all[i]
		if r.wire.Valid {
			r.Size = r.wire.Int64
			continue
		}
		if n, ok := measured[r.blob]; ok {
			r.Size = n
			continue
		}
		n, err := m.measurePOP3(ctx, r.UID)
		if errors.Is(err, ErrNoSuchMessage) {
			// Expunged since the query: keep its stored size; RETR of
			// it will say it is gone.
			continue
		}
		if err != nil {
			return nil, err
		}
		measured[r.blob], r.Size = n, n
	}
	if len(measured) > 0 {
		err := m.b.write(ctx, func(tx *wtx) error {
			stmt, err := tx.PrepareContext(ctx, `UPDATE blobs SET pop3_size=? WHERE id=?`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for id, n := range measured {
				if _, err := stmt.ExecContext(ctx, n, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			m.b.log.Warn("store: could not record POP3 sizes; they are measured again next time", "mailbox", m.Name(), "count", len(measured), "err", err)
		}
	}

	// UIDLs: host UIDLs first (the lowest UID keeps a repeated one), then
	// the generated ones around them.
	hostOwned := map[string]bool{}
	if hostUIDL != nil {
		for i := range all {
			r := &all[i]
			if !r.source.Valid {
				continue
			}
			u, ok := hostUIDL(r.source.String, SourceID(r.sourceID.String))
			if !ok || !ValidUIDL(u) || hostOwned[u] {
				continue
			}
			hostOwned[u] = true
			r.UIDL, r.HostUIDL = u, true
		}
	}
	out := make([]POP3Entry, len(all))
	for i := range all {
		r := &all[i]
		if !r.HostUIDL {
			r.UIDL = GeneratedUIDL(uv, r.UID)
			for hostOwned[r.UIDL] {
				r.UIDL += "x"
			}
		}
		out[i] = r.POP3Entry
	}
	return out, nil
}

// measurePOP3 reads a message through POP3Content and counts its octets.
func (m *Mailbox) measurePOP3(ctx context.Context, uid UID) (int64, error) {
	body, err := m.Open(ctx, uid)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.Copy(io.Discard, POP3Content(&ctxReader{ctx: ctx, r: body}))
	if err != nil {
		return 0, fmt.Errorf("store: measure message %d for pop3: %w", uid, err)
	}
	return n, nil
}

// HidePOP3 hides messages from the POP3 face for good (pop3.dele: keep):
// they stay in the mailbox for IMAP. UIDs no longer in the mailbox are
// ignored. It returns once the change is durable.
func (m *Mailbox) HidePOP3(ctx context.Context, uids []UID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return ErrNoSuchMailbox
	}
	var present []UID
	for _, uid := range uids {
		if _, ok := m.findLocked(uid); ok {
			present = append(present, uid)
		}
	}
	if len(present) == 0 {
		return nil
	}
	err := m.b.write(ctx, func(tx *wtx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO pop3_hidden(mailbox_id, uid_validity, uid) VALUES (?,?,?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, uid := range present {
			if _, err := stmt.ExecContext(ctx, m.id, m.uidValidity, uid); err != nil {
				return err
			}
		}
		// Rows of messages expunged since (in IMAP) are of no use.
		_, err = tx.ExecContext(ctx, `DELETE FROM pop3_hidden WHERE mailbox_id=? AND (uid_validity<>? OR uid NOT IN (SELECT uid FROM messages WHERE mailbox_id=?))`, m.id, m.uidValidity, m.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: hide %d messages of %q from pop3: %w", len(present), m.name, err)
	}
	return nil
}

// ExpungeUIDs removes the named messages, whatever their flags, in one
// transaction, and returns the UIDs removed (those still present),
// ascending. It is the expunge of a POP3 QUIT: IMAP sessions are told, as
// for an IMAP EXPUNGE, and the origins count as expunged by the user (an
// on_expunge source deletes them at the host). It returns once the change
// is durable.
func (m *Mailbox) ExpungeUIDs(ctx context.Context, uids []UID) ([]UID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return nil, ErrNoSuchMailbox
	}
	sorted := append([]UID(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var del []UID
	for i, uid := range sorted {
		if i > 0 && uid == sorted[i-1] {
			continue
		}
		if _, ok := m.findLocked(uid); ok {
			del = append(del, uid)
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

// POP3Content returns a message as POP3 sends it, before dot-stuffing:
// every bare LF becomes CRLF, and a message that does not end in a line
// ending gets CRLF appended, so that the terminating "." starts a line (as
// Dovecot does). A message stored with CRLF line endings and a final CRLF
// — all mail from a POP3 host or an mbox spool — passes unchanged.
func POP3Content(r io.Reader) io.Reader {
	return &pop3Content{r: r, in: make([]byte, 32<<10)}
}

type pop3Content struct {
	r       io.Reader
	in      []byte // read buffer
	data    []byte // the unread part of in
	pending []byte // output owed before more of data (CRLF for a bare LF, the final CRLF)
	prev    byte   // the last byte handed out
	last    byte   // the last byte read
	seen    bool   // a byte was read
	eof     bool
	tail    bool // the message does not end in LF: CRLF follows it
}

var crlf = []byte("\r\n")

func (c *pop3Content) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(c.pending) > 0 {
			k := copy(p[n:], c.pending)
			c.pending = c.pending[k:]
			n += k
			c.prev = p[n-1]
			continue
		}
		if len(c.data) == 0 {
			if c.eof && c.tail {
				c.tail = false
				c.pending = crlf
				continue
			}
			if c.eof || n > 0 {
				break
			}
			k, err := c.r.Read(c.in)
			c.data = c.in[:k]
			if k > 0 {
				c.last = c.in[k-1]
				c.seen = true
			}
			if err == io.EOF {
				c.eof = true
				c.tail = c.seen && c.last != '\n'
			} else if err != nil {
				return n, err
			}
			continue
		}
		seg := c.data
		if room := len(p) - n; len(seg) > room {
			seg = seg[:room]
		}
		// The first bare LF of seg, if any.
		bare := -1
		for off := 0; off < len(seg); {
			i := bytes.IndexByte(seg[off:], '\n')
			if i < 0 {
				break
			}
			i += off
			before := c.prev
			if i > 0 {
				before = seg[i-1]
			}
			if before != '\r' {
				bare = i
				break
			}
			off = i + 1
		}
		if bare < 0 {
			copy(p[n:], seg)
			n += len(seg)
			c.prev = seg[len(seg)-1]
			c.data = c.data[len(seg):]
			continue
		}
		copy(p[n:], seg[:bare])
		n += bare
		if bare > 0 {
			c.prev = seg[bare-1]
		}
		c.data = c.data[bare+1:]
		c.pending = crlf
	}
	if n == 0 && c.eof && len(c.pending) == 0 && len(c.data) == 0 && !c.tail {
		return 0, io.EOF
	}
	return n, nil
}
