package login

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
	"github.com/imapbridge/imapbridge/internal/config"
)

// ErrFailed is wrapped by the error of a login refused for its
// credentials, or because there were too many failures.
var ErrFailed = errors.New("authentication failed")

// Attempt results, as told to Options.Attempt (and counted in
// imapbridge_auth_attempts_total{result}).
const (
	ResultSuccess     = "success"
	ResultFailure     = "failure"
	ResultRateLimited = "ratelimited"
	ResultError       = "error"
)

// Options configure a Service.
type Options struct {
	Config  *config.Config
	Bridge  *bridge.Bridge
	Syncer  *bridge.Syncer
	Sources map[string]bridge.Source // by config name
	// UserSources override Sources for one user: user → source name →
	// source (an OAuth2Source over a pop3 source that logs in with
	// XOAUTH2 or OAUTHBEARER).
	UserSources map[string]map[string]bridge.Source
	Logger      *slog.Logger
	// Attempt, if set, is told the result of every login (Result*).
	Attempt func(result string)
	// PasswordAccepted, if set, reports whether a source's refusal of a
	// session still proves the password right: POP3's [IN-USE] or
	// [LOGIN-DELAY] in answer to PASS (RFC 2449). Such a login is good.
	PasswordAccepted func(err error) bool
	// Limits of the failure limiter; zero fields take DefaultLimits.
	Limits Limits
}

// Service checks logins: against the bcrypt hash of a configured user, or
// (auth: passthrough) against the POP3 host itself. Failures are slowed
// and then refused per client address and per address and user, slowed
// only per user name (see Limiter), with the same answer and delay
// whether or not the user exists. A user not in the config is checked at
// every pop3 source with auth: passthrough, and fed by them all. A passthrough login that
// succeeds starts (or updates) the user's polls with that password.
type Service struct {
	opts    Options
	log     *slog.Logger
	sources map[string]config.Source
	users   map[string]config.User
	limiter *Limiter
	sealer  *Sealer // nil: passthrough credentials stay in memory only
	fold    bool    // login.fold_case: names are taken in lower case

	// dummyHash is compared against when the user is unknown, so an
	// unknown user costs the same time as a wrong password: made at the
	// highest cost among the configured hashes, on first use (commands
	// that never check a login don't pay for it).
	dummyHash func() []byte

	// passthrough lists the pop3 sources with auth: passthrough, in
	// config order; any user such a host accepts may log in.
	passthrough []string
}

// New returns a Service for opts.Config's users and sources.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Attempt == nil {
		opts.Attempt = func(string) {}
	}
	if opts.PasswordAccepted == nil {
		opts.PasswordAccepted = func(error) bool { return false }
	}
	s := &Service{
		opts:    opts,
		log:     opts.Logger,
		sources: make(map[string]config.Source),
		users:   make(map[string]config.User),
		limiter: NewLimiter(opts.Limits),
		fold:    opts.Config.Login.FoldCase,
	}
	for _, sc := range opts.Config.Sources {
		s.sources[sc.Name] = sc
		if isPassthrough(sc) {
			s.passthrough = append(s.passthrough, sc.Name)
		}
	}
	cost := 0 // the highest among the configured hashes; bcrypt's default without any
	for _, u := range opts.Config.Users {
		s.users[u.Name] = u
		if c, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil && c > cost {
			cost = c
		}
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	s.dummyHash = sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte("imapbridge-dummy-password"), cost)
		return h
	})
	if key := opts.Config.Secrets.Key; key != "" {
		if sealer, err := NewSealer(string(key)); err == nil {
			s.sealer = sealer
		}
	}
	return s
}

func isPassthrough(sc config.Source) bool { return sc.Type == "pop3" && sc.Auth == "passthrough" }

// secretName is the store key of a passthrough user's source password.
const secretName = "passthrough-password"

// StartPolls starts the polls of every configured user whose sources can
// be polled with what the config holds (mbox, pop3 with static
// credentials), then those of passthrough users whose credentials were
// stored sealed at an earlier login, so their mail keeps arriving after a
// restart before they log in again. Other passthrough users' polls start
// at their first login.
func (s *Service) StartPolls(ctx context.Context) error {
	for _, u := range s.opts.Config.Users {
		if !s.pollsWithoutLogin(u) {
			continue
		}
		user, err := s.opts.Bridge.User(ctx, u.Name)
		if err != nil {
			return fmt.Errorf("start polls of %q: %w", u.Name, err)
		}
		s.opts.Syncer.Add(user, s.feeds(u.Name, u, ""))
	}
	return s.resumePassthrough(ctx)
}

func (s *Service) resumePassthrough(ctx context.Context) error {
	if s.sealer == nil || len(s.passthrough) == 0 {
		return nil
	}
	sealed, err := s.opts.Bridge.Secrets(ctx, secretName)
	if err != nil {
		return err
	}
	for name, v := range sealed {
		pw, err := s.sealer.Open(name, secretName, v)
		if err != nil {
			s.log.Warn("passthrough: stored credentials unusable; polling resumes at the next login", "user", name, "err", err)
			continue
		}
		u, err := s.opts.Bridge.User(ctx, name)
		if err != nil {
			return err
		}
		s.opts.Syncer.Add(u, s.feeds(name, s.users[name], string(pw)))
	}
	return nil
}

// pollsWithoutLogin: every source of u can be polled with what the config
// holds (mbox, or pop3 with static credentials).
func (s *Service) pollsWithoutLogin(u config.User) bool {
	for _, name := range s.opts.Config.SourcesOf(u) {
		if isPassthrough(s.sources[name]) {
			return false
		}
	}
	return true
}

