package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestOpenWhileExpunged: a reader that opens a message just as another
// session expunges it is told the message is gone (ErrNoSuchMessage, which
// IMAP answers with EXPUNGEISSUED), never a bare file error that surfaces
// as "internal error". The load test in imapfront found this: SEARCH
// SUBJECT raced an EXPUNGE that removed the blob between the index lookup
// and the file open. Readers hammer the message being expunged right now,
// so that some open lands in that window.
func TestOpenWhileExpunged(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	inbox := mailbox(t, u, "INBOX")
	const n = 100
	uids := make([]bridge.UID, n)
	for i := range uids {
		uids[i] = appendTo(t, u, "INBOX", i, []string{bridge.FlagDeleted}, time.Now())
	}

	// Readers hammer uids[cur]. For each message the expunge waits until
	// some reader has opened it, and the next message waits until some
	// reader has found this one gone, so both outcomes happen whatever
	// the scheduling (on a loaded 2-core CI machine the expunges could
	// otherwise run ahead of every reader); opens in flight while the
	// expunge runs are the race under test.
	var cur atomic.Int64
	var opened, gone [n]atomic.Int64
	var firstErr error
	var errOnce sync.Once
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(cur.Load())
				if i >= n {
					return
				}
				select {
				case <-done:
					return
				default:
				}
				f, err := inbox.Open(ctx, uids[i])
				switch {
				case errors.Is(err, bridge.ErrNoSuchMessage):
					gone[i].Add(1)
				case err != nil:
					errOnce.Do(func() { firstErr = err })
				default:
					if _, err := io.ReadAll(f); err != nil {
						errOnce.Do(func() { firstErr = err })
					}
					f.Close()
					opened[i].Add(1)
				}
			}
		}()
	}
	waitFor := func(what string, c *atomic.Int64) bool {
		deadline := time.Now().Add(10 * time.Second)
		for c.Load() == 0 {
			if time.Now().After(deadline) {
				t.Errorf("no reader %s within 10 s", what)
				return false
			}
			time.Sleep(50 * time.Microsecond)
		}
		return true
	}
	var nOpened, nGone int64
	for i, uid := range uids {
		if !waitFor(fmt.Sprintf("opened uid %d", uid), &opened[i]) {
			break
		}
		if _, err := inbox.Expunge(ctx, []bridge.UID{uid}); err != nil {
			t.Errorf("expunge %d: %v", uid, err)
			break
		}
		if !waitFor(fmt.Sprintf("found uid %d gone", uid), &gone[i]) {
			break
		}
		cur.Store(int64(i + 1))
	}
	close(done)
	wg.Wait()
	for i := range uids {
		nOpened += opened[i].Load()
		nGone += gone[i].Load()
	}
	if firstErr != nil {
		t.Fatalf("open of a message being expunged: %v; want the message or ErrNoSuchMessage", firstErr)
	}
	t.Logf("%d opens succeeded, %d found the message gone, over %d expunges", nOpened, nGone, n)
}
