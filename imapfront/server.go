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

// Default timeouts, for Options fields left at 0.
const (
	// DefaultLoginTimeout: go-imap itself closes a connection that sends
	// nothing for 30 seconds before logging in.
	DefaultLoginTimeout = time.Minute
	// DefaultIdleTimeout is RFC 3501's minimum autologout timer (section
	// 5.4). go-imap closes a logged-in connection silent for 35 minutes
	// without a word, so a longer value has no effect.
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultMaxIdleDuration: RFC 2177 says a server may log a client off
	// after 30 minutes of IDLE.
	DefaultMaxIdleDuration = 30 * time.Minute
)

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown.
var ErrServerClosed = errors.New("imapfront: server closed")

// Options configure a Server.
type Options struct {
	// Bridge holds the users' mailboxes. Required.
	Bridge *bridge.Bridge
	// Authenticate checks a user's credentials and returns the bridge user.
	// Bad credentials must be reported with an error wrapping ErrAuthFailed
	// (the client gets NO [AUTHENTICATIONFAILED]); any other error is logged
	// and answered NO [UNAVAILABLE], except an *imap.Error, which is the
	// answer (a login refused before any check, e.g. for its name).
	// Required.
	Authenticate func(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error)
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// TLSConfig enables STARTTLS on Serve and is required by ServeTLS.
	// A MinVersion below TLS 1.2 is raised to it.
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
	// MaxConnectionsPerAddress bounds the connections from one client IP
	// address (0: no bound); one over it is greeted with BYE and closed.
	// Loopback is not exempt: behind a proxy on the same host every client
	// has the proxy's address, and the bound must be raised to match.
	MaxConnectionsPerAddress int
	// MaxConnectionsPerUser bounds the logged-in sessions of one user (0:
	// no bound); a LOGIN or AUTHENTICATE beyond it is answered NO [LIMIT]
	// and is not counted as an authentication failure.
	MaxConnectionsPerUser int
	// LoginTimeout is how long a connection may stay unauthenticated,
	// however busy (0: DefaultLoginTimeout); then it gets BYE.
	LoginTimeout time.Duration
	// IdleTimeout is the autologout timer: a logged-in session that sends
	// no command (and is sent nothing) for this long gets BYE (0:
	// DefaultIdleTimeout). It does not apply during IDLE.
	IdleTimeout time.Duration
	// MaxIdleDuration is how long one IDLE command may last (0:
	// DefaultMaxIdleDuration); then the session gets BYE. RFC 2177 asks
	// clients to re-issue IDLE at least every 29 minutes.
	MaxIdleDuration time.Duration
	// Metrics receives what operators watch; nil keeps nothing.
	Metrics *Metrics
	// Version is the server version the ID response names (RFC 2971);
	// "" takes the main module's version from the build information.
	Version string
	// LoggedIn, if set, is called on the session's goroutine each time a
	// LOGIN or AUTHENTICATE succeeds, with the bridge user's name and the
	// client's address. It must not block.
	LoggedIn func(user string, remote net.Addr, at time.Time)
	// ClientSeen, if set, is called when a logged-in session knows what
	// client it serves: after an ID command of a logged-in session, or at
	// login when the client sent ID before. It must not block.
	ClientSeen func(user string, id ClientID, at time.Time)
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
	// Limit is called each time a limit ends or refuses something, with
	// the limit's name: "max_connections", "max_connections_per_address",
	// "max_connections_per_user", "login_timeout", "idle_timeout",
	// "idle_duration", "command_length", "literal_size", "bad_commands",
	// "search_depth" or "starttls_injection".
	Limit func(limit string)
}

