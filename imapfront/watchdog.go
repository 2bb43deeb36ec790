package imapfront

import (
	"context"
	"time"
)

// countUser takes one of the user's session slots; false if all are used.
func (s *Server) countUser(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max := s.opts.MaxConnectionsPerUser; max > 0 && s.perUser[name] >= max {
		return false
	}
	s.perUser[name]++
	return true
}

// wake tells the watchdog that its deadline may have moved.
func (s *session) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// deadline is when the session is to be ended, and by which limit.
func (s *session) deadline() (time.Time, string, string) {
	o := &s.srv.opts
	switch {
	case !s.authed.Load():
		return s.started.Add(o.LoginTimeout), "login_timeout", "Login timeout"
	case s.idleSince.Load() != 0:
		return time.Unix(0, s.idleSince.Load()).Add(o.MaxIdleDuration), "idle_duration", "Autologout; IDLE for too long"
	case s.guard != nil:
		return time.Unix(0, s.guard.lastActive.Load()).Add(o.IdleTimeout), "idle_timeout", "Autologout; idle for too long"
	default:
		return time.Now().Add(o.IdleTimeout), "", ""
	}
}

// watch is the session's watchdog: it ends the session with BYE when the
// login timeout, the autologout timer or the IDLE limit runs out. It runs
// until the session's context ends.
func (s *session) watch() {
	defer s.watchWG.Done()
	defer s.srv.recoverRoot("watchdog")
	t := time.NewTimer(s.srv.opts.LoginTimeout)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
		at, limit, text := s.deadline()
		wait := time.Until(at)
		if wait > 0 || limit == "" {
			t.Reset(max(wait, time.Millisecond))
			continue
		}
		s.srv.limitHit(limit, s.remote, "session ended: "+text)
		// BYE waits for go-imap's writer; a client that reads nothing gets
		// its connection closed after 5 seconds instead.
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		s.bye(ctx, text)
		cancel()
		return
	}
}
