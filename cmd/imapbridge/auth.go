package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/pop3"
)

// authenticator checks IMAP logins: against the bcrypt hash of a configured
// user, or (auth: passthrough) against the POP3 host itself. Failures are
// slowed and then refused per user and per client address, with the same
// answer and delay whether or not the user exists.
type authenticator struct {
	log     *slog.Logger
	bridge  *bridge.Bridge
	syncer  *bridge.Syncer
	sources map[string]bridge.Source
	cfg     map[string]config.Source
	users   map[string]config.User
	metrics *metrics
	limiter *failLimiter
	sealer  *sealer // nil: passthrough credentials stay in memory only

	// passthrough lists the pop3 sources with auth: passthrough, in
	// config order; any user such a host accepts may log in.
	passthrough []string
}

// dummyHash is compared against when the user is unknown, so an unknown
// user costs the same time as a wrong password. Made on first use, so
// commands that never check a login don't pay for it.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("imapbridge-dummy-password"), bcrypt.DefaultCost)
	return h
})

func newAuthenticator(cfg *config.Config, b *bridge.Bridge, s *bridge.Syncer, sources map[string]bridge.Source, logger *slog.Logger, m *metrics) *authenticator {
	a := &authenticator{
		log:     logger,
		bridge:  b,
		syncer:  s,
		sources: sources,
		cfg:     make(map[string]config.Source),
		users:   make(map[string]config.User),
		metrics: m,
		limiter: newFailLimiter(),
	}
	for _, sc := range cfg.Sources {
		a.cfg[sc.Name] = sc
		if sc.Type == "pop3" && sc.Auth == "passthrough" {
			a.passthrough = append(a.passthrough, sc.Name)
		}
	}
	for _, u := range cfg.Users {
		a.users[u.Name] = u
	}
	if cfg.Secrets.Key != "" {
		s, err := newSealer(string(cfg.Secrets.Key))
		if err == nil {
			a.sealer = s
		}
	}
	return a
}

// secretName is the store key of a passthrough user's source password.
const secretName = "passthrough-password"

// resumePassthrough starts polling for passthrough users whose credentials
// were stored sealed at an earlier login, so their mail keeps arriving
// after a restart before they log in again.
func (a *authenticator) resumePassthrough(ctx context.Context) error {
	if a.sealer == nil || len(a.passthrough) == 0 {
		return nil
	}
	sealed, err := a.bridge.Secrets(ctx, secretName)
	if err != nil {
		return err
	}
	for name, v := range sealed {
		pw, err := a.sealer.open(name, secretName, v)
		if err != nil {
			a.log.Warn("passthrough: stored credentials unusable; polling resumes at the next login", "user", name, "err", err)
			continue
		}
		u, err := a.bridge.User(ctx, name)
		if err != nil {
			return err
		}
		a.syncer.Add(u, a.feeds(name, a.users[name], string(pw)))
	}
	return nil
}

// canPollWithoutLogin: every source of u can be polled with what the config
// holds (mbox, or pop3 with static credentials).
func (a *authenticator) canPollWithoutLogin(u config.User) bool {
	for _, name := range u.Sources {
		sc := a.cfg[name]
		if sc.Type == "pop3" && sc.Auth == "passthrough" {
			return false
		}
	}
	return true
}

// feeds builds the feeds of a user. password is the IMAP login password,
// used for passthrough sources.
func (a *authenticator) feeds(name string, u config.User, password string) []bridge.Feed {
	names := u.Sources
	if len(names) == 0 {
		names = a.passthrough
	}
	var out []bridge.Feed
	for _, sn := range names {
		sc := a.cfg[sn]
		acct := bridge.Account{User: name, SourceUser: u.SourceUser, Password: string(u.SourcePassword)}
		if acct.SourceUser == "" {
			acct.SourceUser = name
		}
		if sc.Type == "pop3" && sc.Auth == "passthrough" {
			acct.SourceUser, acct.Password = name, password
		}
		out = append(out, bridge.Feed{
			Source:           a.sources[sn],
			Account:          acct,
			Policy:           bridge.DeletePolicy{Mode: bridge.DeleteMode(sc.DeletePolicy), After: sc.DeleteAfter},
			PollInterval:     sc.PollInterval,
			IdlePollInterval: sc.IdlePollInterval,
		})
	}
	return out
}

// authenticate is imapfront's Authenticate hook.
func (a *authenticator) authenticate(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error) {
	host := remoteHost(remote)
	if !a.limiter.allow(username, host) {
		a.metrics.authAttempt("ratelimited")
		a.log.Warn("login refused: too many failures", "user", username, "remote", host)
		return nil, fmt.Errorf("%w: too many failed attempts, try again later", imapfront.ErrAuthFailed)
	}
	u, err := a.check(ctx, username, password)
	if err != nil && !errors.Is(err, errBadCredentials) {
		// The POP3 host could not be asked (down, timing out): the
		// password was not refused, so it is no failed attempt; the
		// client is told to try again later (NO [UNAVAILABLE]).
		a.metrics.authAttempt("error")
		a.log.Warn("login could not be checked", "user", username, "remote", host, "err", err)
		return nil, fmt.Errorf("check %q at the mail host: %w", username, err)
	}
	if err != nil {
		delay := a.limiter.fail(username, host)
		a.metrics.authAttempt("failure")
		a.log.Info("login failed", "user", username, "remote", host, "err", err)
		// The same delay whether the user exists or not.
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		return nil, imapfront.ErrAuthFailed
	}
	a.limiter.succeed(username, host)
	a.metrics.authAttempt("success")
	a.log.Info("login", "user", username, "remote", host)
	return u, nil
}

