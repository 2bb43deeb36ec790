package pop3

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TLS modes of SourceConfig.TLS.
const (
	// TLSImplicit: TLS from the first byte (POP3S, port 995).
	TLSImplicit = "implicit"
	// TLSStartTLS: plain-text connection upgraded with STLS before login.
	// A server that does not offer STLS is refused: never a fall-back to
	// plain text.
	TLSStartTLS = "starttls"
	// TLSNone: plain text throughout.
	TLSNone = "none"
)

// Login methods of SourceConfig.Auth.
const (
	// AuthAuto (""): AUTH PLAIN when TLS is active and the server offers
	// SASL PLAIN (or offers no USER), else USER/PASS.
	AuthAuto = ""
	// AuthUser: USER and PASS.
	AuthUser = "user"
	// AuthPlain: AUTH PLAIN.
	AuthPlain = "plain"
	// AuthAPOP: APOP; the greeting must carry a timestamp.
	AuthAPOP = "apop"
	// AuthXOAUTH2: AUTH XOAUTH2; Account.Password is the bearer token.
	AuthXOAUTH2 = "xoauth2"
	// AuthOAuthBearer: AUTH OAUTHBEARER (RFC 7628); Account.Password is
	// the bearer token.
	AuthOAuthBearer = "oauthbearer"
)

// SourceConfig configures a POP3 source.
type SourceConfig struct {
	// Name is the configured source name (logs, metric labels).
	Name string
	// Address is host:port of the POP3 server; without a port, 110 (995
	// for TLSImplicit).
	Address string
	// TLS is TLSImplicit, TLSStartTLS or TLSNone. Anything else (the empty
	// string too) makes Open fail.
	TLS string
	// TLSSkipVerify turns off certificate verification.
	TLSSkipVerify bool
	// RootCAs verifies the server's certificate; nil means the system
	// roots.
	RootCAs *x509.CertPool
	// ServerName is the name the certificate must carry; "" means the host
	// of Address.
	ServerName string
	// Timeout bounds every network read and write (Options.Timeout).
	Timeout time.Duration
	// Auth is the login method: AuthAuto, AuthUser, AuthPlain or AuthAPOP.
	Auth string
	// PipelineWindow is Options.PipelineWindow.
	PipelineWindow int
}

// Source is a POP3 maildrop as a bridge.Source: each Open is one POP3
// session.
type Source struct {
	cfg SourceConfig
	log *slog.Logger
}

var (
	_ bridge.Source             = (*Source)(nil)
	_ bridge.SourceSession      = (*Session)(nil)
	_ bridge.SourceBatchFetcher = (*Session)(nil)
)

// NewSource returns a POP3 source. logger nil means slog.Default().
func NewSource(cfg SourceConfig, logger *slog.Logger) *Source {
	if logger == nil {
		logger = slog.Default()
	}
	return &Source{cfg: cfg, log: logger.With("source", cfg.Name)}
}

// Name is the configured source name.
func (s *Source) Name() string { return s.cfg.Name }

func (s *Source) errorf(format string, args ...any) error {
	return fmt.Errorf("pop3 source %q: "+format, append([]any{s.cfg.Name}, args...)...)
}

// Open dials the server, reads the greeting, runs CAPA, STLS when
// configured, and logs in as acct.SourceUser (acct.User when empty) with
// acct.Password. A maildrop locked by another session
// (-ERR [IN-USE], [LOGIN-DELAY], or a -ERR without code that says so)
// returns an error wrapping bridge.ErrSourceBusy; refused credentials one
// wrapping bridge.ErrSourceAuth; a [SYS/TEMP] or [SYS/PERM] refusal neither.
func (s *Source) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	sess, err := s.open(ctx, acct)
	if err != nil {
		return nil, err
	}
	return sess, nil
}

