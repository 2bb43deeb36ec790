package pop3front

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/imapbridge/imapbridge/bridge"
)

// authAllowed: USER/PASS and AUTH may be used on this connection now.
func (s *session) authAllowed() bool {
	return s.tls || s.srv.opts.AllowInsecureAuth
}

// stlsOffered: STLS can be used on this connection now.
func (s *session) stlsOffered() bool {
	return !s.tls && s.srv.opts.TLSConfig != nil && s.state == stateAuthorization
}

// refuseInsecure answers a login attempt without TLS.
func (s *session) refuseInsecure() error {
	if s.stlsOffered() {
		return s.invalid("-ERR [AUTH] Plaintext authentication disallowed without TLS; use STLS first")
	}
	return s.invalid("-ERR [AUTH] Plaintext authentication disallowed without TLS; use the POP3S port")
}

// cmdCapa: RFC 2449 section 5. USER, SASL and STLS are listed only where
// they can be used.
func (s *session) cmdCapa(c command) error {
	if len(c.args) > 0 {
		return s.invalid("-ERR CAPA takes no argument")
	}
	s.ok("Capability list follows")
	for _, l := range []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} {
		s.reply(l)
	}
	if s.state == stateAuthorization && s.authAllowed() {
		s.reply("USER")
		s.reply("SASL PLAIN")
	}
	if s.stlsOffered() {
		s.reply("STLS")
	}
	s.reply("IMPLEMENTATION imapbridge")
	s.reply(".")
	return nil
}

func (s *session) cmdUser(c command) error {
	if !s.authAllowed() {
		return s.refuseInsecure()
	}
	if len(c.args) != 1 {
		return s.invalid("-ERR USER takes one argument: the user name")
	}
	s.userArg = c.args[0]
	// The same answer whether the user exists or not.
	s.ok("Send PASS")
	return nil
}

func (s *session) cmdPass(c command) error {
	if !s.authAllowed() {
		return s.refuseInsecure()
	}
	if s.userArg == "" {
		return s.invalid("-ERR USER first")
	}
	if c.rest == "" {
		return s.invalid("-ERR PASS takes one argument: the password")
	}
	user := s.userArg
	s.userArg = ""
	return s.login(user, c.rest)
}

// cmdAuth: RFC 5034, mechanism PLAIN (RFC 4616), with an initial response
// ("=" for an empty one) or after a "+ " continuation; "*" cancels. AUTH
// alone lists the mechanisms.
func (s *session) cmdAuth(c command) error {
	if len(c.args) == 0 {
		s.ok("Mechanisms follow")
		if s.authAllowed() {
			s.reply("PLAIN")
		}
		s.reply(".")
		return nil
	}
	if !s.authAllowed() {
		return s.refuseInsecure()
	}
	if len(c.args) > 2 {
		return s.invalid("-ERR AUTH takes a mechanism and an optional initial response")
	}
	if !equalFold(c.args[0], "PLAIN") {
		return s.invalid("-ERR Unsupported authentication mechanism")
	}
	var resp string
	if len(c.args) == 2 {
		resp = c.args[1]
		if resp == "=" {
			resp = ""
		}
	} else {
		s.reply("+ ")
		if err := s.w.Flush(); err != nil {
			return err
		}
		line, err := s.readLine()
		if err != nil {
			s.readFailed(err)
			return errEndSession
		}
		resp = string(bytes.TrimRight(line, " "))
		if resp == "*" {
			return s.invalid("-ERR Authentication cancelled")
		}
	}
	raw, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return s.invalid("-ERR Invalid base64 in the AUTH response")
	}
	parts := bytes.Split(raw, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return s.invalid("-ERR Malformed PLAIN response (want authzid NUL authcid NUL password)")
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		s.srv.metrics.authAttempt("failure")
		s.log.Info("pop3: authorization identity refused", "user", clientText(user), "authzid", clientText(authz))
		return s.authFailed("-ERR [AUTH] Authorization identity refused")
	}
	return s.login(user, pass)
}

