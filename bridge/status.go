package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// This file is what the bridge knows for the retirement path: per user and
// source what the polls found (feed records), the IMAP logins, and the
// readiness verdict computed from them (Readiness, a pure function;
// Bridge.Status gathers its input from the store).

// DefaultQuietPeriod is how long after a foreign deletion a user is not
// ready (readiness.quiet_period).
const DefaultQuietPeriod = 7 * 24 * time.Hour

// How often an unchanged feed record is saved (its last_poll moves on),
// how far apart the points of the drain chart are at least when nothing
// changes, and how many points a feed keeps.
const (
	feedSaveEvery    = 5 * time.Minute
	historyEvery     = time.Hour
	maxClientsKept   = 20
	maxClientField   = 64
	loginSaveEvery   = time.Minute
	recordingTimeout = 10 * time.Second
)

// historyPoints bounds the drain chart of a feed (a variable for tests).
var historyPoints = 200

// feedRecords mirrors the feeds rows that polls update, so that a poll
// with nothing new writes nothing (see feedRecord.save).
type feedRecords struct {
	mu sync.Mutex
	m  map[knownKey]*feedRecord
}

// feedRecord is one feeds row. Times are unix seconds, 0 for never.
type feedRecord struct {
	active       bool
	mode         FeedMode
	policy       DeletePolicy
	lastPoll     int64
	lastError    string
	lastErrorAt  int64
	hostListed   bool
	hostMessages int
	hostBytes    int64
	pending      int
	wouldDelete  int
	foreign      int64
	lastForeign  int64
	// What the store holds of the fields polls change, to tell whether a
	// save is due.
	saved      feedSaved
	lastPoint  int64
	pointHolds int
}

type feedSaved struct {
	lastPoll     int64
	lastError    string
	hostListed   bool
	hostMessages int
	hostBytes    int64
	pending      int
	wouldDelete  int
}

func (r *feedRecord) current() feedSaved {
	return feedSaved{r.lastPoll, r.lastError, r.hostListed, r.hostMessages, r.hostBytes, r.pending, r.wouldDelete}
}

// record returns the record of (userID, source), loading it from the store
// on first use (a zero one if there is no row yet).
func (b *Bridge) record(ctx context.Context, userID int64, source string) (*feedRecord, error) {
	k := knownKey{userID, source}
	b.feeds.mu.Lock()
	r := b.feeds.m[k]
	b.feeds.mu.Unlock()
	if r != nil {
		return r, nil
	}
	r = &feedRecord{active: true, mode: ModeServe, policy: DeletePolicy{Mode: DeleteKeep}}
	var mode, policy string
	var after int64
	err := b.rd.QueryRowContext(ctx, `SELECT active, mode, delete_policy, delete_after, last_poll, last_error, last_error_at, host_listed, host_messages, host_bytes, pending, would_delete, foreign_deletions, last_foreign_deletion FROM feeds WHERE user_id=? AND source=?`, userID, source).
		Scan(&r.active, &mode, &policy, &after, &r.lastPoll, &r.lastError, &r.lastErrorAt, &r.hostListed, &r.hostMessages, &r.hostBytes, &r.pending, &r.wouldDelete, &r.foreign, &r.lastForeign)
	switch {
	case err == nil:
		r.mode, r.policy = FeedMode(mode), DeletePolicy{Mode: DeleteMode(policy), After: time.Duration(after) * time.Second}
		r.saved = r.current()
	case errors.Is(err, sql.ErrNoRows):
	default:
		return nil, fmt.Errorf("load feed record of %s: %w", source, err)
	}
	if err := b.rd.QueryRowContext(ctx, `SELECT coalesce(max(at), 0), coalesce((SELECT host_messages FROM feed_history WHERE user_id=?1 AND source=?2 ORDER BY at DESC LIMIT 1), -1) FROM feed_history WHERE user_id=?1 AND source=?2`, userID, source).Scan(&r.lastPoint, &r.pointHolds); err != nil {
		return nil, fmt.Errorf("load feed history of %s: %w", source, err)
	}
	b.feeds.mu.Lock()
	defer b.feeds.mu.Unlock()
	if b.feeds.m == nil {
		b.feeds.m = make(map[knownKey]*feedRecord)
	}
	if x := b.feeds.m[k]; x != nil {
		return x, nil
	}
	b.feeds.m[k] = r
	return r, nil
}

