package login

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
)

// This file is the login side of a config reload (SIGHUP): a Service for
// the new config that keeps the failure counts, and the polls brought in
// line with it user by user.

// feedOf is one feed of a user: the source, the account, and the settings
// the config gives the user for that source (its override applied).
func feedOf(src bridge.Source, acct bridge.Account, fs config.FeedSettings) bridge.Feed {
	mode := bridge.ModeServe
	if fs.Mode == "shadow" {
		mode = bridge.ModeShadow
	}
	return bridge.Feed{
		Source:           src,
		Account:          acct,
		Policy:           bridge.DeletePolicy{Mode: bridge.DeleteMode(fs.DeletePolicy), After: fs.DeleteAfter},
		Mode:             mode,
		PollInterval:     fs.PollInterval,
		IdlePollInterval: fs.IdlePollInterval,
	}
}

// Changes says what a reload did to the users' polls.
type Changes struct {
	Added   []string // polls started (new users whose sources need no login)
	Changed []string // polls given new settings, sources or credentials
	Removed []string // users taken out of the config: polls stopped
}

// Reload returns the Service of opts (the new config), which keeps s's
// failure limiter, and makes the syncer's polls what the new config says:
// users added get polls (passthrough users at their next login), users
// taken out of the config (or who can no longer log in) lose theirs
// (their mail stays in the store),
// and users whose feeds differ (settings, overrides, sources, static
// credentials) are updated in place; nobody else is touched. known lists
// users that may have polls beyond those of the old config (passthrough
// logins). The caller ends the sessions of Changes.Removed.
func (s *Service) Reload(ctx context.Context, opts Options, known []string) (*Service, Changes, error) {
	ns := New(opts)
	ns.limiter = s.limiter
	var ch Changes
	names := append([]string(nil), known...)
	for _, u := range s.opts.Config.Users {
		names = append(names, u.Name)
	}
	for _, u := range opts.Config.Users {
		names = append(names, u.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var errs []error
	for _, name := range names {
		_, was := s.users[name]
		_, is := ns.users[name]
		if was && !is {
			// Taken out of users: its polls stop and its sessions end,
			// even where a passthrough host would still take a login.
			if err := opts.Syncer.Remove(ctx, name); err != nil {
				errs = append(errs, fmt.Errorf("reload: stop the polls of %q: %w", name, err))
			}
			ch.Removed = append(ch.Removed, name)
			continue
		}
		what, err := ns.reloadUser(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch what {
		case "added":
			ch.Added = append(ch.Added, name)
		case "changed":
			ch.Changed = append(ch.Changed, name)
		case "removed":
			ch.Removed = append(ch.Removed, name)
		}
	}
	return ns, ch, errors.Join(errs...)
}

// reloadUser brings one user's polls in line with s's config.
func (s *Service) reloadUser(ctx context.Context, name string) (string, error) {
	syncer := s.opts.Syncer
	uc, listed := s.users[name]
	polling := syncer.Has(name)
	if !listed && len(s.passthrough) == 0 {
		// Neither listed nor a user of a passthrough host: no login.
		if !polling {
			return "", nil
		}
		if err := syncer.Remove(ctx, name); err != nil {
			return "", fmt.Errorf("reload: stop the polls of %q: %w", name, err)
		}
		return "removed", nil
	}
	if !polling && !s.pollsWithoutLogin(uc) {
		return "", nil // a passthrough user's polls start at login
	}
	password := ""
	if !s.pollsWithoutLogin(uc) {
		// The password of the last passthrough login, held by the polls.
		for _, f := range syncer.Feeds(name) {
			if isPassthrough(s.sources[f.Source.Name()]) && f.Account.Password != "" {
				password = f.Account.Password
				break
			}
		}
		if password == "" {
			// Polls that never had a login's password: they stop and
			// start again at the next login.
			if err := syncer.Remove(ctx, name); err != nil {
				return "", fmt.Errorf("reload: stop the polls of %q: %w", name, err)
			}
			return "changed", nil
		}
	}
	feeds := s.feeds(name, uc, password)
	if polling && sameFeeds(syncer.Feeds(name), feeds) {
		return "", nil
	}
	u, err := s.opts.Bridge.User(ctx, name)
	if err != nil {
		return "", fmt.Errorf("reload: user %q: %w", name, err)
	}
	if err := syncer.Update(ctx, u, feeds); err != nil {
		return "", fmt.Errorf("reload: update the polls of %q: %w", name, err)
	}
	if !polling {
		return "added", nil
	}
	return "changed", nil
}

// sameFeeds compares the feeds a user's loops poll (defaults filled in by
// the syncer) with feeds built from the config.
func sameFeeds(running, want []bridge.Feed) bool {
	if len(running) != len(want) {
		return false
	}
	for i := range want {
		a, b := running[i], normal(want[i])
		a.Timeout, b.Timeout = 0, 0
		if a != b {
			return false
		}
	}
	return true
}

// normal fills in a feed's defaults as the syncer does.
func normal(f bridge.Feed) bridge.Feed {
	if f.PollInterval <= 0 {
		f.PollInterval = time.Minute
	}
	if f.IdlePollInterval <= 0 || f.IdlePollInterval > f.PollInterval {
		f.IdlePollInterval = f.PollInterval
	}
	if f.Mode == "" {
		f.Mode = bridge.ModeServe
	}
	return f
}
