package main

import (
	"context"
	"sync"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
)

// storeLimits turns the config's caps and quotas into the store's
// options. The caps apply at a restart; the quotas follow the running
// config (current), so a SIGHUP that changes users[].quota applies it.
func storeLimits(cfg *config.Config, o *bridge.Options, current func() *config.Config) {
	o.MaxKeywordsPerMailbox = cfg.IMAP.MaxKeywordsPerMailbox
	o.MaxMailboxesPerUser = cfg.IMAP.MaxMailboxesPerUser
	var (
		mu     sync.Mutex
		seen   *config.Config
		quotas map[string]bridge.Quota
	)
	o.Quota = func(user string) bridge.Quota {
		c := current()
		if c == nil {
			c = cfg
		}
		mu.Lock()
		defer mu.Unlock()
		if c != seen {
			seen, quotas = c, make(map[string]bridge.Quota)
			for _, u := range c.Users {
				if u.Quota.Bytes > 0 || u.Quota.Messages > 0 {
					quotas[u.Name] = bridge.Quota{Bytes: u.Quota.Bytes, Messages: u.Quota.Messages}
				}
			}
		}
		return quotas[user]
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
