package pop3front

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// What QUIT does with the messages a client deleted (Options.Dele).
const (
	// DeleExpunge expunges them in the bridge: gone from every device.
	DeleExpunge = "expunge"
	// DeleKeep only hides them from POP3; IMAP still shows them.
	DeleKeep = "keep"
)

// Defaults for Options fields left at 0.
const (
	DefaultLoginTimeout = time.Minute
	// DefaultIdleTimeout is RFC 1939's minimum autologout timer.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxCommandLength bounds a command line, CRLF included. RFC
	// 2449 allows 255 octets; an AUTH PLAIN initial response with a long
	// password (or token) needs more.
	DefaultMaxCommandLength = 8192
	// MinMaxCommandLength: a smaller MaxCommandLength is raised to it.
	MinMaxCommandLength = 512
	// DefaultMaxBadCommands invalid commands in a row end a connection.
	DefaultMaxBadCommands = 20
	// maxAuthFailures failed logins on one connection close it.
	maxAuthFailures = 3
)

// ErrAuthFailed is what Options.Authenticate wraps for bad credentials
// (bridge.ErrSourceAuth, a legacy host refusing them, counts the same).
var ErrAuthFailed = errors.New("authentication failed")

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown.
var ErrServerClosed = errors.New("pop3front: server closed")

// Options configure a Server.
type Options struct {
	// Bridge holds the users' mailboxes. Required.
	Bridge *bridge.Bridge
	// Authenticate checks a user's credentials and returns the bridge
	// user: the IMAP face's check. Bad credentials must be reported with
	// an error wrapping ErrAuthFailed or bridge.ErrSourceAuth (the client
	// gets "-ERR [AUTH]"); any other error is logged and answered
	// "-ERR [SYS/TEMP]". Required.
	Authenticate func(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error)
	// HostUIDL says which messages came from a POP3 host and with what
	// UIDL (the wiring passes pop3.HostUIDL for the POP3 sources). Nil:
	// every message gets a generated UIDL.
	HostUIDL bridge.HostUIDLFunc
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// TLSConfig enables STLS on Serve and is required by ServeTLS. A
	// MinVersion below TLS 1.2 is raised to it.
	TLSConfig *tls.Config
	// AllowInsecureAuth allows USER/PASS and AUTH without TLS.
	AllowInsecureAuth bool
	// Dele is DeleExpunge ("" means it) or DeleKeep.
	Dele string
	// MaxConnections bounds the connections served at once (0: no bound).
	MaxConnections int
	// MaxConnectionsPerAddress bounds the connections from one client IP
	// address, loopback included (0: no bound).
	MaxConnectionsPerAddress int
	// MaxConnectionsPerUser bounds the logged-in sessions of one user on
	// this server (0: no bound); a login beyond it is answered
	// "-ERR [IN-USE]" and is no authentication failure.
	MaxConnectionsPerUser int
	// LoginTimeout is how long a connection may stay unauthenticated,
	// however busy (0: DefaultLoginTimeout).
	LoginTimeout time.Duration
	// IdleTimeout closes a session with no byte either way for this long
	// (0: DefaultIdleTimeout); it does not enter the UPDATE state.
	IdleTimeout time.Duration
	// MaxCommandLength bounds one command line, CRLF included (0:
	// DefaultMaxCommandLength; at least MinMaxCommandLength).
	MaxCommandLength int
	// MaxBadCommands invalid commands in a row close the connection (0:
	// DefaultMaxBadCommands).
	MaxBadCommands int
	// Metrics receives what operators watch; nil keeps nothing.
	Metrics *Metrics
}

// Metrics are the hooks through which the server reports what operators
// watch. The package imports no metrics library; every field may be nil.
type Metrics struct {
	// CommandDone is called after each command with its name (one of
	// Commands) and the result: "ok", "err" (a -ERR answer) or "error"
	// (an internal failure, or the client went away).
	CommandDone func(command, result string, took time.Duration)
	// Connections is called with +1 when a connection is accepted and -1
	// when it ends; listener is "pop3" (Serve) or "pop3s" (ServeTLS).
	Connections func(listener string, delta int)
	// AuthAttempt is called once per USER/PASS or AUTH with "success",
	// "failure" (bad credentials) or "error".
	AuthAttempt func(result string)
	// Limit is called each time a limit ends or refuses something, with
	// one of Limits.
	Limit func(limit string)
	// Deleted is called after a QUIT committed deletions, with the mode
	// (DeleExpunge or DeleKeep) and the number of messages.
	Deleted func(mode string, n int)
	// Recovered is called for every panic caught at a session's goroutine
	// root. It should stay at 0.
	Recovered func()
}

// Commands are the values of CommandDone's command label.
var Commands = []string{"USER", "PASS", "AUTH", "STLS", "CAPA", "QUIT", "NOOP", "STAT", "LIST", "RETR", "DELE", "RSET", "TOP", "UIDL", "unknown"}

// Limits are the values of Limit's label.
var Limits = []string{
	"max_connections", "max_connections_per_address", "max_connections_per_user",
	"login_timeout", "idle_timeout", "command_length", "bad_commands", "stls_injection",
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

func (m *Metrics) limit(name string) {
	if m != nil && m.Limit != nil {
		m.Limit(name)
	}
}

func (m *Metrics) deleted(mode string, n int) {
	if m != nil && m.Deleted != nil {
		m.Deleted(mode, n)
	}
}

func (m *Metrics) recovered() {
	if m != nil && m.Recovered != nil {
		m.Recovered()
	}
}

// Server is the POP3 face: it serves the bridge's users' INBOXes on any
// number of listeners.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics

	baseCtx context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // sessions, and refused connections being told

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	perAddr   map[string]int
	perUser   map[string]int
}

