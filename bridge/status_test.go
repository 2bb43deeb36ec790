package bridge_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

// statusOf returns the status of one user, failing when it is missing.
func statusOf(t *testing.T, b *bridge.Bridge, user string) bridge.UserStatus {
	t.Helper()
	all, err := b.Status(context.Background(), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Name == user {
			return s
		}
	}
	t.Fatalf("no status for %q in %+v", user, all)
	return bridge.UserStatus{}
}

func sourceOf(t *testing.T, st bridge.UserStatus, source string) bridge.SourceStatus {
	t.Helper()
	for _, s := range st.Sources {
		if s.Name == source {
			return s
		}
	}
	t.Fatalf("user %s has no source %q: %+v", st.Name, source, st.Sources)
	return bridge.SourceStatus{}
}

// TestShadowNeverChangesHost: a shadow feed under every delete policy
// stores and serves the mail, leaves the host untouched over many polls,
// and reports what the policy would delete.
func TestShadowNeverChangesHost(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		policy      bridge.DeletePolicy
		expunge     bool // the user expunges message 1 in IMAP first
		wouldDelete int
	}{
		{bridge.DeletePolicy{Mode: bridge.DeleteKeep}, false, 0},
		{bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}, false, 3},
		{bridge.DeletePolicy{Mode: bridge.DeleteAfterDays, After: time.Hour}, false, 3}, // due: the clock moves on 2h
		{bridge.DeletePolicy{Mode: bridge.DeleteOnExpunge}, true, 1},
	} {
		for _, offerIDs := range []bool{false, true} {
			name := fmt.Sprintf("%s/ids=%v", tc.policy.Mode, offerIDs)
			b := openStore(t, t.TempDir())
			src := bridgetest.NewSource("legacy")
			src.OfferIDs(offerIDs)
			for i := 1; i <= 3; i++ {
				src.Deliver("alice", msg(i), time.Time{})
			}
			before := src.Messages("alice")
			u, _ := b.User(ctx, "alice")
			feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: tc.policy, Mode: bridge.ModeShadow}
			res, err := b.Poll(ctx, u, feed)
			if err != nil || res.Fetched != 3 || res.Deleted != 0 {
				t.Fatalf("%s: first poll %+v, %v", name, res, err)
			}
			later := time.Now().Add(2 * time.Hour)
			bridge.SetClock(b, func() time.Time { return later })
			if tc.expunge {
				inbox := mailbox(t, u, "INBOX")
				inbox.Store(ctx, []bridge.UID{1}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
				if _, err := inbox.Expunge(ctx, nil); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 5 {
				res, err = b.Poll(ctx, u, feed)
				if err != nil || res.Deleted != 0 || res.Fetched != 0 || res.WouldDelete != tc.wouldDelete {
					t.Fatalf("%s: poll %d: %+v, %v; want nothing deleted, would_delete %d", name, i+2, res, err, tc.wouldDelete)
				}
			}
			if got := src.Messages("alice"); !reflect.DeepEqual(got, before) {
				t.Errorf("%s: host holds %v after shadow polls, want %v untouched", name, got, before)
			}
			st := sourceOf(t, statusOf(t, b, "alice"), "legacy")
			if st.Mode != bridge.ModeShadow || st.DeletePolicy != tc.policy.Mode || st.WouldDelete != tc.wouldDelete || st.HostMessages != 3 || st.StoredMessages != 3 || st.Pending != 0 || st.ForeignDeletions != 0 {
				t.Errorf("%s: status %+v", name, st)
			}
			b.Close()
		}
	}
}

// wrapped is an in-memory source whose sessions are changed by wrap: a
// host misbehaving on cue.
type wrapped struct {
	*bridgetest.Source
	wrap func(bridge.SourceSession) bridge.SourceSession
}

func (w wrapped) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	s, err := w.Source.Open(ctx, acct)
	if err != nil {
		return nil, err
	}
	return w.wrap(s), nil
}