// recordPoll updates the feed record after a poll and saves it when
// something changed (or feedSaveEvery passed), with a point of the drain
// chart when the host's count changed (or historyEvery passed). A poll
// aborted by shutdown is not recorded. A failure to save is logged: the
// poll itself stands.
func (b *Bridge) recordPoll(ctx context.Context, u *User, feed Feed, sum pollSummary, pollErr error) {
	if pollErr != nil && ctx.Err() != nil && errors.Is(pollErr, context.Canceled) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordingTimeout)
	defer cancel()
	src := feed.Key()
	r, err := b.record(ctx, u.id, src)
	if err != nil {
		b.log.Warn("sync: could not record the poll", "user", u.name, "source", src, "err", err)
		return
	}
	at := sum.at.Unix()
	b.feeds.mu.Lock()
	r.active, r.mode, r.policy = true, feed.Mode.orServe(), feed.Policy.orKeep()
	if pollErr == nil {
		r.lastPoll, r.lastError = at, ""
	} else {
		r.lastError, r.lastErrorAt = pollErr.Error(), at
	}
	if sum.planned {
		r.pending, r.wouldDelete = sum.pending, sum.wouldDelete
	}
	if sum.listed {
		r.hostListed, r.hostMessages = true, sum.hostMessages
		if sum.hostBytes >= 0 {
			r.hostBytes = sum.hostBytes
		}
	}
	cur := r.current()
	point := r.hostListed && (r.pointHolds != r.hostMessages || at-r.lastPoint >= int64(historyEvery/time.Second))
	due := cur != r.saved || at-r.saved.lastPoll >= int64(feedSaveEvery/time.Second) || point
	row := *r
	// Points are kept by the second: a change within the second of the
	// last point (a drain right after a poll that listed the mail) goes
	// one second later rather than over that point, so the chart keeps
	// both counts.
	pointAt := at
	if point && pointAt <= r.lastPoint {
		pointAt = r.lastPoint + 1
	}
	b.feeds.mu.Unlock()
	if !due {
		return
	}
	err = b.writeRecord(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO feeds(user_id, source, active, mode, delete_policy, delete_after, last_poll, last_error, last_error_at, host_listed, host_messages, host_bytes, pending, would_delete, account, folder) VALUES (?,?,1,?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(user_id, source) DO UPDATE SET active=1, mode=excluded.mode, delete_policy=excluded.delete_policy, delete_after=excluded.delete_after, last_poll=excluded.last_poll, last_error=excluded.last_error, last_error_at=excluded.last_error_at, host_listed=excluded.host_listed, host_messages=excluded.host_messages, host_bytes=excluded.host_bytes, pending=excluded.pending, would_delete=excluded.would_delete, account=excluded.account, folder=excluded.folder`,
			u.id, src, string(row.mode), string(row.policy.Mode), int64(row.policy.After/time.Second), row.lastPoll, row.lastError, row.lastErrorAt, row.hostListed, row.hostMessages, row.hostBytes, row.pending, row.wouldDelete, feed.AccountName, feed.folder()); err != nil {
			return err
		}
		if !point {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO feed_history(user_id, source, at, host_messages) VALUES (?,?,?,?)`, u.id, src, pointAt, row.hostMessages); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM feed_history WHERE user_id=?1 AND source=?2 AND at <= (SELECT at FROM feed_history WHERE user_id=?1 AND source=?2 ORDER BY at DESC LIMIT 1 OFFSET ?3)`, u.id, src, historyPoints)
		return err
	})
	if err != nil {
		b.log.Warn("sync: could not record the poll", "user", u.name, "source", src, "err", err)
		return
	}
	b.feeds.mu.Lock()
	r.saved = cur
	if point {
		r.lastPoint, r.pointHolds = pointAt, row.hostMessages
	}
	b.feeds.mu.Unlock()
}

// recordGone marks the origins of gone (foreign deletions) and forget (our
// own deletions, confirmed) and counts the foreign ones, in one
// transaction: a foreign deletion is counted exactly once. The time of the
// last one is set only once the feed has had a complete listing recorded:
// messages missing at the first listing after an upgrade went at an
// unknown time.
func (b *Bridge) recordGone(ctx context.Context, u *User, src string, gone, forget []SourceID, now time.Time) error {
	r, err := b.record(ctx, u.id, src)
	if err != nil {
		return err
	}
	b.feeds.mu.Lock()
	stamp := r.hostListed
	b.feeds.mu.Unlock()
	at := now.Unix()
	err = b.writeRecord(ctx, func(tx *wtx) error {
		if err := setOrigins(ctx, tx, u.id, src, gone, originGone); err != nil {
			return err
		}
		if err := setOrigins(ctx, tx, u.id, src, forget, originDeleted); err != nil {
			return err
		}
		if len(gone) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO feeds(user_id, source) VALUES (?,?)`, u.id, src); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE feeds SET foreign_deletions=foreign_deletions+?, last_foreign_deletion=CASE WHEN ? THEN ? ELSE last_foreign_deletion END WHERE user_id=? AND source=?`, len(gone), stamp, at, u.id, src)
		return err
	})
	if err != nil {
		return fmt.Errorf("record messages gone from the host: %w", err)
	}
	b.known.setState(u.id, src, gone, originGone)
	b.known.setState(u.id, src, forget, originDeleted)
	if len(gone) > 0 {
		b.feeds.mu.Lock()
		r.foreign += int64(len(gone))
		if stamp {
			r.lastForeign = at
		}
		b.feeds.mu.Unlock()
		name, account := SplitFeedKey(src)
		b.metrics.ForeignDeletions(name, len(gone))
		b.log.Warn("sync: messages taken off the host by another client", "user", u.name, "source", name, "account", account, "count", len(gone))
	}
	return nil
}

// setFeeds records the feeds the syncer now polls for u (their settings,
// for Status) and marks u's other feeds inactive.
func (b *Bridge) setFeeds(ctx context.Context, u *User, feeds []Feed) error {
	same, err := b.feedsRecorded(ctx, u, feeds)
	if err != nil || same {
		return err
	}
	err = b.writeRecord(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE feeds SET active=0 WHERE user_id=?`, u.id); err != nil {
			return err
		}
		for _, f := range feeds {
			p := f.Policy.orKeep()
			if _, err := tx.ExecContext(ctx, `INSERT INTO feeds(user_id, source, active, mode, delete_policy, delete_after, account, folder) VALUES (?,?,1,?,?,?,?,?)
				ON CONFLICT(user_id, source) DO UPDATE SET active=1, mode=excluded.mode, delete_policy=excluded.delete_policy, delete_after=excluded.delete_after, account=excluded.account, folder=excluded.folder`,
				u.id, f.Key(), string(f.Mode.orServe()), string(p.Mode), int64(p.After/time.Second), f.AccountName, f.folder()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: record feeds of %q: %w", u.name, err)
	}
	b.feeds.mu.Lock()
	defer b.feeds.mu.Unlock()
	for k, r := range b.feeds.m {
		if k.user != u.id {
			continue
		}
		r.active = false
		for _, f := range feeds {
			if f.Key() == k.source {
				r.active, r.mode, r.policy = true, f.Mode.orServe(), f.Policy.orKeep()
			}
		}
	}
	return nil
}