// Limits enforced by Metrics.Limit's callers, for metrics that want every
// label up front.
var Limits = []string{
	"max_connections", "max_connections_per_address", "max_connections_per_user",
	"login_timeout", "idle_timeout", "idle_duration",
	"command_length", "literal_size", "bad_commands", "search_depth", "starttls_injection",
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

func (m *Metrics) limit(name string) {
	if m != nil && m.Limit != nil {
		m.Limit(name)
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
	perAddr   map[string]int // open sessions by client IP address
	perUser   map[string]int // logged-in sessions by user name
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
	if opts.TLSConfig != nil && opts.TLSConfig.MinVersion < tls.VersionTLS12 {
		opts.TLSConfig = opts.TLSConfig.Clone()
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = DefaultLoginTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxIdleDuration <= 0 {
		opts.MaxIdleDuration = DefaultMaxIdleDuration
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
		perAddr:   make(map[string]int),
		perUser:   make(map[string]int),
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
// already sent the message. LITERAL- (non-synchronizing literals up to 4096
// bytes) keeps that from a client that follows the protocol, with
// MinAppendLimit; the guard says BYE to one that does not.
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
	return s.serve(&guardListener{Listener: ln, srv: s, startTLS: s.opts.TLSConfig != nil}, "imap")
}

// ServeTLS accepts implicit-TLS connections (port 993 style) on ln until
// Shutdown, then returns ErrServerClosed.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("imapfront: ServeTLS without a TLS configuration")
	}
	return s.serve(&guardListener{Listener: ln, srv: s, tlsConfig: s.opts.TLSConfig}, "imaps")
}

func (s *Server) serve(ln *guardListener, label string) error {
	if s.opts.Bridge == nil || s.opts.Authenticate == nil {
		return errors.New("imapfront: Options.Bridge and Options.Authenticate are required")
	}
	// With implicit TLS the guard hides the *tls.Conn from go-imap, which
	// would then offer STARTTLS and refuse LOGIN: that listener gets no
	// STARTTLS and no LOGINDISABLED, as it is all TLS.
	//
	// STARTTLS the guard does itself, so that it stays above TLS: go-imap
	// is not told of TLS there either, and allows authentication, which
	// the session refuses until STARTTLS unless insecure authentication is
	// allowed (guardConn.authNeedsTLS).
	tlsConfig, insecureAuth := s.opts.TLSConfig, s.opts.AllowInsecureAuth
	if ln.tlsConfig != nil || ln.startTLS {
		tlsConfig, insecureAuth = nil, true
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return s.newSession(c, label)
		},
		Caps:         s.caps,
		Logger:       goimapLogger{s},
		TLSConfig:    tlsConfig,
		InsecureAuth: insecureAuth,
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
		s.limitHit("max_connections", remote, "connection refused: too many connections", "max", max)
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Too many connections, try again later"}
	}
	host := hostOf(remote)
	if max := s.opts.MaxConnectionsPerAddress; max > 0 && s.perAddr[host] >= max {
		s.mu.Unlock()
		s.limitHit("max_connections_per_address", remote, "connection refused: too many connections from this address", "max", max)
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: fmt.Sprintf("Too many connections from your address (limit %d)", max)}
	}
	s.perAddr[host]++
	ctx, cancel := context.WithCancel(s.baseCtx)
	sess := &session{
		srv:      s,
		conn:     c,
		ctx:      ctx,
		cancel:   cancel,
		remote:   remote,
		host:     host,
		listener: label,
		log:      s.log.With("remote", remote.String()),
		started:  time.Now(),
		kick:     make(chan struct{}, 1),
	}
	sess.guard, _ = c.NetConn().(*guardConn)
	if sess.guard != nil {
		sess.guard.sess.Store(sess)
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.active.Add(1)
	s.metrics.connections(label, 1)
	sess.watchWG.Add(1)
	go sess.watch()
	return sess, nil, nil
}

// limitHit logs and counts one enforcement of a limit.
func (s *Server) limitHit(limit string, remote net.Addr, msg string, args ...any) {
	s.metrics.limit(limit)
	s.log.Warn("imap: "+msg, append([]any{"remote", remote.String(), "limit", limit}, args...)...)
}

func (s *Server) sessionClosed(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	if s.perAddr[sess.host]--; s.perAddr[sess.host] <= 0 {
		delete(s.perAddr, sess.host)
	}
	if sess.userKey != "" {
		if s.perUser[sess.userKey]--; s.perUser[sess.userKey] <= 0 {
			delete(s.perUser, sess.userKey)
		}
	}
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
	msg := Clip(strings.TrimSpace(fmt.Sprintf(format, args...)))
	if strings.HasPrefix(format, "panic") {
		l.s.metrics.recovered()
		l.s.log.Error("imap: panic recovered", "err", msg)
		return
	}
	l.s.log.Debug("imap: "+msg, "component", "go-imap")
}