// closeThenFailSession commits at Close and then reports an error, as a
// POP3 server whose "+OK" to QUIT is lost on the way does.
type closeThenFailSession struct{ bridge.SourceSession }

func (s closeThenFailSession) Close(ctx context.Context) error {
	if err := s.SourceSession.Close(ctx); err != nil {
		return err
	}
	return errors.New("read QUIT reply: connection reset by peer")
}

// TestForeignDeletions: a stored message that another client takes off
// the host counts once, with its time; the bridge's own deletions do not
// count (confirmed, not committed, or committed with the reply lost), nor
// a partial listing.
func TestForeignDeletions(t *testing.T) {
	ctx := context.Background()
	var counted []string
	b, err := bridge.Open(ctx, bridge.Options{DataDir: t.TempDir(), Metrics: &bridge.Metrics{
		ForeignDeletions: func(source string, n int) { counted = append(counted, fmt.Sprintf("%s:%d", source, n)) },
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	var ids []bridge.SourceID
	for i := 1; i <= 6; i++ {
		ids = append(ids, src.Deliver("alice", msg(i), time.Time{}))
	}
	u, _ := b.User(ctx, "alice")
	keep := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}
	poll := func(step string, feed bridge.Feed, wantGone int) {
		t.Helper()
		res, err := b.Poll(ctx, u, feed)
		if res.Gone != wantGone {
			t.Fatalf("%s: gone %d (%+v, %v), want %d", step, res.Gone, res, err, wantGone)
		}
		if cached, err := bridge.KnownCacheMatches(ctx, b, u, "legacy"); cached && err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	poll("first", keep, 0)
	before := time.Now().Truncate(time.Second)
	src.Remove("alice", ids[1]) // another POP3 client takes message 2
	poll("after the other client", keep, 1)
	poll("again", keep, 0) // counted once
	st := sourceOf(t, statusOf(t, b, "alice"), "legacy")
	if st.ForeignDeletions != 1 || st.LastForeignDeletion == nil || st.LastForeignDeletion.Before(before) {
		t.Fatalf("status after one foreign deletion: %+v", st)
	}
	if inbox := mailbox(t, u, "INBOX"); len(inbox.UIDs()) != 6 {
		t.Fatalf("INBOX holds %d, want all 6: a deletion at the host is not mirrored", len(inbox.UIDs()))
	}

	// A partial listing (message 3 missing from it) counts nothing.
	src.Remove("alice", ids[2])
	if _, err := b.Poll(ctx, u, bridge.Feed{Source: partialSource{src}, Account: keep.Account, Policy: keep.Policy}); err == nil {
		t.Fatal("partial listing: no error")
	}
	// A poll that deletes (after_sync): message 3 is now missing from a
	// complete listing (the other client's, at last); the bridge deletes
	// 1, 4, 5 and 6 and the QUIT reply is lost.
	lostQuit := wrapped{src, func(s bridge.SourceSession) bridge.SourceSession { return closeThenFailSession{s} }}
	sync := bridge.Feed{Source: lostQuit, Account: keep.Account, Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}}
	if res, err := b.Poll(ctx, u, sync); err == nil || !strings.Contains(err.Error(), "connection reset") || res.Gone != 1 {
		t.Fatalf("poll with the QUIT reply lost: %+v, %v", res, err)
	}
	if n := len(src.Messages("alice")); n != 0 {
		t.Fatalf("host holds %d, want 0", n)
	}
	// The next poll finds 1, 4, 5, 6 gone: ours, not counted.
	poll("after our deletion", keep, 0)
	// Our deletion not committed: listed again, deleted again, not counted.
	for i := 7; i <= 8; i++ {
		src.Deliver("alice", msg(i), time.Time{})
	}
	poll("new", keep, 0)
	src.FailClose(errors.New("QUIT refused"))
	if _, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: keep.Account, Policy: sync.Policy}); err == nil {
		t.Fatal("failing close: no error")
	}
	src.FailClose(nil)
	poll("commit failed, listed again", bridge.Feed{Source: src, Account: keep.Account, Policy: sync.Policy}, 0)
	poll("after", keep, 0)
	if n := len(src.Messages("alice")); n != 0 {
		t.Fatalf("host holds %d, want 0", n)
	}
	st = sourceOf(t, statusOf(t, b, "alice"), "legacy")
	if st.ForeignDeletions != 2 || st.StoredMessages != 8 || st.HostMessages != 0 {
		t.Fatalf("final status %+v, want 2 foreign deletions, 8 stored, 0 at the host", st)
	}
	if got := strings.Join(counted, " "); got != "legacy:1 legacy:1" {
		t.Errorf("metrics hook told %q, want two single foreign deletions", got)
	}
}