// feedsRecorded tells whether the store's active feeds of u are feeds,
// with the same settings (a restart then writes nothing).
func (b *Bridge) feedsRecorded(ctx context.Context, u *User, feeds []Feed) (bool, error) {
	rows, err := b.rd.QueryContext(ctx, `SELECT source, mode, delete_policy, delete_after, account, folder FROM feeds WHERE user_id=? AND active`, u.id)
	if err != nil {
		return false, fmt.Errorf("store: read feeds of %q: %w", u.name, err)
	}
	defer rows.Close()
	want := make(map[string]string, len(feeds))
	for _, f := range feeds {
		p := f.Policy.orKeep()
		want[f.Key()] = fmt.Sprintln(f.Mode.orServe(), p.Mode, int64(p.After/time.Second), f.AccountName, f.folder())
	}
	n := 0
	for rows.Next() {
		var src, mode, policy, account, folder string
		var after int64
		if err := rows.Scan(&src, &mode, &policy, &after, &account, &folder); err != nil {
			return false, fmt.Errorf("store: read feeds of %q: %w", u.name, err)
		}
		if want[src] != fmt.Sprintln(mode, policy, after, account, folder) {
			return false, rows.Err()
		}
		n++
	}
	return n == len(want), rows.Err()
}

func (m FeedMode) orServe() FeedMode {
	if m == "" {
		return ModeServe
	}
	return m
}

