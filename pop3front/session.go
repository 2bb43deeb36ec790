package pop3front

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// POP3 session states (RFC 1939 section 3).
const (
	stateAuthorization = iota
	stateTransaction
)

// session is one connection. Everything but stop and closeConn runs on
// the session's own goroutine.
type session struct {
	srv      *Server
	ctx      context.Context
	cancel   context.CancelFunc
	remote   net.Addr
	host     string
	listener string
	log      *slog.Logger
	started  time.Time

	// connMu guards conn (replaced by STLS) and closing against stop.
	connMu  sync.Mutex
	conn    net.Conn
	closing bool

	tls  bool // TLS is active (implicit, or after STLS)
	r    *bufio.Reader
	w    *bufio.Writer
	line []byte

	state        int
	userArg      string // the name USER gave, until PASS
	userKey      string // the counted user name (Server.perUser)
	user         *bridge.User
	inbox        *bridge.Mailbox
	drop         []dropMsg
	authFailures int
	bad          int // invalid commands in a row
	quit         bool
	lastResult   string // of the command being handled, for the metric
	// lastWords: the session is saying its last line; writes get a short
	// deadline instead of IdleTimeout.
	lastWords bool
}

// dropMsg is one message of the session's maildrop snapshot.
type dropMsg struct {
	uid     bridge.UID
	size    int64
	uidl    string
	deleted bool
}

// errLineTooLong: a command line over MaxCommandLength.
var errLineTooLong = errors.New("command line too long")

// errEndSession ends the command loop after a response that said why.
var errEndSession = errors.New("session ends")

// deadlineWriter renews the write deadline before each write, so a
// client that stops reading is cut off after IdleTimeout.
type deadlineWriter struct{ s *session }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.s.connMu.Lock()
	c := d.s.conn
	d.s.connMu.Unlock()
	t := d.s.srv.opts.IdleTimeout
	if d.s.lastWords {
		t = 5 * time.Second
	}
	c.SetWriteDeadline(time.Now().Add(t))
	return c.Write(p)
}

