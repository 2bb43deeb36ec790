// Package oauthtest holds FakeIDP, a named fake of an OAuth2 identity
// provider for the tests: the token endpoint (refresh_token grant with
// rotation, the device_code grant), the device authorization endpoint (RFC
// 8628) and a token introspection endpoint (RFC 7662) that a real Dovecot's
// oauth2 passdb asks. It is a fake because no real identity provider can
// be run here and made to expire, rotate and revoke on cue. It imports
// only the standard library.
package oauthtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// Clock is a settable clock shared by the fake and the code under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Options configure a FakeIDP.
type Options struct {
	ClientID, ClientSecret string
	// AccessTTL is the lifetime of access tokens (expires_in); default 1h.
	AccessTTL time.Duration
	// Rotate issues a new refresh token with every refresh and makes the
	// old one invalid_grant.
	Rotate bool
	// Clock decides expiry; nil means a NewClock.
	Clock *Clock
}

// FakeIDP is the fake identity provider, served on 127.0.0.1.
type FakeIDP struct {
	srv  *httptest.Server
	opts Options

	mu       sync.Mutex
	access   map[string]grant // access token → grant
	refresh  map[string]string
	devices  map[string]*device // device_code → state
	counts   map[string]int
	failNext int // token endpoint answers 503 this many times
}

type grant struct {
	user    string
	expires time.Time
}

type device struct {
	userCode string
	user     string // set by Approve
}

// Endpoint paths.
const (
	TokenPath      = "/token"
	DevicePath     = "/device"
	IntrospectPath = "/introspect"
	VerifyPath     = "/verify"
)

// New starts a FakeIDP; Close stops it.
func New(opts Options) *FakeIDP {
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = NewClock()
	}
	f := &FakeIDP{opts: opts, access: map[string]grant{}, refresh: map[string]string{}, devices: map[string]*device{}, counts: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, f.token)
	mux.HandleFunc("POST "+DevicePath, f.device)
	mux.HandleFunc("POST "+IntrospectPath, f.introspect)
	f.srv = httptest.NewServer(mux)
	return f
}

// Close stops the server.
func (f *FakeIDP) Close() { f.srv.Close() }

// URL is the base URL (http://127.0.0.1:port).
func (f *FakeIDP) URL() string { return f.srv.URL }

// TokenURL, DeviceURL and IntrospectURL are the endpoints.
func (f *FakeIDP) TokenURL() string      { return f.srv.URL + TokenPath }
func (f *FakeIDP) DeviceURL() string     { return f.srv.URL + DevicePath }
func (f *FakeIDP) IntrospectURL() string { return f.srv.URL + IntrospectPath }

// IssueRefreshToken makes a refresh token for user, as a first login
// would have.
func (f *FakeIDP) IssueRefreshToken(user string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := "rt-" + randHex()
	f.refresh[t] = user
	return t
}

// Revoke makes every refresh token of user invalid_grant and every access
// token of user inactive (the user changed the password, an admin revoked
// the app).
func (f *FakeIDP) Revoke(user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t, u := range f.refresh {
		if u == user {
			delete(f.refresh, t)
		}
	}
	for t, g := range f.access {
		if g.user == user {
			delete(f.access, t)
		}
	}
}

// ForgetAccessTokens makes every access token issued so far inactive
// before it expires (a provider that revoked them early).
func (f *FakeIDP) ForgetAccessTokens() {
	f.mu.Lock()
	clear(f.access)
	f.mu.Unlock()
}

// RefreshTokenValid reports whether t is a live refresh token.
func (f *FakeIDP) RefreshTokenValid(t string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.refresh[t]
	return ok
}

// FailNext makes the token endpoint answer 503 to the next n requests.
func (f *FakeIDP) FailNext(n int) {
	f.mu.Lock()
	f.failNext = n
	f.mu.Unlock()
}

// Count says how often an event happened: "refresh", "refresh_rejected",
// "device_grant", "introspect", "introspect_active".
func (f *FakeIDP) Count(event string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[event]
}

// Approve is the user entering userCode at the verification page and
// consenting as user. It reports whether the code was known.
func (f *FakeIDP) Approve(userCode, user string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.devices {
		if d.userCode == userCode {
			d.user = user
			return true
		}
	}
	return false
}

func randHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, code int, e, desc string) {
	writeJSON(w, code, map[string]string{"error": e, "error_description": desc})
}

func (f *FakeIDP) clientOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == f.opts.ClientID && secret == f.opts.ClientSecret
}

// issue makes an access token (and with rotate, a new refresh token) for
// user. f.mu is held.
func (f *FakeIDP) issue(user string, newRefresh bool) map[string]any {
	at := "at-" + randHex()
	f.access[at] = grant{user: user, expires: f.opts.Clock.Now().Add(f.opts.AccessTTL)}
	out := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(f.opts.AccessTTL / time.Second)}
	if newRefresh {
		rt := "rt-" + randHex()
		f.refresh[rt] = user
		out["refresh_token"] = rt
	}
	return out
}

func (f *FakeIDP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		f.counts["refresh_failed"]++
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	if !f.clientOK(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		user, ok := f.refresh[rt]
		if !ok {
			f.counts["refresh_rejected"]++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "The refresh token has been revoked or has expired.")
			return
		}
		f.counts["refresh"]++
		if f.opts.Rotate {
			delete(f.refresh, rt)
		}
		writeJSON(w, http.StatusOK, f.issue(user, f.opts.Rotate))
	case "urn:ietf:params:oauth:grant-type:device_code":
		d, ok := f.devices[r.PostForm.Get("device_code")]
		switch {
		case !ok:
			oauthError(w, http.StatusBadRequest, "expired_token", "unknown device code")
		case d.user == "":
			oauthError(w, http.StatusBadRequest, "authorization_pending", "waiting for the user")
		default:
			delete(f.devices, r.PostForm.Get("device_code"))
			f.counts["device_grant"]++
			writeJSON(w, http.StatusOK, f.issue(d.user, true))
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", r.PostForm.Get("grant_type"))
	}
}

func (f *FakeIDP) device(w http.ResponseWriter, r *http.Request) {
	// A device authorization request names the client only (RFC 8628
	// section 3.1).
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") != f.opts.ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dc := "dc-" + randHex()
	uc := "WDJB-" + strconv.Itoa(1000+len(f.devices))
	f.devices[dc] = &device{userCode: uc}
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":      dc,
		"user_code":        uc,
		"verification_uri": f.srv.URL + VerifyPath,
		"expires_in":       600,
		"interval":         1,
	})
}

// introspect answers RFC 7662 as Dovecot's oauth2 passdb in
// introspection_mode = post asks: a form with token=.
func (f *FakeIDP) introspect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts["introspect"]++
	g, ok := f.access[r.PostForm.Get("token")]
	if !ok || !f.opts.Clock.Now().Before(g.expires) {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	f.counts["introspect_active"]++
	writeJSON(w, http.StatusOK, map[string]any{"active": true, "username": g.user, "exp": g.expires.Unix()})
}
