package imapfront

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapbridge/imapbridge/bridge"
)

// DefaultAppendLimit is the APPEND size limit when Options.AppendLimit is 0.
const DefaultAppendLimit = 64 << 20

// MinAppendLimit is the smallest APPEND size limit: the largest
// non-synchronizing literal LITERAL- allows, so that such a literal is
// never refused after the client sent it.
const MinAppendLimit = 4096

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown.
var ErrServerClosed = errors.New("imapfront: server closed")

// Options configure a Server.
type Options struct {
	// Bridge holds the users' mailboxes. Required.
	Bridge *bridge.Bridge
	// Authenticate checks a user's credentials and returns the bridge user.
	// Bad credentials must be reported with an error wrapping ErrAuthFailed
	// (the client gets NO [AUTHENTICATIONFAILED]); any other error is logged
	// and answered NO [UNAVAILABLE]. Required.
	Authenticate func(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error)
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// TLSConfig enables STARTTLS on Serve and is required by ServeTLS.
	TLSConfig *tls.Config
	// AllowInsecureAuth allows LOGIN and AUTHENTICATE without TLS. Without
	// it, plain connections advertise LOGINDISABLED until STARTTLS.
	AllowInsecureAuth bool
	// AppendLimit bounds the size of an APPENDed message (APPENDLIMIT);
	// 0 means DefaultAppendLimit, and a limit below MinAppendLimit is
	// raised to it.
	AppendLimit uint32
	// MaxConnections bounds the connections served at once (0: no bound);
	// one over it is greeted with BYE and closed.
	MaxConnections int
	// Metrics receives what operators watch; nil keeps nothing.
	Metrics *Metrics
}

// Metrics are the hooks through which the server reports what operators
// watch. The package imports no metrics library; every field may be nil.
type Metrics struct {
	// CommandDone is called after each command a session handled, with the
	// command name (LOGIN, SELECT, UID FETCH …) and the result: "ok", "no",
	// "bad" or "error" (an internal failure).
	CommandDone func(command, result string, took time.Duration)
	// Connections is called with +1 when a connection is accepted and -1
	// when it ends; listener is "imap" (Serve) or "imaps" (ServeTLS).
	Connections func(listener string, delta int)
	// AuthAttempt is called once per LOGIN/AUTHENTICATE with "success",
	// "failure" (bad credentials) or "error".
	AuthAttempt func(result string)
	// IdleSessions is called with +1 when a session starts IDLE, -1 when it
	// stops.
	IdleSessions func(delta int)
	// Recovered is called for every panic caught at a goroutine root (a
	// connection's goroutine or its IDLE goroutine). It should stay at 0.
	Recovered func()
}

func (m *Metrics) commandDone(cmd, result string, took time.Duration) {
	if m != nil && m.CommandDone != nil {
		m.CommandDone(cmd, result, took)
	}
}

func (m *Metrics) connections(listener string, delta int) {
	if m != nil && m.Connections != nil {
		m.Connections(listener, delta)
	}
}

func (m *Metrics) authAttempt(result string) {
	if m != nil && m.AuthAttempt != nil {
		m.AuthAttempt(result)
	}
}

func (m *Metrics) idleSessions(delta int) {
	if m != nil && m.IdleSessions != nil {
		m.IdleSessions(delta)
	}
}

func (m *Metrics) recovered() {
	if m != nil && m.Recovered != nil {
		m.Recovered()
	}
}

// Server is the IMAP front end: it serves the bridge's users over IMAP on
// any number of listeners.
type Server struct {
	opts    Options
	log     *slog.Logger
	hub     *hub
	caps    imap.CapSet
	metrics *Metrics

	baseCtx context.Context
	cancel  context.CancelFunc

	// wg counts live sessions: Add when one is created, Done in its Close,
	// which go-imap calls as the connection's goroutine ends.
	wg     sync.WaitGroup
	active atomic.Int64

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	servers   []*imapserver.Server
	sessions  map[*session]struct{}
}

// New creates a server. It registers an observer with opts.Bridge, so that
// every change reaches every session.
func New(opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.AppendLimit == 0 {
		opts.AppendLimit = DefaultAppendLimit
	}
	if opts.AppendLimit < MinAppendLimit {
		logger.Warn("imap: append limit raised to the minimum", "configured", opts.AppendLimit, "limit", MinAppendLimit)
		opts.AppendLimit = MinAppendLimit
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      opts,
		log:       logger,
		hub:       newHub(),
		caps:      capabilities(),
		metrics:   opts.Metrics,
		baseCtx:   ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
	}
	if opts.Bridge != nil {
		opts.Bridge.AddObserver(s.hub)
	}
	return s
}

