package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
	"github.com/imapbridge/imapbridge/internal/config"
)

// storeLimits turns the config's caps and quotas into the store's options.
func storeLimits(cfg *config.Config, o *bridge.Options) {
	o.MaxKeywordsPerMailbox = cfg.IMAP.MaxKeywordsPerMailbox
	o.MaxMailboxesPerUser = cfg.IMAP.MaxMailboxesPerUser
	quotas := make(map[string]bridge.Quota)
	for _, u := range cfg.Users {
		if u.Quota.Bytes > 0 || u.Quota.Messages > 0 {
			quotas[u.Name] = bridge.Quota{Bytes: u.Quota.Bytes, Messages: u.Quota.Messages}
		}
	}
	if len(quotas) > 0 {
		o.Quota = func(user string) bridge.Quota { return quotas[user] }
	}
}

// startReindex rewrites, in the background, the ingest index of mail
// stored by an older version (bridge.Reindex). Until it is done the IMAP
// front parses those messages itself, so nothing waits for it. Phase 3
// of the shutdown stops it, before the store closes.
func (a *app) startReindex() {
	ctx, cancel := context.WithCancel(context.Background())
	a.bgCancel = cancel
	a.bgWG.Add(1)
	go func() {
		defer a.bgWG.Done()
		start := time.Now()
		n, err := a.bridge.Reindex(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("reindex of older mail stopped", "rewritten", n, "err", err)
		case n > 0:
			a.log.Info("reindexed mail stored by an older version", "messages", n, "took", time.Since(start).Round(time.Millisecond))
		}
	}()
}

// stopBackground cancels the background work and waits for it (or ctx).
func (a *app) stopBackground(ctx context.Context) error {
	if a.bgCancel != nil {
		a.bgCancel()
	}
	return waitCtx(ctx, &a.bgWG)
}

// loginRecorder returns the IMAP front's hooks that tell the store of
// logins and of the clients users use (the status page's last_login and
// clients). A failure to record is logged, never shown to the client.
func loginRecorder(b *bridge.Bridge, logger *slog.Logger) (func(string, net.Addr, time.Time), func(string, imapfront.ClientID, time.Time)) {
	user := func(name string) (*bridge.User, context.Context, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		u, err := b.User(ctx, name)
		if err != nil {
			cancel()
			logger.Warn("record login: no such user", "user", imapfront.Clip(name), "err", err)
			return nil, nil, nil
		}
		return u, ctx, cancel
	}
	loggedIn := func(name string, _ net.Addr, at time.Time) {
		u, ctx, cancel := user(name)
		if u == nil {
			return
		}
		defer cancel()
		if err := u.RecordLogin(ctx, at); err != nil {
			logger.Warn("record login", "user", imapfront.Clip(name), "err", err)
		}
	}
	clientSeen := func(name string, id imapfront.ClientID, at time.Time) {
		u, ctx, cancel := user(name)
		if u == nil {
			return
		}
		defer cancel()
		c := bridge.ClientInfo{Name: id.Name, Version: id.Version, OS: id.Fields["os"], Vendor: id.Fields["vendor"], LastSeen: at}
		if err := u.RecordClient(ctx, c); err != nil {
			logger.Warn("record client", "user", imapfront.Clip(name), "err", err)
		}
	}
	return loggedIn, clientSeen
}
