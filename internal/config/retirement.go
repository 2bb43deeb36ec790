package config

import (
	"net"
	"slices"
	"sort"
	"time"
)

// The keys of the retirement path: a source's mode (serve or shadow),
// per-user overrides of source settings, the readiness quiet period, and
// the admin token that guards the status page off loopback.

var sourceModes = []string{"serve", "shadow"}

// Override changes settings of one source for one user
// (users[].overrides.<source>). A key left out keeps the source's value.
type Override struct {
	Mode         string        `yaml:"mode"`          // serve | shadow
	DeletePolicy string        `yaml:"delete_policy"` // keep | after_days | on_expunge | after_sync
	DeleteAfter  time.Duration `yaml:"delete_after"`
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Readiness tunes the readiness verdicts of the status page.
type Readiness struct {
	// QuietPeriod is how long after another client took mail off the
	// host a user is not ready (default 168h, 7 days).
	QuietPeriod time.Duration `yaml:"quiet_period"`
}

// FeedSettings are the settings one user's feed from one source polls
// with: the source's, changed by the user's override.
type FeedSettings struct {
	Mode             string
	DeletePolicy     string
	DeleteAfter      time.Duration
	PollInterval     time.Duration
	IdlePollInterval time.Duration
}

// Feed returns the settings of user's feed from source s, with the user's
// override of s applied (u may be the zero User: no override).
func (u User) Feed(s Source) FeedSettings {
	f := FeedSettings{Mode: s.Mode, DeletePolicy: s.DeletePolicy, DeleteAfter: s.DeleteAfter,
		PollInterval: s.PollInterval, IdlePollInterval: s.IdlePollInterval}
	if f.Mode == "" {
		f.Mode = defaultSourceMode
	}
	o, ok := u.Overrides[s.Name]
	if !ok {
		return f
	}
	if o.Mode != "" {
		f.Mode = o.Mode
	}
	if o.DeletePolicy != "" {
		f.DeletePolicy = o.DeletePolicy
		f.DeleteAfter = o.DeleteAfter
	}
	if o.PollInterval > 0 {
		f.PollInterval = o.PollInterval
		if f.IdlePollInterval > f.PollInterval {
			f.IdlePollInterval = f.PollInterval
		}
	}
	return f
}

// SourcesOf returns the names of the sources that feed u: its sources, or
// for a user listed without sources (a passthrough user with overrides
// only) every pop3 passthrough source, in config order.
func (c *Config) SourcesOf(u User) []string {
	if len(u.Sources) > 0 {
		return u.Sources
	}
	var out []string
	for _, s := range c.Sources {
		if s.Type == "pop3" && s.Auth == "passthrough" {
			out = append(out, s.Name)
		}
	}
	return out
}

// overridesOnly: u is listed without sources, only for overrides of the
// passthrough sources that any user of their hosts may log in to.
func overridesOnly(u *User, sources map[string]*Source) bool {
	return len(u.Sources) == 0 && len(u.Overrides) > 0 && hasPassthrough(sources)
}

func hasPassthrough(sources map[string]*Source) bool {
	for _, s := range sources {
		if s.Type == "pop3" && s.Auth == "passthrough" {
			return true
		}
	}
	return false
}

// checkRetirement checks the keys of the retirement path.
func (p *parser) checkRetirement(c *Config, sources map[string]*Source) {
	for i := range c.Sources {
		s := &c.Sources[i]
		p.oneOf(p.elem("sources", i)+".mode", s.Mode, sourceModes)
	}
	p.positiveDuration("readiness.quiet_period", c.Readiness.QuietPeriod)

	if c.Admin.TokenFile != "" {
		c.Admin.TokenFile = p.path(c.Admin.TokenFile)
		if v, err := readSecretFile(c.Admin.TokenFile); err != nil {
			p.errorf("admin.token_file", "%v", err)
		} else if len(v) < 16 {
			p.errorf("admin.token_file", "the token in %s is %d characters; use at least 16 (e.g. openssl rand -hex 32)", c.Admin.TokenFile, len(v))
		} else {
			c.Admin.Token = Secret(v)
		}
	} else if _, _, err := net.SplitHostPort(c.Admin.Listen); err == nil && !isLoopback(c.Admin.Listen) {
		p.errorf("admin.token_file", "required: admin.listen %q is not a loopback address, and /status shows every user to whoever reaches it", c.Admin.Listen)
	}

	sourcesComplete := len(p.dropped["sources"]) == 0 && !p.isBad("sources")
	for i := range c.Users {
		u := &c.Users[i]
		key := p.elem("users", i)
		if overridesOnly(u, sources) && u.PasswordHash != "" {
			p.errorf(key+".password_hash", "a user without sources logs in at the passthrough POP3 hosts; list the user's sources to give a password here")
		}
		names := make([]string, 0, len(u.Overrides))
		for name := range u.Overrides {
			names = append(names, name)
		}
		sort.Strings(names)
		own := c.SourcesOf(*u)
		for _, name := range names {
			o := u.Overrides[name]
			k := key + ".overrides." + name
			s, ok := sources[name]
			switch {
			case !ok:
				if sourcesComplete {
					p.errorf(k, "unknown source %s", quoteShort(name))
				}
				continue
			case !slices.Contains(own, name):
				p.errorf(k, "source %q does not feed this user (users%s.sources)", name, key[len("users"):])
				continue
			}
			if p.has(k + ".mode") {
				p.oneOf(k+".mode", o.Mode, sourceModes)
			}
			if p.has(k + ".poll_interval") {
				p.positiveDuration(k+".poll_interval", o.PollInterval)
			}
			policy := s.DeletePolicy
			if p.has(k + ".delete_policy") {
				if !p.oneOf(k+".delete_policy", o.DeletePolicy, deletePolicies) {
					continue
				}
				policy = o.DeletePolicy
			}
			switch {
			case policy == "after_days" && p.has(k+".delete_policy"):
				if !p.has(k + ".delete_after") {
					p.errorf(k+".delete_after", "required with delete_policy after_days")
				} else {
					p.positiveDuration(k+".delete_after", o.DeleteAfter)
				}
			case p.has(k + ".delete_after"):
				if !p.has(k + ".delete_policy") {
					p.errorf(k+".delete_after", "set delete_policy after_days with it in the override")
				} else {
					p.warnf(k+".delete_after", "ignored: delete_policy is %q, not after_days", policy)
				}
			}
		}
	}
}