// capabilities is the exact set advertised (go-imap adds SASL-IR, LITERAL-,
// STARTTLS, LOGINDISABLED, AUTH=PLAIN, UNSELECT, ENABLE, IDLE, UTF8=ACCEPT
// and APPENDLIMIT=n according to the connection's state).
//
// LITERAL+ is not offered: go-imap refuses an APPEND over the limit before
// reading its literal, and with a non-synchronizing literal the client has
// already sent the message, whose lines go-imap would then read as
// commands. LITERAL- (non-synchronizing literals up to 4096 bytes) keeps
// that from a client that follows the protocol, with MinAppendLimit.
func capabilities() imap.CapSet {
	set := imap.CapSet{}
	for _, c := range []imap.Cap{
		imap.CapIMAP4rev1, imap.CapIMAP4rev2,
		imap.CapNamespace, imap.CapUIDPlus, imap.CapESearch, imap.CapSearchRes,
		imap.CapListExtended, imap.CapListStatus, imap.CapMove, imap.CapStatusSize,
		imap.CapChildren, imap.CapSpecialUse, imap.CapCreateSpecialUse,
	} {
		set[c] = struct{}{}
	}
	return set
}

// Serve accepts plain connections on ln (with STARTTLS when a TLS
// configuration is set) until Shutdown, then returns ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, "imap")
}

// ServeTLS accepts implicit-TLS connections (port 993 style) on ln until
// Shutdown, then returns ErrServerClosed.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("imapfront: ServeTLS without a TLS configuration")
	}
	return s.serve(tls.NewListener(ln, s.opts.TLSConfig), "imaps")
}

func (s *Server) serve(ln net.Listener, label string) error {
	if s.opts.Bridge == nil || s.opts.Authenticate == nil {
		return errors.New("imapfront: Options.Bridge and Options.Authenticate are required")
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return s.newSession(c, label)
		},
		Caps:         s.caps,
		Logger:       goimapLogger{s},
		TLSConfig:    s.opts.TLSConfig,
		InsecureAuth: s.opts.AllowInsecureAuth,
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()

	s.log.Info("imap: listening", "addr", ln.Addr().String(), "listener", label)
	err := srv.Serve(ln)
	s.mu.Lock()
	delete(s.listeners, ln)
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	if err != nil {
		return fmt.Errorf("imapfront: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops the server in order: it closes the listeners, says BYE to
// every session and closes its connection, then waits until every
// session's goroutine has ended or ctx is done. Sessions still running at
// that point have their contexts cancelled and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("imapfront: close listener: %w", err))
		}
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	// BYE may wait for a response being written; each goes on its own
	// goroutine, and the connection is closed under it if ctx ends first.
	var byes sync.WaitGroup
	for _, sess := range sessions {
		byes.Add(1)
		go func() {
			defer byes.Done()
			sess.bye(ctx, "Server shutting down")
		}()
	}

	done := make(chan struct{})
	go func() {
		byes.Wait()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for sess := range s.sessions {
			sess.conn.NetConn().Close()
		}
		s.mu.Unlock()
		errs = append(errs, fmt.Errorf("imapfront: shutdown: %d sessions still running: %w", s.active.Load(), ctx.Err()))
	}
	s.cancel()
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	for _, srv := range servers {
		srv.Close() // releases go-imap's own bookkeeping; listeners are already closed
	}
	return errors.Join(errs...)
}

func (s *Server) newSession(c *imapserver.Conn, label string) (imapserver.Session, *imapserver.GreetingData, error) {
	remote := c.NetConn().RemoteAddr()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	if max := s.opts.MaxConnections; max > 0 && len(s.sessions) >= max {
		s.mu.Unlock()
		s.log.Warn("imap: connection refused: too many connections", "remote", remote.String(), "max", max)
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Too many connections, try again later"}
	}
	ctx, cancel := context.WithCancel(s.baseCtx)
	sess := &session{
		srv:      s,
		conn:     c,
		ctx:      ctx,
		cancel:   cancel,
		remote:   remote,
		listener: label,
		log:      s.log.With("remote", remote.String()),
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.active.Add(1)
	s.metrics.connections(label, 1)
	return sess, nil, nil
}

func (s *Server) sessionClosed(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.active.Add(-1)
	s.metrics.connections(sess.listener, -1)
	s.wg.Done()
}

// goimapLogger takes go-imap's own log lines into slog. go-imap recovers
// panics of a connection's goroutine and of its IDLE goroutine itself and
// logs them: those are counted as recovered panics.
type goimapLogger struct{ s *Server }

func (l goimapLogger) Printf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	if strings.HasPrefix(format, "panic") {
		l.s.metrics.recovered()
		l.s.log.Error("imap: panic recovered", "err", msg)
		return
	}
	l.s.log.Debug("imap: "+msg, "component", "go-imap")
}
