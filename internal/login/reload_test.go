package login

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
	"github.com/imapbridge/imapbridge/internal/config"
)

// checkingSource is bridgetest's in-memory source that, like a POP3 host,
// takes only one password (a fake: the login package imports no POP3).
type checkingSource struct {
	*bridgetest.Source
	password string
}

func (s checkingSource) Open(ctx context.Context, acct bridge.Account) (bridge.SourceSession, error) {
	if acct.Password != s.password {
		return nil, fmt.Errorf("fake host: %w", bridge.ErrSourceAuth)
	}
	return s.Source.Open(ctx, acct)
}

func parseCfg(t *testing.T, dir, users string) *config.Config {
	t.Helper()
	cfg, _, err := config.ParseEnv([]byte("data_dir: data\nsources: [{name: legacy, type: pop3, address: '127.0.0.1:110', tls: none, mode: shadow, delete_policy: after_sync}]\n"+users), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOverridesOnlyUserAndReload: a passthrough user listed only for an
// override logs in at the host (a wrong password is refused, not waved
// through for want of sources), polls with the override, and a reload
// changes the override live (keeping the login's password) and then
// removes the user.
func TestOverridesOnlyUserAndReload(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	syncer := bridge.NewSyncer(b, bridge.SyncerOptions{})
	t.Cleanup(func() { syncer.Stop(ctx); b.Close() })
	src := checkingSource{bridgetest.NewSource("legacy"), "right"}
	opts := Options{Bridge: b, Syncer: syncer, Sources: map[string]bridge.Source{"legacy": src},
		Config: parseCfg(t, dir, "users: [{name: alice, overrides: {legacy: {poll_interval: 1h}}}]\n")}
	s := New(opts)
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 1}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Authenticate(cancelled, "alice", "wrong", remote); !errors.Is(err, ErrFailed) {
		t.Fatalf("wrong password: %v, want ErrFailed", err)
	}
	if _, err := s.Authenticate(ctx, "alice", "right", remote); err != nil {
		t.Fatalf("right password: %v", err)
	}
	feedIs := func(what string, mode bridge.FeedMode, poll time.Duration) {
		t.Helper()
		f := syncer.Feeds("alice")
		if len(f) != 1 || f[0].Mode != mode || f[0].PollInterval != poll || f[0].Policy.Mode != bridge.DeleteAfterSync || f[0].Account.Password != "right" {
			t.Errorf("%s: feeds %+v, want mode %s, poll %v, after_sync, the login's password", what, f, mode, poll)
		}
	}
	feedIs("after login", bridge.ModeShadow, time.Hour)

	opts.Config = parseCfg(t, dir, "users: [{name: alice, overrides: {legacy: {mode: serve, poll_interval: 1h}}}, {name: bob, overrides: {legacy: {mode: serve}}}]\n")
	s2, ch, err := s.Reload(ctx, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ch) != "{[] [alice] []}" {
		t.Errorf("changes %+v, want alice changed only (bob's polls start at his login)", ch)
	}
	feedIs("after the reload", bridge.ModeServe, time.Hour)
	if syncer.Has("bob") {
		t.Errorf("bob, a passthrough user, polls before logging in")
	}
	// The same config again changes nothing.
	if _, ch, err := s2.Reload(ctx, opts, []string{"alice"}); err != nil || fmt.Sprint(ch) != "{[] [] []}" {
		t.Errorf("reload of the same config: %+v, %v", ch, err)
	}

	opts.Config = parseCfg(t, dir, "users: [{name: bob, overrides: {legacy: {mode: serve}}}]\n")
	_, ch, err = s2.Reload(ctx, opts, []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Removed, []string{"alice"}) || syncer.Has("alice") {
		t.Errorf("changes %+v, alice polls %v: want alice removed", ch, syncer.Has("alice"))
	}
}
