package bridge_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

// TestKnownCacheFollowsStore: the in-memory source-id map that saves a
// poll from reading every row stays equal to the store's through new
// mail, deletions at the source (after_sync), and user expunges (which
// mark origins for on_expunge), and an expunged message is deleted at the
// source by the next on_expunge poll, never fetched again.
func TestKnownCacheFollowsStore(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	src := bridgetest.NewSource("legacy")
	check := func(step string) {
		t.Helper()
		cached, err := bridge.KnownCacheMatches(ctx, b, u, "legacy")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		// A poll leaves the map cached; an expunge of a fetched
		// message drops it (the next poll reloads it).
		if want := step != "after expunge"; cached != want {
			t.Fatalf("%s: map cached %v, want %v", step, cached, want)
		}
	}
	poll := func(step string, mode bridge.DeleteMode, wantFetched, wantDeleted int) {
		t.Helper()
		res, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: mode}})
		if err != nil || res.Fetched != wantFetched || res.Deleted != wantDeleted {
			t.Fatalf("%s: poll = %+v, %v; want %d fetched, %d deleted", step, res, err, wantFetched, wantDeleted)
		}
		check(step)
	}
	for i := 1; i <= 5; i++ {
		src.Deliver("alice", msg(i), time.Time{})
	}
	poll("first sync", bridge.DeleteKeep, 5, 0)
	poll("nothing new", bridge.DeleteKeep, 0, 0)
	src.Deliver("alice", msg(6), time.Time{})
	poll("one new", bridge.DeleteKeep, 1, 0)
	inbox, _ := u.Mailbox(ctx, "INBOX")
	inbox.Store(ctx, []bridge.UID{2}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	if _, err := inbox.Expunge(ctx, nil); err != nil {
		t.Fatal(err)
	}
	check("after expunge")
	poll("on_expunge", bridge.DeleteOnExpunge, 0, 1)
	if n := len(src.Messages("alice")); n != 5 {
		t.Fatalf("host holds %d messages after on_expunge, want 5", n)
	}
	poll("after_sync", bridge.DeleteAfterSync, 0, 5)
	src.Deliver("alice", msg(7), time.Time{})
	poll("after_sync new", bridge.DeleteAfterSync, 1, 1)
	if n := len(src.Messages("alice")); n != 0 {
		t.Fatalf("host holds %d messages, want 0", n)
	}
	if n := inbox.Info().Messages; n != 6 {
		t.Fatalf("INBOX holds %d messages, want 6", n)
	}
}

// panicky is an observer whose first Appended call panics, as a bug in a
// front end would; later calls pass, as after the bug's one bad moment.
type panicky struct{ fired atomic.Bool }

func (p *panicky) Appended(*bridge.Mailbox, []bridge.MessageFlags, *bridge.Watch) {
	if !p.fired.Swap(true) {
		panic("observer bug")
	}
}
func (*panicky) Expunged(*bridge.Mailbox, []bridge.UID)                  {}
func (*panicky) FlagsChanged(*bridge.Mailbox, bridge.UID, []string, any) {}

// TestPollObserverPanic: observers run on the ingest goroutine now; a
// panicking one fails the poll with an error saying so (the process goes
// on), deletes nothing at the source, and the messages committed before
// the panic are not fetched again. How many messages the first batch holds
// depends on timing (one, or all three): the second poll, with the
// observer no longer panicking, must fetch exactly the rest.
func TestPollObserverPanic(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	src := bridgetest.NewSource("legacy")
	for i := 1; i <= 3; i++ {
		src.Deliver("alice", msg(i), time.Time{})
	}
	b.AddObserver(&panicky{})
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}}
	_, err := b.Poll(ctx, u, feed)
	if err == nil || !strings.Contains(err.Error(), "panic committing fetched messages: observer bug") {
		t.Fatalf("poll with a panicking observer: %v", err)
	}
	if n := len(src.Messages("alice")); n != 3 {
		t.Fatalf("host holds %d messages after the failed poll, want 3", n)
	}
	inbox, _ := u.Mailbox(ctx, "INBOX")
	stored := inbox.Info().Messages
	if stored == 0 {
		t.Fatalf("nothing stored")
	}
	res, err := b.Poll(ctx, u, feed)
	if err != nil {
		t.Fatalf("second poll: %v", err)
	}
	if n := len(src.Messages("alice")); n != 0 {
		t.Fatalf("host holds %d messages after the second after_sync poll, want 0", n)
	}
	if got := inbox.Info().Messages; int(stored)+res.Fetched != 3 || got != 3 {
		t.Fatalf("after a second poll: %d stored, fetched %d more; want 3 in all, each once", got, res.Fetched)
	}
}

