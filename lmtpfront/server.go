package lmtpfront

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/imapbridge/imapbridge/bridge"
)

// Defaults of Options, applied where a field is zero.
const (
	DefaultMaxMessageSize = 50 << 20
	DefaultMaxRecipients  = 100
	DefaultMaxConnections = 100
	DefaultCommandTimeout = 5 * time.Minute
	// DefaultMaxLineLength bounds one command line and one line of a
	// message. Mail has long lines (HTML without line breaks), and a line
	// over the limit ends the connection in the middle of DATA, so it is
	// generous; only a command line is held in memory whole.
	DefaultMaxLineLength = 1 << 20
)

// Options configure a Server.
type Options struct {
	// Hostname is the name in the greeting (220 NAME LMTP Service Ready);
	// default os.Hostname.
	Hostname string
	// Lookup finds the bridge user a recipient names. It is called with
	// the whole address first ("alice@example.com"), then, if that is no
	// user, with its local part ("alice"). ok false: no such user (550
	// 5.1.1). An error is a temporary failure (451 4.3.0) and is logged.
	// Required.
	Lookup func(ctx context.Context, name string) (u *bridge.User, ok bool, err error)
	// Bridge holds the spool of a message being received. Required.
	Bridge *bridge.Bridge
	// MaxMessageSize is the largest message accepted, in bytes, as the
	// MTA sends it (before Return-Path and Delivered-To are added). It is
	// offered as SIZE in the LHLO reply; larger is 552 5.3.4. go-smtp
	// v0.25.1 accepts up to MaxMessageSize-1 bytes: a message of exactly
	// MaxMessageSize is refused too.
	MaxMessageSize int64
	// MaxRecipients per transaction; more get 452 4.5.3 (the MTA sends
	// them again in a new transaction). Offered as LIMITS RCPTMAX.
	MaxRecipients int
	// MaxConnections open at once; one more is answered 421 4.3.2 and
	// closed.
	MaxConnections int
	// CommandTimeout: how long the server waits for a command line, and,
	// during DATA, for the next piece of the message (so a large message
	// may take longer as long as it keeps coming), and for a reply to be
	// written. A client silent for longer gets 421 4.4.2 and is closed.
	CommandTimeout time.Duration
	// MaxLineLength: a longer line gets 500 5.4.0 and the connection is
	// closed.
	MaxLineLength int
	Logger        *slog.Logger
	Metrics       Metrics
}

// Metrics are hooks the wiring points at its Prometheus collectors; any
// may be nil.
type Metrics struct {
	// Delivery is called once per recipient with the outcome: one of
	// Results.
	Delivery func(result string)
	// Connections is called with +1 when a connection is accepted and -1
	// when it ends.
	Connections func(delta int)
	// Limit is called each time a limit refuses something: one of Limits.
	Limit func(limit string)
	// Recovered is called for every panic go-smtp caught in a command
	// or a delivery. It should stay at 0.
	Recovered func()
}

// Delivery results, the label values of Metrics.Delivery.
const (
	ResultDelivered        = "delivered"         // 250: durable in the INBOX
	ResultUnknownRecipient = "unknown_recipient" // 550 5.1.1 at RCPT
	ResultTooLarge         = "too_large"         // 552 5.3.4
	ResultOverQuota        = "over_quota"        // 552 5.2.2
	ResultTempFailure      = "temp_failure"      // 451 4.3.0: the MTA keeps it and retries
)

// Results are every value Metrics.Delivery is called with, for collectors
// that pre-set each label to 0.
var Results = []string{ResultDelivered, ResultUnknownRecipient, ResultTooLarge, ResultOverQuota, ResultTempFailure}

// Limits are every value Metrics.Limit is called with.
var Limits = []string{"max_connections"}

