package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestListMailboxesWithoutLoading: after a restart, LIST sums up the
// mailboxes no session has open from the store, without loading their
// index; the summary must be exactly what the loaded mailbox reports
// (messages, unseen, deleted, size, recent, keywords), for mailboxes with
// mixed flags, an empty one, and one a session took the recent messages of.
func TestListMailboxesWithoutLoading(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	if err := u.CreateMailbox(ctx, "Work", ""); err != nil {
		t.Fatal(err)
	}
	flagSets := [][]string{nil, {bridge.FlagSeen}, {bridge.FlagDeleted}, {"$Label1", bridge.FlagSeen}, {"$Label2", "$Label1"}, {bridge.FlagFlagged}}
	for i := range 20 {
		for _, name := range []string{"INBOX", "Work"} {
			if _, _, err := u.Append(ctx, name, bytes.NewReader(msg(i)), flagSets[i%len(flagSets)], time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A session takes Work's messages as recent; three more arrive.
	work, _ := u.Mailbox(ctx, "Work")
	w, err := work.Watch(ctx, true, func(bridge.Snapshot) {})
	if err != nil {
		t.Fatal(err)
	}
	w.Close(nil)
	for i := range 3 {
		u.Append(ctx, "Work", bytes.NewReader(msg(100+i)), nil, time.Time{})
	}
	b.Close()

	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	list, err := u.ListMailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 3 {
		t.Fatalf("listed %d mailboxes", len(list))
	}
	for _, got := range list {
		mb, err := u.Mailbox(ctx, got.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := mb.Info()
		want.Subscribed = got.Subscribed
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("%s listed as\n  %+v\nloaded it is\n  %+v", got.Name, got, want)
		}
	}
	// And once loaded, listing gives the same again.
	again, _ := u.ListMailboxes(ctx)
	if fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", list) {
		t.Errorf("listing with the mailboxes loaded differs:\n%+v\n%+v", again, list)
	}
	t.Logf("INBOX: %+v", list[0])
}
