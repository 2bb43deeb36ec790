package bridge_test

import (
	"context"
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
