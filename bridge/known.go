package bridge

import (
	"context"
	"sync"
	"time"
)

// knownCache keeps the source-id map of each (user, source) in memory
// between polls, so that a poll of a large maildrop with nothing new does
// not read every row of it from the store each time (a poll is then as
// cheap as the source's listing). Sets are loaded from the store on first
// use and kept in step by the writes that change them, applied right after
// they commit; a change the cache does not apply itself (a user expunge
// marking origins) drops every set. A load that raced with any change is
// used for its poll and not kept.
//
// The cache is bounded by knownBudget entries over all sets; the sets used
// least recently are dropped to make room, and a set larger than the
// budget is never kept (its polls read the store as before).
type knownCache struct {
	mu     sync.Mutex
	epoch  uint64 // bumped by every change
	tick   uint64 // use counter, for dropping the least recently used
	total  int
	budget int
	sets   map[knownKey]*knownSet
}

type knownKey struct {
	user   int64
	source string
}

type knownSet struct {
	mu sync.Mutex
	m  map[SourceID]KnownMessage
	// expected counts the entries of m that the source should still
	// list (expectedAtHost), for Plan's foreign-deletion check.
	expected int
	used     uint64
	// quiet are the ids, in order, of the listing of the last complete
	// poll under the keep policy: every one of them was stored by its
	// end, and a stored id stays in m (origins are never deleted), so a
	// later keep poll whose listing starts with them has nothing to plan
	// for that part. An mbox spool's listing only grows at its end: a
	// tail poll of a large spool then diffs only the new messages.
	quiet []SourceID
}

// knownBudget is the default bound (about 150 MB at most for typical ids).
const knownBudget = 1 << 20

func newKnownCache(budget int) *knownCache {
	return &knownCache{budget: budget, sets: make(map[knownKey]*knownSet)}
}

// withKnown calls fn with the source-id map of (u, source) and how many of
// its entries the source should still list. fn must not keep the map or
// call into the bridge.
func (b *Bridge) withKnown(ctx context.Context, u *User, source string, fn func(known map[SourceID]KnownMessage, expected int)) error {
	c := b.known
	k := knownKey{u.id, source}
	c.mu.Lock()
	if s := c.sets[k]; s != nil {
		c.tick++
		s.used = c.tick
		s.mu.Lock()
		c.mu.Unlock()
		defer s.mu.Unlock()
		fn(s.m, s.expected)
		return nil
	}
	epoch := c.epoch
	c.mu.Unlock()
	m, err := b.knownMessages(ctx, u, source)
	if err != nil {
		return err
	}
	expected := 0
	for _, e := range m {
		if expectedAtHost(e.State) {
			expected++
		}
	}
	c.mu.Lock()
	if c.epoch == epoch && len(m) <= c.budget {
		for c.total+len(m) > c.budget {
			c.dropOldest()
		}
		c.tick++
		c.sets[k] = &knownSet{m: m, expected: expected, used: c.tick}
		c.total += len(m)
	}
	c.mu.Unlock()
	fn(m, expected)
	return nil
}

// dropOldest drops the least recently used set. Called with c.mu held.
func (c *knownCache) dropOldest() {
	var oldest knownKey
	var at uint64
	found := false
	for k, s := range c.sets {
		if !found || s.used < at {
			oldest, at, found = k, s.used, true
		}
	}
	if found {
		c.total -= len(c.sets[oldest].m)
		delete(c.sets, oldest)
	}
}

// update applies fn to the set of (user, source) if it is cached. Called
// after the change committed.
func (c *knownCache) update(user int64, source string, fn func(s *knownSet) (added int)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	s := c.sets[knownKey{user, source}]
	if s == nil {
		return
	}
	s.mu.Lock()
	n := fn(s)
	s.mu.Unlock()
	c.total += n
}

// stored records origins just committed.
func (c *knownCache) stored(origins []*originRef) {
	for _, o := range origins {
		c.update(o.userID, o.source, func(s *knownSet) int {
			old, had := s.m[o.sourceID]
			s.m[o.sourceID] = KnownMessage{Size: o.size, StoredAt: time.Unix(o.storedAt, 0), State: originLive}
			if !had || !expectedAtHost(old.State) {
				s.expected++
			}
			if had {
				return 0
			}
			return 1
		})
	}
}

// setState records a new state of source ids just committed. The quiet
// ids are dropped: they held for the states before.
func (c *knownCache) setState(user int64, source string, ids []SourceID, state int) {
	c.update(user, source, func(s *knownSet) int {
		for _, id := range ids {
			if k, ok := s.m[id]; ok {
				if expectedAtHost(k.State) != expectedAtHost(state) {
					if expectedAtHost(state) {
						s.expected++
					} else {
						s.expected--
					}
				}
				k.State = state
				s.m[id] = k
			}
		}
		s.quiet = nil
		return 0
	})
}

// dropAll forgets every set (after a change the cache cannot apply).
func (c *knownCache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.sets)
	c.total = 0
}

// lockSet returns the cached set of (user, source) with its lock held,
// or nil if none is cached.
func (c *knownCache) lockSet(user int64, source string) *knownSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sets[knownKey{user, source}]
	if s != nil {
		s.mu.Lock()
	}
	return s
}

// quietPrefix returns how many leading entries of listing are the quiet
// ids of (user, source): entries that plan to nothing under the keep
// policy. 0 when the set is not cached or listing does not start with
// them.
func (c *knownCache) quietPrefix(user int64, source string, listing []SourceMessage) int {
	s := c.lockSet(user, source)
	if s == nil {
		return 0
	}
	defer s.mu.Unlock()
	q := s.quiet
	if len(q) == 0 || len(q) > len(listing) {
		return 0
	}
	for i, id := range q {
		// Equal strings from the same listing share their bytes: this
		// is a pointer compare for a spool's kept entries.
		if listing[i].ID != id {
			return 0
		}
	}
	return len(q)
}

// setQuiet records listing, whose every id is now stored, as the quiet
// ids of (user, source). Its first verified entries were found equal to
// the recorded ones by quietPrefix in the same poll and are kept as they
// are.
func (c *knownCache) setQuiet(user int64, source string, listing []SourceMessage, verified int) {
	s := c.lockSet(user, source)
	if s == nil {
		return
	}
	defer s.mu.Unlock()
	if verified > len(s.quiet) {
		verified = 0
	}
	q := s.quiet[:verified]
	for _, m := range listing[verified:] {
		q = append(q, m.ID)
	}
	s.quiet = q
}
