package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Appended(mb *bridge.Mailbox, msgs []bridge.MessageFlags, recentFor *bridge.Watch) {
	var uids []bridge.UID
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	r.add(fmt.Sprintf("%d appended %v", mb.ID(), uids))
}
func (r *recorder) Expunged(mb *bridge.Mailbox, uids []bridge.UID) {
	r.add(fmt.Sprintf("%d expunged %v", mb.ID(), uids))
}
func (r *recorder) FlagsChanged(mb *bridge.Mailbox, uid bridge.UID, flags []string, origin any) {
	r.add(fmt.Sprintf("%d flags %d %v %v", mb.ID(), uid, flags, origin))
}
func (r *recorder) add(s string) { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.events, "; ")
}

func inboxBodies(t *testing.T, u *bridge.User) map[bridge.UID]string {
	t.Helper()
	inbox, err := u.Mailbox(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	out := map[bridge.UID]string{}
	for _, uid := range inbox.UIDs() {
		out[uid] = string(readAll(t, inbox, uid))
	}
	return out
}

func TestPollKeepsUIDsAndHostDeletions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := bridgetest.NewSource("legacy")
	ids := []bridge.SourceID{
		src.Deliver("alice", msg(1), time.Unix(1700000000, 0)),
		src.Deliver("alice", msg(2), time.Time{}),
	}
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}

	b := openStore(t, dir)
	rec := &recorder{}
	b.AddObserver(rec)
	u, _ := b.User(ctx, "alice")
	res, err := b.Poll(ctx, u, feed)
	if err != nil || res.Fetched != 2 || res.Deleted != 0 {
		t.Fatalf("first poll = %+v, %v", res, err)
	}
	// Batches are what arrived during the previous commit: [1 2], or
	// [1] then [2]; never out of order, never a UID twice.
	if got := rec.String(); strings.ReplaceAll(got, "]; 1 appended [", " ") != "1 appended [1 2]" {
		t.Fatalf("events = %s", got)
	}
	inbox, _ := u.Mailbox(ctx, "INBOX")
	m, _ := inbox.Messages(ctx, []bridge.UID{1}, false)
	if !m[0].InternalDate.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("INTERNALDATE %v, want the source's date", m[0].InternalDate)
	}
	// Another client deletes message 1 at the host: it stays in the bridge.
	src.Remove("alice", ids[0])
	src.Deliver("alice", msg(3), time.Time{})
	if res, err := b.Poll(ctx, u, feed); err != nil || res.Fetched != 1 {
		t.Fatalf("second poll = %+v, %v", res, err)
	}
	want := map[bridge.UID]string{1: string(msg(1)), 2: string(msg(2)), 3: string(msg(3))}
	if got := inboxBodies(t, u); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("inbox = %v", got)
	}
	b.Close()

	// Restart: same UIDs, nothing fetched twice.
	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	if res, err := b.Poll(ctx, u, feed); err != nil || res.Fetched != 0 {
		t.Fatalf("poll after restart = %+v, %v", res, err)
	}
	if got := inboxBodies(t, u); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("inbox after restart = %v", got)
	}
}

func TestPollExpungedMessageNotReimported(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	src.Deliver("alice", msg(1), time.Time{})
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}
	u, _ := b.User(ctx, "alice")
	b.Poll(ctx, u, feed)
	inbox, _ := u.Mailbox(ctx, "INBOX")
	inbox.Store(ctx, []bridge.UID{1}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	inbox.Expunge(ctx, nil)
	if res, err := b.Poll(ctx, u, feed); err != nil || res.Fetched != 0 {
		t.Fatalf("poll after expunge = %+v, %v: an expunged message came back", res, err)
	}
	if n := inbox.Info().Messages; n != 0 {
		t.Fatalf("INBOX has %d messages", n)
	}
	if got := src.Messages("alice"); len(got) != 1 {
		t.Fatalf("keep policy deleted at the host: %v", got)
	}
}

// TestDeletePolicies runs every policy against a source that lists only
// with List and one that offers ListIDs too (as POP3 does with UIDL): the
// cheap listing must never skip a fetch or a deletion.
func TestDeletePolicies(t *testing.T) {
	t.Run("List", func(t *testing.T) { testDeletePolicies(t, false) })
	t.Run("ListIDs", func(t *testing.T) { testDeletePolicies(t, true) })
}

