package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/login"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

// startLMTP opens lmtp.listen and serves LMTP there (nothing when it is
// ""). The listener is closed in the first shutdown phase, with the
// others; the sessions are drained in the second.
func (a *app) startLMTP(cfg *config.Config) error {
	if cfg.LMTP.Listen == "" {
		return nil
	}
	srv, err := lmtpfront.New(lmtpfront.Options{
		Hostname:       cfg.LMTP.Hostname,
		Lookup:         lmtpLookup(cfg, a.live.cfg.Load, a.bridge),
		Bridge:         a.bridge,
		MaxMessageSize: cfg.LMTP.MaxMessageSize,
		MaxRecipients:  cfg.LMTP.MaxRecipients,
		MaxConnections: cfg.LMTP.MaxConnections,
		CommandTimeout: cfg.LMTP.Timeout,
		Logger:         a.log.With(slog.String("listener", "lmtp")),
		Metrics:        a.metrics.lmtpHooks(),
	})
	if err != nil {
		return err
	}
	ln, err := lmtpfront.Listen(cfg.LMTP.Listen, cfg.LMTP.FileMode)
	if err != nil {
		return fmt.Errorf("lmtp listen %s: %w", cfg.LMTP.Listen, err)
	}
	// Closed twice: by the first shutdown phase, and by lmtpfront's
	// Shutdown (go-smtp closes its listeners); the second is no error.
	ln = &closeOnce{Listener: ln}
	a.lmtp, a.lmtpAddr = srv, ln.Addr()
	a.listeners = append(a.listeners, ln)
	a.acceptWG.Add(1)
	a.serve("lmtp", func() error {
		defer a.acceptWG.Done()
		return srv.Serve(ln)
	})
	a.log.Info("lmtp listening", "addr", ln.Addr().String())
	return nil
}

// closeOnce is a listener whose Close after the first returns nil.
type closeOnce struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *closeOnce) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// lmtpLookup is the LMTP recipient lookup (lmtpfront asks with the whole
// address first, then its local part). A recipient is:
//
//   - a configured user (users[].name, taken in lower case with
//     login.fold_case), with or without sources;
//   - with a pop3 source of auth passthrough, a user not in the config
//     whose mailbox the bridge already has: one who logged in before, so
//     the host vouched for the name once. A name the bridge has never seen
//     is refused (550 5.1.1): the bridge cannot ask the host whether a
//     user exists without a password, and taking mail for any name would
//     make every typo a mailbox.
//
// It follows the running config (current, after a SIGHUP) and falls back
// to cfg before the first one is stored.
func lmtpLookup(cfg *config.Config, current func() *config.Config, b *bridge.Bridge) func(ctx context.Context, name string) (*bridge.User, bool, error) {
	var (
		mu          sync.Mutex
		seen        *config.Config
		users       map[string]bool
		passthrough bool
		fold        bool
	)
	load := func() {
		c := current()
		if c == nil {
			c = cfg
		}
		mu.Lock()
		defer mu.Unlock()
		if c == seen {
			return
		}
		seen = c
		users = make(map[string]bool, len(c.Users))
		for _, u := range c.Users {
			users[u.Name] = true
		}
		passthrough = slices.ContainsFunc(c.Sources, func(s config.Source) bool { return s.Type == "pop3" && s.Auth == "passthrough" })
		fold = c.Login.FoldCase
	}
	known := func(name string) (configured, viaHost, folds bool) {
		load()
		mu.Lock()
		defer mu.Unlock()
		return users[name], passthrough, fold
	}
	return func(ctx context.Context, name string) (*bridge.User, bool, error) {
		if _, _, fold := known(""); fold {
			name = strings.ToLower(name)
		}
		if login.CheckName(name) != nil || len(name) > config.MaxUserNameLength {
			return nil, false, nil
		}
		if configured, passthrough, _ := known(name); !configured {
			if !passthrough {
				return nil, false, nil
			}
			known, err := storeHasUser(ctx, b, name)
			if err != nil || !known {
				return nil, false, err
			}
		}
		u, err := b.User(ctx, name)
		if err != nil {
			return nil, false, fmt.Errorf("lmtp: user %q: %w", name, err)
		}
		return u, true, nil
	}
}

// storeHasUser reports whether the store holds a user called name.
func storeHasUser(ctx context.Context, b *bridge.Bridge, name string) (bool, error) {
	snap, err := b.ReadSnapshot(ctx)
	if err != nil {
		return false, fmt.Errorf("lmtp: look up %q: %w", name, err)
	}
	defer snap.Close()
	names, err := snap.Users(ctx)
	if err != nil {
		return false, fmt.Errorf("lmtp: look up %q: %w", name, err)
	}
	_, found := slices.BinarySearch(names, name)
	return found, nil
}
