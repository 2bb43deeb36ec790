package imapfront

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapbridge/imapbridge/bridge"
)

// session is one IMAP connection: go-imap drives it from the connection's
// goroutine (and IDLE from a second one, while the first waits for DONE).
type session struct {
	srv      *Server
	conn     *imapserver.Conn
	ctx      context.Context // cancelled when the session ends or the server gives up waiting
	cancel   context.CancelFunc
	remote   net.Addr
	host     string // remote's IP address, the per-address count's key
	listener string
	log      *slog.Logger
	guard    *guardConn // nil only for a connection not from our listener
	started  time.Time

	// authed is set once logged in; idleSince is the start of the IDLE
	// command running (unix nanoseconds), or 0. The watchdog reads both.
	authed    atomic.Bool
	idleSince atomic.Int64
	kick      chan struct{} // wakes the watchdog when its deadline moves
	watchWG   sync.WaitGroup
	// userKey is the user counted in Server.perUser, "" before login.
	userKey string

	user *bridge.User
	sel  *selection // nil unless a mailbox is selected
	// searchRes is the last SEARCH result saved with RETURN (SAVE), for "$".
	searchRes imap.UIDSet
	// authFailures counts failed LOGIN/AUTHENTICATE on this connection.
	authFailures int
	// clientID is what the client said with ID, nil before; set and read
	// on the connection's goroutine.
	clientID *ClientID

	mu     sync.Mutex
	closed bool
	idleWG sync.WaitGroup
}

// errPrivacyRequired refuses LOGIN and AUTHENTICATE before STARTTLS, with
// go-imap's words.
var errPrivacyRequired = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}

// maxAuthFailures is how many failed logins a connection gets before the
// server says BYE.
const maxAuthFailures = 3

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

// Close implements imapserver.Session. go-imap calls it as the connection's
// goroutine ends.
func (s *session) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	s.cancel()
	s.idleWG.Wait()
	s.watchWG.Wait()
	if s.sel != nil {
		s.srv.hub.close(s.sel)
		s.sel = nil
	}
	s.srv.sessionClosed(s)
	return nil
}

// bye ends the session from outside (Shutdown): BYE, then close.
func (s *session) bye(ctx context.Context, text string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer s.srv.recoverRoot("bye")
		s.conn.Bye(text)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.conn.NetConn().Close()
		<-done
	}
}

// recoverRoot is deferred at the root of the goroutines this package
// starts: a panic is logged and counted, never allowed to kill the process.
func (s *Server) recoverRoot(where string) {
	if v := recover(); v != nil {
		s.metrics.recovered()
		s.log.Error("imap: panic recovered", "where", where, "panic", v)
	}
}

// done reports a finished command to the metrics and passes err through.
func (s *session) done(cmd string, start time.Time, err error) error {
	result := "ok"
	var ie *imap.Error
	switch {
	case err == nil:
	case errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeBad:
		result = "bad"
	case errors.Is(err, errInternal), errors.Is(err, errUnavailable):
		result = "error"
	case errors.As(err, &ie):
		result = "no"
	default:
		result = "error" // a write to the client failed
	}
	s.srv.metrics.commandDone(cmd, result, time.Since(start))
	return err
}

func uidCmd(kind imapserver.NumKind, name string) string {
	if kind == imapserver.NumKindUID {
		return "UID " + name
	}
	return name
}

func numSetCmd(set imap.NumSet, name string) string {
	if _, ok := set.(imap.UIDSet); ok && !imap.IsSearchRes(set) {
		return "UID " + name
	}
	return name
}