func (s *Source) open(ctx context.Context, acct bridge.Account) (*Session, error) {
	switch s.cfg.TLS {
	case TLSImplicit, TLSStartTLS, TLSNone:
	default:
		return nil, s.errorf("tls mode %q is not one of %q, %q, %q", s.cfg.TLS, TLSImplicit, TLSStartTLS, TLSNone)
	}
	switch s.cfg.Auth {
	case AuthAuto, AuthUser, AuthPlain, AuthAPOP, AuthXOAUTH2, AuthOAuthBearer:
	default:
		return nil, s.errorf("auth method %q is not one of %q, %q, %q, %q, %q or empty", s.cfg.Auth, AuthUser, AuthPlain, AuthAPOP, AuthXOAUTH2, AuthOAuthBearer)
	}
	log := s.log.With("user", acct.User, "remote", s.cfg.Address)
	serverName := s.cfg.ServerName
	if serverName == "" {
		if host, _, err := net.SplitHostPort(s.cfg.Address); err == nil {
			serverName = host
		} else {
			serverName = s.cfg.Address
		}
	}
	opts := Options{
		ImplicitTLS: s.cfg.TLS == TLSImplicit,
		TLSConfig: &tls.Config{
			RootCAs:            s.cfg.RootCAs,
			ServerName:         serverName,
			InsecureSkipVerify: s.cfg.TLSSkipVerify,
			MinVersion:         tls.VersionTLS12,
		},
		Timeout:        s.cfg.Timeout,
		PipelineWindow: s.cfg.PipelineWindow,
		Logger:         log,
	}
	c, err := Dial(ctx, withDefaultPort(s.cfg.Address, s.cfg.TLS), opts)
	if err != nil {
		return nil, s.errorf("connect: %w", classify(err))
	}
	sess := &Session{src: s, c: c, log: log, acct: acct}
	if err := sess.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return sess, nil
}

// withDefaultPort adds POP3's port (995 with implicit TLS, else 110) to an
// address without one.
func withDefaultPort(addr, tlsMode string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil || !strings.Contains(err.Error(), "missing port") {
		return addr
	}
	port := "110"
	if tlsMode == TLSImplicit {
		port = "995"
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), port)
}

// classify adds bridge.ErrSourceBusy or bridge.ErrSourceAuth to a -ERR
// reply to a greeting or a login command.
func classify(err error) error {
	var pe *Error
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.HasCode(CodeInUse), pe.HasCode(CodeLoginDelay):
		return fmt.Errorf("%w: %w", bridge.ErrSourceBusy, err)
	case pe.HasCode("SYS"):
		return err
	case pe.Code == "" && saysLocked(pe.Text):
		// RFC 1939 servers without response codes refuse PASS alike for
		// a wrong password and a locked maildrop; the text tells.
		return fmt.Errorf("%w: %w", bridge.ErrSourceBusy, err)
	case pe.Command == "":
		return err // a greeting -ERR: the server refuses service
	}
	return fmt.Errorf("%w: %w", bridge.ErrSourceAuth, err)
}

