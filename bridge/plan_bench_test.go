package bridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// BenchmarkPlan is the sync diff of a 100,000-message listing against
// the source-id map when 10 messages are new: the part of a no-new-mail
// or tail poll that grows with the maildrop once the map is cached.
func BenchmarkPlan(b *testing.B) {
	const n = 100000
	listing := make([]bridge.SourceMessage, n)
	known := make(map[bridge.SourceID]bridge.KnownMessage, n)
	for i := range listing {
		id := bridge.SourceID(fmt.Sprintf("%032x", i*7919))
		listing[i] = bridge.SourceMessage{ID: id, Size: int64(1000 + i)}
		if i < n-10 {
			known[id] = bridge.KnownMessage{Size: int64(1000 + i), StoredAt: time.Unix(1.7e9, 0)}
		}
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		// Expected is what the known cache keeps counted.
		if p := bridge.Plan(bridge.PlanInput{Listing: listing, Known: known, Expected: len(known), Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}, Now: now}); len(p.Fetch) != 10 {
			b.Fatal(len(p.Fetch))
		}
	}
}