func testDeletePolicies(t *testing.T, offerIDs bool) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode      bridge.DeleteMode
		after     time.Duration
		expunge   bool // user expunges message 1 in IMAP before the next poll
		moveTrash bool // user moves message 2 to Trash (not an expunge)
		hostLeft  int
	}{
		{mode: bridge.DeleteKeep, expunge: true, hostLeft: 3},
		{mode: bridge.DeleteAfterSync, hostLeft: 0},
		{mode: bridge.DeleteAfterDays, after: time.Hour, hostLeft: 3},
		{mode: bridge.DeleteAfterDays, after: 0, hostLeft: 0},
		{mode: bridge.DeleteOnExpunge, expunge: true, moveTrash: true, hostLeft: 2},
	} {
		t.Run(fmt.Sprintf("%s-%v", tc.mode, tc.after), func(t *testing.T) {
			b := openStore(t, t.TempDir())
			defer b.Close()
			src := bridgetest.NewSource("legacy")
			src.OfferIDs(offerIDs)
			for i := 1; i <= 3; i++ {
				src.Deliver("alice", msg(i), time.Time{})
			}
			feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: tc.mode, After: tc.after}}
			u, _ := b.User(ctx, "alice")
			if _, err := b.Poll(ctx, u, feed); err != nil {
				t.Fatal(err)
			}
			inbox, _ := u.Mailbox(ctx, "INBOX")
			if tc.expunge {
				inbox.Store(ctx, []bridge.UID{1}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
				inbox.Expunge(ctx, nil)
			}
			if tc.mode == bridge.DeleteAfterDays && tc.after == 0 {
				// Store times are whole seconds: due a second after.
				time.Sleep(1100 * time.Millisecond)
			}
			if tc.moveTrash {
				trash, _ := u.Mailbox(ctx, "Trash")
				if _, _, _, err := inbox.MoveTo(ctx, []bridge.UID{2}, trash, nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := b.Poll(ctx, u, feed); err != nil {
				t.Fatal(err)
			}
			if got := len(src.Messages("alice")); got != tc.hostLeft {
				t.Fatalf("host holds %d messages, want %d", got, tc.hostLeft)
			}
			// Whatever the policy, the bridge still has every message the
			// user did not expunge.
			total := inbox.Info().Messages
			trash, _ := u.Mailbox(ctx, "Trash")
			total += trash.Info().Messages
			want := uint32(3)
			if tc.expunge {
				want = 2
			}
			if total != want {
				t.Fatalf("bridge holds %d messages, want %d", total, want)
			}
			// A third poll fetches nothing back.
			if res, err := b.Poll(ctx, u, feed); err != nil || res.Fetched != 0 {
				t.Fatalf("third poll = %+v, %v", res, err)
			}
		})
	}
}

func TestPollFailuresLoseNothing(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	for i := 1; i <= 3; i++ {
		src.Deliver("alice", msg(i), time.Time{})
	}
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}}
	u, _ := b.User(ctx, "alice")

	src.FailOpen(fmt.Errorf("dial: %w", bridge.ErrSourceBusy))
	if _, err := b.Poll(ctx, u, feed); !errors.Is(err, bridge.ErrSourceBusy) || !strings.Contains(err.Error(), "poll legacy: open") {
		t.Fatalf("busy poll error = %v", err)
	}
	src.FailOpen(nil)

	// QUIT fails: nothing was deleted at the host, and the bridge must not
	// think otherwise.
	src.FailClose(errors.New("connection reset"))
	res, err := b.Poll(ctx, u, feed)
	if err == nil || res.Fetched != 3 {
		t.Fatalf("poll with failing close = %+v, %v", res, err)
	}
	if got := len(src.Messages("alice")); got != 3 {
		t.Fatalf("host holds %d, want 3 (deletions not committed)", got)
	}
	src.FailClose(nil)
	res, err = b.Poll(ctx, u, feed)
	if err != nil || res.Fetched != 0 || res.Deleted != 3 {
		t.Fatalf("recovery poll = %+v, %v", res, err)
	}
	if got := len(src.Messages("alice")); got != 0 {
		t.Fatalf("host holds %d after drain", got)
	}
	if got := len(inboxBodies(t, u)); got != 3 {
		t.Fatalf("bridge holds %d, want 3", got)
	}
}

func TestSyncerPushesAndStops(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	u, _ := b.User(ctx, "alice")
	s := bridge.NewSyncer(b, bridge.SyncerOptions{})
	s.Add(u, []bridge.Feed{{Source: src, Account: bridge.Account{User: "alice"}, PollInterval: time.Hour}})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.PollAndWait(wctx, "alice"); err != nil {
		t.Fatal(err)
	}
	opened := src.Opened()
	src.Deliver("alice", msg(1), time.Time{})
	// Not due for an hour; a login asks for a poll now.
	u.PollNow()
	for src.Opened() == opened && wctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := s.PollAndWait(wctx, "alice"); err != nil {
		t.Fatal(err)
	}
	inbox, _ := u.Mailbox(ctx, "INBOX")
	if n := inbox.Info().Messages; n != 1 {
		t.Fatalf("after PollNow INBOX has %d messages, want 1", n)
	}
	if err := s.Stop(wctx); err != nil {
		t.Fatal(err)
	}
}

