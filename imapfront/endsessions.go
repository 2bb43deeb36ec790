package imapfront

import (
	"context"
	"sync"
)

// EndUserSessions ends every session logged in as user: each is sent
// "* BYE text" and closed (a session busy writing is cut when ctx ends).
// It is how a config reload takes a removed user off the server; other
// users' sessions are not touched. It returns how many sessions it ended.
func (s *Server) EndUserSessions(ctx context.Context, user, text string) int {
	s.mu.Lock()
	var ending []*session
	for sess := range s.sessions {
		if sess.authed.Load() && sess.userKey == user {
			ending = append(ending, sess)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sess := range ending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess.bye(ctx, text)
		}()
	}
	wg.Wait()
	return len(ending)
}
