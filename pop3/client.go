package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultTimeout is the read and write deadline when Options.Timeout is 0.
const DefaultTimeout = time.Minute

// DefaultPipelineWindow is how many commands RetrMany keeps in flight when
// the server advertises PIPELINING and Options.PipelineWindow is 0.
const DefaultPipelineWindow = 8

// Options configure a Client. The zero value is a plain-text connection
// with DefaultTimeout.
type Options struct {
	// ImplicitTLS starts TLS as soon as the connection is made (POP3S, port
	// 995), with TLSConfig.
	ImplicitTLS bool
	// TLSConfig is used by ImplicitTLS and by StartTLS when it is given
	// none. A nil config verifies the server against the system roots. An
	// empty ServerName is taken from the dialled address.
	TLSConfig *tls.Config
	// Timeout bounds every single read and write on the connection (an
	// idle timeout: a server that stops sending for this long fails the
	// command). 0 means DefaultTimeout; negative means none.
	Timeout time.Duration
	// PipelineWindow is the number of RETR commands RetrMany keeps in flight
	// on a server that advertises PIPELINING. 0 means
	// DefaultPipelineWindow; 1 turns pipelining off.
	PipelineWindow int
	// Logger, when set, receives a protocol trace at debug level: commands
	// (credentials redacted) and status lines, never message data.
	Logger *slog.Logger
	// Dialer dials the TCP connection for Dial. nil means a net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
}

// Client is one POP3 session.
type Client struct {
	raw  net.Conn // the TCP connection: closing it ends everything
	dc   *deadlineConn
	conn net.Conn // what the reader and writer use: dc, or TLS over dc
	r    *bufio.Reader
	w    *bufio.Writer

	host      string
	opts      Options
	window    int
	greeting  string
	timestamp string
	caps      Capabilities
	tlsState  *tls.ConnectionState

	body     *Body // the multi-line reply being streamed, if any
	quitSent bool  // QUIT went out: the server may have committed
	broken   error // why the session cannot go on (owned by the caller's goroutine)
	closed   atomic.Bool
}

// deadlineConn sets a fresh deadline before every read and write.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.timeout > 0 {
		if err := d.Conn.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
			return 0, err
		}
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		if err := d.Conn.SetWriteDeadline(time.Now().Add(d.timeout)); err != nil {
			return 0, err
		}
	}
	return d.Conn.Write(p)
}

// Dial connects to addr (host:port), starts TLS if opts.ImplicitTLS, and
// reads the greeting.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	dctx := ctx
	if t := effectiveTimeout(opts.Timeout); t > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pop3: dial %s: %w", addr, err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return newClient(ctx, conn, host, opts)
}

// NewClient runs a session over an established connection (starting TLS
// first if opts.ImplicitTLS) and reads the greeting. host is the server name
// for certificate checks when the TLS config has none. On error the
// connection is closed.
func NewClient(ctx context.Context, conn net.Conn, host string, opts Options) (*Client, error) {
	return newClient(ctx, conn, host, opts)
}

func newClient(ctx context.Context, conn net.Conn, host string, opts Options) (*Client, error) {
	c := &Client{
		raw:    conn,
		dc:     &deadlineConn{Conn: conn, timeout: effectiveTimeout(opts.Timeout)},
		host:   host,
		opts:   opts,
		window: opts.PipelineWindow,
	}
	if c.window <= 0 {
		c.window = DefaultPipelineWindow
	}
	c.conn = c.dc
	c.r = bufio.NewReaderSize(c.conn, 64<<10)
	c.w = bufio.NewWriter(c.conn)
	stop := c.watch(ctx)
	defer stop()
	if opts.ImplicitTLS {
		if err := c.handshake(ctx, nil); err != nil {
			c.Close()
			return nil, c.fail(ctx, "tls handshake", err)
		}
	}
	st, err := c.readStatus(ctx, "greeting")
	if err != nil {
		c.Close()
		return nil, err
	}
	c.greeting = st.text
	c.timestamp = apopTimestamp(st.text)
	return c, nil
}