func (o *Options) fill() error {
	if o.Lookup == nil {
		return errors.New("lmtp: no recipient lookup configured")
	}
	if o.Bridge == nil {
		return errors.New("lmtp: no bridge configured")
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Hostname = h
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxRecipients <= 0 {
		o.MaxRecipients = DefaultMaxRecipients
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = DefaultMaxLineLength
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &o.Metrics
	if m.Delivery == nil {
		m.Delivery = func(string) {}
	}
	if m.Connections == nil {
		m.Connections = func(int) {}
	}
	if m.Limit == nil {
		m.Limit = func(string) {}
	}
	if m.Recovered == nil {
		m.Recovered = func() {}
	}
	return nil
}

// Server is an LMTP server over a bridge.
type Server struct {
	opts Options
	log  *slog.Logger
	smtp *smtp.Server
	// ctx ends every delivery in flight when the server is closed.
	ctx    context.Context
	cancel context.CancelFunc
	conns  atomic.Int64
	// deliver stores one copy: (*bridge.Spool).Deliver, replaced only by
	// tests of what the store cannot do on cue.
	deliver func(ctx context.Context, sp *bridge.Spool, u *bridge.User, header []byte, date time.Time) (bridge.UIDValidity, bridge.UID, error)

	mu        sync.Mutex
	listeners []net.Listener
	// open are the connections being served: go-smtp's Close does
	// nothing once its Shutdown began, so a Shutdown whose context ends
	// closes them itself.
	open map[*countedConn]struct{}
}

// New returns a server; Serve starts it on a listener.
func New(opts Options) (*Server, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, deliver: deliverCopy, open: map[*countedConn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.LMTP = true
	srv.Domain = opts.Hostname
	srv.MaxMessageBytes = opts.MaxMessageSize
	srv.MaxRecipients = opts.MaxRecipients
	srv.MaxLineLength = opts.MaxLineLength
	srv.ReadTimeout = opts.CommandTimeout
	srv.WriteTimeout = opts.CommandTimeout
	srv.ErrorLog = smtpLog{s}
	s.smtp = srv
	return s, nil
}

// Listen opens the listener for addr: "unix:/path" for a Unix socket (a
// stale socket file that no server answers on is replaced; any other file
// there is an error), else a TCP address ("127.0.0.1:24"). socketMode,
// unless 0, is given to the socket file: an MTA connecting as another user
// needs write permission on it (Postfix's lmtp runs as "postfix": 0660 with
// postfix in the socket's group, or 0666 in a directory only it reaches).
func Listen(addr string, socketMode fs.FileMode) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("lmtp: listen on %s: %w", addr, err)
		}
		return l, nil
	}
	if path == "" {
		return nil, errors.New("lmtp: listen: unix: with no path")
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("lmtp: listen on %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("lmtp: listen on %s: another server is listening there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("lmtp: remove stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("lmtp: listen on %s: %w", path, err)
	}
	if socketMode != 0 {
		if err := os.Chmod(path, socketMode); err != nil {
			l.Close()
			return nil, fmt.Errorf("lmtp: listen on %s: %w", path, err)
		}
	}
	return l, nil
}

// Serve accepts connections on l until Shutdown or Close; it returns nil
// then. Each connection is served on a goroutine of its own; one past
// MaxConnections is answered 421 4.3.2 and closed at once.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.smtp.Serve(&limitListener{Listener: l, s: s})
	if errors.Is(err, net.ErrClosed) || errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for the open ones to end
// (an MTA closes an idle LMTP connection within seconds); when ctx ends
// first, it closes them, aborting a delivery in flight (its recipients
// get no reply, and the MTA retries: nothing it was told 250 for is lost).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.smtp.Shutdown(ctx)
	if err != nil && ctx.Err() != nil {
		s.Close()
		return fmt.Errorf("lmtp: shutdown: %w", err)
	}
	s.cancel()
	if err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("lmtp: shutdown: %w", err)
	}
	return nil
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.cancel()
	err := s.smtp.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil // after Shutdown: the listeners are closed already
	}
	s.mu.Lock()
	open := make([]*countedConn, 0, len(s.open))
	for c := range s.open {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
	return err
}

// limitListener refuses connections past MaxConnections before go-smtp
// sees them, and counts the open ones.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.s
		if n := s.conns.Add(1); n > int64(s.opts.MaxConnections) {
			s.conns.Add(-1)
			s.opts.Metrics.Limit("max_connections")
			s.log.Warn("lmtp: connection refused: too many connections", "remote", c.RemoteAddr().String(), "limit", s.opts.MaxConnections)
			// A short write to a fresh socket does not block; the
			// deadline is there for a peer that never reads.
			c.SetWriteDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "421 4.3.2 Too many connections, try again later\r\n")
			c.Close()
			continue
		}
		s.opts.Metrics.Connections(1)
		cc := &countedConn{Conn: c, s: s}
		s.mu.Lock()
		s.open[cc] = struct{}{}
		s.mu.Unlock()
		return cc, nil
	}
}

type countedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.open, c)
		c.s.mu.Unlock()
		c.s.conns.Add(-1)
		c.s.opts.Metrics.Connections(-1)
	})
	return err
}

// smtpLog takes go-smtp's own log lines: a caught panic (counted), or a
// connection that failed (debug: an MTA that went away is no news).
type smtpLog struct{ s *Server }

func (l smtpLog) Printf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "panic serving") {
		l.s.opts.Metrics.Recovered()
		l.s.log.Error("lmtp: panic", "panic", msg)
		return
	}
	l.s.log.Debug("lmtp: " + msg)
}

func (l smtpLog) Println(v ...any) { l.Printf("%s", strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func deliverCopy(ctx context.Context, sp *bridge.Spool, u *bridge.User, header []byte, date time.Time) (bridge.UIDValidity, bridge.UID, error) {
	return sp.Deliver(ctx, u, header, date)
}
