package login

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/oauthtest"
)

type oauth2Fixture struct {
	idp     *oauthtest.FakeIDP
	clock   *oauthtest.Clock
	dir     string
	rtFile  string
	sealer  *Sealer
	results map[string]int
}

func newOAuth2Fixture(t *testing.T, rotate bool) *oauth2Fixture {
	t.Helper()
	clock := oauthtest.NewClock()
	idp := oauthtest.New(oauthtest.Options{ClientID: "bridge", ClientSecret: "s3cret", AccessTTL: time.Hour, Rotate: rotate, Clock: clock})
	t.Cleanup(idp.Close)
	sealer, err := NewSealer("test key")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &oauth2Fixture{idp: idp, clock: clock, dir: dir, rtFile: filepath.Join(dir, "alice.rt"), sealer: sealer, results: map[string]int{}}
	if err := os.WriteFile(f.rtFile, []byte(idp.IssueRefreshToken("alice@contoso.example")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *oauth2Fixture) tokens(t *testing.T) *OAuth2Tokens {
	t.Helper()
	tok, err := NewOAuth2Tokens(OAuth2Params{
		TokenURL: f.idp.TokenURL(), ClientID: "bridge", ClientSecret: "s3cret",
		Scopes: []string{"https://outlook.office.com/POP.AccessAsUser.All", "offline_access"}, RefreshTokenFile: f.rtFile,
	}, OAuth2Options{User: "alice", Account: "m365", DataDir: filepath.Join(f.dir, "data"), Sealer: f.sealer, Now: f.clock.Now,
		Observe: func(r string) { f.results[r]++ }})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestOAuth2TokensRefreshBeforeExpiry: the access token is reused while it
// has more than the margin left and renewed within it.
func TestOAuth2TokensRefreshBeforeExpiry(t *testing.T) {
	f := newOAuth2Fixture(t, false)
	tok := f.tokens(t)
	ctx := context.Background()
	a1, fresh, err := tok.Token(ctx)
	if err != nil || !fresh || !strings.HasPrefix(a1, "at-") {
		t.Fatalf("Token = %q %v %v", a1, fresh, err)
	}
	f.clock.Advance(54 * time.Minute) // 6 min left: more than the 5 min margin
	if a2, fresh, _ := tok.Token(ctx); a2 != a1 || fresh {
		t.Fatalf("token renewed with 6 minutes left (%q, fresh %v)", a2, fresh)
	}
	f.clock.Advance(2 * time.Minute) // 4 min left
	a3, fresh, err := tok.Token(ctx)
	if err != nil || a3 == a1 || !fresh {
		t.Fatalf("token not renewed within the margin: %q %v %v", a3, fresh, err)
	}
	if f.idp.Count("refresh") != 2 || f.results[OAuth2Success] != 2 {
		t.Fatalf("refreshes at the IdP %d, observed %v; want 2", f.idp.Count("refresh"), f.results)
	}
	if _, err := os.Stat(tok.SealedPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a sealed file without rotation: %v", err)
	}
}

// TestOAuth2TokensRotationSealed: a rotated refresh token is stored
// sealed (0600, not in clear), used after a restart instead of the file's
// (which the IdP no longer takes), and the file wins again once its
// content changes.
func TestOAuth2TokensRotationSealed(t *testing.T) {
	f := newOAuth2Fixture(t, true)
	first, _ := os.ReadFile(f.rtFile)
	tok := f.tokens(t)
	if _, _, err := tok.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.idp.RefreshTokenValid(strings.TrimSpace(string(first))) {
		t.Fatal("the IdP did not rotate")
	}
	fi, err := os.Stat(tok.SealedPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sealed file %v, mode %v", err, fi)
	}
	sealed, _ := os.ReadFile(tok.SealedPath())
	if bytes.Contains(sealed, []byte("rt-")) {
		t.Fatal("the refresh token is stored in clear")
	}
	// A restart: a new instance reads the sealed token.
	tok2 := f.tokens(t)
	if _, fresh, err := tok2.Token(context.Background()); err != nil || !fresh {
		t.Fatalf("after restart: %v", err)
	}
	if f.idp.Count("refresh_rejected") != 0 || f.idp.Count("refresh") != 2 {
		t.Fatalf("refresh %d, rejected %d: the stale file token was used", f.idp.Count("refresh"), f.idp.Count("refresh_rejected"))
	}
	// A wrong key cannot open it: a clear error naming the file.
	other, _ := NewSealer("another key")
	tok3 := f.tokens(t)
	tok3.o.Sealer = other
	if _, _, err := tok3.Token(context.Background()); err == nil || err.Error() != "oauth2: the stored refresh token "+tok.SealedPath()+": secrets: cannot open sealed value (wrong key, or tampered)" {
		t.Fatalf("wrong key: %v", err)
	}
	// The operator puts a new token in the file: it wins over the sealed one.
	if err := os.WriteFile(f.rtFile, []byte(f.idp.IssueRefreshToken("alice@contoso.example")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.tokens(t).Token(context.Background()); err != nil || f.idp.Count("refresh") != 3 {
		t.Fatalf("new file token: %v (refreshes %d)", err, f.idp.Count("refresh"))
	}
}

// TestOAuth2TokensRevoked: invalid_grant stops refreshing (no second
// request to the IdP) with the reason, until a new token is stored.
func TestOAuth2TokensRevoked(t *testing.T) {
	f := newOAuth2Fixture(t, false)
	tok := f.tokens(t)
	f.idp.Revoke("alice@contoso.example")
	want := "oauth2: refresh at " + f.idp.TokenURL() + ": the refresh token was refused (revoked or expired) (invalid_grant: The refresh token has been revoked or has expired.); polling stopped until a new one is stored with imapbridge oauth2-login or refresh_token_file changes"
	for i := range 3 {
		_, _, err := tok.Token(context.Background())
		if !errors.Is(err, ErrRefreshRevoked) || err.Error() != want {
			t.Fatalf("try %d: %v\nwant %s", i, err, want)
		}
	}
	if n := f.idp.Count("refresh_rejected"); n != 1 || f.results[OAuth2Revoked] != 1 {
		t.Fatalf("the IdP was asked %d times (observed %v); want once", n, f.results)
	}
	// oauth2-login stores a new one: polling resumes.
	if err := tok.Store(f.idp.IssueRefreshToken("alice@contoso.example")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tok.Token(context.Background()); err != nil {
		t.Fatalf("after a new token: %v", err)
	}
}

// TestOAuth2TokensRefreshFailure: a token endpoint that fails is a clear
// error without the response body, counted as failure, and the next call
// tries again.
func TestOAuth2TokensRefreshFailure(t *testing.T) {
	f := newOAuth2Fixture(t, false)
	tok := f.tokens(t)
	f.idp.FailNext(1)
	_, _, err := tok.Token(context.Background())
	if err == nil || err.Error() != "oauth2: refresh at "+f.idp.TokenURL()+": the token endpoint answered HTTP 503" || errors.Is(err, ErrRefreshRevoked) {
		t.Fatalf("Token = %v", err)
	}
	if _, _, err := tok.Token(context.Background()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if f.results[OAuth2Failure] != 1 || f.results[OAuth2Success] != 1 {
		t.Fatalf("observed %v", f.results)
	}
	// Missing token everywhere: says what to do.
	os.Remove(f.rtFile)
	tok2 := f.tokens(t)
	if _, _, err := tok2.Token(context.Background()); err == nil || err.Error() != "oauth2: no refresh token: refresh_token_file "+f.rtFile+" is missing or empty and none is stored; run imapbridge oauth2-login" {
		t.Fatalf("no token: %v", err)
	}
}

func TestOAuth2Metrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	observe, err := NewOAuth2Metrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	observe(OAuth2Revoked)
	want := `# HELP imapbridge_oauth2_refresh_total OAuth2 access-token refreshes toward source hosts, by result (success, failure: retried with the poll's backoff, revoked: invalid_grant, polling stopped).
# TYPE imapbridge_oauth2_refresh_total counter
imapbridge_oauth2_refresh_total{result="failure"} 0
imapbridge_oauth2_refresh_total{result="revoked"} 1
imapbridge_oauth2_refresh_total{result="success"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}
}

// refusingSource is a bridge.Source that refuses every token but want,
// counting the attempts.
type refusingSource struct {
	want     func() string
	attempts int
}

func (s *refusingSource) Name() string { return "m365" }
func (s *refusingSource) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	s.attempts++
	if acct.Password != s.want() {
		return nil, fmt.Errorf("pop3 source %q: login: %w: -ERR Authentication failure", s.Name(), bridge.ErrSourceAuth)
	}
	return nil, nil
}

// TestOAuth2SourceRefusedToken: a cached token the host refuses is
// replaced once in the same Open; a fresh token refused fails the Open
// (one attempt, one refresh: the syncer's backoff does the rest, never a
// loop); a revoked refresh token fails without reaching the host.
func TestOAuth2SourceRefusedToken(t *testing.T) {
	f := newOAuth2Fixture(t, false)
	tok := f.tokens(t)
	ctx := context.Background()
	first, _, err := tok.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src := &refusingSource{want: func() string { return "never" }}
	osrc := &OAuth2Source{Inner: src, Tokens: tok}
	acct := bridge.Account{User: "alice", SourceUser: "alice@contoso.example"}

	// The cached token is refused: one fresh one is tried, also refused.
	if _, err := osrc.Open(ctx, acct); !errors.Is(err, bridge.ErrSourceAuth) || src.attempts != 2 || f.idp.Count("refresh") != 2 {
		t.Fatalf("Open = %v after %d attempts, %d refreshes; want auth error, 2, 2", err, src.attempts, f.idp.Count("refresh"))
	}
	// Now the token is fresh and refused: one attempt, one refresh.
	src.attempts = 0
	if _, err := osrc.Open(ctx, acct); !errors.Is(err, bridge.ErrSourceAuth) || src.attempts != 1 || f.idp.Count("refresh") != 3 {
		t.Fatalf("Open = %v after %d attempts, %d refreshes; want auth error, 1, 3", err, src.attempts, f.idp.Count("refresh"))
	}
	// A host that takes the token it is given.
	var current string
	src.want = func() string { return current }
	current, _, _ = tok.Token(ctx)
	if current == first {
		t.Fatal("the refused token was reused")
	}
	src.attempts = 0
	if _, err := osrc.Open(ctx, acct); err != nil || src.attempts != 1 {
		t.Fatalf("Open = %v after %d attempts", err, src.attempts)
	}
	// Revoked: no attempt at the host.
	f.idp.Revoke("alice@contoso.example")
	tok.Invalidate()
	src.attempts = 0
	_, err = osrc.Open(ctx, acct)
	if !errors.Is(err, ErrRefreshRevoked) || !errors.Is(err, bridge.ErrSourceAuth) || src.attempts != 0 || !strings.HasPrefix(err.Error(), `pop3 source "m365": source refused the credentials: oauth2: refresh at `) {
		t.Fatalf("Open after revocation = %v (%d attempts at the host)", err, src.attempts)
	}
}
