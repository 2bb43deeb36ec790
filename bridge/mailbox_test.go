package bridge_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

func appendTo(t testing.TB, u *bridge.User, mailbox string, n int, flags []string, date time.Time) bridge.UID {
	t.Helper()
	_, uid, err := u.Append(context.Background(), mailbox, bytes.NewReader(msg(n)), flags, date)
	if err != nil {
		t.Fatalf("append to %s: %v", mailbox, err)
	}
	return uid
}

func mailbox(t testing.TB, u *bridge.User, name string) *bridge.Mailbox {
	t.Helper()
	mb, err := u.Mailbox(context.Background(), name)
	if err != nil {
		t.Fatalf("mailbox %s: %v", name, err)
	}
	return mb
}

// TestInternalDateKeepsZone: the date a message was appended with comes
// back in the zone it was given in, through copy, move and a restart.
func TestInternalDateKeepsZone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	cet := time.FixedZone("", 3600)
	pst := time.FixedZone("", -8*3600)
	dates := []time.Time{
		time.Date(2023, 12, 24, 18, 30, 0, 0, cet),
		time.Date(2024, 3, 8, 23, 30, 0, 0, pst),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, d := range dates {
		appendTo(t, u, "INBOX", i, nil, d)
	}
	inbox := mailbox(t, u, "INBOX")
	if _, _, _, err := inbox.CopyTo(ctx, []bridge.UID{1}, mailbox(t, u, "Archive")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := inbox.MoveTo(ctx, []bridge.UID{2}, mailbox(t, u, "Archive"), nil); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	check := func(name string, uid bridge.UID, want time.Time) {
		t.Helper()
		msgs, err := mailbox(t, u, name).Messages(ctx, []bridge.UID{uid}, false)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s %d: %v %v", name, uid, msgs, err)
		}
		got := msgs[0].InternalDate
		_, gotOff := got.Zone()
		_, wantOff := want.Zone()
		if !got.Equal(want) || gotOff != wantOff {
			t.Errorf("%s UID %d: internal date %s, want %s", name, uid, got.Format(time.RFC3339), want.Format(time.RFC3339))
		}
	}
	check("INBOX", 1, dates[0])
	check("INBOX", 3, dates[2])
	check("Archive", 1, dates[0]) // copied
	check("Archive", 2, dates[1]) // moved
}

type flagRecorder struct {
	recorder
}

func (r *flagRecorder) Appended(mb *bridge.Mailbox, msgs []bridge.MessageFlags, recentFor *bridge.Watch) {
	r.add(fmt.Sprintf("%d appended %v recent=%v", mb.ID(), msgs, recentFor != nil))
}

