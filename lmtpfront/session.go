package lmtpfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/imapbridge/imapbridge/bridge"
)

// session is one LMTP connection's state: the transaction being built.
type session struct {
	s      *Server
	conn   net.Conn
	remote string
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards from and rcpts: with BDAT, go-smtp runs LMTPData on a
	// goroutine of its own while the connection's goroutine goes on
	// reading commands (an RSET, a new MAIL).
	mu    sync.Mutex
	from  string
	rcpts []recipient
}

// recipient is one accepted RCPT TO.
type recipient struct {
	addr string // as the MTA gave it
	user *bridge.User
}

var _ smtp.LMTPSession = (*session)(nil)

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	return &session{s: s, conn: c.Conn(), remote: c.Conn().RemoteAddr().String(), ctx: ctx, cancel: cancel}, nil
}

func (se *session) Reset() {
	se.mu.Lock()
	se.from = ""
	se.rcpts = nil
	se.mu.Unlock()
}

func (se *session) Logout() error {
	se.cancel()
	return nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if !printable(from) {
		return errBadAddress
	}
	se.mu.Lock()
	se.from = from
	se.rcpts = nil
	se.mu.Unlock()
	return nil
}

// Replies at RCPT.
var (
	// errBadAddress: an address with a control character, which would
	// break the header line it is written into.
	errBadAddress = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad address syntax"}
	errLookup     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure looking up the recipient, try again later"}
)

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !printable(to) {
		return errBadAddress
	}
	u, err := se.lookup(to)
	if err != nil {
		se.s.log.Error("lmtp: recipient lookup failed", "remote", se.remote, "err", err)
		se.s.opts.Metrics.Delivery(ResultTempFailure)
		return errLookup
	}
	if u == nil {
		se.s.log.Info("lmtp: unknown recipient", "remote", se.remote, "recipient", to)
		se.s.opts.Metrics.Delivery(ResultUnknownRecipient)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + "> User unknown"}
	}
	se.mu.Lock()
	se.rcpts = append(se.rcpts, recipient{addr: to, user: u})
	se.mu.Unlock()
	return nil
}

// lookup finds the user an address names: the whole address as a user
// name first, then its local part. nil, nil: nobody.
func (se *session) lookup(addr string) (*bridge.User, error) {
	names := []string{addr}
	if i := strings.LastIndexByte(addr, '@'); i > 0 {
		names = append(names, addr[:i])
	}
	for _, name := range names {
		u, ok, err := se.s.opts.Lookup(se.ctx, name)
		if err != nil {
			return nil, fmt.Errorf("look up %q: %w", name, err)
		}
		if ok && u != nil {
			return u, nil
		}
	}
	return nil, nil
}

// Data is plain SMTP's; go-smtp calls LMTPData instead in LMTP mode.
func (se *session) Data(r io.Reader) error {
	return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "LMTP only"}
}

// Replies after DATA, per recipient (go-smtp puts "<recipient> " before
// the text).
var (
	errTooLarge  = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too large"}
	errOverQuota = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full (over quota)"}
	errStore     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure storing the message, try again later"}
)

// LMTPData reads the message once into a spool, then delivers a copy to
// each recipient in turn and sets that recipient's status as soon as its
// copy is durable: go-smtp writes each reply the moment its status is set,
// in recipient order, so the first recipient's 250 is on the wire while
// the next copy is being stored.
func (se *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	s := se.s
	se.mu.Lock()
	from, rcpts := se.from, se.rcpts
	se.mu.Unlock()
	spool, err := s.opts.Bridge.NewSpool(se.ctx, &deadlineReader{r: r, conn: se.conn, timeout: s.opts.CommandTimeout})
	if err != nil {
		result, reply := se.dataError(err)
		for range rcpts {
			s.opts.Metrics.Delivery(result)
		}
		return reply
	}
	defer spool.Close()
	date := time.Now()
	// The same address given twice is delivered once and answered twice
	// (go-smtp wants one status per RCPT).
	done := make(map[string]error, len(rcpts))
	for _, rc := range rcpts {
		if prev, ok := done[rc.addr]; ok {
			status.SetStatus(rc.addr, prev)
			continue
		}
		_, uid, err := s.deliver(se.ctx, spool, rc.user, deliveryHeader(from, rc.addr), date)
		var reply error
		if err != nil {
			var result string
			result, reply = se.deliverError(rc, err)
			s.opts.Metrics.Delivery(result)
		} else {
			s.opts.Metrics.Delivery(ResultDelivered)
			s.log.Info("lmtp: delivered", "remote", se.remote, "user", rc.user.Name(), "uid", uint32(uid), "size", spool.Size())
			reply = &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("Saved as UID %d", uid)}
		}
		done[rc.addr] = reply
		status.SetStatus(rc.addr, reply)
	}
	return nil
}

// dataError answers a message that could not be read or spooled.
func (se *session) dataError(err error) (string, error) {
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge), errors.Is(err, bridge.ErrTooBig):
		se.s.log.Info("lmtp: message too large", "remote", se.remote, "limit", se.s.opts.MaxMessageSize)
		return ResultTooLarge, errTooLarge
	default:
		se.s.log.Warn("lmtp: message not received", "remote", se.remote, "err", err)
		return ResultTempFailure, errStore
	}
}

// deliverError answers one recipient whose copy was not stored.
func (se *session) deliverError(rc recipient, err error) (string, error) {
	switch {
	case errors.Is(err, bridge.ErrOverQuota):
		se.s.log.Info("lmtp: over quota", "remote", se.remote, "user", rc.user.Name())
		return ResultOverQuota, errOverQuota
	case errors.Is(err, bridge.ErrTooBig):
		return ResultTooLarge, errTooLarge
	default:
		se.s.log.Error("lmtp: delivery failed", "remote", se.remote, "user", rc.user.Name(), "err", err)
		return ResultTempFailure, errStore
	}
}

// deliveryHeader is what a delivery agent puts in front of each copy:
// Return-Path, then Delivered-To (see the package documentation).
func deliveryHeader(from, rcpt string) []byte {
	return []byte("Return-Path: <" + from + ">\r\nDelivered-To: " + rcpt + "\r\n")
}

// deadlineReader moves the connection's read deadline forward before
// each read of the message, so CommandTimeout bounds a silence, not the
// whole transfer. go-smtp set the deadline once, when it read DATA.
type deadlineReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.conn.SetReadDeadline(time.Now().Add(d.timeout))
	return d.r.Read(p)
}

// printable: no control characters (CR, LF, NUL ...), so the address can
// go into a header line as it is.
func printable(addr string) bool {
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
