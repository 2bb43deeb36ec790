package bridge

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// Bounds of one ingest batch: what one write transaction and one blob sync
// cover at most. A batch is otherwise whatever was fetched while the
// previous one was being committed, so it is one message when the source is
// slow (nothing waits for a batch to fill) and grows when the disk is the
// bottleneck.
const (
	maxBatchMessages = 256
	maxBatchBytes    = 64 << 20
)

// How many empty temp files are kept ready for a fetch, and by how many
// goroutines (see tempFiles).
var tempAhead, tempWorkers = 16, 1

// ingester indexes and commits fetched messages to a mailbox, in batches,
// on goroutines of its own, so that the next messages are fetched from the
// network while the previous ones are indexed and those before them made
// durable: three stages, each on its own goroutine, where one did all
// three before. Poll owns it: start, put from the fetching goroutine,
// finish once (which stops both goroutines).
type ingester struct {
	b      *Bridge
	mb     *Mailbox
	cancel context.CancelFunc // stops the fetch when a commit fails
	in     chan newMessage    // fetched, to index
	ready  chan newMessage    // indexed, to commit
	wg     sync.WaitGroup

	// Set by the committing goroutine; read after finish.
	err     error
	stored  []SourceID // in commit order
	fetched int
	bytes   int64
}

// indexAhead is how many fetched messages may wait for the indexer. Small:
// a message waiting there may hold its body in memory (up to 64 KiB).
const indexAhead = 16

// startIngest starts the indexing and committing goroutines for mb. ctx
// bounds the commits; cancel is called if one fails, to stop the fetch
// feeding it.
func (b *Bridge) startIngest(ctx context.Context, cancel context.CancelFunc, mb *Mailbox) *ingester {
	g := &ingester{b: b, mb: mb, cancel: cancel, in: make(chan newMessage, indexAhead), ready: make(chan newMessage, maxBatchMessages)}
	g.wg.Add(2)
	go g.index()
	go g.run(ctx)
	return g
}

// put hands a fetched message (its blob written, not yet synced or
// indexed) to the ingester. It blocks while the ingester is a full batch
// behind. After a failed commit or the end of ctx it discards the blob and
// returns ctx's error.
func (g *ingester) put(ctx context.Context, m newMessage) error {
	select {
	case g.in <- m:
		return nil
	case <-ctx.Done():
		m.blob.discard()
		return ctx.Err()
	}
}

// finish waits for every message handed over to be committed (or dropped
// after a failure) and returns the first commit error.
func (g *ingester) finish() error {
	close(g.in)
	g.wg.Wait()
	return g.err
}

// index runs the indexer over each message in arrival order and passes it
// on. It never stops reading before in is closed (the committer never
// stops reading ready either), so neither put nor finish can block on a
// stage that has gone.
func (g *ingester) index() {
	defer g.wg.Done()
	defer close(g.ready)
	for m := range g.in {
		g.b.indexBlob(m.blob) // recovers its own panics
		g.ready <- m
	}
}

func (g *ingester) run(ctx context.Context) {
	defer g.wg.Done()
	batch := make([]newMessage, 0, maxBatchMessages)
	for {
		m, ok := <-g.ready
		if !ok {
			return
		}
		batch = append(batch[:0], m)
		size := m.blob.size
	fill:
		for len(batch) < maxBatchMessages && size < maxBatchBytes {
			select {
			case m, ok := <-g.ready:
				if !ok {
					break fill
				}
				batch = append(batch, m)
				size += m.blob.size
			default:
				break fill
			}
		}
		g.commit(ctx, batch)
	}
}

func (g *ingester) commit(ctx context.Context, batch []newMessage) {
	defer func() {
		// The poll's goroutine recovers panics for the rest of the poll;
		// this one does it for the commits (and observers) it runs.
		if r := recover(); r != nil {
			g.mb.b.metrics.Recovered.Inc()
			g.mb.b.log.Error("sync: panic committing fetched messages", "panic", r, "stack", string(debug.Stack()))
			g.err = fmt.Errorf("panic committing fetched messages: %v", r)
			g.cancel()
		}
		for _, m := range batch {
			m.blob.discard() // no-op for the blobs that were placed
		}
	}()
	if g.err != nil {
		return // a batch failed: drop the rest, the fetch is stopping
	}
	if _, err := g.mb.addBatch(ctx, batch); err != nil {
		g.err = err
		g.cancel()
		return
	}
	for _, m := range batch {
		g.stored = append(g.stored, m.origin.sourceID)
		g.fetched++
		g.bytes += m.blob.size
	}
}
