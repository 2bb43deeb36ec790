package bridge

import (
	"context"
	"fmt"
	"time"
)

// SetMaxInList sets how many UIDs one "uid IN (…)" query names and returns
// a function that restores it.
func SetMaxInList(n int) (restore func()) {
	old := maxInList
	maxInList = n
	return func() { maxInList = old }
}

// SetAfterBlobSync makes b call fn once the blobs of a commit are placed
// and durable, before the transaction that records them commits, with the
// number of blob files placed.
func SetAfterBlobSync(b *Bridge, fn func(n int)) { b.afterBlobSync = fn }

// KnownCacheMatches reports whether the cached source-id map of (u,
// source), if one is cached, equals the store's.
func KnownCacheMatches(ctx context.Context, b *Bridge, u *User, source string) (cached bool, err error) {
	b.known.mu.Lock()
	s := b.known.sets[knownKey{u.id, source}]
	b.known.mu.Unlock()
	if s == nil {
		return false, nil
	}
	want, err := b.knownMessages(ctx, u, source)
	if err != nil {
		return true, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(want) != len(s.m) {
		return true, fmt.Errorf("cache holds %d ids, store %d", len(s.m), len(want))
	}
	expected := 0
	for id, k := range want {
		if got, ok := s.m[id]; !ok || got.Size != k.Size || got.State != k.State || !got.StoredAt.Equal(k.StoredAt) {
			return true, fmt.Errorf("id %s: cache %+v, store %+v", id, got, k)
		}
		if expectedAtHost(k.State) {
			expected++
		}
	}
	if s.expected != expected {
		return true, fmt.Errorf("cache counts %d ids expected at the host, store %d", s.expected, expected)
	}
	return true, nil
}

// InlineLimit: a message shorter than this is stored inline, in the database.
const InlineLimit = inlineLimit

// QuietPrefix is how many leading entries of listing the next keep poll of
// (u, source) would not diff.
func QuietPrefix(b *Bridge, u *User, source string, listing []SourceMessage) int {
	return b.known.quietPrefix(u.id, source, listing)
}

// SetHistoryPoints sets how many points of the drain chart a feed keeps
// and returns a function that restores it.
func SetHistoryPoints(n int) (restore func()) {
	old := historyPoints
	historyPoints = n
	return func() { historyPoints = old }
}

// SetClock makes b's polls take the time from now.
func SetClock(b *Bridge, now func() time.Time) { b.now = now }