// feeds builds the feeds of a user. password is the login password, used
// for passthrough sources.
func (s *Service) feeds(name string, u config.User, password string) []bridge.Feed {
	if len(u.Accounts) > 0 {
		return s.accountFeeds(name, u)
	}
	names := s.opts.Config.SourcesOf(u)
	var out []bridge.Feed
	for _, sn := range names {
		sc := s.sources[sn]
		acct := bridge.Account{User: name, SourceUser: u.SourceUser, Password: string(u.SourcePassword)}
		if acct.SourceUser == "" {
			acct.SourceUser = name
		}
		if isPassthrough(sc) {
			acct.SourceUser, acct.Password = name, password
		}
		src := s.opts.Sources[sn]
		if o := s.opts.UserSources[name][sn]; o != nil {
			src = o
		}
		out = append(out, feedOf(src, acct, u.Feed(sc)))
	}
	return out
}

// Authenticate checks a login from remote. Bad credentials, and too many
// failures, give an error wrapping ErrFailed (after a delay that grows
// with the failures); a password that could not be checked (the POP3
// host is down) gives another error.
//
// A name that is no login name at all (see CheckName) is refused before
// anything else with an error wrapping ErrBadName, whose text says why.
// With login.fold_case the name is taken in lower case. Failures are
// refused per client address and per address and user name; per user
// name alone they only slow the check down (see Limiter), so a stranger
// cannot lock a user out.
func (s *Service) Authenticate(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error) {
	host := remoteHost(remote)
	if err := CheckName(username); err != nil {
		s.limiter.FailAddress(host)
		s.opts.Attempt(ResultFailure)
		// The name itself is not logged: it is what was wrong.
		s.log.Info("login refused: bad name", "remote", host, "name_bytes", len(username), "err", err)
		return nil, err
	}
	if s.fold {
		username = strings.ToLower(username)
	}
	wait, ok := s.limiter.Check(username, host)
	if !ok {
		s.opts.Attempt(ResultRateLimited)
		s.log.Warn("login refused: too many failures", "user", username, "remote", host)
		return nil, fmt.Errorf("%w: too many failed attempts, try again later", ErrFailed)
	}
	if wait > 0 {
		// This name has failed from elsewhere: slow its checks down (a
		// passthrough check costs the POP3 host a login), whoever asks.
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("login of %q: %w", username, err)
		}
	}
	u, err := s.check(ctx, username, password)
	if err != nil && !errors.Is(err, errBadCredentials) {
		// The POP3 host could not be asked (down, timing out): the
		// password was not refused, so it is no failed attempt; the
		// client is told to try again later (NO [UNAVAILABLE]).
		s.opts.Attempt(ResultError)
		s.log.Warn("login could not be checked", "user", username, "remote", host, "err", err)
		return nil, fmt.Errorf("check %q at the mail host: %w", username, err)
	}
	if err != nil {
		delay := s.limiter.Fail(username, host)
		s.opts.Attempt(ResultFailure)
		s.log.Info("login failed", "user", username, "remote", host, "err", err)
		// The same delay whether the user exists or not. A cancelled
		// context cuts it short, not the answer.
		sleep(ctx, delay)
		return nil, ErrFailed
	}
	s.limiter.Succeed(username, host)
	s.opts.Attempt(ResultSuccess)
	s.log.Info("login", "user", username, "remote", host)
	return u, nil
}

var errBadCredentials = errors.New("bad credentials")

func (s *Service) check(ctx context.Context, username, password string) (*bridge.User, error) {
	uc, known := s.users[username]
	if known && uc.PasswordHash != "" {
		if bcrypt.CompareHashAndPassword([]byte(uc.PasswordHash), []byte(password)) != nil {
			return nil, errBadCredentials
		}
		return s.opts.Bridge.User(ctx, username)
	}
	if len(s.passthrough) == 0 || (known && s.pollsWithoutLogin(uc)) {
		bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(password))
		return nil, errBadCredentials
	}
	return s.passthroughLogin(ctx, username, password, uc, known)
}

// passthroughLogin asks each passthrough host of the user (every one, for
// a user not in the config) whether it takes the password; when they all
// do, the password goes to the user's polls and, sealed, to the store.
func (s *Service) passthroughLogin(ctx context.Context, username, password string, uc config.User, known bool) (*bridge.User, error) {
	names := s.passthrough
	if known {
		names = s.opts.Config.SourcesOf(uc)
	}
	var checked []string
	for _, sn := range names {
		if !isPassthrough(s.sources[sn]) {
			continue
		}
		checked = append(checked, sn)
		sess, err := s.opts.Sources[sn].Open(ctx, bridge.Account{User: username, SourceUser: username, Password: password})
		switch {
		case err == nil:
			sess.Abort()
		case s.opts.PasswordAccepted(err):
			// The host accepted the password but another client holds
			// the maildrop, or it is too soon. The login is good.
		case errors.Is(err, bridge.ErrSourceAuth):
			return nil, errBadCredentials
		default:
			return nil, fmt.Errorf("passthrough check at %s: %w", sn, err)
		}
	}
	u, err := s.opts.Bridge.User(ctx, username)
	if err != nil {
		return nil, err
	}
	if s.sealer != nil {
		if err := u.SetSecret(ctx, secretName, s.sealer.Seal(username, secretName, []byte(password))); err != nil {
			s.log.Warn("passthrough: could not store credentials; polling will stop at restart until the next login", "user", username, "err", err)
		}
	}
	if !s.opts.Syncer.Has(username) {
		s.opts.Syncer.Add(u, s.feeds(username, uc, password))
	} else {
		// The user may have changed the password at the host: poll with
		// the one that just worked.
		for _, sn := range checked {
			s.opts.Syncer.SetPassword(username, sn, password)
		}
	}
	return u, nil
}

// sleep waits d, or until ctx is done (then it returns ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
