package imapfront

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MaxCommandLength is the longest command a client may send, counting
// every byte except literal data (go-imap counts the same way and stops
// at 50 KiB; this limit sits below it, so that the client gets a BYE that
// says why instead of a closed connection). RFC 7162 section 4 asks
// servers to take command lines of at least 8192 octets.
const MaxCommandLength = 48 << 10

// MaxBadCommands is how many commands in a row may be answered BAD
// before the server says BYE (Dovecot uses the same number): a client
// streaming junk is cut off after a few lines, not after all of them.
const MaxBadCommands = 20

// maxNonSyncLiteral is the largest non-synchronizing literal LITERAL-
// allows (RFC 7888 section 5).
const maxNonSyncLiteral = 4096

// errRefused is what a guarded connection's Read returns once it has said
// BYE for a limit.
var errRefused = errors.New("imapfront: connection closed by a limit")

// guardListener wraps every accepted connection in a guardConn. For
// implicit TLS it does the TLS layer itself, below the guard, so that the
// guard sees the client's plaintext.
type guardListener struct {
	net.Listener
	srv       *Server
	tlsConfig *tls.Config // implicit TLS: the server side of every connection
	startTLS  bool        // plain listener that offers STARTTLS
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	remote := c.RemoteAddr()
	if l.tlsConfig != nil {
		// The handshake runs inside go-imap's first write, before go-imap
		// sets any read deadline: bound it by the login timeout, or a
		// client that never sends its hello would hold the connection
		// until the watchdog. go-imap replaces the deadline afterwards.
		c.SetReadDeadline(time.Now().Add(l.srv.opts.LoginTimeout))
		c = tls.Server(c, l.tlsConfig)
	}
	g := &guardConn{Conn: c, srv: l.srv, remote: remote, pendingSync: -1}
	if l.startTLS {
		g.startTLS = l.srv.opts.TLSConfig
		g.insecureAuth = l.srv.opts.AllowInsecureAuth
	}
	g.touch()
	return g, nil
}

// guardConn sits between a client and go-imap. It follows the framing of
// the IMAP stream in both directions (lines, and the literals they
// announce), holds each command's first line until it is whole (process,
// cmdcheck.go), and
//   - says BYE to a command longer than MaxCommandLength, before go-imap
//     has read it all;
//   - says BYE to a non-synchronizing literal over 4096 bytes, which
//     LITERAL- forbids and which go-imap would refuse and then read the
//     literal's bytes as commands;
//   - does STARTTLS itself, and closes a connection on which plaintext
//     follows STARTTLS in the same packet (command injection,
//     CVE-2011-0411 style);
//   - notes the time of the last byte in either direction, for the idle
//     timeout.
type guardConn struct {
	net.Conn
	srv    *Server
	remote net.Addr
	// startTLS is set on a plain listener that offers STARTTLS, which the
	// guard does itself (go-imap would put TLS above the guard, out of its
	// sight); tlsConn is the TLS layer once it is up. insecureAuth:
	// Options.AllowInsecureAuth.
	startTLS     *tls.Config
	tlsConn      atomic.Pointer[tls.Conn]
	insecureAuth bool

	lastActive atomic.Int64 // unix nanoseconds of the last read or write
	sess       atomic.Pointer[session]

	wmu sync.Mutex // serialises writes: go-imap's and the guard's BYE
	// While held (holdWrites), writes gather in held and go out in large
	// writes: go-imap flushes after every response line, one syscall (and
	// one TLS record) each, which for a FETCH of 10,000 messages was a
	// quarter of its time. Guarded by wmu.
	holding   bool
	held      []byte
	heldErr   error
	childInfo bool // see quoteChildInfo

	mu          sync.Mutex
	in, out     framer
	pendingSync int64  // size of a synchronizing literal awaiting "+", or -1
	pendingTag  string // tag of the command that announced it
	refusal     *refusal
	refused     bool
	bad         int // commands answered BAD in a row

	// What the client sent and go-imap has not read yet: inbuf[:ready] may
	// go to go-imap, the framer has looked at inbuf[:scanned] of the rest.
	// At the start of a command nothing goes on before its line is whole
	// (at most MaxCommandLength), so that the guard can inspect it.
	inbuf   []byte
	ready   int
	scanned int
	readErr error // from the socket, returned once inbuf is used up
	// busy: go-imap has a command (busyTag, busyName) whose tagged answer
	// has not gone out; what the client sends meanwhile belongs to it.
	busy     bool
	busyTag  string
	busyName string
	search   *searchScan // the nesting check of a SEARCH still being read
	own      *ownedCmd   // a command the guard answers itself, being read
}

