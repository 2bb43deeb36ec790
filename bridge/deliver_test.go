package bridge_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestSpoolDeliver: a message spooled once is delivered to two users'
// INBOXes, each copy with its own header, byte for byte, with the date
// given and no flags; small (inline) and large (a temp file) alike, and
// Close leaves no temp file.
func TestSpoolDeliver(t *testing.T) {
	for _, size := range []int{100, 200 << 10} {
		ctx := context.Background()
		dir := t.TempDir()
		b, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		body := "Subject: s\r\n\r\n" + strings.Repeat("x", size) + "\r\n"
		sp, err := b.NewSpool(ctx, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if sp.Size() != int64(len(body)) {
			t.Errorf("Size %d, want %d", sp.Size(), len(body))
		}
		date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, name := range []string{"alice", "bob"} {
			u, err := b.User(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			header := "Delivered-To: " + name + "\r\n"
			if _, uid, err := sp.Deliver(ctx, u, []byte(header), date); err != nil || uid != 1 {
				t.Fatalf("Deliver to %s: %v %v", name, uid, err)
			}
			mb, _ := u.Mailbox(ctx, "INBOX")
			msgs, err := mb.Messages(ctx, []bridge.UID{1}, false)
			if err != nil || len(msgs) != 1 || !msgs[0].InternalDate.Equal(date) || len(msgs[0].Flags) != 0 {
				t.Errorf("%s: %+v %v", name, msgs, err)
			}
			r, err := mb.Open(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if string(got) != header+body {
				t.Errorf("%s's copy of %d bytes differs", name, len(got))
			}
		}
		sp.Close()
		if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
			t.Errorf("temp files left: %v", left)
		}
		b.Close()
	}
}

// TestSpoolReadError: the reader's own error comes back as it is (so the
// LMTP intake can tell "too large" from a store failure).
func TestSpoolReadError(t *testing.T) {
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tooLarge := errors.New("too large")
	for _, n := range []int{10, 100 << 10} {
		_, err := b.NewSpool(ctx, io.MultiReader(strings.NewReader(strings.Repeat("y", n)), errReader{tooLarge}))
		if !errors.Is(err, tooLarge) {
			t.Errorf("after %d bytes: %v", n, err)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