func (s *session) serve() {
	defer s.srv.sessionClosed(s)
	defer s.cancel()
	defer s.lingerClose()
	defer func() {
		if p := recover(); p != nil {
			s.srv.metrics.recovered()
			s.log.Error("pop3: panic recovered", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	if s.tls {
		tc := tls.Server(s.conn, s.srv.opts.TLSConfig)
		hctx, cancel := context.WithDeadline(s.ctx, s.started.Add(s.srv.opts.LoginTimeout))
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			s.log.Debug("pop3: TLS handshake failed", "err", err)
			return
		}
		s.setConn(tc)
	}
	s.r = bufio.NewReaderSize(s.conn, 4096)
	s.w = bufio.NewWriterSize(deadlineWriter{s}, 32<<10)
	s.log.Debug("pop3: connected", "listener", s.listener)
	s.reply("+OK imapbridge POP3 server ready")
	if s.flush() != nil {
		return
	}
	for !s.quit {
		line, err := s.readLine()
		if err != nil {
			s.readFailed(err)
			return
		}
		err = s.handle(line)
		if ferr := s.flushIfIdle(); ferr != nil {
			return
		}
		if err != nil {
			s.w.Flush()
			return
		}
	}
	s.w.Flush()
}

// readFailed answers what ended the wait for a command, if the client can
// still be told.
func (s *session) readFailed(err error) {
	s.connMu.Lock()
	closing := s.closing
	s.connMu.Unlock()
	var ne net.Error
	switch {
	case closing:
		s.replyNow("-ERR [SYS/TEMP] Server shutting down")
	case errors.Is(err, errLineTooLong):
		max := s.srv.opts.MaxCommandLength
		s.srv.limitHit("command_length", s.remote, "command line too long", "max", max)
		s.replyNow(fmt.Sprintf("-ERR Command line too long (limit %d bytes)", max))
	case errors.As(err, &ne) && ne.Timeout():
		if s.state == stateAuthorization && !time.Now().Before(s.started.Add(s.srv.opts.LoginTimeout)) {
			s.srv.limitHit("login_timeout", s.remote, "login timeout", "timeout", s.srv.opts.LoginTimeout)
			s.replyNow("-ERR Login timeout")
		} else {
			s.srv.limitHit("idle_timeout", s.remote, "autologout: idle for too long", "timeout", s.srv.opts.IdleTimeout)
			s.replyNow("-ERR Autologout; idle for too long")
		}
	default:
		s.log.Debug("pop3: connection ended", "err", err)
	}
}

// replyNow writes one line with a short deadline of its own, for the last
// word before closing.
func (s *session) replyNow(text string) {
	s.lastWords = true
	s.reply(text)
	s.w.Flush()
}

// readLine reads one command line, without its line ending (CRLF, or a
// bare LF from a lax client), never holding more than MaxCommandLength.
func (s *session) readLine() ([]byte, error) {
	s.armRead()
	max := s.srv.opts.MaxCommandLength
	s.line = s.line[:0]
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(s.line)+len(chunk) > max {
			return nil, errLineTooLong
		}
		s.line = append(s.line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return nil, err
	}
	line := s.line[:len(s.line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// armRead sets the read deadline for the next command: IdleTimeout from
// now, and no later than the login deadline before login; now, once the
// server is closing.
func (s *session) armRead() {
	d := time.Now().Add(s.srv.opts.IdleTimeout)
	if s.state == stateAuthorization {
		if login := s.started.Add(s.srv.opts.LoginTimeout); login.Before(d) {
			d = login
		}
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closing {
		d = time.Now()
	}
	s.conn.SetReadDeadline(d)
}

// stop makes a session waiting for a command end now (Shutdown).
func (s *session) stop() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.closing = true
	s.conn.SetReadDeadline(time.Now())
}

// lingerClose ends the connection so that the client reads the last
// answer: closing with unread input would send a TCP reset, which can
// discard that answer on the client's side. The write side is shut, then
// what the client still sends is read and dropped, for at most a second
// and 256 KiB.
func (s *session) lingerClose() {
	s.connMu.Lock()
	c := s.conn
	s.connMu.Unlock()
	if s.ctx.Err() == nil {
		var half interface{ CloseWrite() error }
		switch x := c.(type) {
		case *tls.Conn:
			half = x
		case *net.TCPConn:
			half = x
		}
		if half != nil && half.CloseWrite() == nil {
			c.SetReadDeadline(time.Now().Add(time.Second))
			io.CopyN(io.Discard, c, 256<<10)
		}
	}
	s.closeConn()
}

func (s *session) closeConn() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.conn.Close()
}

func (s *session) setConn(c net.Conn) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.conn = c
}

func (s *session) reply(text string) {
	s.w.WriteString(text)
	s.w.WriteString("\r\n")
}

func (s *session) flush() error { return s.w.Flush() }

// flushIfIdle flushes unless the client has pipelined more commands,
// whose answers then leave together.
func (s *session) flushIfIdle() error {
	if n := s.r.Buffered(); n > 0 {
		if next, _ := s.r.Peek(n); bytes.IndexByte(next, '\n') >= 0 {
			return nil
		}
	}
	return s.w.Flush()
}

// handlers by keyword, with the states each is valid in.
type handler struct {
	fn     func(s *session, c command) error
	states []int
}

var handlers map[string]handler

func init() {
	auth := []int{stateAuthorization}
	trans := []int{stateTransaction}
	both := []int{stateAuthorization, stateTransaction}
	handlers = map[string]handler{
		"CAPA": {(*session).cmdCapa, both},
		"QUIT": {(*session).cmdQuit, both},
		"USER": {(*session).cmdUser, auth},
		"PASS": {(*session).cmdPass, auth},
		"AUTH": {(*session).cmdAuth, auth},
		"STLS": {(*session).cmdStls, auth},
		"NOOP": {(*session).cmdNoop, trans},
		"STAT": {(*session).cmdStat, trans},
		"LIST": {(*session).cmdList, trans},
		"UIDL": {(*session).cmdUidl, trans},
		"RETR": {(*session).cmdRetr, trans},
		"TOP":  {(*session).cmdTop, trans},
		"DELE": {(*session).cmdDele, trans},
		"RSET": {(*session).cmdRset, trans},
	}
}

// handle runs one command line. A non-nil error ends the session (after
// whatever was written is flushed).
func (s *session) handle(line []byte) error {
	start := time.Now()
	s.lastResult = "ok"
	c, perr := parseCommand(line)
	h, known := handlers[c.name]
	label := c.name
	if perr != nil || !known {
		label = "unknown"
	}
	s.log.Debug("pop3: command", "command", label)
	var err error
	switch {
	case perr != nil:
		err = s.invalid("-ERR Invalid command line: " + perr.Error())
	case !known:
		err = s.invalid("-ERR Unknown command")
	case !inState(h.states, s.state):
		if s.state == stateAuthorization {
			err = s.invalid("-ERR Not logged in")
		} else {
			err = s.invalid("-ERR Already logged in")
		}
	default:
		err = h.fn(s, c)
	}
	result := s.lastResult
	if err != nil && !errors.Is(err, errEndSession) {
		result = "error"
		s.log.Debug("pop3: session ends", "command", label, "err", err)
	}
	s.srv.metrics.commandDone(label, result, time.Since(start))
	return err
}

func inState(states []int, st int) bool {
	for _, x := range states {
		if x == st {
			return true
		}
	}
	return false
}

// ok answers +OK and resets the invalid-command count.
func (s *session) ok(text string) {
	s.bad = 0
	s.lastResult = "ok"
	if text == "" {
		s.reply("+OK")
		return
	}
	s.reply("+OK " + text)
}

// fail answers -ERR to a valid command that could not be done (no such
// message, say): not an invalid command.
func (s *session) fail(text string) {
	s.bad = 0
	s.lastResult = "err"
	s.reply(text)
}

// invalid answers an invalid command (unknown, malformed, in the wrong
// state) and ends the session after MaxBadCommands in a row.
func (s *session) invalid(text string) error {
	s.lastResult = "err"
	s.reply(text)
	s.bad++
	if max := s.srv.opts.MaxBadCommands; s.bad >= max {
		s.srv.limitHit("bad_commands", s.remote, "too many invalid commands", "max", max)
		s.reply("-ERR Too many invalid commands")
		return errEndSession
	}
	return nil
}

// clientText makes a string the client sent safe to log: at most 64
// bytes, control characters replaced.
func clientText(s string) string {
	const max = 64
	cut := len(s) > max
	if cut {
		s = s[:max]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if cut {
		s += "…"
	}
	return s
}