// refusal is a limit a client ran into; the guard acts on it at the next
// Read, after go-imap has answered everything before it.
type refusal struct {
	limit string // metric label
	text  string // BYE text; "" closes without a word
}

func (g *guardConn) touch() { g.lastActive.Store(time.Now().UnixNano()) }

func (g *guardConn) Read(p []byte) (int, error) {
	for {
		g.mu.Lock()
		if g.ready > 0 {
			// Before any refusal: go-imap answers what came before it.
			n := copy(p, g.inbuf[:g.ready])
			g.consume(n)
			g.ready -= n
			g.mu.Unlock()
			return n, nil
		}
		if r := g.refusal; r != nil {
			g.mu.Unlock()
			return 0, g.refuse(r)
		}
		if lit := g.in.lit; lit > 0 && len(g.inbuf) == 0 && g.readErr == nil {
			// Literal data go-imap awaits (an APPEND's message): straight
			// into its buffer.
			g.mu.Unlock()
			n, err := g.wire().Read(p[:min(int64(len(p)), lit)])
			if n > 0 {
				g.touch()
				g.mu.Lock()
				g.in.lit -= int64(n)
				g.mu.Unlock()
			}
			return n, err
		}
		var act guardAction
		progress := false
		if g.readErr == nil || len(g.inbuf) > 0 {
			progress, act = g.process()
		}
		g.mu.Unlock()
		if act.id != nil {
			// Before the answer: once the client has it, the ID is known.
			if s := g.sess.Load(); s != nil {
				s.clientIDSeen(*act.id)
			}
		}
		if len(act.reply) > 0 {
			if err := g.writeReply(act.reply); err != nil {
				return 0, err
			}
		}
		if act.startTLS {
			if err := g.handshake(); err != nil {
				return 0, err
			}
		}
		if progress || g.hasRefusal() {
			continue
		}
		g.mu.Lock()
		if err := g.readErr; err != nil {
			// Once: after a timeout the connection may be read again.
			g.readErr = nil
			g.mu.Unlock()
			return 0, err
		}
		g.mu.Unlock()
		if err := g.fill(); err != nil {
			g.mu.Lock()
			g.readErr = err
			g.mu.Unlock()
		}
	}
}

func (g *guardConn) hasRefusal() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusal != nil
}

// guardReadSize is how much the guard asks of the socket at a time.
const guardReadSize = 4096

// fill reads once from the client into inbuf.
func (g *guardConn) fill() error {
	g.mu.Lock()
	if cap(g.inbuf)-len(g.inbuf) < guardReadSize {
		// Unconsumed bytes are at most a command line and a read.
		nb := make([]byte, len(g.inbuf), max(2*cap(g.inbuf), len(g.inbuf)+guardReadSize))
		copy(nb, g.inbuf)
		g.inbuf = nb
	}
	buf := g.inbuf[len(g.inbuf) : len(g.inbuf)+guardReadSize]
	g.mu.Unlock()
	n, err := g.wire().Read(buf)
	if n > 0 {
		g.touch()
		g.mu.Lock()
		g.inbuf = g.inbuf[:len(g.inbuf)+n]
		g.mu.Unlock()
	}
	if n > 0 && err != nil {
		// Hand on what arrived first; the error comes back at the next read.
		g.mu.Lock()
		g.readErr = err
		g.mu.Unlock()
		return nil
	}
	return err
}

// consume drops the first n bytes of inbuf. Called with mu held.
func (g *guardConn) consume(n int) {
	g.inbuf = g.inbuf[n:]
	g.scanned = max(0, g.scanned-n)
	if len(g.inbuf) == 0 {
		if cap(g.inbuf) > 2*guardReadSize {
			g.inbuf = nil // a long line's buffer is not kept
		} else {
			g.inbuf = g.inbuf[:0:cap(g.inbuf)]
		}
	}
}

