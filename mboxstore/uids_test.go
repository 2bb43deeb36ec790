package mboxstore_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/mboxstore"
)

// TestBridgeUIDsStableAcrossSpoolChanges runs the real mbox source through
// the bridge's sync: the UIDs the user sees stay the same when the spool
// grows, when the bridge restarts, and when another program (a mail reader)
// rewrites the spool without some messages and with Status: headers added.
func TestBridgeUIDsStableAcrossSpoolChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	spool := filepath.Join(dir, "alice")
	date := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	body := func(i int) string {
		return fmt.Sprintf("From: s%d@example.org\nSubject: message %d\nMessage-ID: <%d@example.org>\n\nbody %d\nFrom a line that needs escaping\n", i, i, i, i)
	}
	write := func(ids []int, status map[int]bool) {
		var buf bytes.Buffer
		w := mboxstore.NewWriter(&buf)
		w.Location = time.UTC
		for _, i := range ids {
			m := body(i)
			if status[i] {
				m = strings.Replace(m, "\n\n", "\nStatus: RO\nX-Status: A\n\n", 1)
			}
			if err := w.WriteMessage(fmt.Sprintf("s%d@example.org", i), date.Add(time.Duration(i)*time.Minute), []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(spool, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := func() *mboxstore.Source {
		return mboxstore.NewSource(mboxstore.Config{Name: "spool", PathTemplate: filepath.Join(dir, "{user}")}, nil)
	}
	feed := bridge.Feed{Source: src(), Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}
	b, err := bridge.Open(ctx, bridge.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := b.User(ctx, "alice")
	poll := func(want int) {
		t.Helper()
		// Two polls: the last message is taken once the spool is seen unchanged.
		for i := 0; i < 2; i++ {
			if _, err := b.Poll(ctx, u, feed); err != nil {
				t.Fatal(err)
			}
		}
		inbox, _ := u.Mailbox(ctx, "INBOX")
		if n := int(inbox.Info().Messages); n != want {
			t.Fatalf("INBOX holds %d messages, want %d", n, want)
		}
	}
	uidOf := func() map[string]bridge.UID {
		inbox, _ := u.Mailbox(ctx, "INBOX")
		out := map[string]bridge.UID{}
		for _, uid := range inbox.UIDs() {
			f, err := inbox.Open(ctx, uid)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(f)
			f.Close()
			subj := strings.SplitN(strings.SplitN(buf.String(), "Subject: ", 2)[1], "\r\n", 2)[0]
			if _, dup := out[subj]; dup {
				t.Fatalf("%q stored twice", subj)
			}
			out[subj] = uid
		}
		return out
	}

	write([]int{1, 2, 3}, nil)
	poll(3)
	first := uidOf()

	write([]int{1, 2, 3, 4, 5}, nil) // grown
	poll(5)
	grown := uidOf()
	for s, uid := range first {
		if grown[s] != uid {
			t.Fatalf("after growth %q has UID %d, was %d", s, grown[s], uid)
		}
	}

	// Restart with a fresh source (no in-memory cache) and bridge.
	b.Close()
	b, err = bridge.Open(ctx, bridge.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	feed.Source = src()
	poll(5)
	if got := uidOf(); fmt.Sprint(got) != fmt.Sprint(grown) {
		t.Fatalf("after restart %v, want %v", got, grown)
	}

	// A mail reader rewrites the spool: message 2 deleted there, 3 and 5
	// marked read with Status headers. Nothing new, nothing renumbered;
	// message 2 stays in the bridge (keep: host deletions are not mirrored).
	write([]int{1, 3, 4, 5}, map[int]bool{3: true, 5: true})
	poll(5)
	if got := uidOf(); fmt.Sprint(got) != fmt.Sprint(grown) {
		t.Fatalf("after a rewrite %v, want %v", got, grown)
	}
}