func effectiveTimeout(t time.Duration) time.Duration {
	switch {
	case t == 0:
		return DefaultTimeout
	case t < 0:
		return 0
	}
	return t
}

// Greeting returns the text of the server's greeting after "+OK".
func (c *Client) Greeting() string { return c.greeting }

// TLS returns the TLS connection state, or nil on a plain-text connection.
func (c *Client) TLS() *tls.ConnectionState { return c.tlsState }

// handshake starts TLS over the TCP connection.
func (c *Client) handshake(ctx context.Context, cfg *tls.Config) error {
	if cfg == nil {
		cfg = c.opts.TLSConfig
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg = cfg.Clone()
		cfg.ServerName = c.host
	}
	tc := tls.Client(c.dc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	st := tc.ConnectionState()
	c.tlsState = &st
	c.conn = tc
	c.r.Reset(tc)
	c.w.Reset(tc)
	return nil
}

// Close drops the connection without QUIT: the server does not enter its
// UPDATE state, so messages marked with DELE are not deleted. It may be
// called from any goroutine, and more than once.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.raw.Close()
}

// watch closes the connection if ctx ends before the returned stop is
// called. stop reports a cancellation that raced with the end of the call by
// marking the session broken.
func (c *Client) watch(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	cancel := context.AfterFunc(ctx, func() { c.Close() })
	return func() {
		if !cancel() && c.broken == nil {
			c.broken = fmt.Errorf("cancelled: %w", ctx.Err())
		}
	}
}

// begin checks that a command may be sent now: the session is usable, and
// the previous multi-line reply has been read to its end (it is drained if
// the caller left some of it unread).
func (c *Client) begin(ctx context.Context, op string) error {
	if err := c.usable(op); err != nil {
		return err
	}
	if b := c.body; b != nil {
		if err := b.Close(); err != nil {
			return fmt.Errorf("pop3: %s: reading the rest of the %s reply: %w", op, b.op, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pop3: %s: %w", op, err)
	}
	return nil
}

func (c *Client) usable(op string) error {
	if c.closed.Load() {
		if c.broken != nil {
			return fmt.Errorf("pop3: %s: %w (%v)", op, ErrClosed, c.broken)
		}
		return fmt.Errorf("pop3: %s: %w", op, ErrClosed)
	}
	if c.broken != nil {
		return fmt.Errorf("pop3: %s: %w (%v)", op, ErrClosed, c.broken)
	}
	return nil
}

// fail records an error after which the conversation cannot go on, closes
// the connection and returns the error to give the caller: the context's
// error if the context ended, else err, wrapped with op.
func (c *Client) fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	} else if c.closed.Load() && c.broken == nil && isClosedConn(err) {
		err = ErrClosed
	} else if err == io.EOF {
		err = fmt.Errorf("server closed the connection: %w", io.ErrUnexpectedEOF)
	}
	if c.broken == nil {
		c.broken = err
	}
	c.Close()
	return fmt.Errorf("pop3: %s: %w", op, err)
}

func isClosedConn(err error) bool { return errors.Is(err, net.ErrClosed) }

// send writes one command line. logLine is what the trace shows (the
// command with secrets redacted).
func (c *Client) send(ctx context.Context, op, line, logLine string) error {
	if strings.ContainsAny(line, "\r\n\x00") {
		return fmt.Errorf("pop3: %s: command argument contains CR, LF or NUL", op)
	}
	c.trace("pop3 send", logLine)
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return c.fail(ctx, op, err)
	}
	if err := c.w.Flush(); err != nil {
		return c.fail(ctx, op, err)
	}
	return nil
}

// queue writes a command line without flushing (pipelining).
func (c *Client) queue(ctx context.Context, op, line string) error {
	c.trace("pop3 send", line)
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return c.fail(ctx, op, err)
	}
	return nil
}

func (c *Client) flush(ctx context.Context, op string) error {
	if err := c.w.Flush(); err != nil {
		return c.fail(ctx, op, err)
	}
	return nil
}

