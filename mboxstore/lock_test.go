package mboxstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestOpenWaitsForFcntlLock: a write lock held by another process (a child:
// fcntl locks of one process never conflict with each other) makes Open
// wait for LockTimeout, then fail with ErrSourceBusy; once released, Open
// succeeds.
func TestOpenWaitsForFcntlLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	writeFile(t, path, spoolBytes(t, msgN(1)))
	_, release := helper(t, "hold-fcntl", path, "locked")
	src, _ := testSource(t, dir)
	src.cfg.LockTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := src.Open(context.Background(), bridge.Account{User: "alice"})
	if !errors.Is(err, bridge.ErrSourceBusy) {
		t.Fatalf("Open with the spool locked: %v, want ErrSourceBusy", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("gave up after %v, before the lock timeout", waited)
	}
	if !strings.Contains(err.Error(), "fcntl read lock held by another process") {
		t.Errorf("error does not say what is held: %v", err)
	}
	release()
	if _, err := tryList(src, "alice"); err != nil {
		t.Fatalf("Open after release: %v", err)
	}
}

// TestOpenLockWaitHonoursContext: a cancelled context ends the wait early.
func TestOpenLockWaitHonoursContext(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	writeFile(t, path, spoolBytes(t, msgN(1)))
	helper(t, "hold-fcntl", path, "locked")
	src, _ := testSource(t, dir)
	src.cfg.LockTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.Open(ctx, bridge.Account{User: "alice"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("Open = %v after %v, want the context's error", err, time.Since(start))
	}
}

// TestOpenWaitsForDotlock: a fresh <spool>.lock blocks Open (with dotlock
// configured) until LockTimeout; a stale one is broken and logged.
func TestOpenWaitsForDotlock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	writeFile(t, path, spoolBytes(t, msgN(1)))
	writeFile(t, path+".lock", []byte("12345\n"))
	src, logs := testSource(t, dir, LockDotlock, LockFcntl)
	src.cfg.LockTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := src.Open(context.Background(), bridge.Account{User: "alice"})
	if !errors.Is(err, bridge.ErrSourceBusy) || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("Open with a held dotlock: %v after %v, want ErrSourceBusy after the timeout", err, time.Since(start))
	}
	// Without dotlock configured, the lock file is not looked at.
	plain, _ := testSource(t, dir)
	if _, err := tryList(plain, "alice"); err != nil {
		t.Fatal(err)
	}
	// Stale: broken, with a log line.
	old := time.Now().Add(-DotlockStale - time.Minute)
	os.Chtimes(path+".lock", old, old)
	ctx := context.Background()
	ss, err := src.Open(ctx, bridge.Account{User: "alice"})
	if err != nil {
		t.Fatalf("Open with a stale dotlock: %v", err)
	}
	if !strings.Contains(logs.String(), "breaking stale dotlock") {
		t.Errorf("no log line for the broken dotlock:\n%s", logs)
	}
	b, err := os.ReadFile(path + ".lock")
	if err != nil || !bytes.Equal(b, []byte(strconv.Itoa(os.Getpid())+"\n")) {
		t.Errorf("our dotlock holds %q, %v", b, err)
	}
	ss.Abort()
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dotlock left behind after Abort: %v", err)
	}
}

// TestDeleteWithConcurrentAppend: an MDA delivering while the bridge
// rewrites the spool waits for the locks and appends afterwards; its
// message is never lost. The MDA is another process honouring fcntl, or
// the dotlock only, or a goroutine of this process.
func TestDeleteWithConcurrentAppend(t *testing.T) {
	tests := []struct {
		name      string
		locks     []string // the bridge's
		mdaLocks  []string // the MDA's
		goroutine bool
	}{
		{name: "process fcntl", locks: []string{LockFcntl}, mdaLocks: []string{LockFcntl}},
		{name: "process dotlock", locks: []string{LockDotlock, LockFcntl}, mdaLocks: []string{LockDotlock}},
		{name: "goroutine", locks: []string{LockDotlock, LockFcntl}, mdaLocks: []string{LockDotlock, LockFcntl}, goroutine: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "alice")
			all := []testMsg{msgN(1), msgN(2), msgN(3), msgN(4)}
			writeFile(t, path, spoolBytes(t, all...))
			src, _ := testSource(t, dir, tc.locks...)
			settle(t, src, "alice")
			ctx := context.Background()
			ss, err := src.Open(ctx, bridge.Account{User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := ss.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			appended := testMsg{sender: "mda@example.org", date: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), body: "Subject: appended concurrently\n\nhello\n"}
			var wait func() string
			var wg sync.WaitGroup
			var derr error
			if tc.goroutine {
				wg.Add(1)
				go func() {
					defer wg.Done()
					derr = Deliver(ctx, path, DeliverOptions{Locks: tc.mdaLocks, LockTimeout: time.Minute, Location: time.UTC},
						appended.sender, appended.date, []byte(appended.body))
				}()
			} else {
				_, wait = helper(t, "deliver", path, "delivering", "MBOXSTORE_TEST_LOCKS="+strings.Join(tc.mdaLocks, ","))
			}
			time.Sleep(200 * time.Millisecond) // let the MDA block on the lock
			if err := ss.Delete(ctx, []bridge.SourceID{msgs[0].ID, msgs[2].ID}); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, spoolBytes(t, all...)) {
				t.Fatal("the MDA wrote while the bridge held the locks")
			}
			if err := ss.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.goroutine {
				wg.Wait()
				if derr != nil {
					t.Fatal(derr)
				}
			} else if out := wait(); !strings.Contains(out, "delivered") {
				t.Fatalf("MDA: %q", out)
			}
			got, _ := os.ReadFile(path)
			want := spoolBytes(t, all[1], all[3], appended)
			if !bytes.Equal(got, want) {
				t.Errorf("spool:\n%q\nwant\n%q", got, want)
			}
		})
	}
}