// writeReply writes an answer the guard gives itself, in the order of the
// client's commands: go-imap has answered everything before it.
func (g *guardConn) writeReply(b []byte) error {
	g.touch()
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.Conn.SetWriteDeadline(time.Now().Add(guardWriteTimeout))
	defer g.Conn.SetWriteDeadline(time.Time{})
	if err := g.writeHeldLocked(); err != nil {
		return err
	}
	_, err := g.wire().Write(b)
	return err
}

// wire is what the guard reads and writes: the TLS layer once STARTTLS is
// done, else the connection.
func (g *guardConn) wire() net.Conn {
	if tc := g.tlsConn.Load(); tc != nil {
		return tc
	}
	return g.Conn
}

// isTLS reports whether the client's bytes are encrypted: implicit TLS
// (done below the guard) or STARTTLS (done by it).
func (g *guardConn) isTLS() bool {
	if g.tlsConn.Load() != nil {
		return true
	}
	_, ok := g.Conn.(*tls.Conn)
	return ok
}

// authNeedsTLS reports whether LOGIN and AUTHENTICATE must wait for
// STARTTLS (go-imap, which does not see the guard's TLS, is told to allow
// them).
func (g *guardConn) authNeedsTLS() bool {
	return g.startTLS != nil && !g.insecureAuth && !g.isTLS()
}

// handshake starts TLS after the guard answered STARTTLS, bounded by the
// login timeout.
func (g *guardConn) handshake() error {
	tc := tls.Server(g.Conn, g.startTLS)
	g.Conn.SetDeadline(time.Now().Add(g.srv.opts.LoginTimeout))
	err := tc.Handshake()
	g.Conn.SetWriteDeadline(time.Time{})
	if err != nil {
		g.srv.log.Info("imap: STARTTLS handshake failed", "remote", g.remote.String(), "err", err)
		return fmt.Errorf("imapfront: STARTTLS handshake: %w", err)
	}
	g.tlsConn.Store(tc)
	return nil
}

// guardWriteTimeout bounds one answer the guard writes itself.
const guardWriteTimeout = 30 * time.Second

// guardAction is what process leaves for Read to do once mu is released.
type guardAction struct {
	reply    []byte    // an answer to write to the client
	id       *ClientID // the client's ID, for the session
	startTLS bool      // after reply: start TLS
}

// process moves inbuf on by one step: literal data go-imap awaits, or one
// complete line, which at the start of a command is inspected (cmdcheck.go)
// and passed on, rewritten, or answered by the guard itself. It reports
// whether it made progress; without progress more input is needed.
// Called with mu held and ready == 0.
func (g *guardConn) process() (bool, guardAction) {
	var act guardAction
	f := &g.in
	if len(g.inbuf) == 0 {
		return false, act
	}
	if o := g.own; o != nil && o.lit > 0 {
		k := int(min(o.lit, int64(len(g.inbuf))))
		if o.keep {
			o.buf = append(o.buf, g.inbuf[:k]...)
		}
		o.lit -= int64(k)
		g.consume(k)
		return true, act
	}
	if f.lit > 0 {
		g.ready = int(min(f.lit, int64(len(g.inbuf))))
		f.lit -= int64(g.ready)
		return true, act
	}
	end, ok := f.line(g.inbuf[g.scanned:], MaxCommandLength)
	if !ok {
		g.refusal = &refusal{limit: "command_length", text: fmt.Sprintf("Command line too long (limit %d bytes)", MaxCommandLength)}
		return false, act
	}
	if end < 0 {
		g.scanned = len(g.inbuf)
		return false, act
	}
	n := g.scanned + end
	g.scanned = 0
	line := g.inbuf[:n]
	marker, nonSync, size := f.marker, f.nonSync, f.size
	f.marker = false
	switch {
	case g.own != nil:
		act = g.ownLine(line, marker, nonSync, size)
		g.consume(n)
		return true, act
	case g.busy:
		// A later line of the command go-imap is reading, or what a command
		// reads itself (IDLE's DONE, an AUTHENTICATE response).
		if g.search != nil {
			if err := g.search.feedLine(line); err != nil {
				g.refusal = &refusal{limit: "search_depth", text: err.Error()}
				return false, act
			}
		}
		if marker && !nonSync && size > maxNonSyncLiteral && g.busyName != "APPEND" {
			// go-imap refuses such a literal and then waits for the rest of
			// the line, which the client never sends.
			g.refusal = &refusal{limit: "literal_size", text: fmt.Sprintf("Literal of %d bytes refused (limit %d bytes outside APPEND)", size, maxNonSyncLiteral)}
			return false, act
		}
	default:
		c := inspectCommand(line, marker, nonSync, size, g.sess.Load())
		switch {
		case c.own != nil:
			g.own = c.own
			act = g.ownLine(line, marker, nonSync, size)
			g.consume(n)
			return true, act
		case c.rewrite != nil:
			rest := g.inbuf[n:]
			nb := make([]byte, 0, len(c.rewrite)+len(rest)+guardReadSize)
			nb = append(append(nb, c.rewrite...), rest...)
			g.inbuf = nb
			n = len(c.rewrite)
		}
		if g.startTLS != nil && c.name == "STARTTLS" {
			return true, g.doStartTLS(c, line, n)
		}
		g.busy, g.busyTag, g.busyName = true, c.tag, c.name
		g.search = c.search
	}
	g.ready = n
	if marker {
		switch {
		case nonSync && size > maxNonSyncLiteral:
			// Stop before the line's end: go-imap never sees it whole.
			g.ready = n - 1
			g.refusal = &refusal{limit: "literal_size", text: fmt.Sprintf("Non-synchronizing literal of %d bytes refused (LITERAL- allows %d)", size, maxNonSyncLiteral)}
		case nonSync:
			f.lit = size
		default:
			g.pendingSync, g.pendingTag = size, g.busyTag
		}
	} else {
		f.reset()
		g.search = nil // the command's last line: nothing more to check
	}
	return true, act
}