// login checks the credentials and, on success, opens the maildrop.
func (s *session) login(name, password string) error {
	log := s.log.With("user", clientText(name))
	u, err := s.srv.opts.Authenticate(s.ctx, name, password, s.remote)
	switch {
	case errors.Is(err, ErrAuthFailed), errors.Is(err, bridge.ErrSourceAuth):
		s.srv.metrics.authAttempt("failure")
		log.Info("pop3: authentication failed", "attempt", s.authFailures+1)
		return s.authFailed("-ERR [AUTH] Authentication failed")
	case err != nil:
		s.srv.metrics.authAttempt("error")
		log.Error("pop3: authentication error", "err", err)
		s.fail("-ERR [SYS/TEMP] Authentication temporarily unavailable")
		return nil
	case u == nil:
		s.srv.metrics.authAttempt("error")
		log.Error("pop3: authenticator returned no user")
		s.fail("-ERR [SYS/TEMP] Authentication temporarily unavailable")
		return nil
	}
	if !s.srv.countUser(s, u.Name()) {
		max := s.srv.opts.MaxConnectionsPerUser
		s.srv.limitHit("max_connections_per_user", s.remote, "login refused: too many sessions for this user", "user", u.Name(), "max", max)
		s.fail(fmt.Sprintf("-ERR [IN-USE] Too many connections for this user (limit %d); try again later", max))
		return nil
	}
	s.srv.metrics.authAttempt("success")
	s.log = s.log.With("user", u.Name())
	if err := s.openMaildrop(u); err != nil {
		s.log.Error("pop3: could not open the maildrop", "err", err)
		s.fail("-ERR [SYS/TEMP] Maildrop temporarily unavailable")
		return errEndSession
	}
	var total int64
	for _, m := range s.drop {
		total += m.size
	}
	s.log.Info("pop3: logged in", "listener", s.listener, "messages", len(s.drop))
	u.PollNow()
	s.ok(fmt.Sprintf("Logged in, %d messages (%d octets)", len(s.drop), total))
	return nil
}

// authFailed answers a refused login; the third on one connection ends it.
func (s *session) authFailed(text string) error {
	s.authFailures++
	s.fail(text)
	if s.authFailures >= maxAuthFailures {
		s.reply("-ERR [AUTH] Too many authentication failures")
		return errEndSession
	}
	return nil
}

// cmdStls: RFC 2595 section 4. Bytes the client sent behind the command
// (before it could have seen the answer) are an injection attempt: the
// connection is closed unanswered.
func (s *session) cmdStls(c command) error {
	if s.tls {
		return s.invalid("-ERR TLS already active")
	}
	if s.srv.opts.TLSConfig == nil {
		return s.invalid("-ERR STLS not available")
	}
	if len(c.args) > 0 {
		return s.invalid("-ERR STLS takes no argument")
	}
	if s.r.Buffered() > 0 {
		s.srv.limitHit("stls_injection", s.remote, "plaintext pipelined after STLS; closing")
		s.lastResult = "err"
		s.w.Reset(deadlineWriter{s})
		return errEndSession
	}
	s.ok("Begin TLS negotiation")
	if err := s.w.Flush(); err != nil {
		return err
	}
	s.connMu.Lock()
	plain := s.conn
	s.connMu.Unlock()
	tc := tls.Server(plain, s.srv.opts.TLSConfig)
	plain.SetDeadline(s.started.Add(s.srv.opts.LoginTimeout))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.log.Debug("pop3: STLS handshake failed", "err", err)
		return errEndSession
	}
	plain.SetDeadline(timeZero)
	s.setConn(tc)
	s.tls = true
	// RFC 2595 section 4: forget what the client said before.
	s.userArg = ""
	s.r = bufio.NewReaderSize(tc, 4096)
	s.w.Reset(deadlineWriter{s})
	return nil
}

func equalFold(a, b string) bool {
	return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b))
}