func openRaw(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestForeignDeletionsPersist: the count and its time come back after a
// restart, and a store upgraded from schema 5 counts what went missing
// before the upgrade without a time (it went at an unknown time).
func TestForeignDeletionsPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := bridgetest.NewSource("legacy")
	ids := []bridge.SourceID{src.Deliver("alice", msg(1), time.Time{}), src.Deliver("alice", msg(2), time.Time{}), src.Deliver("alice", msg(3), time.Time{})}
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}}
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	if _, err := b.Poll(ctx, u, feed); err != nil {
		t.Fatal(err)
	}
	b.Close()
	db := openRaw(t, dir)
	undoStatus(t, db)
	db.Close()
	src.Remove("alice", ids[0]) // gone while the old version ran

	b = openStore(t, dir)
	u, _ = b.User(ctx, "alice")
	if res, err := b.Poll(ctx, u, feed); err != nil || res.Gone != 1 {
		t.Fatalf("first poll after the upgrade: %+v, %v", res, err)
	}
	st := sourceOf(t, statusOf(t, b, "alice"), "legacy")
	if st.ForeignDeletions != 1 || st.LastForeignDeletion != nil {
		t.Fatalf("after the upgrade: %+v, want 1 foreign deletion without a time", st)
	}
	src.Remove("alice", ids[1])
	if res, err := b.Poll(ctx, u, feed); err != nil || res.Gone != 1 {
		t.Fatalf("poll: %+v, %v", res, err)
	}
	b.Close()
	b = openStore(t, dir)
	defer b.Close()
	st = sourceOf(t, statusOf(t, b, "alice"), "legacy")
	if st.ForeignDeletions != 2 || st.LastForeignDeletion == nil || st.HostMessages != 1 || st.StoredMessages != 3 || st.LastPoll == nil {
		t.Fatalf("after a restart: %+v", st)
	}
}