// doStartTLS answers STARTTLS (RFC 3501 section 6.2.1) on a listener that
// offers it. Called with mu held; line is inbuf[:n].
func (g *guardConn) doStartTLS(c cmdCheck, line []byte, n int) guardAction {
	var act guardAction
	_, _, rest, _ := parseHead(line)
	s := g.sess.Load()
	switch {
	case len(trimEOL(rest)) != 0:
		act.reply = badLine(c.tag, "[CLIENTBUG] Syntax error: STARTTLS takes no arguments")
	case g.isTLS() || (s != nil && s.authed.Load()):
		act.reply = badLine(c.tag, "STARTTLS not available")
	default:
		act.reply = statusLine(c.tag, "OK", "Begin TLS negotiation now")
		act.startTLS = true
		if len(g.inbuf) > n {
			// Plaintext pipelined behind STARTTLS would be read as if it
			// came over TLS: close after the answer (CVE-2011-0411).
			g.refusal = &refusal{limit: "starttls_injection"}
			act.startTLS = false
			g.consume(len(g.inbuf))
			g.in.reset()
			return act
		}
	}
	g.consume(n)
	g.in.reset()
	g.countReply(act.reply)
	return act
}

// ownLine takes one line of a command the guard answers itself. Called
// with mu held.
func (g *guardConn) ownLine(line []byte, marker, nonSync bool, size int64) guardAction {
	o := g.own
	var act guardAction
	if o.keep {
		if len(o.buf)+len(line) > maxOwnedCommand {
			o.keep, o.buf = false, nil
			o.reply = badLine(o.tag, "Command too long")
		} else {
			o.buf = append(o.buf, line...)
		}
	}
	if marker && o.keep && size > o.maxLiteral {
		o.keep, o.buf = false, nil
		o.reply = badLine(o.tag, fmt.Sprintf("Literal of %d bytes too long for %s (limit %d bytes)", size, o.name, o.maxLiteral))
	}
	switch {
	case marker && nonSync:
		o.lit = size
		return act
	case marker && o.keep:
		act.reply = []byte("+ Ready for literal data\r\n")
		o.lit = size
		return act
	}
	// The command ends here (a synchronizing literal the guard refuses
	// is never sent).
	g.own = nil
	g.in.reset()
	if o.keep {
		o.reply, act.id = o.finish(o.buf)
	}
	act.reply = o.reply
	g.countReply(o.reply)
	return act
}