func (p DeletePolicy) orKeep() DeletePolicy {
	if p.Mode == "" {
		p.Mode = DeleteKeep
	}
	return p
}

// ClientInfo is an IMAP client a user logged in with, as it named itself
// (the IMAP ID command).
type ClientInfo struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	OS       string    `json:"os,omitempty"`
	Vendor   string    `json:"vendor,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

// RecordLogin records that the user logged in over IMAP at at. Logins
// closer than a minute to the one saved are kept in memory only.
func (u *User) RecordLogin(ctx context.Context, at time.Time) error {
	u.loginMu.Lock()
	if at.After(u.lastLogin) {
		u.lastLogin = at
	}
	if at.Sub(u.savedLogin) < loginSaveEvery && !u.savedLogin.IsZero() {
		u.loginMu.Unlock()
		return nil
	}
	u.loginMu.Unlock()
	err := u.b.writeRecord(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE users SET last_login=max(last_login, ?) WHERE id=?`, at.Unix(), u.id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record login of %q: %w", u.name, err)
	}
	u.loginMu.Lock()
	if at.After(u.savedLogin) {
		u.savedLogin = at
	}
	u.loginMu.Unlock()
	return nil
}

// RecordClient records an IMAP client the user logged in with (LastSeen
// zero: now). Fields are cut to 64 bytes; a user keeps the 20 clients seen
// last. The same client seen again within a minute is not written again.
func (u *User) RecordClient(ctx context.Context, c ClientInfo) error {
	if c.LastSeen.IsZero() {
		c.LastSeen = time.Now()
	}
	for _, f := range []*string{&c.Name, &c.Version, &c.OS, &c.Vendor} {
		*f = cutField(*f)
	}
	key := c.Name + "\x00" + c.Version
	u.loginMu.Lock()
	last, ok := u.clientsSaved[key]
	u.loginMu.Unlock()
	if ok && c.LastSeen.Sub(last) < loginSaveEvery {
		return nil
	}
	err := u.b.writeRecord(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO clients(user_id, name, version, os, vendor, last_seen) VALUES (?,?,?,?,?,?)
			ON CONFLICT(user_id, name, version) DO UPDATE SET os=excluded.os, vendor=excluded.vendor, last_seen=max(last_seen, excluded.last_seen)`,
			u.id, c.Name, c.Version, c.OS, c.Vendor, c.LastSeen.Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM clients WHERE user_id=?1 AND (name, version) NOT IN (SELECT name, version FROM clients WHERE user_id=?1 ORDER BY last_seen DESC, name, version LIMIT ?2)`, u.id, maxClientsKept)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record client of %q: %w", u.name, err)
	}
	u.loginMu.Lock()
	if u.clientsSaved == nil {
		u.clientsSaved = make(map[string]time.Time)
	}
	u.clientsSaved[key] = c.LastSeen
	u.loginMu.Unlock()
	return nil
}

