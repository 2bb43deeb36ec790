package login

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/imapbridge/imapbridge/bridge"
)

// OAuth2 results, the values of the result label of
// imapbridge_oauth2_refresh_total.
const (
	OAuth2Success = "success" // a new access token
	OAuth2Failure = "failure" // the token endpoint failed or refused for now (retried with the poll's backoff)
	OAuth2Revoked = "revoked" // invalid_grant: the refresh token is dead; polling stopped
)

// OAuth2Results are every result label value, to pre-set to 0.
var OAuth2Results = []string{OAuth2Success, OAuth2Failure, OAuth2Revoked}

// ErrRefreshRevoked is wrapped by Token's error once the identity provider
// answered invalid_grant to the refresh token: a new one is needed
// (imapbridge oauth2-login, or a new refresh_token_file). Until one is
// stored, Token fails at once without asking the provider again.
var ErrRefreshRevoked = errors.New("the refresh token was refused (revoked or expired)")

// OAuth2Params are one account's OAuth2 client settings, as configured.
type OAuth2Params struct {
	TokenURL string
	// DeviceAuthURL is the device authorization endpoint (RFC 8628), for
	// oauth2-login only.
	DeviceAuthURL string
	ClientID      string
	ClientSecret  string
	Scopes        []string
	// RefreshTokenFile holds the first refresh token (optional once
	// oauth2-login stored one). A rotated token, stored sealed, is used
	// over the file's until the file's content changes.
	RefreshTokenFile string
}

// OAuth2Options configure OAuth2Tokens.
type OAuth2Options struct {
	// User and Account name the sealed token: the bridge user and an
	// account key unique within the user (the source name, or
	// "source#N" with several accounts).
	User, Account string
	// DataDir is the data directory; the sealed token lives in
	// DataDir/oauth2/, 0600.
	DataDir string
	Sealer  *Sealer
	// RefreshMargin is how long before its expiry an access token is
	// renewed; 0 means 5 minutes.
	RefreshMargin time.Duration
	// HTTPClient talks to the token endpoint; nil means one with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observe, if set, is told each refresh's result (one of
	// OAuth2Results): the metric.
	Observe func(result string)
	Logger  *slog.Logger
}

// OAuth2Tokens gives an account's access tokens: it refreshes them from
// the refresh token before they expire, stores a rotated refresh token
// sealed, and stops at a revoked one. Safe for concurrent use.
type OAuth2Tokens struct {
	p    OAuth2Params
	o    OAuth2Options
	conf *oauth2.Config

	mu      sync.Mutex
	access  *oauth2.Token // the cached access token, or nil
	revoked string        // fingerprint of the refresh token refused with invalid_grant
	reason  error         // why, for the error of Token
}

// NewOAuth2Tokens returns the token source of one account.
func NewOAuth2Tokens(p OAuth2Params, o OAuth2Options) (*OAuth2Tokens, error) {
	if o.Sealer == nil {
		return nil, errors.New("oauth2: a sealed token store needs secrets.key_file (or IMAPBRIDGE_SECRET_KEY)")
	}
	if o.DataDir == "" || o.User == "" || o.Account == "" {
		return nil, errors.New("oauth2: data dir, user and account are required")
	}
	if o.RefreshMargin <= 0 {
		o.RefreshMargin = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &OAuth2Tokens{p: p, o: o, conf: p.config()}, nil
}

func (p OAuth2Params) config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		Scopes:       p.Scopes,
		Endpoint: oauth2.Endpoint{
			TokenURL:      p.TokenURL,
			DeviceAuthURL: p.DeviceAuthURL,
			// Form parameters: what every provider accepts, and what
			// RFC 6749 requires a server to support for public clients.
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// sealedRecord is what the sealed file holds.
type sealedRecord struct {
	RefreshToken string `json:"refresh_token"`
	// FileSHA256 is the fingerprint of refresh_token_file's token when
	// this one replaced it: a different file content wins again.
	FileSHA256 string `json:"file_sha256"`
}

func fingerprint(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// SealedPath is where the account's rotated refresh token is stored.
func (t *OAuth2Tokens) SealedPath() string {
	return SealedOAuth2Path(t.o.DataDir, t.o.User, t.o.Account)
}

// SealedOAuth2Path is the sealed refresh token file of user's account in
// dataDir.
func SealedOAuth2Path(dataDir, user, account string) string {
	safe := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '/' || r == '\\' || r == 0 || r == '#' {
				return '_'
			}
			return r
		}, s)
	}
	// The fingerprint keeps names that safe() made alike apart.
	return filepath.Join(dataDir, "oauth2", safe(user)+"."+safe(account)+"."+fingerprint(user + "\x00" + account)[:8]+".sealed")
}