// TestAppendedCarriesFlags: observers hear of new messages with their
// flags, from APPEND, COPY and MOVE alike.
func TestAppendedCarriesFlags(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	rec := &flagRecorder{}
	b.AddObserver(rec)
	u, _ := b.User(ctx, "alice")
	appendTo(t, u, "INBOX", 1, []string{"$Label1", `\seen`}, time.Time{})
	appendTo(t, u, "INBOX", 2, nil, time.Time{})
	inbox := mailbox(t, u, "INBOX")
	if _, _, _, err := inbox.CopyTo(ctx, []bridge.UID{1, 2}, mailbox(t, u, "Archive")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := inbox.MoveTo(ctx, []bridge.UID{1}, mailbox(t, u, "Trash"), nil); err != nil {
		t.Fatal(err)
	}
	// Mailbox IDs: 1 INBOX, 2 Sent, 3 Drafts, 4 Trash, 5 Archive.
	want := `1 appended [{1 [$Label1 \Seen]}] recent=false; ` +
		`1 appended [{2 []}] recent=false; ` +
		`5 appended [{1 [$Label1 \Seen]} {2 []}] recent=false; ` +
		`4 appended [{1 [$Label1 \Seen]}] recent=false; ` +
		`1 expunged [1]`
	if got := rec.String(); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
}

// TestRecentGoesToOneSession: a message is recent in exactly one session,
// the first read-write one to open the mailbox after it arrived, or the
// oldest read-write one open when it arrives; read-only sessions see what
// nobody has taken and take nothing; taken stays taken after a restart.
func TestRecentGoesToOneSession(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	rec := &flagRecorder{}
	b.AddObserver(rec)
	u, _ := b.User(ctx, "alice")
	for i := 1; i <= 3; i++ {
		appendTo(t, u, "INBOX", i, nil, time.Time{})
	}
	inbox := mailbox(t, u, "INBOX")
	if got := inbox.Info().Recent; got != 3 {
		t.Fatalf("Recent before any session = %d, want 3", got)
	}
	watch := func(claim bool) (*bridge.Watch, bridge.Snapshot) {
		t.Helper()
		var snap bridge.Snapshot
		w, err := inbox.Watch(ctx, claim, func(s bridge.Snapshot) { snap = s })
		if err != nil {
			t.Fatal(err)
		}
		return w, snap
	}
	ro, snap := watch(false)
	if snap.FirstRecent != 1 || inbox.Info().Recent != 3 {
		t.Fatalf("read-only watch: first recent %d, Recent %d; want 1, 3", snap.FirstRecent, inbox.Info().Recent)
	}
	rw1, snap := watch(true)
	if snap.FirstRecent != 1 || snap.Info.Recent != 3 {
		t.Fatalf("first read-write watch: first recent %d, Recent %d; want 1, 3", snap.FirstRecent, snap.Info.Recent)
	}
	if got := inbox.Info().Recent; got != 0 {
		t.Fatalf("Recent after a read-write watch took them = %d, want 0", got)
	}
	rw2, snap := watch(true)
	if snap.FirstRecent != 4 {
		t.Fatalf("second read-write watch: first recent %d, want 4 (none)", snap.FirstRecent)
	}
	appendTo(t, u, "INBOX", 4, nil, time.Time{})
	rw1.Close(nil)
	appendTo(t, u, "INBOX", 5, nil, time.Time{})
	rw2.Close(nil)
	appendTo(t, u, "INBOX", 6, nil, time.Time{})
	if got := inbox.Info().Recent; got != 1 {
		t.Fatalf("Recent with no read-write watch open = %d, want 1 (UID 6)", got)
	}
	ro.Close(nil)
	want := "1 appended [{1 []}] recent=false; 1 appended [{2 []}] recent=false; 1 appended [{3 []}] recent=false; " +
		"1 appended [{4 []}] recent=true; 1 appended [{5 []}] recent=true; 1 appended [{6 []}] recent=false"
	if got := rec.String(); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	b.Close()

	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	inbox = mailbox(t, u, "INBOX")
	if got := inbox.Info().Recent; got != 1 {
		t.Fatalf("Recent after restart = %d, want 1", got)
	}
	var snap2 bridge.Snapshot
	w, err := inbox.Watch(ctx, true, func(s bridge.Snapshot) { snap2 = s })
	if err != nil {
		t.Fatal(err)
	}
	w.Close(nil)
	w.Close(nil) // idempotent
	if snap2.FirstRecent != 6 || inbox.Info().Recent != 0 {
		t.Errorf("after restart: first recent %d, Recent %d; want 6, 0", snap2.FirstRecent, inbox.Info().Recent)
	}
}

// TestSummaryInStep: the counts STATUS and SELECT use, kept up to date on
// every change, always equal a recount.
func TestSummaryInStep(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	rng := rand.New(rand.NewPCG(1, 2))
	flagSets := [][]string{nil, {`\Seen`}, {`\Deleted`}, {"$A"}, {"$B", `\Seen`}, {`\Deleted`, "$A", `\Seen`}}
	names := []string{"INBOX", "Archive", "Trash"}
	recount := func(mb *bridge.Mailbox) bridge.MailboxInfo {
		msgs, err := mb.Messages(ctx, mb.UIDs(), false)
		if err != nil {
			t.Fatal(err)
		}
		info := bridge.MailboxInfo{Messages: uint32(len(msgs))}
		kw := map[string]bool{}
		for _, m := range msgs {
			seen := false
			for _, f := range m.Flags {
				switch {
				case f == bridge.FlagSeen:
					seen = true
				case f == bridge.FlagDeleted:
					info.Deleted++
				case !strings.HasPrefix(f, `\`):
					kw[f] = true
				}
			}
			if !seen {
				info.Unseen++
			}
			info.Size += m.Size
		}
		for k := range kw {
			info.Keywords = append(info.Keywords, k)
		}
		sort.Strings(info.Keywords)
		return info
	}
	summary := func(i bridge.MailboxInfo) string {
		return fmt.Sprintf("messages %d unseen %d deleted %d size %d keywords %v", i.Messages, i.Unseen, i.Deleted, i.Size, i.Keywords)
	}
	for step := 0; step < 120; step++ {
		mb := mailbox(t, u, names[rng.IntN(len(names))])
		uids := mb.UIDs()
		pick := func() []bridge.UID {
			var out []bridge.UID
			for _, uid := range uids {
				if rng.IntN(3) == 0 {
					out = append(out, uid)
				}
			}
			return out
		}
		var err error
		switch op := rng.IntN(6); {
		case op == 0 || len(uids) == 0:
			_, _, err = u.Append(ctx, mb.Name(), bytes.NewReader(msg(step)), flagSets[rng.IntN(len(flagSets))], time.Time{})
		case op == 1:
			_, err = mb.Store(ctx, pick(), bridge.FlagOp(rng.IntN(3)), flagSets[rng.IntN(len(flagSets))], nil)
		case op == 2:
			_, err = mb.Expunge(ctx, nil)
		case op == 3:
			_, _, _, err = mb.CopyTo(ctx, pick(), mailbox(t, u, names[rng.IntN(len(names))]))
		default:
			_, _, _, err = mb.MoveTo(ctx, pick(), mailbox(t, u, names[rng.IntN(len(names))]), nil)
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, name := range names {
			mb := mailbox(t, u, name)
			if got, want := summary(mb.Info()), summary(recount(mb)); got != want {
				t.Fatalf("step %d, %s:\n got %s\nwant %s", step, name, got, want)
			}
		}
	}
	before := map[string]string{}
	for _, name := range names {
		before[name] = summary(mailbox(t, u, name).Info())
	}
	b.Close()
	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	for _, name := range names {
		if got := summary(mailbox(t, u, name).Info()); got != before[name] {
			t.Errorf("%s after restart:\n got %s\nwant %s", name, got, before[name])
		}
	}
}

// TestWatchSnapshot: the snapshot a watch starts from names the first
// unseen message and the keywords in use.
func TestWatchSnapshot(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	appendTo(t, u, "INBOX", 1, []string{`\Seen`, "$Work"}, time.Time{})
	appendTo(t, u, "INBOX", 2, []string{`\Seen`}, time.Time{})
	appendTo(t, u, "INBOX", 3, []string{"$Later", "$Work"}, time.Time{})
	var snap bridge.Snapshot
	w, err := mailbox(t, u, "INBOX").Watch(ctx, false, func(s bridge.Snapshot) { snap = s })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(nil)
	if snap.FirstUnseen != 3 || !reflect.DeepEqual(snap.UIDs, []bridge.UID{1, 2, 3}) || !reflect.DeepEqual(snap.Info.Keywords, []string{"$Later", "$Work"}) {
		t.Errorf("snapshot %+v", snap)
	}
}

// indexSubject is an Indexer that keeps the Subject line.
func indexSubject(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(data), "\r\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			return []byte(s), nil
		}
	}
	return nil, nil
}

// TestMessagesIndexSparse: the ingest index comes back for exactly the
// UIDs asked, dense or sparse, in sets larger than one query takes (made
// small here: 16 UIDs).
func TestMessagesIndexSparse(t *testing.T) {
	defer bridge.SetMaxInList(16)()
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: t.TempDir(), Index: indexSubject})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	const n = 400
	for i := 1; i <= n; i++ {
		appendTo(t, u, "INBOX", i, nil, time.Time{})
	}
	inbox := mailbox(t, u, "INBOX")
	var every7 []bridge.UID
	for i := bridge.UID(1); i <= n; i += 7 {
		every7 = append(every7, i)
	}
	var denseWithGap []bridge.UID
	for i := bridge.UID(100); i <= 200; i++ {
		if i != 150 {
			denseWithGap = append(denseWithGap, i)
		}
	}
	for _, tc := range []struct {
		name string
		uids []bridge.UID
	}{
		{"two far apart", []bridge.UID{1, n}},
		{"one", []bridge.UID{123}},
		{"every 7th, several queries", every7},
		{"dense", denseWithGap},
		{"unsorted with a missing UID", []bridge.UID{250, 3, n + 5, 17}},
	} {
		msgs, err := inbox.Messages(ctx, tc.uids, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := append([]bridge.UID(nil), tc.uids...)
		sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
		if want[len(want)-1] > n {
			want = want[:len(want)-1]
		}
		if len(msgs) != len(want) {
			t.Fatalf("%s: %d messages, want %d", tc.name, len(msgs), len(want))
		}
		for i, m := range msgs {
			if m.UID != want[i] || string(m.Index) != fmt.Sprintf("message %d", m.UID) {
				t.Fatalf("%s: message %d is UID %d with index %q", tc.name, i, m.UID, m.Index)
			}
		}
	}
}

func TestInvalidSpecialUse(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	err := u.CreateMailbox(ctx, "Important", `\Important`)
	if !errors.Is(err, bridge.ErrInvalidSpecialUse) || err.Error() != `unknown special-use attribute "\\Important"` {
		t.Fatalf("CreateMailbox with \\Important: %v", err)
	}
	if c, err := bridge.CanonicalSpecialUse(`\sent`); c != bridge.SpecialSent || err != nil {
		t.Fatalf("CanonicalSpecialUse(\\sent) = %q, %v", c, err)
	}
}

func mailboxNames(t testing.TB, u *bridge.User) string {
	t.Helper()
	list, err := u.ListMailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range list {
		s := m.Name
		if m.Subscribed {
			s += "*"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestRenameAndDeleteHierarchy follows RFC 9051 sections 6.3.5 and 6.3.6:
// children are renamed with their parent (non-ASCII names included),
// missing parents of the new name are created, a parent with children is
// not deleted, and renaming INBOX moves its messages to a new mailbox and
// leaves INBOX, its UIDVALIDITY and its children in place.
func TestRenameAndDeleteHierarchy(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	for _, name := range []string{"Entwürfe/Alt", "Projekte", "INBOX/Lists"} {
		if err := u.CreateMailbox(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
	}
	// CREATE subscribes nothing, the parent it made included; the client
	// subscribes.
	if got, want := mailboxNames(t, u), "INBOX* Archive* Drafts* Entwürfe Entwürfe/Alt INBOX/Lists Junk* Projekte Sent* Trash*"; got != want {
		t.Fatalf("after CreateMailbox:\n got %s\nwant %s", got, want)
	}
	for _, name := range []string{"Entwürfe", "Entwürfe/Alt", "Projekte", "INBOX/Lists"} {
		if err := u.SetSubscribed(ctx, name, true); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(t, u, "Entwürfe/Alt", 1, []string{"$Old"}, time.Time{})
	alt := mailbox(t, u, "Entwürfe/Alt")
	uv := alt.Info().UIDValidity
	steps := []struct {
		do   func() error
		err  error
		want string
	}{
		{func() error { return u.DeleteMailbox(ctx, "Entwürfe") }, bridge.ErrHasChildren, ""},
		{func() error { return u.RenameMailbox(ctx, "Entwürfe", "Archiv/Entwürfe") }, nil,
			"INBOX* Archiv Archiv/Entwürfe* Archiv/Entwürfe/Alt* Archive* Drafts* INBOX/Lists* Junk* Projekte* Sent* Trash*"},
		{func() error {
			// A renamed child is the same mailbox: same UIDVALIDITY and messages.
			if info := alt.Info(); info.Name != "Archiv/Entwürfe/Alt" || info.UIDValidity != uv || info.Messages != 1 {
				return fmt.Errorf("renamed child: %+v, UIDVALIDITY was %d", info, uv)
			}
			return nil
		}, nil, "INBOX* Archiv Archiv/Entwürfe* Archiv/Entwürfe/Alt* Archive* Drafts* INBOX/Lists* Junk* Projekte* Sent* Trash*"},
		{func() error { return u.RenameMailbox(ctx, "Projekte", "Archiv") }, bridge.ErrMailboxExists, ""},
		{func() error { return u.RenameMailbox(ctx, "Archiv", "Archiv/Sub") }, bridge.ErrInvalidName, ""},
		{func() error { return u.RenameMailbox(ctx, "Nope", "Other") }, bridge.ErrNoSuchMailbox, ""},
		{func() error { return u.SetSubscribed(ctx, "Projekte", false) }, nil,
			"INBOX* Archiv Archiv/Entwürfe* Archiv/Entwürfe/Alt* Archive* Drafts* INBOX/Lists* Junk* Projekte Sent* Trash*"},
		{func() error { return u.DeleteMailbox(ctx, "Archiv/Entwürfe/Alt") }, nil,
			"INBOX* Archiv Archiv/Entwürfe* Archive* Drafts* INBOX/Lists* Junk* Projekte Sent* Trash*"},
	}
	for i, s := range steps {
		err := s.do()
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("step %d: %v, want %v", i, err, s.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := mailboxNames(t, u); got != s.want {
			t.Fatalf("step %d:\n got %s\nwant %s", i, got, s.want)
		}
	}
	// A deleted mailbox's subscription stays (RFC 9051 section 6.3.7).
	subs, err := u.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(subs, " "); !strings.Contains(got, "Archiv/Entwürfe/Alt") {
		t.Errorf("subscriptions after DELETE: %s", got)
	}
	if err := u.SetSubscribed(ctx, "Archiv/Entwürfe/Alt", false); err != nil {
		t.Errorf("unsubscribe a deleted mailbox: %v", err)
	}
	if err := u.SetSubscribed(ctx, "Never/Was", false); err != nil {
		t.Errorf("unsubscribe a name never subscribed: %v", err)
	}
	if err := u.SetSubscribed(ctx, "Never/Was", true); !errors.Is(err, bridge.ErrNoSuchMailbox) {
		t.Errorf("subscribe a missing mailbox: %v", err)
	}

	// INBOX rename.
	for i := 1; i <= 3; i++ {
		appendTo(t, u, "INBOX", i, []string{fmt.Sprintf("$K%d", i)}, time.Time{})
	}
	inbox := mailbox(t, u, "INBOX")
	inboxUV := inbox.Info().UIDValidity
	if err := u.RenameMailbox(ctx, "inbox", "Old Mail/2025"); err != nil {
		t.Fatal(err)
	}
	old := mailbox(t, u, "Old Mail/2025")
	msgs, _ := old.Messages(ctx, old.UIDs(), false)
	if len(msgs) != 3 || strings.Join(msgs[2].Flags, " ") != "$K3" {
		t.Errorf("renamed INBOX holds %+v", msgs)
	}
	if info := inbox.Info(); info.Messages != 0 || info.UIDValidity != inboxUV || info.UIDNext != 4 {
		t.Errorf("INBOX after rename: %+v (UIDVALIDITY was %d)", info, inboxUV)
	}
	if _, err := u.Mailbox(ctx, "INBOX/Lists"); err != nil {
		t.Errorf("INBOX/Lists after INBOX rename: %v", err)
	}
	if err := u.RenameMailbox(ctx, "INBOX", "Old Mail/2025"); !errors.Is(err, bridge.ErrMailboxExists) {
		t.Errorf("rename INBOX onto an existing name: %v", err)
	}
	if err := u.RenameMailbox(ctx, "Archiv", "inbox"); !errors.Is(err, bridge.ErrMailboxExists) {
		t.Errorf("rename onto INBOX: %v", err)
	}
}

// TestMigrateFromSchema2 opens a store written by the previous schema: its
// messages keep no zone (shown in the server's zone), none is recent, and
// its subscriptions carry over.
func TestMigrateFromSchema2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	appendTo(t, u, "INBOX", 1, nil, time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("", 7200)))
	if err := u.SetSubscribed(ctx, "Junk", false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// Undo migrations 5, 4 and 3 by hand, as a schema 2 store looks.
	db := undoInlineBodies(t, dir)
	for _, q := range []string{
		`ALTER TABLE messages DROP COLUMN date_zone`,
		`ALTER TABLE mailboxes DROP COLUMN recent_uid`,
		`UPDATE mailboxes SET subscribed = (name IN (SELECT name FROM subscriptions))`,
		`DROP TABLE subscriptions`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	inbox := mailbox(t, u, "INBOX")
	msgs, err := inbox.Messages(ctx, []bridge.UID{1}, false)
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if d := msgs[0].InternalDate; d.Location() != time.Local || !d.Equal(time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC)) {
		t.Errorf("migrated internal date %v in %v, want the same instant in the server's zone", d, d.Location())
	}
	if n := inbox.Info().Recent; n != 0 {
		t.Errorf("%d messages recent after migration, want 0", n)
	}
	if got, want := mailboxNames(t, u), "INBOX* Archive* Drafts* Junk Sent* Trash*"; got != want {
		t.Errorf("subscriptions after migration: %s, want %s", got, want)
	}
}

// undoInlineBodies turns the store in dir (closed) into one of schema 4:
// every inline body written out as a file under blobs/, as schema 4 kept
// every body, and migrations 7, 6 and 5 undone. It returns the open database.
func undoInlineBodies(t *testing.T, dir string) *sql.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT b.hash, d.body FROM blobs b JOIN bodies d ON d.blob_id=b.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var hash string
		var body []byte
		if err := rows.Scan(&hash, &body); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "blobs", hash[:2], hash)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	undoStatus(t, db)
	for _, q := range []string{
		`DROP TABLE bodies`,
		`ALTER TABLE blobs DROP COLUMN inline`,
		`PRAGMA user_version = 4`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

// undoStatus undoes migrations 7 (the POP3 face's columns) and 6 (the
// status tables) in db, leaving a store of schema 5.
func undoStatus(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, q := range []string{
		`DROP TABLE pop3_hidden`,
		`ALTER TABLE blobs DROP COLUMN pop3_size`,
		`DROP TABLE feeds`,
		`DROP TABLE feed_history`,
		`DROP TABLE clients`,
		`ALTER TABLE users DROP COLUMN last_login`,
		`PRAGMA user_version = 5`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestMigrateToInlineBodies: a store of schema 4, where every body is a
// file, keeps serving those files byte for byte after migration 5; a new
// small message is stored inline (no new file); expunging an old message
// removes its file, expunging a new one leaves the files alone; and a copy
// of an old message shares its file.
func TestMigrateToInlineBodies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	for i := 1; i <= 3; i++ {
		appendTo(t, u, "INBOX", i, nil, time.Time{})
	}
	b.Close()
	undoInlineBodies(t, dir).Close()
	if n := countFiles(t, filepath.Join(dir, "blobs")); n != 3 {
		t.Fatalf("schema 4 store: %d blob files, want 3", n)
	}

	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	inbox := mailbox(t, u, "INBOX")
	for uid := bridge.UID(1); uid <= 3; uid++ {
		if got := readAll(t, inbox, uid); !bytes.Equal(got, msg(int(uid))) {
			t.Errorf("uid %d after migration: %q", uid, got)
		}
	}
	uid4 := appendTo(t, u, "INBOX", 4, nil, time.Time{})
	if got := readAll(t, inbox, uid4); !bytes.Equal(got, msg(4)) {
		t.Errorf("new message: %q", got)
	}
	if n := countFiles(t, filepath.Join(dir, "blobs")); n != 3 {
		t.Errorf("after a new small message: %d blob files, want 3 (it is inline)", n)
	}
	if _, _, _, err := inbox.CopyTo(ctx, []bridge.UID{1}, mailbox(t, u, "Archive")); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []bridge.UID{1, 2, uid4} {
		inbox.Store(ctx, []bridge.UID{uid}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	}
	if _, err := inbox.Expunge(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// uid 1 lives on in Archive, uid 2's file goes, uid 4 had none.
	if n := countFiles(t, filepath.Join(dir, "blobs")); n != 2 {
		t.Errorf("after expunging: %d blob files, want 2", n)
	}
	archive := mailbox(t, u, "Archive")
	if got := readAll(t, archive, archive.UIDs()[0]); !bytes.Equal(got, msg(1)) {
		t.Errorf("copy of an old message: %q", got)
	}
}

// TestBodySizesAroundInlineLimit: bodies of every size around the inline
// limit, empty included, are stored and read back byte for byte, through
// APPEND and through a poll, before and after a restart; exactly those of
// the limit or more have a file of their own, and expunging them all
// leaves no file behind.
func TestBodySizesAroundInlineLimit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sizes := []int{0, 1, bridge.InlineLimit - 1, bridge.InlineLimit, bridge.InlineLimit + 1, 3*bridge.InlineLimit + 7}
	body := func(i, size int) []byte {
		b := make([]byte, size)
		for k := range b {
			b[k] = byte('a' + (i*7+k)%26)
		}
		return b
	}
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	src := bridgetest.NewSource("legacy")
	want := map[bridge.UID][]byte{}
	large := 0
	for i, size := range sizes {
		m := body(i, size)
		_, uid, err := u.Append(ctx, "INBOX", bytes.NewReader(m), nil, time.Time{})
		if err != nil {
			t.Fatalf("append of %d bytes: %v", size, err)
		}
		want[uid] = m
		// The poll's copy differs in its first byte, so it is not
		// deduplicated against the appended one.
		pm := append([]byte{'P'}, m...)
		if len(pm) >= bridge.InlineLimit {
			large++
		}
		if len(m) >= bridge.InlineLimit {
			large++
		}
		src.Deliver("alice", pm, time.Time{})
	}
	res, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}})
	if err != nil || res.Fetched != len(sizes) {
		t.Fatalf("poll: %+v, %v", res, err)
	}
	inbox := mailbox(t, u, "INBOX")
	for _, uid := range inbox.UIDs() {
		if _, ok := want[uid]; !ok {
			want[uid] = nil // filled from the source below
		}
	}
	check := func(step string, inbox *bridge.Mailbox) {
		t.Helper()
		k := 0
		for _, uid := range inbox.UIDs() {
			got := readAll(t, inbox, uid)
			exp := want[uid]
			if exp == nil {
				exp = append([]byte{'P'}, body(k, sizes[k])...)
				k++
			}
			if !bytes.Equal(got, exp) {
				t.Errorf("%s: uid %d: %d bytes back, want %d", step, uid, len(got), len(exp))
			}
		}
		if n := countFiles(t, filepath.Join(dir, "blobs")); n != large {
			t.Errorf("%s: %d blob files, want %d (the bodies of %d bytes or more)", step, n, large, bridge.InlineLimit)
		}
	}
	check("stored", inbox)
	b.Close()
	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	inbox = mailbox(t, u, "INBOX")
	check("after a restart", inbox)
	inbox.Store(ctx, inbox.UIDs(), bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	if _, err := inbox.Expunge(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, filepath.Join(dir, "blobs")); n != 0 {
		t.Errorf("after expunging everything: %d blob files left", n)
	}
}