func saysLocked(text string) bool {
	t := strings.ToLower(text)
	for _, w := range []string{"lock", "in use", "in-use", "busy"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}

// Session is one POP3 session of a Source: a bridge.SourceSession and a
// bridge.SourceBatchFetcher. It is used from one goroutine.
type Session struct {
	src  *Source
	c    *Client
	log  *slog.Logger
	acct bridge.Account

	listed  bool
	byID    map[bridge.SourceID]MsgNum
	idOf    map[MsgNum]bridge.SourceID
	deleted map[MsgNum]bool
	done    bool

	// uidls is what ListIDs read, for List to reuse in the same session.
	uidls []UIDLInfo
}

var _ bridge.SourceIDLister = (*Session)(nil)

// ListIDs lists the maildrop's ids with UIDL alone, without LIST: what a
// poll with no new mail needs. ok is false, and List must be used, unless
// the server advertises UIDL and the listing is complete and unambiguous
// (one distinct UIDL for each of STAT's messages, numbered 1 to N), so
// that the ids are exactly those List would give. A failure is the
// poll's, as in List: a server that advertises UIDL and then refuses it is
// in trouble, and a listing that does not parse is not guessed at.
func (s *Session) ListIDs(ctx context.Context) ([]bridge.SourceID, bool, error) {
	if s.c.Caps() == nil || !s.c.Caps().Has("UIDL") {
		return nil, false, nil
	}
	count, _, err := s.c.Stat(ctx)
	if err != nil {
		return nil, false, s.src.errorf("list: %w", err)
	}
	uidls, err := s.c.UIDL(ctx)
	if err != nil {
		return nil, false, s.src.errorf("list: %w", err)
	}
	s.uidls = uidls
	if len(uidls) != count {
		return nil, false, nil
	}
	// Only a clean listing is usable as ids: distinct UIDLs, numbers in
	// range (Client.UIDL has refused a number listed twice, so count
	// numbers in 1..count are each of them once).
	ids := make([]bridge.SourceID, 0, len(uidls))
	seen := make(map[UIDL]struct{}, len(uidls))
	for _, u := range uidls {
		if _, dup := seen[u.UIDL]; dup || u.Num < 1 || int(u.Num) > count {
			return nil, false, nil
		}
		seen[u.UIDL] = struct{}{}
		ids = append(ids, bridge.SourceID(u.UIDL))
	}
	return ids, true, nil
}

func (s *Session) start(ctx context.Context) error {
	cfg := s.src.cfg
	caps, err := s.capa(ctx)
	if err != nil {
		return s.src.errorf("capa: %w", err)
	}
	if cfg.TLS == TLSStartTLS {
		if !caps.Has("STLS") {
			return s.src.errorf("tls is %q but the server does not offer STLS: %w; refusing to log in without TLS", TLSStartTLS, ErrNotSupported)
		}
		if err := s.c.StartTLS(ctx, nil); err != nil {
			return s.src.errorf("%w", err)
		}
		if caps, err = s.capa(ctx); err != nil {
			return s.src.errorf("capa after stls: %w", err)
		}
	}
	method := cfg.Auth
	if method == AuthAuto {
		method = AuthUser
		if s.c.TLS() != nil && caps.SASL("PLAIN") || caps != nil && !caps.Has("USER") && caps.SASL("PLAIN") {
			method = AuthPlain
		}
	}
	user := s.acct.SourceUser
	if user == "" {
		user = s.acct.User
	}
	switch method {
	case AuthAPOP:
		err = s.c.APOP(ctx, user, s.acct.Password)
	case AuthPlain:
		err = s.c.AuthPlain(ctx, "", user, s.acct.Password)
	case AuthXOAUTH2:
		err = s.c.AuthXOAUTH2(ctx, user, s.acct.Password)
	case AuthOAuthBearer:
		err = s.c.AuthOAuthBearer(ctx, user, s.acct.Password)
	default:
		if err = s.c.User(ctx, user); err == nil {
			err = s.c.Pass(ctx, s.acct.Password)
		}
	}
	if err != nil {
		return s.src.errorf("login as %q (%s): %w", user, methodName(method), classify(err))
	}
	// Capabilities may differ once logged in (RFC 2449 section 5).
	if _, err := s.capa(ctx); err != nil {
		return s.src.errorf("capa after login: %w", err)
	}
	s.log.Debug("pop3 session open", "tls", s.c.TLS() != nil, "auth", methodName(method),
		"pipelining", s.c.Caps().Has("PIPELINING"), "uidl", s.c.Caps().Has("UIDL"))
	return nil
}

func methodName(m string) string {
	switch m {
	case AuthAPOP:
		return "APOP"
	case AuthPlain:
		return "AUTH PLAIN"
	case AuthXOAUTH2:
		return "AUTH XOAUTH2"
	case AuthOAuthBearer:
		return "AUTH OAUTHBEARER"
	}
	return "USER/PASS"
}

// capa runs CAPA; a server without CAPA (-ERR) has unknown capabilities
// (nil), which is not an error.
func (s *Session) capa(ctx context.Context) (Capabilities, error) {
	caps, err := s.c.Capa(ctx)
	var pe *Error
	if errors.As(err, &pe) {
		return s.c.Caps(), nil
	}
	return caps, err
}

// List returns every message in the maildrop in message-number order, with
// ids as described in sourceids.go.
func (s *Session) List(ctx context.Context) ([]bridge.SourceMessage, error) {
	var uidls []UIDLInfo
	advertised := s.c.Caps() != nil && s.c.Caps().Has("UIDL")
	hasUIDL := s.c.Caps() == nil || advertised
	if hasUIDL && s.uidls != nil {
		uidls, s.uidls = s.uidls, nil // read by ListIDs in this session
	} else if hasUIDL {
		var err error
		uidls, err = s.c.UIDL(ctx)
		var pe *Error
		switch {
		case errors.As(err, &pe) && !advertised:
			// No CAPA to go by and UIDL refused: a server without
			// UIDL, so ids are header fingerprints.
			hasUIDL = false
		case err != nil:
			// A server that advertises UIDL and then refuses it is in
			// trouble, not UIDL-less: switching to fingerprint ids
			// would give every known message a second id, and the
			// bridge a second copy. Fail the poll; the next one retries.
			return nil, s.src.errorf("list: %w", err)
		}
	}
	list, err := s.c.List(ctx)
	if err != nil {
		return nil, s.src.errorf("list: %w", err)
	}
	plan := planIDs(list, uidls)
	if !hasUIDL && len(list) > 0 {
		s.log.Info("pop3 server has no UIDL: message ids are header fingerprints (TOP n 0)")
	}
	if len(plan.dups) > 0 {
		s.log.Warn("pop3 server gave several messages the same UIDL: ids made distinct with header fingerprints",
			"uidls", len(plan.dups))
	}
	if len(plan.extra) > 0 {
		s.log.Warn("pop3 server's UIDL listed messages that LIST did not", "count", len(plan.extra))
	}
	if hasUIDL && len(plan.need) > 0 && len(plan.dups) == 0 {
		s.log.Warn("pop3 server's UIDL left out messages: ids made from header fingerprints", "count", len(plan.need))
	}
	fps := map[MsgNum]string{}
	if len(plan.need) > 0 {
		sizes := map[MsgNum]int64{}
		for _, m := range list {
			sizes[m.Num] = m.Size
		}
		err := s.c.TopMany(ctx, plan.need, 0, func(n MsgNum, r io.Reader) error {
			h := sha256.New()
			fmt.Fprintf(h, "size %d\n", sizes[n])
			if _, err := io.Copy(h, r); err != nil {
				return err
			}
			fps[n] = hex.EncodeToString(h.Sum(nil))
			return nil
		})
		var pe *Error
		if errors.As(err, &pe) && !s.c.Caps().Has("TOP") {
			return nil, s.src.errorf("list: messages need fingerprint ids (no usable UIDL) but the server refuses TOP: %w", err)
		}
		if err != nil {
			return nil, s.src.errorf("list: fingerprint: %w", err)
		}
	}
	ids, err := plan.assign(fps)
	if err != nil {
		return nil, s.src.errorf("list: %w", err)
	}
	s.byID = make(map[bridge.SourceID]MsgNum, len(ids))
	s.idOf = make(map[MsgNum]bridge.SourceID, len(ids))
	out := make([]bridge.SourceMessage, len(ids))
	for i, m := range plan.msgs {
		s.byID[ids[i]] = m.Num
		s.idOf[m.Num] = ids[i]
		out[i] = bridge.SourceMessage{ID: ids[i], Size: m.Size}
	}
	s.listed = true
	return out, nil
}

func (s *Session) lookup(ctx context.Context, op string, id bridge.SourceID) (MsgNum, error) {
	if !s.listed {
		if _, err := s.List(ctx); err != nil {
			return 0, err
		}
	}
	n, ok := s.byID[id]
	if !ok {
		return 0, s.src.errorf("%s %q: %w", op, id, bridge.ErrSourceGone)
	}
	if s.deleted[n] {
		return 0, s.src.errorf("%s %q: deleted in this session: %w", op, id, bridge.ErrSourceGone)
	}
	return n, nil
}

// Fetch streams the message with RETR. The reader must be closed (or read
// to its end) before the next call.
func (s *Session) Fetch(ctx context.Context, id bridge.SourceID) (io.ReadCloser, error) {
	n, err := s.lookup(ctx, "fetch", id)
	if err != nil {
		return nil, err
	}
	b, err := s.c.Retr(ctx, n)
	if err != nil {
		return nil, s.src.errorf("fetch %q: %w", id, err)
	}
	return b, nil
}

// FetchMany streams the messages ids, in order, with pipelined RETR
// commands (see Client.RetrMany): bridge.SourceBatchFetcher. fn's reader is
// valid only during the call. An error from fn stops the batch and is
// returned as it is; an id not in the listing fails the call (wrapping
// bridge.ErrSourceGone) before anything is fetched.
func (s *Session) FetchMany(ctx context.Context, ids []bridge.SourceID, fn func(id bridge.SourceID, r io.Reader) error) error {
	nums := make([]MsgNum, len(ids))
	for i, id := range ids {
		n, err := s.lookup(ctx, "fetch", id)
		if err != nil {
			return err
		}
		nums[i] = n
	}
	var fnErr error
	err := s.c.RetrMany(ctx, nums, func(n MsgNum, r io.Reader) error {
		fnErr = fn(s.idOf[n], r)
		return fnErr
	})
	if err != nil && err != fnErr {
		return s.src.errorf("fetch: %w", err)
	}
	return err // nil, or fn's own error as it returned it
}

// Delete marks the messages for deletion with DELE; they are deleted when
// Close succeeds. Ids that are not in the listing are already gone from the
// maildrop, which is what deleting them asks for: they are skipped (and
// logged), as are ids already deleted in this session. An error means some
// DELE was refused or the session failed.
func (s *Session) Delete(ctx context.Context, ids []bridge.SourceID) error {
	if !s.listed {
		if _, err := s.List(ctx); err != nil {
			return err
		}
	}
	var (
		nums []MsgNum
		gone int
	)
	for _, id := range ids {
		n, ok := s.byID[id]
		switch {
		case !ok:
			gone++
		case !s.deleted[n]:
			nums = append(nums, n)
		}
	}
	if gone > 0 {
		s.log.Info("pop3 delete: ids not at the source any more, skipped", "count", gone)
	}
	done, err := s.c.DeleMany(ctx, nums)
	if s.deleted == nil {
		s.deleted = map[MsgNum]bool{}
	}
	for _, n := range done {
		s.deleted[n] = true
	}
	if err != nil {
		return s.src.errorf("delete: %w", err)
	}
	return nil
}

// Close ends the session with QUIT, which commits the deletions. An error
// says that they were not committed (-ERR to QUIT), or that it is unknown
// whether they were (the connection failed before the reply).
func (s *Session) Close(ctx context.Context) error {
	if s.done {
		return nil
	}
	s.done = true
	err := s.c.Quit(ctx)
	if err == nil {
		s.log.Debug("pop3 session closed", "deleted", len(s.deleted))
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) || !s.c.quitSent {
		return s.src.errorf("%d deletions were not committed: %w", len(s.deleted), err)
	}
	if len(s.deleted) > 0 {
		return s.src.errorf("it is unknown whether %d deletions were committed: %w", len(s.deleted), err)
	}
	return s.src.errorf("%w", err)
}

// Abort ends the session without deleting anything: RSET, then QUIT only if
// RSET succeeded (a server that wrongly commits on disconnect has nothing
// marked by then), then the connection is closed. It does not wait longer
// than a few seconds.
func (s *Session) Abort() {
	if s.done {
		return
	}
	s.done = true
	defer s.c.Close()
	if s.c.body != nil || s.c.broken != nil || s.c.closed.Load() {
		return // a reply is being read: RSET would have to wait for its end
	}
	t := effectiveTimeout(s.src.cfg.Timeout)
	if t <= 0 || t > 5*time.Second {
		t = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	if err := s.c.Rset(ctx); err != nil {
		return
	}
	_ = s.c.Quit(ctx)
}