func (t *OAuth2Tokens) sealName() string { return "oauth2 refresh token " + t.o.Account }

// current is the refresh token to use: the sealed one, unless the file's
// token changed since it was stored; the file's otherwise.
func (t *OAuth2Tokens) current() (token string, err error) {
	var fileTok string
	if t.p.RefreshTokenFile != "" {
		b, err := os.ReadFile(t.p.RefreshTokenFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("oauth2: read refresh_token_file: %w", err)
		}
		fileTok = strings.TrimSpace(string(b))
	}
	rec, err := t.readSealed()
	if err != nil {
		return "", err
	}
	if rec.RefreshToken != "" && (fileTok == "" || rec.FileSHA256 == fingerprint(fileTok)) {
		return rec.RefreshToken, nil
	}
	if fileTok == "" {
		return "", fmt.Errorf("oauth2: no refresh token: refresh_token_file %s is missing or empty and none is stored; run imapbridge oauth2-login", t.p.RefreshTokenFile)
	}
	return fileTok, nil
}

func (t *OAuth2Tokens) readSealed() (sealedRecord, error) {
	var rec sealedRecord
	b, err := os.ReadFile(t.SealedPath())
	if errors.Is(err, os.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, fmt.Errorf("oauth2: read the stored refresh token: %w", err)
	}
	pt, err := t.o.Sealer.Open(t.o.User, t.sealName(), b)
	if err != nil {
		return rec, fmt.Errorf("oauth2: the stored refresh token %s: %w", t.SealedPath(), err)
	}
	if err := json.Unmarshal(pt, &rec); err != nil {
		return rec, fmt.Errorf("oauth2: the stored refresh token %s is not a token record", t.SealedPath())
	}
	return rec, nil
}

// Store seals refreshToken into the data directory (0600, written to a
// temporary file, synced and renamed), bound to the current content of
// refresh_token_file, and clears a revocation.
func (t *OAuth2Tokens) Store(refreshToken string) error {
	if err := t.storeRecord(refreshToken); err != nil {
		return fmt.Errorf("oauth2: store refresh token: %w", err)
	}
	t.mu.Lock()
	t.access, t.revoked, t.reason = nil, "", nil
	t.mu.Unlock()
	return nil
}

// writeFileSynced writes data to path durably: a temporary file in the
// same directory, fsync, rename, fsync of the directory.
func writeFileSynced(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Token returns an access token valid for at least RefreshMargin more,
// refreshing it when needed. fresh says it was just obtained (not from the
// cache). The error never holds a token.
func (t *OAuth2Tokens) Token(ctx context.Context) (token string, fresh bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.access; a != nil && (a.Expiry.IsZero() || t.o.Now().Add(t.o.RefreshMargin).Before(a.Expiry)) {
		return a.AccessToken, false, nil
	}
	rt, err := t.current()
	if err != nil {
		return "", false, err
	}
	if t.revoked != "" {
		if t.revoked == fingerprint(rt) {
			return "", false, t.reason
		}
		t.o.Logger.Info("oauth2: a new refresh token is in place; polling resumes", "user", t.o.User, "account", t.o.Account)
		t.revoked, t.reason = "", nil
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, t.o.HTTPClient)
	tok, err := t.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			t.revoked = fingerprint(rt)
			t.reason = fmt.Errorf("oauth2: refresh at %s: %w (invalid_grant%s); polling stopped until a new one is stored with imapbridge oauth2-login or refresh_token_file changes",
				t.p.TokenURL, ErrRefreshRevoked, describe(re.ErrorDescription))
			t.observe(OAuth2Revoked)
			t.o.Logger.Error("oauth2: refresh token refused: polling stopped", "user", t.o.User, "account", t.o.Account, "err", t.reason)
			return "", false, t.reason
		}
		t.observe(OAuth2Failure)
		return "", false, fmt.Errorf("oauth2: refresh at %s: %s", t.p.TokenURL, refreshErrorText(err))
	}
	t.observe(OAuth2Success)
	// The token's expiry is computed by x/oauth2 against the wall clock;
	// keep it on ours.
	if tok.ExpiresIn > 0 {
		tok.Expiry = t.o.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	if tok.RefreshToken != "" && tok.RefreshToken != rt {
		if err := t.storeRecord(tok.RefreshToken); err != nil {
			// The new token works now; not storing it means the next
			// restart uses the old one, which may be dead by then.
			t.o.Logger.Error("oauth2: the rotated refresh token could not be stored", "user", t.o.User, "account", t.o.Account, "err", err)
		}
	}
	t.access = tok
	return tok.AccessToken, true, nil
}