// readLine reads one reply line (status or listing line) without its line
// ending.
func (c *Client) readLine(ctx context.Context, op string) (string, error) {
	line, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxReplyLine {
		return "", c.fail(ctx, op, fmt.Errorf("%w: reply line longer than %d bytes", ErrMalformed, maxReplyLine))
	}
	if err != nil {
		return "", c.fail(ctx, op, err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// readStatus reads a status line. A -ERR is returned as *Error (the session
// stays usable); a line that is no status line breaks the session.
func (c *Client) readStatus(ctx context.Context, op string) (status, error) {
	return c.readStatusOpts(ctx, op, false)
}

// readStatusOpts is readStatus that also accepts a SASL continuation ("+ ")
// when allowCont, and redacts each of secrets from the server's text.
func (c *Client) readStatusOpts(ctx context.Context, op string, allowCont bool, secrets ...string) (status, error) {
	line, err := c.readLine(ctx, op)
	if err != nil {
		return status{}, err
	}
	for _, s := range secrets {
		if s != "" {
			line = strings.ReplaceAll(line, s, "[redacted]")
		}
	}
	c.trace("pop3 recv", line)
	st, err := parseStatus(line)
	if err == nil && st.cont && !allowCont {
		err = fmt.Errorf("%w: unexpected continuation line %s", ErrMalformed, quote(line))
	}
	if err != nil {
		return st, c.fail(ctx, op, err)
	}
	if !st.ok && !st.cont {
		return st, fmt.Errorf("pop3: %s: %w", op, &Error{Command: commandOf(op), Code: st.code, Text: st.text})
	}
	return st, nil
}

// commandOf turns an op ("retr 3") into the command it names ("RETR 3").
func commandOf(op string) string {
	if op == "greeting" {
		return ""
	}
	return strings.ToUpper(op)
}

// readListing reads the lines of a multi-line reply up to the terminating
// ".", undoing dot-stuffing, and gives each to fn. An error from fn is
// remembered, the rest of the listing is still read (so that the session
// stays in step), and the first such error is returned.
func (c *Client) readListing(ctx context.Context, op string, fn func(line string) error) error {
	var first error
	for n := 0; ; n++ {
		if n > maxListEntries {
			return c.fail(ctx, op, fmt.Errorf("%w: more than %d lines", ErrMalformed, maxListEntries))
		}
		line, err := c.readLine(ctx, op)
		if err != nil {
			return err
		}
		if line == "." {
			break
		}
		line = strings.TrimPrefix(line, ".")
		if first == nil {
			if err := fn(line); err != nil {
				first = fmt.Errorf("pop3: %s: %w", op, err)
			}
		}
	}
	return first
}

// simple runs a command whose reply is one status line.
func (c *Client) simple(ctx context.Context, op, line string) (status, error) {
	if err := c.begin(ctx, op); err != nil {
		return status{}, err
	}
	stop := c.watch(ctx)
	defer stop()
	if err := c.send(ctx, op, line, line); err != nil {
		return status{}, err
	}
	return c.readStatus(ctx, op)
}

func (c *Client) trace(msg, line string) {
	if c.opts.Logger != nil {
		c.opts.Logger.Debug(msg, "line", line)
	}
}

// Noop sends NOOP.
func (c *Client) Noop(ctx context.Context) error {
	_, err := c.simple(ctx, "noop", "NOOP")
	return err
}

// Rset sends RSET: every message marked with DELE in this session is
// unmarked.
func (c *Client) Rset(ctx context.Context) error {
	_, err := c.simple(ctx, "rset", "RSET")
	return err
}

// Quit sends QUIT, which makes the server delete the messages marked with
// DELE, and closes the connection. A -ERR reply (a *Error) means the
// deletions were not committed; so does an error wrapping ErrClosed (QUIT
// could not be sent). Any other error leaves it unknown whether they were.
func (c *Client) Quit(ctx context.Context) error {
	const op = "quit"
	defer c.Close()
	if err := c.begin(ctx, op); err != nil {
		return err
	}
	stop := c.watch(ctx)
	defer stop()
	c.quitSent = true
	if err := c.send(ctx, op, "QUIT", "QUIT"); err != nil {
		return err
	}
	_, err := c.readStatus(ctx, op)
	if c.broken == nil {
		c.broken = errors.New("the session ended with QUIT")
	}
	return err
}