func cutField(s string) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= maxClientField {
		return s
	}
	s = s[:maxClientField]
	return strings.ToValidUTF8(s, "")
}

// UserState is what the store knows of one user, the input of Readiness.
type UserState struct {
	Name      string
	LastLogin time.Time
	Clients   []ClientInfo
	Feeds     []FeedState
}

// FeedState is what the store knows of one feed of a user.
type FeedState struct {
	Source string
	// Key is the feed key (FeedKey); Account and Folder are the
	// account's name ("" for the sources: form) and target folder.
	Key         string
	Account     string
	Folder      string
	Mode        FeedMode
	Policy      DeletePolicy
	LastPoll    time.Time // last successful poll
	LastError   string    // of the last poll, "" if it succeeded
	LastErrorAt time.Time
	// HostListed: a complete listing was seen; HostMessages and
	// HostBytes are from the last one.
	HostListed          bool
	HostMessages        int
	HostBytes           int64
	Stored              int // messages ever stored from this source
	Pending             int // at the host, not yet stored (last poll)
	WouldDelete         int // what the policy would delete (shadow)
	ForeignDeletions    int64
	LastForeignDeletion time.Time
}

// UserStatus is one user's readiness; its JSON is the status page's.
type UserStatus struct {
	Name      string         `json:"name"`
	Ready     bool           `json:"ready"`
	Reasons   []string       `json:"reasons"`
	LastLogin *time.Time     `json:"last_login"`
	Clients   []ClientInfo   `json:"clients"`
	Sources   []SourceStatus `json:"sources"`
}

// SourceStatus is one feed of a user in UserStatus.
type SourceStatus struct {
	Name string `json:"name"`
	// Account is the account's login at the source, for accounts given
	// with users[].accounts (omitted for the sources: form); Folder is
	// where its mail goes. Two accounts at one source are two entries
	// of the same Name.
	Account string `json:"account,omitempty"`
	Folder  string `json:"folder"`
	// Key is the feed key (FeedKey), what HostHistory takes.
	Key                 string     `json:"-"`
	Mode                FeedMode   `json:"mode"`
	DeletePolicy        DeleteMode `json:"delete_policy"`
	LastPoll            *time.Time `json:"last_poll"`
	LastError           string     `json:"last_error"`
	HostMessages        int        `json:"host_messages"`
	HostBytes           int64      `json:"host_bytes"`
	StoredMessages      int        `json:"stored_messages"`
	Pending             int        `json:"pending"`
	WouldDelete         int        `json:"would_delete"`
	ForeignDeletions    int64      `json:"foreign_deletions"`
	LastForeignDeletion *time.Time `json:"last_foreign_deletion"`
}

