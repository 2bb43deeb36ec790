package bridge_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

func readSnap(t *testing.T, snap *bridge.ReadSnapshot, m bridge.SnapshotMessage) []byte {
	t.Helper()
	body, err := snap.Open(context.Background(), m)
	if err != nil {
		t.Fatalf("open uid %d: %v", m.UID, err)
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestReadOnlySnapshotBesideServer: a second, read-only handle on a data
// directory a server has open sees one commit however the server goes on
// writing, leaves the server's temp files alone, and refuses writes.
func TestReadOnlySnapshotBesideServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := openStore(t, dir)
	defer srv.Close()
	u, err := srv.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 3, 1, 12, 30, 0, 0, time.FixedZone("", 3600))
	appendTo(t, u, "INBOX", 1, []string{bridge.FlagSeen, "$Label1"}, when)
	big := bytes.Repeat([]byte("x"), bridge.InlineLimit+10)
	big = append([]byte("Subject: big\r\n\r\n"), big...)
	if _, _, err := u.Append(ctx, "INBOX", bytes.NewReader(big), nil, when); err != nil {
		t.Fatal(err)
	}
	if err := u.SetSubscribed(ctx, "Junk", false); err != nil {
		t.Fatal(err)
	}
	// What a server in the middle of a blob write has in tmp/.
	inflight := filepath.Join(dir, "tmp", "blob-inflight")
	if err := os.WriteFile(inflight, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}

	ro, err := bridge.OpenReadOnly(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := os.Stat(inflight); err != nil {
		t.Fatalf("OpenReadOnly touched the server's temp file: %v", err)
	}
	snap, err := ro.ReadSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()

	// The server goes on: a new message, a new mailbox, flags.
	appendTo(t, u, "INBOX", 3, nil, when)
	if err := u.CreateMailbox(ctx, "Later", ""); err != nil {
		t.Fatal(err)
	}

	users, err := snap.Users(ctx)
	if err != nil || len(users) != 1 || users[0] != "alice" {
		t.Fatalf("Users = %v, %v", users, err)
	}
	mbs, err := snap.Mailboxes(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var inbox bridge.SnapshotMailbox
	for _, m := range mbs {
		names = append(names, m.Name)
		if m.Name == "INBOX" {
			inbox = m
		}
		if m.Name == "Junk" && m.Subscribed {
			t.Errorf("Junk shows as subscribed")
		}
		if m.Name == "Sent" && (m.SpecialUse != bridge.SpecialSent || !m.Subscribed) {
			t.Errorf("Sent = %+v", m)
		}
	}
	if got := strings.Join(names, ","); got != "INBOX,Archive,Drafts,Junk,Sent,Trash" {
		t.Errorf("mailboxes = %s (the snapshot must not show Later)", got)
	}
	if inbox.UIDNext != 3 {
		t.Errorf("INBOX UIDNEXT = %d, want 3 (as of the snapshot)", inbox.UIDNext)
	}
	live, _ := u.Mailbox(ctx, "INBOX")
	if inbox.UIDValidity != live.Info().UIDValidity {
		t.Errorf("UIDVALIDITY %d, live %d", inbox.UIDValidity, live.Info().UIDValidity)
	}
	msgs, err := snap.Messages(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if m := msgs[0]; m.UID != 1 || strings.Join(m.Flags, " ") != `$Label1 \Seen` || !m.InternalDate.Equal(when) || m.Origin != nil {
		t.Errorf("message 1 = %+v", m)
	}
	if _, off := msgs[0].InternalDate.Zone(); off != 3600 {
		t.Errorf("zone offset %d, want 3600", off)
	}
	if got := readSnap(t, snap, msgs[0]); !bytes.Equal(got, msg(1)) {
		t.Errorf("body 1 = %q", got)
	}
	if got := readSnap(t, snap, msgs[1]); !bytes.Equal(got, big) || msgs[1].Size != int64(len(big)) {
		t.Errorf("big body: %d bytes, want %d", len(got), len(big))
	}

	// Writes through the read-only handle fail as "not writable".
	if _, err := ro.User(ctx, "bob"); !errors.Is(err, bridge.ErrStoreNotWritable) {
		t.Errorf("User on a read-only store: %v, want ErrStoreNotWritable", err)
	}
	if _, err := snap.Mailboxes(ctx, "nobody"); !errors.Is(err, bridge.ErrNoSuchUser) {
		t.Errorf("Mailboxes(nobody): %v", err)
	}
}

// TestSnapshotBodyExpungedMeanwhile: a body stored as a file that the
// server removes after the snapshot began (its message expunged) is
// reported as ErrNoSuchMessage, for the exporter to start again.
func TestSnapshotBodyExpungedMeanwhile(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("y"), bridge.InlineLimit)...)
	if _, _, err := u.Append(ctx, "INBOX", bytes.NewReader(big), []string{bridge.FlagDeleted}, time.Now()); err != nil {
		t.Fatal(err)
	}
	snap, err := b.ReadSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	mbs, _ := snap.Mailboxes(ctx, "alice")
	msgs, err := snap.Messages(ctx, mbs[0].ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages %v, %v", msgs, err)
	}
	if _, err := mailbox(t, u, "INBOX").Expunge(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Open(ctx, msgs[0]); !errors.Is(err, bridge.ErrNoSuchMessage) {
		t.Fatalf("Open after expunge: %v, want ErrNoSuchMessage", err)
	}
}

// TestOpenReadOnlyRefuses: no store, or one at another schema version.
func TestOpenReadOnlyRefuses(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	if _, err := bridge.OpenReadOnly(ctx, bridge.Options{DataDir: empty}); err == nil || !strings.Contains(err.Error(), "state.db") {
		t.Errorf("empty dir: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("OpenReadOnly created %v", entries)
	}
	for _, tc := range []struct {
		version int
		want    string
	}{
		{99, "has schema version 99, newer than this binary knows"},
		{2, "has schema version 2, older than this binary's"},
	} {
		dir := t.TempDir()
		b := openStore(t, dir)
		b.Close()
		db, err := sql.Open("sqlite", filepath.Join(dir, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", tc.version)); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := bridge.OpenReadOnly(ctx, bridge.Options{DataDir: dir}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("schema %d: %v, want %q", tc.version, err, tc.want)
		}
	}
}

// TestReadOnlyStoppedServer: the data directory of a stopped server (its
// WAL checkpointed and gone) reads the same, and stays unchanged.
func TestReadOnlyStoppedServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	appendTo(t, u, "INBOX", 1, []string{bridge.FlagSeen}, time.Now())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "state.db"))
	ro, err := bridge.OpenReadOnly(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ro.ReadSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mbs, err := snap.Mailboxes(ctx, "alice")
	if err != nil || len(mbs) != 6 {
		t.Fatalf("mailboxes %v, %v", mbs, err)
	}
	msgs, err := snap.Messages(ctx, mbs[0].ID)
	if err != nil || len(msgs) != 1 || !bytes.Equal(readSnap(t, snap, msgs[0]), msg(1)) {
		t.Fatalf("messages %v, %v", msgs, err)
	}
	snap.Close()
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "state.db"))
	if !bytes.Equal(before, after) {
		t.Errorf("state.db changed under a read-only open")
	}
}