func (t *OAuth2Tokens) storeRecord(refreshToken string) error {
	var fileFP string
	if t.p.RefreshTokenFile != "" {
		if b, err := os.ReadFile(t.p.RefreshTokenFile); err == nil {
			fileFP = fingerprint(strings.TrimSpace(string(b)))
		}
	}
	pt, err := json.Marshal(sealedRecord{RefreshToken: refreshToken, FileSHA256: fileFP})
	if err != nil {
		return err
	}
	return writeFileSynced(t.SealedPath(), t.o.Sealer.Seal(t.o.User, t.sealName(), pt))
}

func describe(desc string) string {
	if desc == "" {
		return ""
	}
	return ": " + desc
}

// refreshErrorText is a refresh failure without the response body (which
// a provider might fill with anything).
func refreshErrorText(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Sprintf("the token endpoint refused: %s%s", re.ErrorCode, describe(re.ErrorDescription))
		}
		if re.Response != nil {
			return fmt.Sprintf("the token endpoint answered HTTP %d", re.Response.StatusCode)
		}
	}
	return err.Error()
}

// Invalidate forgets the cached access token (the host refused it): the
// next Token refreshes.
func (t *OAuth2Tokens) Invalidate() {
	t.mu.Lock()
	t.access = nil
	t.mu.Unlock()
}

func (t *OAuth2Tokens) observe(result string) {
	if t.o.Observe != nil {
		t.o.Observe(result)
	}
}

// OAuth2Source is a source whose sessions log in with an access token
// from Tokens: the token is the Account.Password the inner source (a pop3
// source with auth xoauth2 or oauthbearer) is opened with. A token the
// host refuses is forgotten, and, if it came from the cache, one fresh
// token is tried at once; a failed refresh fails the poll, which the
// syncer retries with its backoff.
type OAuth2Source struct {
	Inner  bridge.Source
	Tokens *OAuth2Tokens
}

var _ bridge.Source = (*OAuth2Source)(nil)

// Name is the inner source's name.
func (s *OAuth2Source) Name() string { return s.Inner.Name() }

// Open gets a token and opens the inner source with it.
func (s *OAuth2Source) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	for attempt := 0; ; attempt++ {
		tok, fresh, err := s.Tokens.Token(ctx)
		if err != nil {
			if errors.Is(err, ErrRefreshRevoked) {
				return nil, fmt.Errorf("pop3 source %q: %w: %w", s.Inner.Name(), bridge.ErrSourceAuth, err)
			}
			return nil, fmt.Errorf("pop3 source %q: %w", s.Inner.Name(), err)
		}
		acct.Password = tok
		sess, err := s.Inner.Open(ctx, acct)
		if err == nil {
			return sess, nil
		}
		if errors.Is(err, bridge.ErrSourceAuth) {
			s.Tokens.Invalidate()
			if !fresh && attempt == 0 {
				continue
			}
		}
		return nil, err
	}
}

// OAuth2AccountKey is the account part of a sealed token's name: the
// source and the login there, which stay the same when the config's
// accounts are reordered.
func OAuth2AccountKey(source, sourceUser string) string { return source + "/" + sourceUser }

// DeviceLogin gets a first refresh token with the device authorization
// grant (RFC 8628) and stores it sealed: show is told the verification URI
// (the complete one too, when the provider gives it) and the user code,
// and the call waits, polling the token endpoint at the interval the
// provider asks for, until the user has approved, refused, or the code
// expired (or ctx ends).
func (t *OAuth2Tokens) DeviceLogin(ctx context.Context, show func(uri, completeURI, userCode string)) error {
	if t.p.DeviceAuthURL == "" {
		return errors.New("oauth2: no device_auth_url configured")
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, t.o.HTTPClient)
	da, err := t.conf.DeviceAuth(ctx)
	if err != nil {
		return fmt.Errorf("oauth2: device authorization at %s: %s", t.p.DeviceAuthURL, refreshErrorText(err))
	}
	show(da.VerificationURI, da.VerificationURIComplete, da.UserCode)
	tok, err := t.conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return fmt.Errorf("oauth2: waiting for the user at %s: %s", t.p.TokenURL, refreshErrorText(err))
	}
	if tok.RefreshToken == "" {
		return fmt.Errorf("oauth2: %s gave no refresh token (is offline_access among the scopes?)", t.p.TokenURL)
	}
	if err := t.Store(tok.RefreshToken); err != nil {
		return err
	}
	t.o.Logger.Info("oauth2: refresh token stored", "user", t.o.User, "account", t.o.Account)
	return nil
}