// Readiness is the verdict on one user, a pure function of what the store
// knows: ready unless (each a reason, in this order) the user never logged
// in over IMAP, or for a source: it was never polled successfully, its
// last poll failed, messages at the host are not yet stored, or another
// client took a message off the host within quietPeriod (<= 0:
// DefaultQuietPeriod).
func Readiness(u UserState, now time.Time, quietPeriod time.Duration) UserStatus {
	if quietPeriod <= 0 {
		quietPeriod = DefaultQuietPeriod
	}
	st := UserStatus{Name: u.Name, Reasons: []string{}, LastLogin: timePtr(u.LastLogin), Clients: u.Clients, Sources: []SourceStatus{}}
	if st.Clients == nil {
		st.Clients = []ClientInfo{}
	}
	if u.LastLogin.IsZero() {
		st.Reasons = append(st.Reasons, "never logged in over IMAP")
	}
	for _, f := range u.Feeds {
		if f.Folder == "" {
			f.Folder = InboxName
		}
		if f.Key == "" {
			f.Key = f.Source
		}
		st.Sources = append(st.Sources, SourceStatus{
			Name: f.Source, Account: f.Account, Folder: f.Folder, Key: f.Key, Mode: f.Mode.orServe(), DeletePolicy: f.Policy.orKeep().Mode,
			LastPoll: timePtr(f.LastPoll), LastError: f.LastError,
			HostMessages: f.HostMessages, HostBytes: f.HostBytes, StoredMessages: f.Stored,
			Pending: f.Pending, WouldDelete: f.WouldDelete,
			ForeignDeletions: f.ForeignDeletions, LastForeignDeletion: timePtr(f.LastForeignDeletion),
		})
		src := f.Source
		if f.Account != "" {
			src += " (account " + f.Account + ")"
		}
		switch {
		case f.LastPoll.IsZero() && f.LastError != "":
			st.Reasons = append(st.Reasons, fmt.Sprintf("source %s: never polled successfully: %s", src, f.LastError))
		case f.LastPoll.IsZero():
			st.Reasons = append(st.Reasons, fmt.Sprintf("source %s: never polled", src))
		case f.LastError != "":
			st.Reasons = append(st.Reasons, fmt.Sprintf("source %s: last poll failed at %s: %s", src, f.LastErrorAt.UTC().Format(time.RFC3339), f.LastError))
		}
		if f.Pending > 0 {
			st.Reasons = append(st.Reasons, fmt.Sprintf("source %s: %d %s at the host not yet stored", src, f.Pending, plural(f.Pending, "message", "messages")))
		}
		if !f.LastForeignDeletion.IsZero() && now.Sub(f.LastForeignDeletion) < quietPeriod {
			st.Reasons = append(st.Reasons, fmt.Sprintf("source %s: another client took mail off the host at %s (%d %s in all), within the quiet period of %s", src, f.LastForeignDeletion.UTC().Format(time.RFC3339), f.ForeignDeletions, plural(int(f.ForeignDeletions), "message", "messages"), days(quietPeriod)))
		}
	}
	st.Ready = len(st.Reasons) == 0
	return st
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// days writes a period in whole days where it is one ("7d").
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// Status returns the readiness of every user with an active feed (one the
// syncer polls), sorted by name, their sources sorted by name. It reads the
// store, and the polls' latest records not yet saved.
func (b *Bridge) Status(ctx context.Context, now time.Time, quietPeriod time.Duration) ([]UserStatus, error) {
	states, err := b.userStates(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]UserStatus, len(states))
	for i, s := range states {
		out[i] = Readiness(s, now, quietPeriod)
	}
	return out, nil
}