// countReply counts a BAD the guard answered towards MaxBadCommands (and
// any other answer as the end of a run of them). Called with mu held.
func (g *guardConn) countReply(reply []byte) {
	last := reply
	if i := bytes.LastIndex(bytes.TrimSuffix(reply, []byte("\r\n")), []byte("\r\n")); i >= 0 {
		last = reply[i+2:]
	}
	if bytes.HasPrefix(last, []byte("* BAD ")) {
		g.bad++
		if g.bad >= MaxBadCommands && g.refusal == nil {
			g.refusal = &refusal{limit: "bad_commands", text: "Too many invalid commands"}
		}
		return
	}
	g.tagged(last)
}

func (g *guardConn) Write(p []byte) (int, error) {
	g.touch()
	g.mu.Lock()
	g.scanOut(p)
	g.mu.Unlock()
	if q := g.fixCaps(p); len(q) != len(p) {
		if _, err := g.write(q); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return g.write(p)
}

var (
	capLine = []byte("* CAPABILITY ")
	capCode = []byte(" OK [CAPABILITY ")
)

// fixCaps completes a capability list go-imap writes (p is one response as
// go-imap flushes it) with what the guard does itself: ID (cmdcheck.go),
// which go-imap does not know, and before TLS on a STARTTLS listener
// STARTTLS and, unless insecure authentication is allowed, LOGINDISABLED
// instead of AUTH=PLAIN, as go-imap would list them had it done STARTTLS.
func (g *guardConn) fixCaps(p []byte) []byte {
	var start, end int // the list: p[start:end]
	switch {
	case bytes.HasPrefix(p, capLine) && bytes.HasSuffix(p, []byte("\r\n")) && bytes.IndexByte(p, '\n') == len(p)-1:
		start, end = len(capLine)-1, len(p)-2
	default:
		i := bytes.Index(p, capCode)
		if i < 0 || i > 64 || bytes.IndexByte(p[:i], '\n') >= 0 {
			return p
		}
		j := bytes.IndexByte(p[i:], ']')
		if j < 0 {
			return p
		}
		start, end = i+len(capCode)-1, i+j
	}
	list := p[start:end]
	q := make([]byte, 0, len(p)+32)
	q = append(q, p[:start]...)
	if g.startTLS != nil && !g.isTLS() {
		auth := []byte(" AUTH=PLAIN")
		repl := " STARTTLS AUTH=PLAIN"
		if !g.insecureAuth {
			repl = " STARTTLS LOGINDISABLED"
		}
		if k := bytes.Index(list, auth); k >= 0 {
			q = append(q, list[:k]...)
			q = append(q, repl...)
			q = append(q, list[k+len(auth):]...)
		} else {
			q = append(q, list...)
		}
	} else {
		q = append(q, list...)
	}
	q = append(q, " ID"...)
	return append(q, p[end:]...)
}

func (g *guardConn) write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if !g.holding {
		return g.wire().Write(p)
	}
	if g.heldErr != nil {
		return 0, g.heldErr
	}
	if len(g.held)+len(p) > maxHeldWrites {
		if err := g.writeHeldLocked(); err != nil {
			return 0, err
		}
		if len(p) >= maxHeldWrites/2 {
			return g.wire().Write(p) // a large literal: no copy
		}
	}
	g.held = append(g.held, p...)
	return len(p), nil
}

// maxHeldWrites is how much output holdWrites gathers before writing.
const maxHeldWrites = 64 << 10

// holdWrites gathers what is written until releaseWrites. The caller must
// call releaseWrites before it returns to go-imap.
func (g *guardConn) holdWrites() {
	g.wmu.Lock()
	g.holding = true
	g.wmu.Unlock()
}

// releaseWrites writes what was gathered and stops gathering. It returns
// the first write error since holdWrites.
func (g *guardConn) releaseWrites() error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	err := g.writeHeldLocked()
	g.holding, g.heldErr, g.childInfo = false, nil, false
	return err
}

// quoteChildInfo makes the writes held until releaseWrites spell LIST's
// CHILDINFO extended item as RFC 5258's examples do, ("CHILDINFO"
// ("SUBSCRIBED")); go-imap writes the tag as an atom.
func (g *guardConn) quoteChildInfo() {
	g.wmu.Lock()
	g.childInfo = true
	g.wmu.Unlock()
}

var (
	childInfoAtom   = []byte(` (CHILDINFO ("SUBSCRIBED"))`)
	childInfoQuoted = []byte(` ("CHILDINFO" ("SUBSCRIBED"))`)
)

