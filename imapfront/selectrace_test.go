package imapfront_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestSelectWhileDelivering: sessions SELECT over and over while the source
// delivers. The selection's watch used to be recorded after the bridge's
// mailbox lock was released, so an arrival in between read it unguarded
// (a data race under -race, found by the load test) and could not give
// \Recent to the session that had just claimed it. Every arrival must be
// recent in exactly one session: the first SELECT after it sees it as
// RECENT, later ones do not.
func TestSelectWhileDelivering(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(0))
	const n = 60
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		u := e.user("alice")
		feed := bridge.Feed{Source: e.src, Account: bridge.Account{User: "alice"}}
		for i := 1; i <= n; i++ {
			e.src.Deliver("alice", []byte(simpleMsg(i)), time.Now())
			if _, err := e.b.Poll(e.ctx, u, feed); err != nil {
				t.Errorf("poll: %v", err)
				return
			}
		}
	}()
	var clients []*rawClient
	for range 8 {
		clients = append(clients, e.raw())
	}
	for _, c := range clients {
		c.login("alice")
	}
	var mu sync.Mutex
	selects := 0
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				for _, l := range c.ok("SELECT INBOX") {
					if strings.HasSuffix(l, " RECENT") {
						mu.Lock()
						selects++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if selects != len(clients)*n {
		t.Errorf("%d SELECTs reported RECENT, want %d", selects, len(clients)*n)
	}
	// Once all have settled, a new session has nothing recent left: each
	// message went to one session.
	c := e.raw()
	c.login("alice")
	var recent string
	for _, l := range c.ok("SELECT INBOX") {
		if strings.HasSuffix(l, " RECENT") {
			recent = l
		}
	}
	if recent != "* 0 RECENT" {
		t.Errorf("after the deliveries a fresh SELECT says %q, want * 0 RECENT", recent)
	}
}
