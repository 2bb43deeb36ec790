package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/login"
)

// liveConfig is what a SIGHUP may change while the bridge runs: the
// config, the login service made from it, the sources. Reloads are one
// at a time.
type liveConfig struct {
	mu      sync.Mutex // held through a reload
	cfg     atomic.Pointer[config.Config]
	login   atomic.Pointer[login.Service]
	opts    login.Options            // the login options of the running config
	sources map[string]bridge.Source // by name; guarded by mu
	srcCfg  map[string]config.Source // what each source was made from; guarded by mu
}

func (l *liveConfig) start(cfg *config.Config, opts login.Options, svc *login.Service) {
	l.cfg.Store(cfg)
	l.login.Store(svc)
	l.opts = opts
	l.sources = opts.Sources
	l.srcCfg = make(map[string]config.Source)
	for _, s := range cfg.Sources {
		l.srcCfg[s.Name] = s
	}
}

func (l *liveConfig) loginService() *login.Service { return l.login.Load() }

func (l *liveConfig) token() string {
	if c := l.cfg.Load(); c != nil {
		return string(c.Admin.Token)
	}
	return ""
}

func (l *liveConfig) quietPeriod() time.Duration {
	if c := l.cfg.Load(); c != nil {
		return c.Readiness.QuietPeriod
	}
	return bridge.DefaultQuietPeriod
}

// watchReloads reloads the config from path on every SIGHUP until ctx
// ends. (The TLS pair has its own SIGHUP watcher, certReloader.)
func (a *app) watchReloads(ctx context.Context, path string) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				a.reload(ctx, path)
			}
		}
	}()
}

// reload loads path and applies it: users added, removed (their sessions
// get BYE) and changed, source settings, the admin token and the quiet
// period. A file with problems changes nothing; each problem is logged.
// Settings that only a restart applies are logged as such.
func (a *app) reload(ctx context.Context, path string) {
	l := &a.live
	l.mu.Lock()
	defer l.mu.Unlock()
	log := a.log.With("config", path)
	log.Info("config reload: SIGHUP received")
	cfg, warnings, err := config.Load(path)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			for _, p := range cerr.Problems {
				log.Error("config reload: problem", "problem", p)
			}
			log.Error("config reload failed: the running config stays", "problems", len(cerr.Problems))
		} else {
			log.Error("config reload failed: the running config stays", "err", err)
		}
		return
	}
	for _, w := range warnings {
		log.Warn("config warning", "warning", w)
	}
	old := l.cfg.Load()
	for _, key := range restartOnly(old, cfg) {
		log.Warn("config reload: changed, but only a restart applies it", "key", key)
	}
	sources := make(map[string]bridge.Source, len(cfg.Sources))
	srcCfg := make(map[string]config.Source, len(cfg.Sources))
	for _, s := range cfg.Sources {
		was, had := l.srcCfg[s.Name]
		switch {
		case had && sameConnection(was, s):
			sources[s.Name], srcCfg[s.Name] = l.sources[s.Name], s
		case had:
			// The running source object keeps its connection; its poll
			// settings (mode, policy, intervals) still apply live.
			log.Warn("config reload: changed, but only a restart applies it", "key", "sources["+s.Name+"] connection (type, address, tls, auth, timeout, path, lock)")
			sources[s.Name], srcCfg[s.Name] = l.sources[s.Name], was
			for i := range cfg.Sources {
				if cfg.Sources[i].Name == s.Name {
					keepConnection(&cfg.Sources[i], was)
				}
			}
		default:
			src, err := newSource(s, a.log)
			if err != nil {
				log.Error("config reload failed: the running config stays", "err", err)
				return
			}
			sources[s.Name], srcCfg[s.Name] = src, s
			a.metrics.knownSource(s.Name)
		}
	}
	opts := l.opts
	opts.Config, opts.Sources = cfg, sources
	var known []string
	if st, err := a.bridge.Status(ctx, time.Now(), cfg.Readiness.QuietPeriod); err == nil {
		for _, u := range st {
			known = append(known, u.Name)
		}
	} else {
		log.Warn("config reload: could not list the users being polled; passthrough logins keep their polls as they are", "err", err)
	}
	svc, ch, err := l.loginService().Reload(ctx, opts, known)
	// What Reload did stands even when some user failed: the new config
	// is the running one from here on.
	l.cfg.Store(cfg)
	l.login.Store(svc)
	l.opts, l.sources, l.srcCfg = opts, sources, srcCfg
	if err != nil {
		log.Error("config reload: some users' polls could not be changed", "err", err)
	}
	for _, name := range ch.Removed {
		n := 0
		if a.front != nil {
			bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n = a.front.EndUserSessions(bctx, name, "Account removed from the configuration")
			cancel()
		}
		log.Info("config reload: user removed: polling stopped, mail kept", "user", name, "sessions_ended", n)
	}
	for _, name := range ch.Added {
		log.Info("config reload: user added: polling started", "user", name)
	}
	for _, name := range ch.Changed {
		log.Info("config reload: user's polls changed", "user", name)
	}
	log.Info("config reloaded", "added", len(ch.Added), "changed", len(ch.Changed), "removed", len(ch.Removed))
}

// sameConnection: what the source object was made from is unchanged.
func sameConnection(a, b config.Source) bool {
	return a.Type == b.Type && a.Address == b.Address && a.TLS == b.TLS && a.TLSSkipVerify == b.TLSSkipVerify &&
		a.Auth == b.Auth && a.Timeout == b.Timeout && a.Path == b.Path && slices.Equal(a.Lock, b.Lock)
}

func keepConnection(s *config.Source, was config.Source) {
	s.Type, s.Address, s.TLS, s.TLSSkipVerify, s.Auth, s.Timeout, s.Path, s.Lock = was.Type, was.Address, was.TLS, was.TLSSkipVerify, was.Auth, was.Timeout, was.Path, was.Lock
}

// restartOnly names the keys that changed but apply only at a restart.
func restartOnly(old, cfg *config.Config) []string {
	var keys []string
	diff := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	diff("data_dir", old.DataDir, cfg.DataDir)
	diff("log", old.Log, cfg.Log)
	diff("imap.listen", old.IMAP.Listen, cfg.IMAP.Listen)
	diff("imap.tls_listen", old.IMAP.TLSListen, cfg.IMAP.TLSListen)
	diff("imap.tls (file names; SIGHUP reloads the files themselves)", old.IMAP.TLS, cfg.IMAP.TLS)
	o, n := old.IMAP, cfg.IMAP
	o.Listen, o.TLSListen, o.TLS, n.Listen, n.TLSListen, n.TLS = "", "", config.TLSFiles{}, "", "", config.TLSFiles{}
	diff("imap (limits and timeouts)", o, n)
	diff("admin.listen", old.Admin.Listen, cfg.Admin.Listen)
	diff("admin.pprof", old.Admin.Pprof, cfg.Admin.Pprof)
	diff("secrets", old.Secrets.Key, cfg.Secrets.Key)
	return keys
}