// TestQuietPrefix: after a complete keep poll, the listing it saw is the
// quiet prefix: the next keep poll whose listing starts with it diffs only
// what follows (a grown mbox spool), and fetches exactly the new mail. A
// listing that does not start with it (a rewritten spool, mail deleted at
// the host) or a dropped cache (a user expunge) falls back to the full
// diff, and no message is stored twice.
func TestQuietPrefix(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	src := bridgetest.NewSource("legacy")
	feed := bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}}
	listing := func() []bridge.SourceMessage {
		var l []bridge.SourceMessage
		for _, id := range src.Messages("alice") {
			l = append(l, bridge.SourceMessage{ID: id})
		}
		return l
	}
	poll := func(step string, want int) {
		t.Helper()
		res, err := b.Poll(ctx, u, feed)
		if err != nil || res.Fetched != want {
			t.Fatalf("%s: poll = %+v, %v; want %d fetched", step, res, err, want)
		}
	}
	for i := 1; i <= 5; i++ {
		src.Deliver("alice", msg(i), time.Time{})
	}
	if n := bridge.QuietPrefix(b, u, "legacy", listing()); n != 0 {
		t.Fatalf("before any poll: quiet prefix %d, want 0", n)
	}
	poll("first", 5)
	if n := bridge.QuietPrefix(b, u, "legacy", listing()); n != 5 {
		t.Fatalf("after the first poll: quiet prefix %d, want 5", n)
	}
	src.Deliver("alice", msg(6), time.Time{})
	src.Deliver("alice", msg(7), time.Time{})
	if n := bridge.QuietPrefix(b, u, "legacy", listing()); n != 5 {
		t.Fatalf("grown listing: quiet prefix %d, want 5", n)
	}
	poll("grown", 2)
	l := listing()
	if n := bridge.QuietPrefix(b, u, "legacy", l); n != 7 {
		t.Fatalf("after the grown poll: quiet prefix %d, want 7", n)
	}
	changed := append([]bridge.SourceMessage{{ID: "something else"}}, l[1:]...)
	if n := bridge.QuietPrefix(b, u, "legacy", changed); n != 0 {
		t.Errorf("listing with another first id: quiet prefix %d, want 0", n)
	}
	if n := bridge.QuietPrefix(b, u, "legacy", l[:6]); n != 0 {
		t.Errorf("shorter listing: quiet prefix %d, want 0", n)
	}
	inbox, _ := u.Mailbox(ctx, "INBOX")
	inbox.Store(ctx, []bridge.UID{1}, bridge.FlagsAdd, []string{bridge.FlagDeleted}, nil)
	if _, err := inbox.Expunge(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := bridge.QuietPrefix(b, u, "legacy", l); n != 0 {
		t.Errorf("after an expunge dropped the cache: quiet prefix %d, want 0", n)
	}
	src.Deliver("alice", msg(8), time.Time{})
	poll("after the expunge", 1) // the expunged message is known: not fetched again
	if got := inbox.Info().Messages; got != 7 {
		t.Errorf("INBOX holds %d messages, want 7 (8 fetched, 1 expunged)", got)
	}
}
