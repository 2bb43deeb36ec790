package main

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
)

// loginRecorder takes imapfront's LoggedIn and ClientSeen hooks, which
// must not block, to the store on a goroutine of its own: the last IMAP
// login and the clients seen are inputs of the readiness verdict. When the
// queue is full (the store stalls) a record is dropped and logged; the
// next login records the user again.
type loginRecorder struct {
	b    *bridge.Bridge
	log  *slog.Logger
	ch   chan loginEvent
	once sync.Once
}

type loginEvent struct {
	user   string
	at     time.Time
	client *imapfront.ClientID
}

func newLoginRecorder(b *bridge.Bridge, logger *slog.Logger, wg *sync.WaitGroup) *loginRecorder {
	r := &loginRecorder{b: b, log: logger, ch: make(chan loginEvent, 256)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range r.ch {
			r.record(ev)
		}
	}()
	return r
}

func (r *loginRecorder) record(ev loginEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := r.b.User(ctx, ev.user)
	if err == nil {
		if ev.client == nil {
			err = u.RecordLogin(ctx, ev.at)
		} else {
			f := ev.client.Fields
			err = u.RecordClient(ctx, bridge.ClientInfo{Name: ev.client.Name, Version: ev.client.Version, OS: f["os"], Vendor: f["vendor"], LastSeen: ev.at})
		}
	}
	if err != nil {
		r.log.Warn("could not record the IMAP login for the status page", "user", ev.user, "err", err)
	}
}

func (r *loginRecorder) put(ev loginEvent) {
	select {
	case r.ch <- ev:
	default:
		r.log.Warn("IMAP login not recorded for the status page: the store is behind", "user", ev.user)
	}
}

// loggedIn is imapfront.Options.LoggedIn.
func (r *loginRecorder) loggedIn(user string, _ net.Addr, at time.Time) {
	r.put(loginEvent{user: user, at: at})
}

// clientSeen is imapfront.Options.ClientSeen.
func (r *loginRecorder) clientSeen(user string, id imapfront.ClientID, at time.Time) {
	r.put(loginEvent{user: user, at: at, client: &id})
}

// stop ends the recorder once the sessions are gone: what is queued is
// recorded, then its goroutine returns.
func (r *loginRecorder) stop() {
	if r != nil {
		r.once.Do(func() { close(r.ch) })
	}
}