// fixChildInfo rewrites the CHILDINFO item at the end of "* LIST" lines.
func fixChildInfo(b []byte) []byte {
	if !bytes.Contains(b, childInfoAtom) {
		return b
	}
	out := make([]byte, 0, len(b)+64)
	for len(b) > 0 {
		line := b
		if i := bytes.Index(b, []byte("\r\n")); i >= 0 {
			line = b[:i+2]
		}
		b = b[len(line):]
		body := bytes.TrimSuffix(line, []byte("\r\n"))
		if bytes.HasPrefix(body, []byte("* LIST ")) && bytes.HasSuffix(body, childInfoAtom) {
			out = append(out, body[:len(body)-len(childInfoAtom)]...)
			out = append(out, childInfoQuoted...)
			out = append(out, line[len(body):]...)
			continue
		}
		out = append(out, line...)
	}
	return out
}

func (g *guardConn) writeHeldLocked() error {
	if g.childInfo && len(g.held) > 0 {
		g.held = fixChildInfo(g.held)
	}
	if g.heldErr == nil && len(g.held) > 0 {
		_, g.heldErr = g.wire().Write(g.held)
	}
	if cap(g.held) > maxHeldWrites {
		g.held = nil
	}
	g.held = g.held[:0]
	return g.heldErr
}

// Close writes what holdWrites gathered before it closes the connection:
// go-imap's BYE at shutdown can be written between a FETCH's last message
// and the release of its held writes, and both would be lost with the
// connection. A write blocked on a client that reads nothing is cut by
// the deadline, so Close never waits longer than closeFlushTimeout.
func (g *guardConn) Close() error {
	g.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	g.wmu.Lock()
	if len(g.held) > 0 {
		g.writeHeldLocked()
	}
	g.wmu.Unlock()
	return g.Conn.Close()
}

// closeFlushTimeout bounds how long Close tries to write held output.
const closeFlushTimeout = 2 * time.Second