// Login implements imapserver.Session (LOGIN, and AUTHENTICATE PLAIN through
// go-imap's default SASL server).
func (s *session) Login(username, password string) (err error) {
	defer func(start time.Time) { err = s.done("LOGIN", start, err) }(time.Now())
	if s.guard != nil && s.guard.authNeedsTLS() {
		return errPrivacyRequired
	}
	log := s.log.With("user", Clip(username))
	u, err := s.srv.opts.Authenticate(s.ctx, username, password, s.remote)
	var refusal *imap.Error
	switch {
	case errors.As(err, &refusal):
		// A refusal whose answer the authenticator chose (a name that
		// is no login name): no password was checked.
		s.srv.metrics.authAttempt("failure")
		s.log.Info("imap: login refused", "text", refusal.Text) // not the name: it is what was wrong
		return refusal
	case errors.Is(err, ErrAuthFailed), errors.Is(err, bridge.ErrSourceAuth):
		// ErrSourceAuth: a passthrough check where the legacy host itself
		// refused the password.
		s.srv.metrics.authAttempt("failure")
		s.authFailures++
		log.Info("imap: authentication failed", "attempt", s.authFailures)
		if s.authFailures >= maxAuthFailures {
			// Guessing passwords on one connection ends here.
			s.conn.Bye("Too many authentication failures")
		}
		return imapserver.ErrAuthFailed
	case err != nil:
		s.srv.metrics.authAttempt("error")
		log.Error("imap: authentication error", "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Authentication temporarily unavailable"}
	case u == nil:
		s.srv.metrics.authAttempt("error")
		log.Error("imap: authenticator returned no user")
		return errInternal
	}
	if !s.srv.countUser(u.Name()) {
		// Not a failure (the password was right, and no BYE follows) nor a
		// success: counted as a limit only.
		max := s.srv.opts.MaxConnectionsPerUser
		s.srv.limitHit("max_connections_per_user", s.remote, "login refused: too many sessions for this user", "user", Clip(u.Name()), "max", max)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("Too many connections for this user (limit %d); log out elsewhere and try again", max)}
	}
	s.srv.metrics.authAttempt("success")
	s.userKey = u.Name()
	s.user = u
	s.authed.Store(true)
	s.wake()
	s.log = s.log.With("user", Clip(u.Name()))
	s.log.Info("imap: logged in", "listener", s.listener)
	s.srv.loggedIn(u.Name(), s.remote)
	if s.clientID != nil {
		s.srv.clientSeen(u.Name(), *s.clientID)
	}
	u.PollNow()
	return nil
}

// Namespace implements imapserver.SessionNamespace: one personal namespace.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}},
	}, nil
}

// Poll implements imapserver.Session: write what changed since the last
// command.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	return s.sel.poll(w, allowExpunge)
}

// Idle implements imapserver.Session. It writes what is queued first, then
// again on every wake-up from the observer, until stop.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.idleWG.Add(1)
	s.mu.Unlock()
	defer s.idleWG.Done()

	if s.user != nil {
		s.user.IdleStarted()
		defer s.user.IdleStopped()
	}
	s.srv.metrics.idleSessions(1)
	defer s.srv.metrics.idleSessions(-1)
	s.idleSince.Store(time.Now().UnixNano())
	s.wake()
	defer func() {
		s.idleSince.Store(0)
		s.wake()
	}()

	sel := s.sel
	if sel == nil {
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	for {
		if err := sel.poll(w, true); err != nil {
			return err
		}
		select {
		case <-sel.notify:
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		}
	}
}

// Unselect implements imapserver.Session (UNSELECT, CLOSE, and SELECT of
// another mailbox).
func (s *session) Unselect() error {
	if s.sel != nil {
		s.srv.hub.close(s.sel)
		s.sel = nil
	}
	s.searchRes = nil
	return nil
}

// AppendLimit implements imapserver.SessionAppendLimit.
func (s *session) AppendLimit() uint32 { return s.srv.opts.AppendLimit }

// selected returns the selection, or a NO for commands that need one (go-imap
// checks the state first, so this only guards against a deleted mailbox).
func (s *session) selected() (*selection, error) {
	if s.sel == nil {
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "No mailbox selected"}
	}
	return s.sel, nil
}
