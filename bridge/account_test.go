package bridge_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

// folderBodies returns the bodies in a folder of u by UID.
func folderBodies(t *testing.T, u *bridge.User, name string) map[bridge.UID]string {
	t.Helper()
	mb, err := u.Mailbox(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[bridge.UID]string{}
	for _, uid := range mb.UIDs() {
		out[uid] = string(readAll(t, mb, uid))
	}
	return out
}

func TestFeedKey(t *testing.T) {
	for _, tc := range []struct{ source, id, key string }{
		{"oldisp", "", "oldisp"},
		{"campus", "asmith", "campus#asmith"},
		{"campus", "a#b@x", "campus#a#b@x"},
	} {
		key := bridge.FeedKey(tc.source, tc.id)
		src, id := bridge.SplitFeedKey(key)
		if key != tc.key || src != tc.source || id != tc.id {
			t.Errorf("FeedKey(%q, %q) = %q, split %q %q", tc.source, tc.id, key, src, id)
		}
	}
}

// Two accounts at one source, with the same message at both, each into
// its own folder: each account has its own source-id map, so the
// message is stored once per account, the folder is created, its UIDs
// stay across a restart, and the status shows each account.
func TestAccountsAtOneSourceOwnMapsAndFolders(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := bridgetest.NewSource("campus")
	date := time.Unix(1700000000, 0)
	src.Deliver("asmith", msg(1), date)
	src.Deliver("alice2", msg(1), date)
	src.Deliver("alice2", msg(2), date)
	feeds := []bridge.Feed{
		{Source: src, Account: bridge.Account{User: "alice", SourceUser: "asmith"}, AccountID: "asmith", AccountName: "asmith", Folder: "Campus"},
		{Source: src, Account: bridge.Account{User: "alice", SourceUser: "alice2"}, AccountID: "alice2", AccountName: "alice2"},
	}
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	rec := &recorder{}
	b.AddObserver(rec)
	campus0, err := func() (*bridge.Mailbox, error) { return u.Mailbox(ctx, "Campus") }()
	if err == nil || campus0 != nil {
		t.Fatalf("Campus exists before the first poll")
	}
	for i, f := range feeds {
		res, err := b.Poll(ctx, u, f)
		if err != nil || res.Fetched != []int{1, 2}[i] {
			t.Fatalf("poll %d = %+v, %v", i, res, err)
		}
	}
	want := map[string]map[bridge.UID]string{
		"Campus": {1: string(msg(1))},
		"INBOX":  {1: string(msg(1)), 2: string(msg(2))},
	}
	for name, w := range want {
		if got := folderBodies(t, u, name); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	campus, _ := u.Mailbox(ctx, "Campus")
	if got := rec.String(); got != fmt.Sprintf("%d appended [1]; %d appended [1 2]", campus.ID(), mustMailbox(t, u, "INBOX").ID()) &&
		got != fmt.Sprintf("%d appended [1]; %d appended [1]; %d appended [2]", campus.ID(), mustMailbox(t, u, "INBOX").ID(), mustMailbox(t, u, "INBOX").ID()) {
		t.Errorf("observer events %q: the Campus feed must tell its own mailbox", got)
	}
	// A second poll of each fetches nothing.
	for i, f := range feeds {
		if res, err := b.Poll(ctx, u, f); err != nil || res.Fetched != 0 {
			t.Fatalf("second poll %d = %+v, %v", i, res, err)
		}
	}
	syncer := bridge.NewSyncer(b, bridge.SyncerOptions{})
	syncer.Add(u, feeds)
	if err := syncer.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	syncer.Stop(ctx)
	st, err := b.Status(ctx, time.Now(), 0)
	if err != nil || len(st) != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
	var got []string
	for _, s := range st[0].Sources {
		hist, err := b.HostHistory(ctx, "alice", s.Key)
		if err != nil || len(hist) == 0 {
			t.Errorf("host history of %s: %v, %v", s.Key, hist, err)
			continue
		}
		got = append(got, fmt.Sprintf("%s/%s->%s stored %d key %s host %d", s.Name, s.Account, s.Folder, s.StoredMessages, s.Key, hist[len(hist)-1].Messages))
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[campus/alice2->INBOX stored 2 key campus#alice2 host 2 campus/asmith->Campus stored 1 key campus#asmith host 1]" {
		t.Errorf("status sources %q", got)
	}
	// In the status JSON an account is a source entry with its login.
	js, _ := json.Marshal(st[0].Sources)
	for _, want := range []string{`"name":"campus","account":"asmith","folder":"Campus"`, `"name":"campus","account":"alice2","folder":"INBOX"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status JSON %s lacks %s", js, want)
		}
	}
	if strings.Contains(string(js), "#") {
		t.Errorf("status JSON shows a feed key: %s", js)
	}
	b.Close()

	// After a restart: the same UIDs, nothing fetched again.
	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	src.Deliver("asmith", msg(3), date)
	for i, f := range feeds {
		if res, err := b.Poll(ctx, u, f); err != nil || res.Fetched != []int{1, 0}[i] {
			t.Fatalf("poll after restart %d = %+v, %v", i, res, err)
		}
	}
	want["Campus"][2] = string(msg(3))
	for name, w := range want {
		if got := folderBodies(t, u, name); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("after restart %s = %v, want %v", name, got, w)
		}
	}
}

func mustMailbox(t *testing.T, u *bridge.User, name string) *bridge.Mailbox {
	t.Helper()
	mb, err := u.Mailbox(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// A store written before accounts (schema 6, origins and feeds keyed by
// the source name) keeps every UID and its source-id map after the
// upgrade: the sources: form's feed (AccountID "") polls it with nothing
// fetched again, and the feed row is the same row.
func TestAccountsUpgradeKeepsSchema6Store(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := bridgetest.NewSource("legacy")
	for i := 1; i <= 3; i++ {
		src.Deliver("alice", msg(i), time.Unix(1700000000, 0))
	}
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}}

	restore := bridge.SetSchemaVersionForTest(6)
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	if res, err := b.Poll(ctx, u, feed); err != nil || res.Fetched != 3 {
		t.Fatalf("poll at schema 6 = %+v, %v", res, err)
	}
	before := inboxBodies(t, u)
	b.Close()
	restore()
	if v := userVersion(t, dir); v != 6 {
		t.Fatalf("the old store has schema %d, want 6", v)
	}

	b = openStore(t, dir)
	defer b.Close()
	fresh := t.TempDir()
	openStore(t, fresh).Close()
	if v, want := userVersion(t, dir), userVersion(t, fresh); v != want {
		t.Fatalf("after the upgrade schema %d, want %d (a new store's)", v, want)
	}
	u, _ = b.User(ctx, "alice")
	src.Deliver("alice", msg(4), time.Unix(1700000000, 0))
	res, err := b.Poll(ctx, u, feed)
	if err != nil || res.Fetched != 1 {
		t.Fatalf("poll after the upgrade = %+v, %v (only the new message is fetched)", res, err)
	}
	after := inboxBodies(t, u)
	for uid, body := range before {
		if after[uid] != body {
			t.Errorf("UID %d: %q after the upgrade, was %q", uid, after[uid], body)
		}
	}
	if after[4] != string(msg(4)) || len(after) != 4 {
		t.Errorf("INBOX after the upgrade: %v", after)
	}
	st, err := b.Status(ctx, time.Now(), 0)
	if err != nil || len(st) != 1 || len(st[0].Sources) != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
	if s := st[0].Sources[0]; s.Name != "legacy" || s.Account != "" || s.Folder != "INBOX" || s.StoredMessages != 4 {
		t.Errorf("status source %+v", s)
	}
}

func userVersion(t *testing.T, dir string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Update with accounts: a second account at the same source gets its own
// loop while the first keeps running; each account's delete policy
// applies to its maildrop only; dropping one account stops its loop and
// leaves its mail and the other account alone.
func TestSyncerUpdateAccounts(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("campus")
	for i := 1; i <= 2; i++ {
		src.Deliver("asmith", msg(i), time.Time{})
		src.Deliver("alumni", msg(10+i), time.Time{})
	}
	u, _ := b.User(ctx, "alice")
	s := bridge.NewSyncer(b, bridge.SyncerOptions{})
	defer s.Stop(ctx)
	first := bridge.Feed{Source: src, Account: bridge.Account{User: "alice", SourceUser: "asmith"}, AccountName: "asmith", Folder: "Campus", PollInterval: time.Hour}
	second := bridge.Feed{Source: src, Account: bridge.Account{User: "alice", SourceUser: "alumni"}, AccountID: "alumni", AccountName: "alumni", Folder: "Alumni",
		Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}, PollInterval: time.Hour}
	s.Add(u, []bridge.Feed{first})
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, u, []bridge.Feed{first, second}); err != nil {
		t.Fatal(err)
	}
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range s.Feeds("alice") {
		keys = append(keys, f.Key())
	}
	if fmt.Sprint(keys) != "[campus campus#alumni]" {
		t.Errorf("feeds after adding an account: %v", keys)
	}
	if a, b := len(src.Messages("asmith")), len(src.Messages("alumni")); a != 2 || b != 0 {
		t.Errorf("maildrops asmith %d (keep: want 2), alumni %d (after_sync: want 0)", a, b)
	}
	if n := len(mustMailbox(t, u, "Campus").UIDs()); n != 2 {
		t.Errorf("Campus holds %d, want 2", n)
	}
	if n := len(mustMailbox(t, u, "Alumni").UIDs()); n != 2 {
		t.Errorf("Alumni holds %d, want 2", n)
	}
	if err := s.Update(ctx, u, []bridge.Feed{second}); err != nil {
		t.Fatal(err)
	}
	src.Deliver("asmith", msg(3), time.Time{})
	src.Deliver("alumni", msg(13), time.Time{})
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n := len(mustMailbox(t, u, "Campus").UIDs()); n != 2 {
		t.Errorf("Campus holds %d after its account was dropped, want 2 (no poll, mail kept)", n)
	}
	if n := len(mustMailbox(t, u, "Alumni").UIDs()); n != 3 {
		t.Errorf("Alumni holds %d, want 3", n)
	}
	st, err := b.Status(ctx, time.Now(), 0)
	if err != nil || len(st) != 1 || len(st[0].Sources) != 1 || st[0].Sources[0].Account != "alumni" || st[0].Sources[0].Folder != "Alumni" {
		t.Errorf("status after dropping an account: %+v, %v", st, err)
	}
}
