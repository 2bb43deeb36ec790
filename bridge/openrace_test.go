package bridge_test

import (
	"context"
	"errors"
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

	var cur atomic.Int64
	var opened, gone atomic.Int64
	var firstErr error
	var errOnce sync.Once
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
				f, err := inbox.Open(ctx, uids[i])
				switch {
				case errors.Is(err, bridge.ErrNoSuchMessage):
					gone.Add(1)
				case err != nil:
					errOnce.Do(func() { firstErr = err })
				default:
					if _, err := io.ReadAll(f); err != nil {
						errOnce.Do(func() { firstErr = err })
					}
					f.Close()
					opened.Add(1)
				}
			}
		}()
	}
	for i, uid := range uids {
		if _, err := inbox.Expunge(ctx, []bridge.UID{uid}); err != nil {
			t.Errorf("expunge %d: %v", uid, err)
		}
		cur.Store(int64(i + 1))
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("open of a message being expunged: %v; want the message or ErrNoSuchMessage", firstErr)
	}
	if opened.Load() == 0 || gone.Load() == 0 {
		t.Errorf("%d opens succeeded and %d found the message gone; the race was not exercised", opened.Load(), gone.Load())
	}
	t.Logf("%d opens succeeded, %d found the message gone, over %d expunges", opened.Load(), gone.Load(), n)
}