// New checks opts, fills in the defaults and returns a server.
func New(opts Options) (*Server, error) {
	if opts.Bridge == nil || opts.Authenticate == nil {
		return nil, errors.New("pop3front: Options.Bridge and Options.Authenticate are required")
	}
	switch opts.Dele {
	case "":
		opts.Dele = DeleExpunge
	case DeleExpunge, DeleKeep:
	default:
		return nil, fmt.Errorf("pop3front: dele %q is not %q or %q", opts.Dele, DeleExpunge, DeleKeep)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
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
	if opts.MaxCommandLength <= 0 {
		opts.MaxCommandLength = DefaultMaxCommandLength
	}
	if opts.MaxCommandLength < MinMaxCommandLength {
		logger.Warn("pop3: command length limit raised to the minimum", "configured", opts.MaxCommandLength, "limit", MinMaxCommandLength)
		opts.MaxCommandLength = MinMaxCommandLength
	}
	if opts.MaxBadCommands <= 0 {
		opts.MaxBadCommands = DefaultMaxBadCommands
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:      opts,
		log:       logger,
		metrics:   opts.Metrics,
		baseCtx:   ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		perAddr:   make(map[string]int),
		perUser:   make(map[string]int),
	}, nil
}

// Serve accepts plain connections on ln (with STLS when a TLS
// configuration is set) until Shutdown, then returns ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, "pop3", false)
}

// ServeTLS accepts implicit-TLS connections (port 995 style) on ln until
// Shutdown, then returns ErrServerClosed.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("pop3front: ServeTLS without a TLS configuration")
	}
	return s.serve(ln, "pop3s", true)
}

func (s *Server) serve(ln net.Listener, label string, implicitTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.log.Info("pop3: listening", "addr", ln.Addr().String(), "listener", label)

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed && !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors, a connection aborted before
				// it was accepted: wait, then go on. (Shutdown closes
				// the listener meanwhile if it must.)
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("pop3: accept failed; retrying", "listener", label, "err", err, "wait", backoff)
				time.Sleep(backoff)
				continue
			}
			s.mu.Lock()
			delete(s.listeners, ln)
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			return fmt.Errorf("pop3front: serve %s: %w", ln.Addr(), err)
		}
		backoff = 0
		s.accept(c, label, implicitTLS)
	}
}

// accept starts a session for c, or tells it which limit refused it.
func (s *Server) accept(c net.Conn, label string, implicitTLS bool) {
	remote := c.RemoteAddr()
	host := hostOf(remote)
	s.mu.Lock()
	var refusal, limit string
	var max int
	switch {
	case s.closed:
		refusal = "-ERR [SYS/TEMP] Server shutting down"
	case s.opts.MaxConnections > 0 && len(s.sessions) >= s.opts.MaxConnections:
		limit, max = "max_connections", s.opts.MaxConnections
		refusal = "-ERR [SYS/TEMP] Too many connections, try again later"
	case s.opts.MaxConnectionsPerAddress > 0 && s.perAddr[host] >= s.opts.MaxConnectionsPerAddress:
		limit, max = "max_connections_per_address", s.opts.MaxConnectionsPerAddress
		refusal = fmt.Sprintf("-ERR [SYS/TEMP] Too many connections from your address (limit %d)", max)
	}
	if refusal != "" {
		s.wg.Add(1)
		s.mu.Unlock()
		if limit != "" {
			s.limitHit(limit, remote, "connection refused: "+limit, "max", max)
		}
		go func() {
			defer s.wg.Done()
			defer c.Close()
			if implicitTLS {
				tc := tls.Server(c, s.opts.TLSConfig)
				c = tc
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil {
					return
				}
			}
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte(refusal + "\r\n"))
		}()
		return
	}
	ctx, cancel := context.WithCancel(s.baseCtx)
	sess := &session{
		srv:      s,
		conn:     c,
		ctx:      ctx,
		cancel:   cancel,
		remote:   remote,
		host:     host,
		listener: label,
		tls:      implicitTLS,
		log:      s.log.With("remote", remote.String()),
		started:  time.Now(),
	}
	s.sessions[sess] = struct{}{}
	s.perAddr[host]++
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.connections(label, 1)
	go sess.serve()
}

// limitHit logs and counts one enforcement of a limit.
func (s *Server) limitHit(limit string, remote net.Addr, msg string, args ...any) {
	s.metrics.limit(limit)
	s.log.Warn("pop3: "+msg, append([]any{"remote", remote.String(), "limit", limit}, args...)...)
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
	s.metrics.connections(sess.listener, -1)
	s.wg.Done()
}

// countUser takes one of the user's session slots; false when the user
// has MaxConnectionsPerUser already.
func (s *Server) countUser(sess *session, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max := s.opts.MaxConnectionsPerUser; max > 0 && s.perUser[name] >= max {
		return false
	}
	s.perUser[name]++
	sess.userKey = name
	return true
}

// Shutdown stops the server in order: it closes the listeners, tells
// every session waiting for a command "-ERR [SYS/TEMP] Server shutting
// down" (nothing it marked is deleted) and lets a command in progress —
// a RETR, a QUIT committing its deletions — finish, then waits until every
// session has ended or ctx is done. Sessions still running then are cut
// off and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("pop3front: close listener: %w", err))
		}
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.stop()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		n := len(s.sessions)
		for sess := range s.sessions {
			sess.closeConn()
		}
		s.mu.Unlock()
		<-done
		errs = append(errs, fmt.Errorf("pop3front: shutdown: %d sessions cut off: %w", n, ctx.Err()))
	}
	s.cancel()
	return errors.Join(errs...)
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
