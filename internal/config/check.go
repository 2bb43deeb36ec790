package config

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Validation.

var (
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"text", "json"}
	sourceTypes    = []string{"mbox", "pop3"}
	mboxLocks      = []string{"dotlock", "fcntl"}
	pop3TLSModes   = []string{"implicit", "starttls", "none"}
	pop3AuthModes  = []string{"passthrough", "static"}
	deletePolicies = []string{"keep", "after_days", "on_expunge", "after_sync"}

	mboxOnlyKeys = []string{"path", "lock"}
	pop3OnlyKeys = []string{"address", "tls", "tls_skip_verify", "auth", "timeout"}

	reSourceName  = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)
	reUserName    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._@+-]*$`)
	rePlaceholder = regexp.MustCompile(`\{[^{}]*\}`)
	reBcrypt      = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)
)

func (p *parser) check(c *Config) {
	if c.DataDir == "" {
		p.errorf("data_dir", "required")
	} else {
		c.DataDir = p.path(c.DataDir)
	}
	p.oneOf("log.level", c.Log.Level, logLevels)
	p.oneOf("log.format", c.Log.Format, logFormats)
	p.checkIMAP(&c.IMAP)
	if c.Admin.Listen != "" {
		p.address("admin.listen", c.Admin.Listen)
	}
	if c.Secrets.KeyFile != "" {
		c.Secrets.KeyFile = p.path(c.Secrets.KeyFile)
	}
	if v, ok := p.env(envSecretKey); ok {
		c.Secrets.Key = Secret(v)
	} else if c.Secrets.KeyFile != "" {
		if v, err := readSecretFile(c.Secrets.KeyFile); err != nil {
			p.errorf("secrets.key_file", "%v", err)
		} else {
			c.Secrets.Key = Secret(v)
		}
	}

	p.checkLMTP(&c.LMTP)
	p.checkPOP3(&c.POP3, &c.IMAP)
	if len(c.Sources) == 0 && len(p.dropped["sources"]) == 0 && !c.LMTP.deliveryOnly() {
		p.errorf("sources", "at least one source is required (or lmtp.listen, for mailboxes fed only by delivery)")
	}
	sources := map[string]*Source{}
	usersOf := map[string]int{}
	for i := range c.Sources {
		s := &c.Sources[i]
		key := p.elem("sources", i)
		p.checkSource(key, s)
		if s.Name == "" {
			continue
		}
		if _, dup := sources[s.Name]; dup {
			p.errorf(key+".name", "duplicate source name %q", s.Name)
			continue
		}
		sources[s.Name] = s
	}

	passthrough := slices.ContainsFunc(c.Sources, func(s Source) bool { return s.Type == "pop3" && s.Auth == "passthrough" })
	if len(c.Users) == 0 && len(p.dropped["users"]) == 0 && !passthrough {
		p.errorf("users", "at least one user is required (or a pop3 source with auth passthrough, whose users log in with their POP3 password)")
	}
	users := map[string]bool{}
	envUsers := map[string]string{}
	for i := range c.Users {
		u := &c.Users[i]
		key := p.elem("users", i)
		orig := u.Name
		if c.Login.FoldCase {
			u.Name = strings.ToLower(u.Name)
		}
		p.checkUser(key, u, sources, c.LMTP.deliveryOnly())
		if u.Name == "" {
			continue
		}
		if users[u.Name] {
			if orig != u.Name {
				p.errorf(key+".name", "duplicate user name %q (login.fold_case takes it as %q)", orig, u.Name)
			} else {
				p.errorf(key+".name", "duplicate user name %q", u.Name)
			}
			continue
		}
		users[u.Name] = true
		if u.SourceOAuth2 != nil {
			p.checkOAuth2(key+".source_oauth2", u.SourceOAuth2, c.Secrets.Key != "")
		}
		for _, name := range slices.Compact(slices.Sorted(slices.Values(u.Sources))) {
			usersOf[name]++
		}
		// Two names that map to one environment variable would read each
		// other's secrets; refuse that when such a variable is in use.
		en := envName(u.Name)
		if other, clash := envUsers[en]; clash && p.envInUse(en) {
			p.errorf(key+".name", "user %q and user %q share the environment variables *_%s; rename one", u.Name, other, en)
		}
		envUsers[en] = u.Name
	}

	p.checkRetirement(c, sources)

	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Type == "mbox" && s.Path != "" && usersOf[s.Name] > 1 && !strings.Contains(s.Path, "{user}") {
			p.warnf(p.elem("sources", i)+".path", "has no {user}, so its %d users all read the same file", usersOf[s.Name])
		}
	}
}

func (p *parser) checkIMAP(m *IMAP) {
	if m.Listen == "" && m.TLSListen == "" {
		p.errorf("imap", "listen and tls_listen are both empty; set at least one")
	}
	if m.Listen != "" && p.address("imap.listen", m.Listen) && !isLoopback(m.Listen) {
		switch {
		case m.AllowInsecureAuth:
			p.warnf("imap.allow_insecure_auth", "passwords may cross the network in cleartext: imap.listen %q is not a loopback address", m.Listen)
		case m.TLS.CertFile == "" && m.TLS.KeyFile == "":
			p.warnf("imap.listen", "%q offers no STARTTLS (no imap.tls) and allow_insecure_auth is false, so no client can log in there", m.Listen)
		}
	}
	if m.TLSListen != "" {
		p.address("imap.tls_listen", m.TLSListen)
	}
	cert, key := m.TLS.CertFile, m.TLS.KeyFile
	switch {
	case cert == "" && key == "":
		if m.TLSListen != "" {
			p.errorf("imap.tls", "cert_file and key_file are required with tls_listen")
		}
	case cert == "":
		p.errorf("imap.tls.cert_file", "required with key_file")
	case key == "":
		p.errorf("imap.tls.key_file", "required with cert_file")
	default:
		m.TLS.CertFile, m.TLS.KeyFile = p.path(cert), p.path(key)
		certErr := checkRegularFile(m.TLS.CertFile)
		if certErr != nil {
			p.errorf("imap.tls.cert_file", "%v", certErr)
		}
		keyErr := checkRegularFile(m.TLS.KeyFile)
		if keyErr != nil {
			p.errorf("imap.tls.key_file", "%v", keyErr)
		}
		if certErr == nil && keyErr == nil {
			if _, err := tls.LoadX509KeyPair(m.TLS.CertFile, m.TLS.KeyFile); err != nil {
				p.errorf("imap.tls", "%v", err)
			}
		}
	}
	p.positive("imap.max_connections", int64(m.MaxConnections), math.MaxInt32)
	p.positive("imap.max_connections_per_user", int64(m.MaxConnectionsPerUser), math.MaxInt32)
	p.positive("imap.max_connections_per_address", int64(m.MaxConnectionsPerAddress), math.MaxInt32)
	if p.has("imap.max_connections_per_address") && m.MaxConnectionsPerAddress > m.MaxConnections && m.MaxConnections > 0 {
		p.warnf("imap.max_connections_per_address", "%d is more than max_connections %d, so one address can take every connection", m.MaxConnectionsPerAddress, m.MaxConnections)
	}
	p.positive("imap.append_limit", m.AppendLimit, math.MaxUint32)
	p.positive("imap.max_keywords_per_mailbox", int64(m.MaxKeywordsPerMailbox), 100000)
	p.positive("imap.max_mailboxes_per_user", int64(m.MaxMailboxesPerUser), 1000000)
	p.positiveDuration("imap.login_timeout", m.LoginTimeout)
	if p.positiveDuration("imap.idle_timeout", m.IdleTimeout) {
		switch {
		case m.IdleTimeout < defaultIdleTimeout:
			// Allowed (a NAT or load balancer may drop quiet connections
			// sooner), but clients are entitled to 30 minutes.
			p.warnf("imap.idle_timeout", "%v is below the 30 minutes RFC 3501 requires: clients that send NOOP every 29 minutes to stay connected are logged out", m.IdleTimeout)
		case m.IdleTimeout > maxUsefulIdleTimeout:
			p.warnf("imap.idle_timeout", "%v has no effect beyond 35m: the IMAP library closes a connection silent for 35 minutes", m.IdleTimeout)
		}
	}
}

func (p *parser) checkSource(key string, s *Source) {
	if s.Name == "" {
		p.errorf(key+".name", "required")
	} else if !reSourceName.MatchString(s.Name) {
		p.errorf(key+".name", "invalid name %s (use up to 64 letters, digits, '.', '_' and '-')", quoteShort(s.Name))
	}
	var other []string
	switch s.Type {
	case "":
		p.errorf(key+".type", "required (%s)", orList(sourceTypes))
		return
	case "mbox":
		other = pop3OnlyKeys
		if s.Path == "" {
			p.errorf(key+".path", "required for mbox sources")
		} else {
			for _, ph := range rePlaceholder.FindAllString(s.Path, -1) {
				if ph != "{user}" {
					p.errorf(key+".path", "unknown placeholder %s (only {user} is supported)", quoteShort(ph))
				}
			}
			s.Path = p.path(s.Path)
		}
		if s.Lock != nil && len(s.Lock) == 0 && len(p.dropped[key+".lock"]) == 0 {
			p.errorf(key+".lock", "must name at least one lock (dotlock, fcntl)")
		}
		for i, l := range s.Lock {
			k := p.elem(key+".lock", i)
			if p.oneOf(k, l, mboxLocks) && slices.Index(s.Lock, l) < i {
				p.errorf(k, "%q listed twice", l)
			}
		}
	case "pop3":
		other = mboxOnlyKeys
		if s.Address == "" {
			p.errorf(key+".address", "required for pop3 sources")
		} else {
			p.address(key+".address", s.Address)
		}
		if p.oneOf(key+".tls", s.TLS, pop3TLSModes) && s.TLS == "none" {
			if s.TLSSkipVerify {
				p.errorf(key+".tls_skip_verify", "only valid with tls implicit or starttls")
			}
			if s.Address != "" && !isLoopback(s.Address) {
				p.warnf(key+".tls", "none: passwords cross the network to %s in cleartext", s.Address)
			}
		} else if s.TLSSkipVerify {
			p.warnf(key+".tls_skip_verify", "the certificate of %s is not verified", s.Address)
		}
		p.oneOf(key+".auth", s.Auth, pop3AuthModes)
		p.positiveDuration(key+".timeout", s.Timeout)
	default:
		p.errorf(key+".type", "invalid value %s (want %s)", quoteShort(s.Type), orList(sourceTypes))
		return
	}
	for _, k := range other {
		if p.index.has(key + "." + k) {
			p.errorf(key+"."+k, "only valid for %s sources", otherType(s.Type))
		}
	}
	p.positiveDuration(key+".poll_interval", s.PollInterval)
	if p.positiveDuration(key+".idle_poll_interval", s.IdlePollInterval) && s.PollInterval > 0 && s.IdlePollInterval > s.PollInterval {
		p.warnf(key+".idle_poll_interval", "%v is longer than poll_interval %v, so IDLE sessions see new mail later than others", s.IdlePollInterval, s.PollInterval)
	}
	p.oneOf(key+".delete_policy", s.DeletePolicy, deletePolicies)
	switch {
	case s.DeletePolicy == "after_days":
		if !p.index.has(key + ".delete_after") {
			p.errorf(key+".delete_after", "required with delete_policy after_days")
		} else {
			p.positiveDuration(key+".delete_after", s.DeleteAfter)
		}
	case p.index.has(key + ".delete_after"):
		p.warnf(key+".delete_after", "ignored: delete_policy is %q, not after_days", s.DeletePolicy)
	}
}

func otherType(t string) string {
	if t == "mbox" {
		return "pop3"
	}
	return "mbox"
}

func (p *parser) checkUser(key string, u *User, sources map[string]*Source, deliveryOnly bool) {
	if u.Name == "" {
		p.errorf(key+".name", "required")
	} else if len(u.Name) > MaxUserNameLength {
		p.errorf(key+".name", "longer than %d bytes", MaxUserNameLength)
	} else if !reUserName.MatchString(u.Name) {
		p.errorf(key+".name", "invalid name %s (use letters, digits, '.', '_', '@', '+' and '-')", quoteShort(u.Name))
	}
	if u.SourceUser == "" {
		u.SourceUser = u.Name
	}
	if u.Quota.Bytes < 0 {
		p.errorf(key+".quota.bytes", "must not be negative (0 or absent is no limit)")
	}
	if u.Quota.Messages < 0 {
		p.errorf(key+".quota.messages", "must not be negative (0 or absent is no limit)")
	}

	// A source that failed to decode is not in sources: do not call the
	// names that refer to it unknown.
	sourcesComplete := len(p.dropped["sources"]) == 0 && !p.isBad("sources")
	needHash, needPassword := false, ""
	if p.index.has(key + ".accounts") {
		p.checkAccounts(key, u, sources, sourcesComplete)
		needHash = true
	} else if len(u.Sources) == 0 && !overridesOnly(u, sources) {
		if len(p.dropped[key+".sources"]) == 0 && !deliveryOnly {
			p.errorf(key+".sources", "at least one source is required (or lmtp.listen, for a mailbox fed only by delivery)")
		}
		needHash = true
	}
	for i, name := range u.Sources {
		k := p.elem(key+".sources", i)
		s, ok := sources[name]
		switch {
		case !ok:
			if sourcesComplete {
				p.errorf(k, "unknown source %s", quoteShort(name))
			}
			needHash = true
		case slices.Index(u.Sources, name) < i:
			p.errorf(k, "source %q listed twice", name)
		case s.Type == "pop3" && s.Auth == "passthrough":
		case s.Type == "pop3" && s.Auth == "static":
			needHash = true
			if needPassword == "" {
				needPassword = name
			}
		default:
			needHash = true
		}
	}

	en := envName(u.Name)
	hashKey, failed := p.secret(key+".password_hash", &u.PasswordHash, key+".password_hash_file", &u.PasswordHashFile, envPasswordHash+en)
	switch {
	case failed:
	case hashKey == "" && needHash:
		p.errorf(key+".password_hash", "required (or password_hash_file, or $%s%s); make one with imapbridge hash-password", envPasswordHash, en)
	case hashKey != "":
		if !reBcrypt.MatchString(string(u.PasswordHash)) {
			p.errorf(hashKey, "not a bcrypt hash; make one with imapbridge hash-password")
		} else if cost, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			p.errorf(hashKey, "not a bcrypt hash; make one with imapbridge hash-password")
		} else if cost < minRecommendedBcryptCost {
			p.warnf(hashKey, "bcrypt cost %d is low; use %d or more", cost, minRecommendedBcryptCost)
		}
	}

	pwKey, failed := p.secret(key+".source_password", &u.SourcePassword, key+".source_password_file", &u.SourcePasswordFile, envSourcePassword+en)
	switch {
	case failed:
	case u.SourceOAuth2 != nil && pwKey != "":
		p.errorf(key+".source_oauth2", "set only one of source_oauth2 and %s", strings.TrimPrefix(pwKey, key+"."))
	case u.SourceOAuth2 != nil && needPassword == "" && !p.isBad(key+".sources"):
		p.warnf(key+".source_oauth2", "ignored: none of the user's sources is a pop3 source with auth static")
	case u.SourceOAuth2 != nil:
	case pwKey == "" && needPassword != "":
		p.errorf(key+".source_password", "required by static-auth source %q (or source_password_file, or $%s%s)", needPassword, envSourcePassword, en)
	case pwKey != "" && needPassword == "" && !p.isBad(key+".sources") && !p.index.has(key+".accounts"):
		p.warnf(pwKey, "ignored: none of the user's sources is a pop3 source with auth static")
	}
	if pwKey == key+".source_password" {
		p.inline = append(p.inline, inlineSecret{pwKey, fmt.Sprintf("source_password_file or $%s%s", envSourcePassword, en)})
	}
}

// path makes a relative path relative to the config file's directory.
func (p *parser) path(name string) string {
	if filepath.IsAbs(name) || p.baseDir == "" {
		return name
	}
	return filepath.Join(p.baseDir, name)
}

func (p *parser) oneOf(key, value string, allowed []string) bool {
	if slices.Contains(allowed, value) {
		return true
	}
	if value == "" {
		p.errorf(key, "empty (want %s)", orList(allowed))
	} else {
		p.errorf(key, "invalid value %s (want %s)", quoteShort(value), orList(allowed))
	}
	return false
}

func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func (p *parser) positive(key string, v, max int64) {
	if v < 1 || v > max {
		p.errorf(key, "must be between 1 and %d", max)
	}
}

func (p *parser) positiveDuration(key string, d time.Duration) bool {
	if d <= 0 {
		p.errorf(key, "must be a positive duration")
		return false
	}
	return true
}

// address checks a host:port listen or dial address.
func (p *parser) address(key, addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.errorf(key, "invalid address %s (want host:port)", quoteShort(addr))
		return false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && !strings.HasSuffix(key, "listen")) {
		p.errorf(key, "invalid port %s", quoteShort(port))
		return false
	}
	return true
}

// isLoopback reports whether a host:port only reaches this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
