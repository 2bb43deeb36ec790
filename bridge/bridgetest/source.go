// Package bridgetest holds the in-memory reference implementations of the
// bridge's ports, for tests of the bridge and of the packages around it.
//
// It imports bridge only: a reference implementation stands for a real
// source or store, never next to one.
package bridgetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// Source is an in-memory maildrop per user: messages with ids, deletions
// committed at Close. It can be told to fail the next operations.
type Source struct {
	name string

	mu        sync.Mutex
	drops     map[string][]*Message
	failOpen  error
	failClose error
	opened    int
	seq       int
	offerIDs  bool
	lists     int
}

// Message is one message held by the in-memory source.
type Message struct {
	ID   bridge.SourceID
	Body []byte
	Date time.Time
}

var _ bridge.Source = (*Source)(nil)

// NewSource creates an empty in-memory source.
func NewSource(name string) *Source {
	return &Source{name: name, drops: make(map[string][]*Message)}
}

// Name implements bridge.Source.
func (s *Source) Name() string { return s.name }

// Deliver adds a message to user's maildrop and returns its id.
func (s *Source) Deliver(user string, body []byte, date time.Time) bridge.SourceID {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	sum := sha256.Sum256(body)
	id := bridge.SourceID(fmt.Sprintf("%d-%s", s.seq, hex.EncodeToString(sum[:4])))
	s.drops[user] = append(s.drops[user], &Message{ID: id, Body: bytes.Clone(body), Date: date})
	return id
}

// Remove deletes a message from the maildrop as another client would.
func (s *Source) Remove(user string, id bridge.SourceID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.drops[user]
	for i, m := range l {
		if m.ID == id {
			s.drops[user] = append(l[:i:i], l[i+1:]...)
			return
		}
	}
}

// Messages returns the ids user's maildrop holds now.
func (s *Source) Messages(user string) []bridge.SourceID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []bridge.SourceID
	for _, m := range s.drops[user] {
		ids = append(ids, m.ID)
	}
	return ids
}

// FailOpen makes every Open fail with err until called with nil.
func (s *Source) FailOpen(err error) { s.mu.Lock(); s.failOpen = err; s.mu.Unlock() }

// FailClose makes every Close fail (committing nothing) until called with nil.
func (s *Source) FailClose(err error) { s.mu.Lock(); s.failClose = err; s.mu.Unlock() }

// OfferIDs makes the sessions opened from now on offer
// bridge.SourceIDLister (as POP3 does with UIDL), or stop offering it.
func (s *Source) OfferIDs(on bool) { s.mu.Lock(); s.offerIDs = on; s.mu.Unlock() }

// Lists counts the calls of List so far (ListIDs not included).
func (s *Source) Lists() int { s.mu.Lock(); defer s.mu.Unlock(); return s.lists }

// Opened counts the sessions opened so far.
func (s *Source) Opened() int { s.mu.Lock(); defer s.mu.Unlock(); return s.opened }

// Open implements bridge.Source.
func (s *Source) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOpen != nil {
		return nil, s.failOpen
	}
	s.opened++
	// The maildrop is the login at the source where one is given (an
	// account of the accounts: form), else the bridge user's.
	drop := acct.User
	if acct.SourceUser != "" {
		drop = acct.SourceUser
	}
	ss := &session{s: s, user: drop, del: make(map[bridge.SourceID]bool)}
	if s.offerIDs {
		return &idSession{ss}, nil
	}
	return ss, nil
}

type session struct {
	s    *Source
	user string
	del  map[bridge.SourceID]bool
}

func (ss *session) List(ctx context.Context) ([]bridge.SourceMessage, error) {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.lists++
	var out []bridge.SourceMessage
	for _, m := range ss.s.drops[ss.user] {
		out = append(out, bridge.SourceMessage{ID: m.ID, Size: int64(len(m.Body)), Date: m.Date})
	}
	return out, nil
}

func (ss *session) Fetch(ctx context.Context, id bridge.SourceID) (io.ReadCloser, error) {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	for _, m := range ss.s.drops[ss.user] {
		if m.ID == id {
			return io.NopCloser(bytes.NewReader(m.Body)), nil
		}
	}
	return nil, fmt.Errorf("bridgetest: fetch %s: %w", id, bridge.ErrSourceGone)
}

func (ss *session) Delete(ctx context.Context, ids []bridge.SourceID) error {
	for _, id := range ids {
		ss.del[id] = true
	}
	return nil
}

func (ss *session) Close(ctx context.Context) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.failClose != nil {
		return ss.s.failClose
	}
	var kept []*Message
	for _, m := range ss.s.drops[ss.user] {
		if !ss.del[m.ID] {
			kept = append(kept, m)
		}
	}
	ss.s.drops[ss.user] = kept
	return nil
}

func (ss *session) Abort() {}

// idSession is a session that also lists ids alone.
type idSession struct{ *session }

var _ bridge.SourceIDLister = (*idSession)(nil)

// ListIDs implements bridge.SourceIDLister.
func (ss *idSession) ListIDs(ctx context.Context) ([]bridge.SourceID, bool, error) {
	return ss.s.Messages(ss.user), true, nil
}