// userStates reads the input of Readiness for every user with an active
// feed.
func (b *Bridge) userStates(ctx context.Context) ([]UserState, error) {
	fail := func(err error) ([]UserState, error) { return nil, fmt.Errorf("store: status: %w", err) }
	rows, err := b.rd.QueryContext(ctx, `SELECT f.user_id, u.name, u.last_login, f.source, f.account, f.folder, f.mode, f.delete_policy, f.delete_after, f.last_poll, f.last_error, f.last_error_at, f.host_listed, f.host_messages, f.host_bytes, f.pending, f.would_delete, f.foreign_deletions, f.last_foreign_deletion,
		(SELECT count(*) FROM origins o WHERE o.user_id=f.user_id AND o.source=f.source)
		FROM feeds f JOIN users u ON u.id=f.user_id WHERE f.active ORDER BY u.name, f.source`)
	if err != nil {
		return fail(err)
	}
	var states []UserState
	var ids []int64
	for rows.Next() {
		var id, login, lastPoll, errAt, foreignAt, after int64
		var name, mode, policy string
		var f FeedState
		if err := rows.Scan(&id, &name, &login, &f.Key, &f.Account, &f.Folder, &mode, &policy, &after, &lastPoll, &f.LastError, &errAt, &f.HostListed, &f.HostMessages, &f.HostBytes, &f.Pending, &f.WouldDelete, &f.ForeignDeletions, &foreignAt, &f.Stored); err != nil {
			rows.Close()
			return fail(err)
		}
		f.Source, _ = SplitFeedKey(f.Key)
		f.Mode, f.Policy = FeedMode(mode), DeletePolicy{Mode: DeleteMode(policy), After: time.Duration(after) * time.Second}
		f.LastPoll, f.LastErrorAt, f.LastForeignDeletion = unixTime(lastPoll), unixTime(errAt), unixTime(foreignAt)
		// A poll's record not saved yet is newer than the row.
		b.feeds.mu.Lock()
		if r := b.feeds.m[knownKey{id, f.Key}]; r != nil {
			f.LastPoll, f.LastError, f.LastErrorAt = unixTime(r.lastPoll), r.lastError, unixTime(r.lastErrorAt)
			f.HostListed, f.HostMessages, f.HostBytes, f.Pending, f.WouldDelete = r.hostListed, r.hostMessages, r.hostBytes, r.pending, r.wouldDelete
			f.ForeignDeletions, f.LastForeignDeletion = r.foreign, unixTime(r.lastForeign)
		}
		b.feeds.mu.Unlock()
		if len(states) == 0 || states[len(states)-1].Name != name {
			states = append(states, UserState{Name: name, LastLogin: unixTime(login)})
			ids = append(ids, id)
		}
		states[len(states)-1].Feeds = append(states[len(states)-1].Feeds, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	for i := range states {
		b.mu.Lock()
		u := b.users[states[i].Name]
		b.mu.Unlock()
		if u != nil {
			u.loginMu.Lock()
			if u.lastLogin.After(states[i].LastLogin) {
				states[i].LastLogin = u.lastLogin.Truncate(time.Second)
			}
			u.loginMu.Unlock()
		}
		clients, err := b.clients(ctx, ids[i])
		if err != nil {
			return fail(err)
		}
		states[i].Clients = clients
	}
	return states, nil
}

func (b *Bridge) clients(ctx context.Context, userID int64) ([]ClientInfo, error) {
	rows, err := b.rd.QueryContext(ctx, `SELECT name, version, os, vendor, last_seen FROM clients WHERE user_id=? ORDER BY last_seen DESC, name, version`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ClientInfo{}
	for rows.Next() {
		var c ClientInfo
		var seen int64
		if err := rows.Scan(&c.Name, &c.Version, &c.OS, &c.Vendor, &seen); err != nil {
			return nil, err
		}
		c.LastSeen = time.Unix(seen, 0).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// HostPoint is one point of a feed's drain chart: how many messages the
// host listed at a time.
type HostPoint struct {
	At       time.Time `json:"at"`
	Messages int       `json:"messages"`
}

// HostHistory returns the drain chart of user's feed with the feed key
// source (SourceStatus.Key; the source name for its one account), oldest
// first: a point whenever the count at the host changed, and at least
// one an hour, the last 200 kept.
func (b *Bridge) HostHistory(ctx context.Context, user, source string) ([]HostPoint, error) {
	rows, err := b.rd.QueryContext(ctx, `SELECT h.at, h.host_messages FROM feed_history h JOIN users u ON u.id=h.user_id WHERE u.name=? AND h.source=? ORDER BY h.at`, user, source)
	if err != nil {
		return nil, fmt.Errorf("store: host history of %q: %w", user, err)
	}
	defer rows.Close()
	out := []HostPoint{}
	for rows.Next() {
		var at int64
		var p HostPoint
		if err := rows.Scan(&at, &p.Messages); err != nil {
			return nil, fmt.Errorf("store: host history of %q: %w", user, err)
		}
		p.At = time.Unix(at, 0).UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: host history of %q: %w", user, err)
	}
	return out, nil
}
