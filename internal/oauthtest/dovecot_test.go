package oauthtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/dovecottest/dovecotrun"
	"github.com/imapbridge/imapbridge/internal/login"
	"github.com/imapbridge/imapbridge/internal/oauthtest"
	"github.com/imapbridge/imapbridge/pop3"
)

// rig is a real Dovecot POP3 whose oauth2 passdb asks the FakeIDP's
// introspection endpoint, and the bridge polling it with OAuth2 tokens.
type rig struct {
	t      *testing.T
	idp    *oauthtest.FakeIDP
	clock  *oauthtest.Clock
	srv    *dovecottest.Server
	data   string // the bridge's data dir
	rtFile string
	sealer *login.Sealer
	mech   string
}

const popUser = "alice"

func newRig(t *testing.T, mech string, rotate bool) *rig {
	t.Helper()
	clock := oauthtest.NewClock()
	idp := oauthtest.New(oauthtest.Options{ClientID: "imapbridge", ClientSecret: "client-s3cret", AccessTTL: time.Hour, Rotate: rotate, Clock: clock})
	t.Cleanup(idp.Close)
	ddir := filepath.Join(t.TempDir(), "dovecot")
	extra, err := dovecotrun.OAuth2Config(ddir, dovecotrun.OAuth2Passdb{IntrospectionURL: idp.IntrospectURL()})
	if err != nil {
		t.Fatal(err)
	}
	// The POP3 password is not what the bridge uses: only a token logs in.
	srv := dovecottest.Start(t, dovecottest.Options{Dir: ddir, ExtraConfig: extra,
		Users: []dovecottest.User{{Name: popUser, Password: "not-the-token"}}})
	sealer, err := login.NewSealer("a test key")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, idp: idp, clock: clock, srv: srv, data: t.TempDir(), sealer: sealer, mech: mech}
	r.rtFile = filepath.Join(t.TempDir(), "alice.refresh")
	if err := os.WriteFile(r.rtFile, []byte(idp.IssueRefreshToken(popUser)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// tokens is what the wiring builds for the account: one per process.
func (r *rig) tokens() *login.OAuth2Tokens {
	r.t.Helper()
	tok, err := login.NewOAuth2Tokens(login.OAuth2Params{
		TokenURL: r.idp.TokenURL(), DeviceAuthURL: r.idp.DeviceURL(), ClientID: "imapbridge", ClientSecret: "client-s3cret",
		Scopes: []string{"pop"}, RefreshTokenFile: r.rtFile,
	}, login.OAuth2Options{User: popUser, Account: "legacy", DataDir: r.data, Sealer: r.sealer, Now: r.clock.Now})
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// bridged is one run of the bridge: store, syncer, one OAuth2 feed.
type bridged struct {
	b    *bridge.Bridge
	s    *bridge.Syncer
	user *bridge.User
	tok  *login.OAuth2Tokens
}

func (r *rig) start() *bridged {
	r.t.Helper()
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: r.data})
	if err != nil {
		r.t.Fatal(err)
	}
	tok := r.tokens()
	inner := pop3.NewSource(pop3.SourceConfig{Name: "legacy", Address: r.srv.Addr(), TLS: pop3.TLSNone, Auth: r.mech, Timeout: 30 * time.Second}, nil)
	src := &login.OAuth2Source{Inner: inner, Tokens: tok}
	s := bridge.NewSyncer(b, bridge.SyncerOptions{})
	u, err := b.User(ctx, popUser)
	if err != nil {
		r.t.Fatal(err)
	}
	s.Add(u, []bridge.Feed{{Source: src, Account: bridge.Account{User: popUser, SourceUser: popUser},
		Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}, Mode: bridge.ModeServe, PollInterval: time.Hour}})
	bd := &bridged{b: b, s: s, user: u, tok: tok}
	r.t.Cleanup(bd.stop)
	return bd
}

func (bd *bridged) stop() {
	if bd.s == nil {
		return
	}
	bd.s.Stop(context.Background())
	bd.b.Close()
	bd.s = nil
}