// refuse says BYE (unless the refusal is silent), closes the connection and
// returns errRefused for go-imap, which then ends the session.
func (g *guardConn) refuse(r *refusal) error {
	g.mu.Lock()
	first := !g.refused
	g.refused = true
	g.refusal = r
	g.mu.Unlock()
	if first && r.text != "" {
		g.srv.limitHit(r.limit, g.remote, r.text)
		g.wmu.Lock()
		g.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		err := g.writeHeldLocked()
		if err == nil {
			_, err = g.wire().Write([]byte("* BYE " + r.text + "\r\n"))
		}
		g.wmu.Unlock()
		if err == nil {
			// A client still sending would get a reset on Close, which
			// can discard the BYE before it reads it: send FIN and give it
			// a moment first (net/http does the same).
			if cw, ok := g.wire().(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			time.Sleep(rstAvoidanceDelay)
		}
	} else if first {
		g.srv.limitHit(r.limit, g.remote, "connection closed")
	}
	g.Conn.Close()
	return errRefused
}

// rstAvoidanceDelay is how long a refused connection stays half-closed
// before it is closed.
const rstAvoidanceDelay = 250 * time.Millisecond

// scanOut follows the server's bytes, to learn whether a synchronizing
// literal the client announced was accepted ("+") or refused (tagged).
func (g *guardConn) scanOut(p []byte) {
	f := &g.out
	for i := 0; i < len(p); {
		if f.lit > 0 {
			i += f.skipLiteral(len(p) - i)
			continue
		}
		end, _ := f.line(p[i:], 0)
		if end < 0 {
			return
		}
		i += end
		if f.marker {
			f.lit = f.size // a server literal follows at once
			f.marker = false
			continue
		}
		h := f.head()
		if len(h) > 0 && h[0] != '*' && h[0] != '+' {
			g.tagged(h)
			g.busy, g.search = false, nil // go-imap answers in order
		}
		if g.pendingSync >= 0 {
			switch {
			case len(h) > 0 && h[0] == '+':
				g.in.lit = g.pendingSync
				g.pendingSync = -1
			case g.pendingTag != "" && len(h) > len(g.pendingTag) && string(h[:len(g.pendingTag)]) == g.pendingTag && h[len(g.pendingTag)] == ' ':
				// Refused: the client sends no literal and starts anew.
				g.pendingSync = -1
				g.in.reset()
			}
		}
		f.reset()
	}
}

// tagged counts the BAD answers in a row in a tagged response line.
func (g *guardConn) tagged(h []byte) {
	i := 0
	for i < len(h) && h[i] != ' ' {
		i++
	}
	rest := h[i:]
	if len(rest) >= 5 && string(rest[:5]) == " BAD " {
		g.bad++
		if g.bad >= MaxBadCommands && g.refusal == nil {
			g.refusal = &refusal{limit: "bad_commands", text: "Too many invalid commands"}
		}
		return
	}
	g.bad = 0
}

// framer follows one direction of an IMAP stream: where a line ends and
// whether it ends with a literal marker ("{N}", "{N+}", "~{N}", as go-imap
// reads them: an optional SP and CR before the LF).
type framer struct {
	lit    int64 // literal bytes still to come
	n      int   // bytes of the current command outside literals
	hd     [64]byte
	hdN    int
	ms     uint8 // marker state, see line
	digits int
	size   int64

	// Set by line when a line ended.
	marker  bool
	nonSync bool
}

const (
	msNone   = iota
	msDigits // after "{" (and digits)
	msPlus   // after "{N+"
	msClose  // after "}"
	msSP     // after "} "
	msCR     // after "}\r" or "} \r"
)

// line reads p up to the end of the current line: it returns the index
// just past the LF, or -1 if p ends first. ok is false if the command
// outside literals grew beyond limit (0: no bound); end is then the index of
// the first byte over it.
func (f *framer) line(p []byte, limit int) (end int, ok bool) {
	if limit == 0 {
		// Unbounded (the server's output): only a line's first bytes (the
		// head) and its last few (a literal marker is at most 23 bytes:
		// "{", 18 digits, "+}", SP, CR) matter. Skip the middle of a long
		// line instead of stepping through it.
		seg := p
		if j := bytes.IndexByte(p, '\n'); j >= 0 {
			seg = p[:j+1]
		}
		const tail = 40
		if len(seg) > 64+tail {
			f.hdN += copy(f.hd[f.hdN:], seg)
			skip := len(seg) - tail
			f.n += skip
			f.ms = msNone
			end, ok := f.stepLine(seg[skip:], 0)
			if end >= 0 {
				end += skip
			}
			return end, ok
		}
	}
	return f.stepLine(p, limit)
}

// stepLine is line, byte by byte.
func (f *framer) stepLine(p []byte, limit int) (end int, ok bool) {
	n, hdN, ms, digits, size := f.n, f.hdN, f.ms, f.digits, f.size
	defer func() { f.n, f.hdN, f.ms, f.digits, f.size = n, hdN, ms, digits, size }()
	for i, b := range p {
		n++
		if limit > 0 && n > limit {
			return i, false
		}
		if hdN < len(f.hd) {
			f.hd[hdN] = b
			hdN++
		}
		switch {
		case b == '\n':
			f.marker = ms == msClose || ms == msSP || ms == msCR
			ms = msNone
			return i + 1, true
		case b == '{':
			ms, digits, size, f.nonSync = msDigits, 0, 0, false
		case ms == msDigits && b >= '0' && b <= '9' && digits < 18:
			size = size*10 + int64(b-'0')
			digits++
		case ms == msDigits && b == '+' && digits > 0:
			ms = msPlus
		case (ms == msDigits && digits > 0 || ms == msPlus) && b == '}':
			if ms == msPlus {
				f.nonSync = true
			}
			ms = msClose
		case ms == msClose && b == ' ':
			ms = msSP
		case (ms == msClose || ms == msSP) && b == '\r':
			ms = msCR
		default:
			ms = msNone
		}
	}
	return -1, true
}

// skipLiteral passes over up to n bytes of the literal in progress and
// returns how many it took.
func (f *framer) skipLiteral(n int) int {
	k := min(f.lit, int64(n))
	f.lit -= k
	return int(k)
}

func (f *framer) reset() { f.n, f.hdN, f.ms = 0, 0, msNone }

// head is the start of the current command (up to 64 bytes).
func (f *framer) head() []byte { return f.hd[:f.hdN] }

// hostOf is the address part of a remote address, the key of the
// per-address connection count.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