var errBadCredentials = errors.New("bad credentials")

func (a *authenticator) check(ctx context.Context, username, password string) (*bridge.User, error) {
	uc, known := a.users[username]
	if known && uc.PasswordHash != "" {
		if bcrypt.CompareHashAndPassword([]byte(uc.PasswordHash), []byte(password)) != nil {
			return nil, errBadCredentials
		}
		return a.bridge.User(ctx, username)
	}
	if len(a.passthrough) == 0 || (known && a.canPollWithoutLogin(uc)) {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return nil, errBadCredentials
	}
	// Passthrough: the POP3 host decides.
	names := a.passthrough
	if known {
		names = uc.Sources
	}
	for _, sn := range names {
		sc := a.cfg[sn]
		if sc.Type != "pop3" || sc.Auth != "passthrough" {
			continue
		}
		sess, err := a.sources[sn].Open(ctx, bridge.Account{User: username, SourceUser: username, Password: password})
		switch {
		case err == nil:
			sess.Abort()
		case passwordAccepted(err):
			// [IN-USE] or [LOGIN-DELAY] in answer to the password: the
			// host accepted it (RFC 2449) but another client holds the
			// maildrop, or it is too soon. The login is good.
		case errors.Is(err, bridge.ErrSourceAuth):
			return nil, errBadCredentials
		default:
			return nil, fmt.Errorf("passthrough check at %s: %w", sn, err)
		}
	}
	u, err := a.bridge.User(ctx, username)
	if err != nil {
		return nil, err
	}
	if a.sealer != nil {
		if err := u.SetSecret(ctx, secretName, a.sealer.seal(username, secretName, []byte(password))); err != nil {
			a.log.Warn("passthrough: could not store credentials; polling will stop at restart until the next login", "user", username, "err", err)
		}
	}
	if !a.syncer.Has(username) {
		a.syncer.Add(u, a.feeds(username, uc, password))
	} else {
		// The user may have changed the password at the host: poll with
		// the one that just worked.
		for _, sn := range names {
			if sc := a.cfg[sn]; sc.Type == "pop3" && sc.Auth == "passthrough" {
				a.syncer.SetPassword(username, sn, password)
			}
		}
	}
	return u, nil
}

// passwordAccepted: a POP3 host refused the session with IN-USE or
// LOGIN-DELAY in its answer to the password itself (PASS, APOP, AUTH),
// which RFC 2449 sends only after the credentials checked out. Busy
// answers to anything else (USER, the greeting) or without those codes
// prove nothing about the password.
func passwordAccepted(err error) bool {
	var pe *pop3.Error
	if !errors.As(err, &pe) {
		return false
	}
	cmd := strings.ToUpper(pe.Command)
	if !strings.HasPrefix(cmd, "PASS") && !strings.HasPrefix(cmd, "APOP") && !strings.HasPrefix(cmd, "AUTH") {
		return false
	}
	return pe.HasCode(pop3.CodeInUse) || pe.HasCode(pop3.CodeLoginDelay)
}

func remoteHost(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// failLimiter slows repeated failures per user name and per client
// address, and refuses after too many within the window.
type failLimiter struct {
	mu     sync.Mutex
	fails  map[string]*failCount
	window time.Duration
	max    int
}

type failCount struct {
	n     int
	first time.Time
}

func newFailLimiter() *failLimiter {
	return &failLimiter{fails: make(map[string]*failCount), window: 15 * time.Minute, max: 10}
}

func (l *failLimiter) keys(user, host string) []string {
	return []string{"u:" + user, "a:" + host}
}

func (l *failLimiter) allow(user, host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, k := range l.keys(user, host) {
		if f, ok := l.fails[k]; ok {
			if now.Sub(f.first) > l.window {
				delete(l.fails, k)
				continue
			}
			if f.n >= l.max {
				return false
			}
		}
	}
	return true
}

// fail records a failure and returns how long to hold the answer.
func (l *failLimiter) fail(user, host string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	worst := 0
	for _, k := range l.keys(user, host) {
		f, ok := l.fails[k]
		if !ok || now.Sub(f.first) > l.window {
			f = &failCount{first: now}
			l.fails[k] = f
		}
		f.n++
		worst = max(worst, f.n)
	}
	if len(l.fails) > 100000 { // bound memory under a spray of names
		for k, f := range l.fails {
			if now.Sub(f.first) > l.window {
				delete(l.fails, k)
			}
		}
	}
	d := time.Duration(worst) * 500 * time.Millisecond
	return min(d, 5*time.Second)
}

func (l *failLimiter) succeed(user, host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, "u:"+user)
}
