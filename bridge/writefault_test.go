package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// A write that fails because the data directory cannot take files marks
// the store not writable (Ready, the metric, an error wrapping
// ErrStoreNotWritable that names the path); ProbeWrites keeps it so while
// the fault lasts and clears it as soon as the directory takes writes
// again, with no message written in between. The fault: the directory new
// bodies are written to is replaced by a file (root ignores modes, so
// chmod cannot make it unwritable).
func TestProbeWritesClearsAfterFault(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var errs countingCounter
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dir, Metrics: &bridge.Metrics{StoreWriteErrors: &errs}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ProbeWrites(ctx); err != nil {
		t.Fatalf("ProbeWrites on a healthy store: %v", err)
	}

	tmp := filepath.Join(dir, "tmp")
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Too large to be inline: it needs a temp file.
	large := append(msg(1), bytes.Repeat([]byte("x"), bridge.InlineLimit)...)
	_, _, err = u.Append(ctx, "INBOX", bytes.NewReader(large), nil, time.Time{})
	if !errors.Is(err, bridge.ErrStoreNotWritable) || !strings.Contains(err.Error(), tmp) {
		t.Fatalf("Append with the blob directory gone: %v, want ErrStoreNotWritable naming %s", err, tmp)
	}
	if err := b.Ready(); !errors.Is(err, bridge.ErrStoreNotWritable) {
		t.Fatalf("Ready after the failed write: %v", err)
	}
	if errs == 0 {
		t.Errorf("StoreWriteErrors not counted")
	}
	if err := b.ProbeWrites(ctx); err == nil {
		t.Fatalf("ProbeWrites while the fault lasts: nil")
	}
	if err := b.Ready(); !errors.Is(err, bridge.ErrStoreNotWritable) {
		t.Fatalf("Ready after a failed probe: %v", err)
	}

	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := b.ProbeWrites(ctx); err != nil {
		t.Fatalf("ProbeWrites after the fault: %v", err)
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready after a good probe: %v", err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("the probe left %d files in %s", len(entries), tmp)
	}
	mb, err := u.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, uid, err := u.Append(ctx, "INBOX", bytes.NewReader(msg(2)), nil, time.Time{}); err != nil {
		t.Fatalf("Append after the fault: %v", err)
	} else if got := readAll(t, mb, uid); !bytes.Equal(got, msg(2)) {
		t.Errorf("message appended after the fault: %q", got)
	}
}