func (bd *bridged) inbox(t *testing.T) [][]byte {
	t.Helper()
	ctx := context.Background()
	mb, err := bd.user.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, uid := range mb.UIDs() {
		body, err := mb.Open(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

func (bd *bridged) lastError(t *testing.T) string {
	t.Helper()
	all, err := bd.b.Status(context.Background(), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range all {
		for _, s := range u.Sources {
			if u.Name == popUser && s.Name == "legacy" {
				return s.LastError
			}
		}
	}
	t.Fatalf("no status of %s/legacy: %+v", popUser, all)
	return ""
}

// TestOAuth2PollDovecot: the bridge logs in to a real Dovecot POP3 with
// AUTH XOAUTH2 and with AUTH OAUTHBEARER, Dovecot checks the token at the
// fake IdP's introspection endpoint, and the corpus arrives byte-exact.
func TestOAuth2PollDovecot(t *testing.T) {
	for _, mech := range []string{pop3.AuthXOAUTH2, pop3.AuthOAuthBearer} {
		t.Run(mech, func(t *testing.T) {
			r := newRig(t, mech, false)
			corpus := dovecottest.Corpus()
			for _, f := range corpus {
				r.srv.Deliver(popUser, f.Data)
			}
			bd := r.start()
			if err := bd.s.PollAndWait(context.Background(), popUser); err != nil {
				t.Fatalf("poll: %v\n%s", err, r.srv.Log())
			}
			got := bd.inbox(t)
			if len(got) != len(corpus) {
				t.Fatalf("INBOX holds %d, want %d", len(got), len(corpus))
			}
			for i, f := range corpus {
				if want := dovecottest.ExpectedPOP3(f.Data); !bytes.Equal(got[i], want) {
					t.Errorf("%s: stored %d bytes differ from the %d Dovecot sent", f.Name, len(got[i]), len(want))
				}
			}
			// Two sessions (the first poll when the feed was added, the
			// one asked for), each checked by Dovecot at the IdP, with
			// the one access token.
			logins := strings.Count(r.srv.Log(), "pop3-login: Info: Login: user=<alice>, method="+strings.ToUpper(mech))
			if n := r.idp.Count("introspect"); logins != 2 || n != logins || r.idp.Count("introspect_active") != n || r.idp.Count("refresh") != 1 {
				t.Fatalf("logins %d, introspections %d (active %d), refreshes %d; want 2, 2 (2), 1\n%s", logins, n, r.idp.Count("introspect_active"), r.idp.Count("refresh"), r.srv.Log())
			}
			if e := bd.lastError(t); e != "" {
				t.Fatalf("last_error %q", e)
			}
		})
	}
}

// TestOAuth2ExpiredTokenRefreshed: an access token that expires is
// refreshed before the next poll, which succeeds; a token the host
// refuses although it looked valid (revoked early) is replaced in the
// same poll.
func TestOAuth2ExpiredTokenRefreshed(t *testing.T) {
	r := newRig(t, pop3.AuthXOAUTH2, false)
	r.srv.Deliver(popUser, []byte("Subject: one\n\nfirst\n"))
	bd := r.start()
	ctx := context.Background()
	if err := bd.s.PollAndWait(ctx, popUser); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(61 * time.Minute) // the IdP says the token is dead now
	r.srv.Deliver(popUser, []byte("Subject: two\n\nsecond\n"))
	if err := bd.s.PollAndWait(ctx, popUser); err != nil {
		t.Fatalf("poll after expiry: %v\n%s", err, r.srv.Log())
	}
	if n := r.idp.Count("refresh"); n != 2 {
		t.Fatalf("refreshes %d, want 2", n)
	}
	if got := bd.inbox(t); len(got) != 2 || string(got[1]) != "Subject: two\r\n\r\nsecond\r\n" {
		t.Fatalf("INBOX %q", got)
	}
	// The IdP forgets the token early (the clock says it is still good):
	// Dovecot refuses it, and the poll gets a fresh one at once.
	r.idp.ForgetAccessTokens()
	if err := bd.s.PollAndWait(ctx, popUser); err != nil {
		t.Fatalf("poll after an early revocation: %v", err)
	}
	if n := r.idp.Count("refresh"); n != 3 {
		t.Fatalf("refreshes %d, want 3", n)
	}
}

// TestOAuth2RotatedTokenSurvivesRestart: the IdP rotates the refresh
// token; the bridge stores the new one sealed (0600), and after a restart
// uses it (the file's is dead by then) and polls.
func TestOAuth2RotatedTokenSurvivesRestart(t *testing.T) {
	r := newRig(t, pop3.AuthOAuthBearer, true)
	first, _ := os.ReadFile(r.rtFile)
	r.srv.Deliver(popUser, []byte("Subject: one\n\nfirst\n"))
	bd := r.start()
	ctx := context.Background()
	if err := bd.s.PollAndWait(ctx, popUser); err != nil {
		t.Fatal(err)
	}
	if r.idp.RefreshTokenValid(strings.TrimSpace(string(first))) {
		t.Fatal("the IdP did not rotate the refresh token")
	}
	path := bd.tok.SealedPath()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sealed token %s: %v %v", path, err, fi)
	}
	if sealed, _ := os.ReadFile(path); bytes.Contains(sealed, []byte("rt-")) {
		t.Fatal("the rotated refresh token is stored in clear")
	}
	bd.stop()

	r.srv.Deliver(popUser, []byte("Subject: two\n\nsecond\n"))
	bd2 := r.start()
	if err := bd2.s.PollAndWait(ctx, popUser); err != nil {
		t.Fatalf("poll after restart: %v", err)
	}
	if r.idp.Count("refresh_rejected") != 0 || r.idp.Count("refresh") != 2 {
		t.Fatalf("refreshes %d, rejected %d", r.idp.Count("refresh"), r.idp.Count("refresh_rejected"))
	}
	if got := bd2.inbox(t); len(got) != 2 {
		t.Fatalf("INBOX holds %d after restart, want 2", len(got))
	}
}

// TestOAuth2RevokedStopsPolling: a revoked refresh token fails the poll
// with the reason in the feed's last_error, and later polls fail the same
// way without asking the IdP or the host again; a new token stored (as
// oauth2-login does) resumes polling.
func TestOAuth2RevokedStopsPolling(t *testing.T) {
	r := newRig(t, pop3.AuthXOAUTH2, false)
	r.srv.Deliver(popUser, []byte("Subject: one\n\nfirst\n"))
	bd := r.start()
	ctx := context.Background()
	if err := bd.s.PollAndWait(ctx, popUser); err != nil {
		t.Fatal(err)
	}
	r.idp.Revoke(popUser)
	r.clock.Advance(2 * time.Hour)
	want := `pop3 source "legacy": source refused the credentials: oauth2: refresh at ` + r.idp.TokenURL() +
		`: the refresh token was refused (revoked or expired) (invalid_grant: The refresh token has been revoked or has expired.); polling stopped until a new one is stored with imapbridge oauth2-login or refresh_token_file changes`
	for i := range 3 {
		err := bd.s.PollAndWait(ctx, popUser)
		if !errors.Is(err, login.ErrRefreshRevoked) || !errors.Is(err, bridge.ErrSourceAuth) || err.Error() != "poll legacy: open: "+want {
			t.Fatalf("poll %d: %v\nwant %s", i, err, want)
		}
	}
	if e := bd.lastError(t); e != "poll legacy: open: "+want {
		t.Fatalf("status last_error\n%q\nwant\n%q", e, want)
	}
	if n := r.idp.Count("refresh_rejected"); n != 1 {
		t.Fatalf("the IdP was asked %d times with the revoked token; want once", n)
	}
	logins := strings.Count(r.srv.Log(), "pop3-login: Info: Login: user=<alice>")
	if err := bd.tok.Store(r.idp.IssueRefreshToken(popUser)); err != nil {
		t.Fatal(err)
	}
	if err := bd.s.PollAndWait(ctx, popUser); err != nil {
		t.Fatalf("poll with a new token: %v", err)
	}
	if e := bd.lastError(t); e != "" {
		t.Fatalf("last_error after a new token: %q", e)
	}
	if n := strings.Count(r.srv.Log(), "pop3-login: Info: Login: user=<alice>"); n != logins+1 {
		t.Fatalf("Dovecot logins %d → %d, want one more", logins, n)
	}
}
