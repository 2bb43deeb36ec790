package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestDataDirLocked: a second Open of a data directory in use is refused,
// naming the directory and the process that holds it, and loses nothing;
// once the first closes, the store opens again. A read-only open (the
// export beside a running server) needs no lock.
func TestDataDirLocked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	u, err := first.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.Append(ctx, "INBOX", strings.NewReader("Subject: kept\r\n\r\nx\r\n"), nil, time.Now()); err != nil {
		t.Fatal(err)
	}

	_, err = bridge.Open(ctx, bridge.Options{DataDir: dir})
	if !errors.Is(err, bridge.ErrDataDirInUse) {
		t.Fatalf("second Open: %v, want ErrDataDirInUse", err)
	}
	if want := fmt.Sprintf("data directory %s is in use by process %d", dir, os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("second Open: %q, want it to say %q", err, want)
	}
	ro, err := bridge.OpenReadOnly(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("OpenReadOnly beside the server: %v", err)
	}
	ro.Close()

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer again.Close()
	u, _ = again.User(ctx, "alice")
	mb, err := u.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mb.UIDs()); n != 1 {
		t.Errorf("INBOX after reopen: %d messages, want 1", n)
	}
}