// partialSource lists its messages together with an error, as a corrupt
// mbox does.
type partialSource struct {
	*bridgetest.Source
}

func (p partialSource) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	s, err := p.Source.Open(ctx, acct)
	return partialSession{s}, err
}

type partialSession struct{ bridge.SourceSession }

func (p partialSession) List(ctx context.Context) ([]bridge.SourceMessage, error) {
	l, _ := p.SourceSession.List(ctx)
	return l, errors.New("spool at byte 1234: corrupt mbox")
}

func TestPollPartialListingStoresGoodMessagesDeletesNothing(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("spool")
	src.Deliver("alice", msg(1), time.Time{})
	src.Deliver("alice", msg(2), time.Time{})
	feed := bridge.Feed{Source: partialSource{src}, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}}
	u, _ := b.User(ctx, "alice")
	res, err := b.Poll(ctx, u, feed)
	if err == nil || !strings.Contains(err.Error(), "stored the 2 messages before the problem") || !strings.Contains(err.Error(), "byte 1234") {
		t.Fatalf("poll error = %v", err)
	}
	if res.Fetched != 2 || res.Deleted != 0 {
		t.Fatalf("result = %+v, want 2 fetched, 0 deleted", res)
	}
	if n := len(src.Messages("alice")); n != 2 {
		t.Fatalf("source holds %d, want 2: nothing may be deleted on a partial listing", n)
	}
}

// TestOnExpungeCopyThenExpunge: a client that moves by COPY + EXPUNGE
// (no MOVE) must not get the message deleted at the host; expunging every
// copy does.
func TestOnExpungeCopyThenExpunge(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	src.Deliver("alice", msg(1), time.Time{})
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteOnExpunge}}
	u, _ := b.User(ctx, "alice")
	if _, err := b.Poll(ctx, u, feed); err != nil {
		t.Fatal(err)
	}
	inbox, _ := u.Mailbox(ctx, "INBOX")
	archive, _ := u.Mailbox(ctx, "Archive")
	if _, _, _, err := inbox.CopyTo(ctx, []bridge.UID{1}, archive); err != nil {
		t.Fatal(err)
	}
	inbox.Store(ctx, []bridge.UID{1}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	inbox.Expunge(ctx, nil)
	if _, err := b.Poll(ctx, u, feed); err != nil {
		t.Fatal(err)
	}
	if n := len(src.Messages("alice")); n != 1 {
		t.Fatalf("host holds %d after COPY + EXPUNGE of the original, want 1 (a copy is still in Archive)", n)
	}
	archive.Store(ctx, archive.UIDs(), bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	archive.Expunge(ctx, nil)
	if _, err := b.Poll(ctx, u, feed); err != nil {
		t.Fatal(err)
	}
	if n := len(src.Messages("alice")); n != 0 {
		t.Fatalf("host holds %d after every copy was expunged, want 0", n)
	}
}

// TestPollListsIDsFirst: with a source offering ListIDs, a poll with no new
// mail and nothing to delete ends after the ids (no List); new mail, or a
// message the policy deletes, takes the full List.
func TestPollListsIDsFirst(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	src := bridgetest.NewSource("legacy")
	src.OfferIDs(true)
	src.Deliver("alice", msg(1), time.Time{})
	src.Deliver("alice", msg(2), time.Time{})
	u, _ := b.User(ctx, "alice")
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteOnExpunge}}
	poll := func(step string, wantFetched, wantDeleted, wantLists int) {
		t.Helper()
		res, err := b.Poll(ctx, u, feed)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if res.Fetched != wantFetched || res.Deleted != wantDeleted || src.Lists() != wantLists {
			t.Fatalf("%s: fetched %d, deleted %d, List called %d times; want %d, %d, %d",
				step, res.Fetched, res.Deleted, src.Lists(), wantFetched, wantDeleted, wantLists)
		}
	}
	poll("first sync", 2, 0, 1)
	poll("no new mail", 0, 0, 1)
	poll("no new mail again", 0, 0, 1)
	src.Deliver("alice", msg(3), time.Time{})
	poll("new mail", 1, 0, 2)
	inbox, _ := u.Mailbox(ctx, "INBOX")
	inbox.Store(ctx, []bridge.UID{1}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	inbox.Expunge(ctx, nil)
	poll("an expunged message to delete", 0, 1, 3)
	poll("quiet again", 0, 0, 3)
	if got := len(src.Messages("alice")); got != 2 {
		t.Fatalf("host holds %d messages, want 2", got)
	}
}