// TestSyncerUpdateAndRemove: Update switches one user's feed from shadow
// to serve + after_sync, which drains that user's maildrop and nobody
// else's; the other user's loop and open session carry on; Update adds and
// drops sources; Remove stops a user's polling and keeps the mail.
func TestSyncerUpdateAndRemove(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	spool := bridgetest.NewSource("spool")
	shadow := bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}
	users := map[string]*bridge.User{}
	s := bridge.NewSyncer(b, bridge.SyncerOptions{})
	defer s.Stop(ctx)
	for _, name := range []string{"alice", "bob"} {
		for i := 1; i <= 3; i++ {
			src.Deliver(name, msg(i), time.Time{})
		}
		u, _ := b.User(ctx, name)
		users[name] = u
		s.Add(u, []bridge.Feed{{Source: src, Account: bridge.Account{User: name}, Policy: shadow, Mode: bridge.ModeShadow, PollInterval: time.Hour}})
	}
	for _, name := range []string{"alice", "bob"} {
		if err := s.PollAndWait(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	b.AddObserver(rec)
	bobInbox := mailbox(t, users["bob"], "INBOX")
	w, err := bobInbox.Watch(ctx, true, func(bridge.Snapshot) {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(nil)

	if err := s.Update(ctx, users["alice"], []bridge.Feed{{Source: src, Account: bridge.Account{User: "alice"}, Policy: shadow, Mode: bridge.ModeServe, PollInterval: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n := len(src.Messages("alice")); n != 0 {
		t.Errorf("alice's maildrop holds %d after the switch to serve + after_sync, want 0", n)
	}
	if n := len(src.Messages("bob")); n != 3 {
		t.Errorf("bob's maildrop holds %d, want 3 (still shadow)", n)
	}
	if st := sourceOf(t, statusOf(t, b, "alice"), "legacy"); st.Mode != bridge.ModeServe || st.HostMessages != 0 || st.HostBytes != 0 || st.WouldDelete != 0 || st.StoredMessages != 3 {
		t.Errorf("alice's status after the switch: %+v", st)
	}
	// Bob's loop and session carry on: new mail reaches the session.
	src.Deliver("bob", msg(4), time.Time{})
	if err := s.PollAndWait(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := rec.String(); got != fmt.Sprintf("%d appended [4]", bobInbox.ID()) {
		t.Errorf("events after bob's poll: %q", got)
	}
	if n := len(src.Messages("bob")); n != 4 {
		t.Errorf("bob's maildrop holds %d, want 4", n)
	}

	// A second source for alice, the first dropped.
	spool.Deliver("alice", msg(9), time.Time{})
	if err := s.Update(ctx, users["alice"], []bridge.Feed{{Source: spool, Account: bridge.Account{User: "alice"}, PollInterval: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	feeds := s.Feeds("alice")
	if len(feeds) != 1 || feeds[0].Source.Name() != "spool" || feeds[0].Mode != bridge.ModeServe {
		t.Fatalf("alice's feeds after the update: %+v", feeds)
	}
	var names []string
	for _, x := range statusOf(t, b, "alice").Sources {
		names = append(names, x.Name)
	}
	if strings.Join(names, " ") != "spool" {
		t.Errorf("alice's sources in the status: %v, want only spool", names)
	}
	if n := len(mailbox(t, users["alice"], "INBOX").UIDs()); n != 4 {
		t.Errorf("alice's INBOX holds %d, want 4", n)
	}

	// Remove: polling stops, the mail stays, the user leaves the status.
	if err := s.Remove(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if s.Has("bob") {
		t.Error("bob still has loops after Remove")
	}
	if err := s.PollAndWait(ctx, "bob"); err == nil {
		t.Error("PollAndWait for a removed user: no error")
	}
	opened := src.Opened()
	users["bob"].PollNow()
	src.Deliver("bob", msg(5), time.Time{})
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if src.Opened() != opened {
		t.Errorf("the source was opened %d times after bob's removal", src.Opened()-opened)
	}
	if n := len(bobInbox.UIDs()); n != 4 {
		t.Errorf("bob's INBOX holds %d after Remove, want 4 (data kept)", n)
	}
	all, err := b.Status(ctx, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Name != "alice" {
		t.Errorf("status after removing bob: %+v", all)
	}
}

// TestReadiness is the verdict's rules.
func TestReadiness(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	login := now.Add(-time.Hour)
	good := bridge.FeedState{Source: "legacy", Mode: bridge.ModeServe, Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}, LastPoll: now.Add(-time.Minute), HostListed: true, Stored: 10}
	with := func(f func(*bridge.FeedState)) bridge.FeedState { x := good; f(&x); return x }
	for _, tc := range []struct {
		name    string
		login   time.Time
		feeds   []bridge.FeedState
		quiet   time.Duration
		reasons []string
	}{
		{"ready", login, []bridge.FeedState{good}, 0, nil},
		{"no feeds, logged in", login, nil, 0, nil},
		{"never logged in", time.Time{}, []bridge.FeedState{good}, 0, []string{"never logged in over IMAP"}},
		{"never polled", login, []bridge.FeedState{with(func(f *bridge.FeedState) { f.LastPoll = time.Time{} })}, 0,
			[]string{"source legacy: never polled"}},
		{"never polled, failing", login, []bridge.FeedState{with(func(f *bridge.FeedState) {
			f.LastPoll, f.LastError, f.LastErrorAt = time.Time{}, "poll legacy: open: source refused the credentials", now
		})}, 0, []string{"source legacy: never polled successfully: poll legacy: open: source refused the credentials"}},
		{"last poll failed", login, []bridge.FeedState{with(func(f *bridge.FeedState) {
			f.LastError, f.LastErrorAt = "poll legacy: list: i/o timeout", now.Add(-30*time.Second)
		})}, 0, []string{"source legacy: last poll failed at 2026-12-01T11:59:30Z: poll legacy: list: i/o timeout"}},
		{"pending", login, []bridge.FeedState{with(func(f *bridge.FeedState) { f.Pending = 3 })}, 0,
			[]string{"source legacy: 3 messages at the host not yet stored"}},
		{"one pending", login, []bridge.FeedState{with(func(f *bridge.FeedState) { f.Pending = 1 })}, 0,
			[]string{"source legacy: 1 message at the host not yet stored"}},
		{"foreign deletion within the quiet period", login, []bridge.FeedState{with(func(f *bridge.FeedState) {
			f.ForeignDeletions, f.LastForeignDeletion = 2, now.Add(-6*24*time.Hour)
		})}, 0, []string{"source legacy: another client took mail off the host at 2026-11-25T12:00:00Z (2 messages in all), within the quiet period of 7d"}},
		{"foreign deletion before the quiet period", login, []bridge.FeedState{with(func(f *bridge.FeedState) {
			f.ForeignDeletions, f.LastForeignDeletion = 2, now.Add(-8*24*time.Hour)
		})}, 0, nil},
		{"foreign deletion, shorter quiet period", login, []bridge.FeedState{with(func(f *bridge.FeedState) {
			f.ForeignDeletions, f.LastForeignDeletion = 1, now.Add(-2*time.Hour)
		})}, time.Hour, nil},
		{"foreign deletion at an unknown time", login, []bridge.FeedState{with(func(f *bridge.FeedState) { f.ForeignDeletions = 5 })}, 0, nil},
		{"would delete is not a reason", login, []bridge.FeedState{with(func(f *bridge.FeedState) { f.Mode, f.WouldDelete = bridge.ModeShadow, 7 })}, 0, nil},
		{"everything at once, in order", time.Time{}, []bridge.FeedState{
			with(func(f *bridge.FeedState) { f.Source, f.Pending = "a", 2 }),
			with(func(f *bridge.FeedState) {
				f.Source, f.LastError, f.LastErrorAt, f.ForeignDeletions, f.LastForeignDeletion = "b", "x", now, 1, now.Add(-time.Minute)
			}),
		}, 12 * time.Hour, []string{
			"never logged in over IMAP",
			"source a: 2 messages at the host not yet stored",
			"source b: last poll failed at 2026-12-01T12:00:00Z: x",
			"source b: another client took mail off the host at 2026-12-01T11:59:00Z (1 message in all), within the quiet period of 12h0m0s",
		}},
	} {
		st := bridge.Readiness(bridge.UserState{Name: "alice", LastLogin: tc.login, Feeds: tc.feeds}, now, tc.quiet)
		want := tc.reasons
		if want == nil {
			want = []string{}
		}
		if !reflect.DeepEqual(st.Reasons, want) || st.Ready != (len(want) == 0) {
			t.Errorf("%s: ready %v, reasons %q; want %q", tc.name, st.Ready, st.Reasons, want)
		}
		if len(st.Sources) != len(tc.feeds) {
			t.Errorf("%s: %d sources, want %d", tc.name, len(st.Sources), len(tc.feeds))
		}
	}
}

// TestStatusJSON: the status's JSON has exactly the status page's keys,
// with logins and clients recorded through the User.
func TestStatusJSON(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	src := bridgetest.NewSource("legacy")
	src.Deliver("alice", msg(1), time.Time{})
	u, _ := b.User(ctx, "alice")
	s := bridge.NewSyncer(b, bridge.SyncerOptions{})
	s.Add(u, []bridge.Feed{{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterDays, After: 48 * time.Hour}, Mode: bridge.ModeShadow, PollInterval: time.Hour}})
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, b, "alice"); st.Ready || !reflect.DeepEqual(st.Reasons, []string{"never logged in over IMAP"}) {
		t.Fatalf("before any login: ready %v, %q", st.Ready, st.Reasons)
	}
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	if err := u.RecordLogin(ctx, at); err != nil {
		t.Fatal(err)
	}
	for _, c := range []bridge.ClientInfo{
		{Name: "Thunderbird", Version: "128.5", OS: "Linux", LastSeen: at},
		{Name: "iOS Mail", Version: "18", Vendor: "Apple", LastSeen: at.Add(time.Minute)},
		{Name: "Thunderbird", Version: "128.5", LastSeen: at.Add(2 * time.Minute)},
		{Name: strings.Repeat("x", 100), Version: "1", LastSeen: at},
	} {
		if err := u.RecordClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	s.Stop(ctx)
	b.Close()
	b = openStore(t, dir) // what the store knows, not what was in memory
	defer b.Close()
	all, err := b.Status(ctx, at.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]any{"users": all})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Users []map[string]json.RawMessage `json:"users"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Users) != 1 {
		t.Fatalf("%s: %v", data, err)
	}
	if got, want := keys(doc.Users[0]), "clients last_login name ready reasons sources"; got != want {
		t.Errorf("user keys %q, want %q", got, want)
	}
	var sources []map[string]json.RawMessage
	json.Unmarshal(doc.Users[0]["sources"], &sources)
	if len(sources) != 1 {
		t.Fatalf("sources: %s", doc.Users[0]["sources"])
	}
	if got, want := keys(sources[0]), "delete_policy folder foreign_deletions host_bytes host_messages last_error last_foreign_deletion last_poll mode name pending stored_messages would_delete"; got != want {
		t.Errorf("source keys %q, want %q", got, want)
	}
	st := all[0]
	if !st.Ready || st.LastLogin == nil || !st.LastLogin.Equal(at) {
		t.Errorf("after a login: ready %v %q, last login %v", st.Ready, st.Reasons, st.LastLogin)
	}
	var clients []string
	for _, c := range st.Clients {
		clients = append(clients, fmt.Sprintf("%s/%s/%s/%s/%s", c.Name, c.Version, c.OS, c.Vendor, c.LastSeen.Format("15:04")))
	}
	want := []string{"Thunderbird/128.5///09:32", "iOS Mail/18//Apple/09:31", strings.Repeat("x", 64) + "/1///09:30"}
	if !reflect.DeepEqual(clients, want) {
		t.Errorf("clients %q, want %q", clients, want)
	}
	src0 := st.Sources[0]
	if src0.Mode != bridge.ModeShadow || src0.DeletePolicy != bridge.DeleteAfterDays || src0.HostMessages != 1 || src0.HostBytes != int64(len(msg(1))) || src0.StoredMessages != 1 || src0.WouldDelete != 0 || src0.LastPoll == nil || src0.LastError != "" {
		t.Errorf("source status %+v", src0)
	}
}

func keys(m map[string]json.RawMessage) string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return strings.Join(k, " ")
}

// TestHostHistory: a point per change of the count at the host, the last
// few kept.
func TestHostHistory(t *testing.T) {
	defer bridge.SetHistoryPoints(3)()
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	clock := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	bridge.SetClock(b, func() time.Time { return clock })
	src := bridgetest.NewSource("legacy")
	u, _ := b.User(ctx, "alice")
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}}
	poll := func() {
		t.Helper()
		if _, err := b.Poll(ctx, u, feed); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		src.Deliver("alice", msg(i), time.Time{})
		poll()
		clock = clock.Add(time.Minute)
	}
	poll() // unchanged within the hour: no point
	clock = clock.Add(time.Hour)
	poll() // unchanged for an hour: a point
	clock = clock.Add(time.Minute)
	poll()
	h, err := b.HostHistory(ctx, "alice", "legacy")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range h {
		got = append(got, fmt.Sprintf("%s=%d", p.At.Format("15:04"), p.Messages))
	}
	if want := []string{"08:03=4", "08:04=5", "09:05=5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
}

// failFetchSession fails the fetch of one id, as a host that drops the
// connection mid-RETR does.
type failFetchSession struct {
	bridge.SourceSession
	id bridge.SourceID
}

func (s failFetchSession) Fetch(ctx context.Context, id bridge.SourceID) (io.ReadCloser, error) {
	if id == s.id {
		return nil, errors.New("read RETR reply: connection reset by peer")
	}
	return s.SourceSession.Fetch(ctx, id)
}

// TestPendingAfterFailedFetch: a failing poll is the last error (a refused
// login, then a fetch cut off); what it could not store is pending, and the
// user not ready for either, until a good poll stores it and clears the
// error.
func TestPendingAfterFailedFetch(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	src.Deliver("alice", msg(1), time.Time{})
	bad := src.Deliver("alice", msg(2), time.Time{})
	src.Deliver("alice", msg(3), time.Time{})
	u, _ := b.User(ctx, "alice")
	u.RecordLogin(ctx, time.Now())
	// The host refuses the login: nothing stored, nothing known pending.
	src.FailOpen(fmt.Errorf("dial: %w", bridge.ErrSourceAuth))
	b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}})
	st := statusOf(t, b, "alice")
	if s := sourceOf(t, st, "legacy"); s.LastPoll != nil || s.LastError != "poll legacy: open: dial: source refused the credentials" || s.Pending != 0 || s.StoredMessages != 0 {
		t.Fatalf("after a refused login: %+v", s)
	}
	if want := []string{"source legacy: never polled successfully: poll legacy: open: dial: source refused the credentials"}; !reflect.DeepEqual(st.Reasons, want) {
		t.Fatalf("reasons %q, want %q", st.Reasons, want)
	}
	src.FailOpen(nil)
	cut := wrapped{src, func(s bridge.SourceSession) bridge.SourceSession { return failFetchSession{s, bad} }}
	feed := bridge.Feed{Source: cut, Account: bridge.Account{User: "alice"}}
	if _, err := b.Poll(ctx, u, feed); err == nil {
		t.Fatal("poll with a failing fetch: no error")
	}
	st = statusOf(t, b, "alice")
	s := sourceOf(t, st, "legacy")
	if s.Pending != 2 || s.StoredMessages != 1 || s.LastPoll != nil || !strings.Contains(s.LastError, "connection reset") {
		t.Fatalf("after the failed fetch: %+v", s)
	}
	want := []string{"source legacy: never polled successfully: poll legacy: fetch " + string(bad) + ": read RETR reply: connection reset by peer", "source legacy: 2 messages at the host not yet stored"}
	if st.Ready || !reflect.DeepEqual(st.Reasons, want) {
		t.Fatalf("reasons %q, want %q", st.Reasons, want)
	}
	feed.Source = src
	if _, err := b.Poll(ctx, u, feed); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, b, "alice"); !st.Ready || sourceOf(t, st, "legacy").Pending != 0 || sourceOf(t, st, "legacy").StoredMessages != 3 {
		t.Fatalf("after a good poll: ready %v %q %+v", st.Ready, st.Reasons, st.Sources)
	}
}
