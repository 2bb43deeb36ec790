package config

import (
	"net"
	"time"
)

// Defaults. Every default of the config file is set here: a key that is
// absent (or null) takes the value below; a key that is present is
// validated as given, so "max_connections: 0" is an error, not a default.
const (
	defaultIMAPListen        = "127.0.0.1:1143"
	defaultAdminListen       = "127.0.0.1:9154"
	defaultMaxConnections    = 1000
	defaultMaxConnsPerUser   = 50
	defaultMaxConnsPerAddr   = 100 // a tenth of max_connections; an office behind NAT
	defaultAppendLimit       = 50 << 20
	defaultMaxKeywords       = 256  // bridge.DefaultMaxKeywordsPerMailbox
	defaultMaxMailboxes      = 1000 // bridge.DefaultMaxMailboxesPerUser
	defaultLoginTimeout      = time.Minute
	defaultIdleTimeout       = 30 * time.Minute // RFC 3501 section 5.4: at least 30 minutes
	maxUsefulIdleTimeout     = 35 * time.Minute // go-imap closes a silent session then, without a word
	defaultMboxPollInterval  = 5 * time.Second
	defaultPOP3PollInterval  = 60 * time.Second
	defaultIdlePollInterval  = 15 * time.Second // or poll_interval, if shorter
	defaultPOP3Timeout       = 30 * time.Second
	defaultMboxLock          = "fcntl"
	defaultPOP3Auth          = "passthrough"
	defaultDeletePolicy      = "keep"
	defaultSourceMode        = "serve"
	defaultQuietPeriod       = 7 * 24 * time.Hour
	defaultDataDir           = "./data"
	defaultLogLevel          = "info"
	defaultLogFormat         = "text"
	implicitTLSPort          = "995" // pop3 tls defaults to implicit on this port, starttls elsewhere
	minRecommendedBcryptCost = 10
)

// keyLookup tells applyDefaults which keys the file sets.
type keyLookup interface {
	// has reports whether the file sets key to something other than null.
	has(key string) bool
	// elem returns the key of the i-th decoded element of the list at key.
	elem(key string, i int) string
}

func applyDefaults(c *Config, keys keyLookup) {
	has := keys.has
	setDefault(has, "data_dir", &c.DataDir, defaultDataDir)
	setDefault(has, "log.level", &c.Log.Level, defaultLogLevel)
	setDefault(has, "log.format", &c.Log.Format, defaultLogFormat)
	setDefault(has, "imap.listen", &c.IMAP.Listen, defaultIMAPListen)
	setDefault(has, "imap.max_connections", &c.IMAP.MaxConnections, defaultMaxConnections)
	setDefault(has, "imap.max_connections_per_user", &c.IMAP.MaxConnectionsPerUser, defaultMaxConnsPerUser)
	setDefault(has, "imap.max_connections_per_address", &c.IMAP.MaxConnectionsPerAddress, defaultMaxConnsPerAddr)
	setDefault(has, "imap.append_limit", &c.IMAP.AppendLimit, defaultAppendLimit)
	setDefault(has, "imap.login_timeout", &c.IMAP.LoginTimeout, defaultLoginTimeout)
	setDefault(has, "imap.idle_timeout", &c.IMAP.IdleTimeout, defaultIdleTimeout)
	setDefault(has, "imap.max_keywords_per_mailbox", &c.IMAP.MaxKeywordsPerMailbox, defaultMaxKeywords)
	setDefault(has, "imap.max_mailboxes_per_user", &c.IMAP.MaxMailboxesPerUser, defaultMaxMailboxes)
	setDefault(has, "admin.listen", &c.Admin.Listen, defaultAdminListen)
	setDefault(has, "readiness.quiet_period", &c.Readiness.QuietPeriod, defaultQuietPeriod)
	for i := range c.Sources {
		s, key := &c.Sources[i], keys.elem("sources", i)+"."
		setDefault(has, key+"delete_policy", &s.DeletePolicy, defaultDeletePolicy)
		setDefault(has, key+"mode", &s.Mode, defaultSourceMode)
		switch s.Type {
		case "mbox":
			setDefault(has, key+"poll_interval", &s.PollInterval, defaultMboxPollInterval)
			setDefault(has, key+"lock", &s.Lock, []string{defaultMboxLock})
		case "pop3":
			setDefault(has, key+"poll_interval", &s.PollInterval, defaultPOP3PollInterval)
			setDefault(has, key+"timeout", &s.Timeout, defaultPOP3Timeout)
			setDefault(has, key+"auth", &s.Auth, defaultPOP3Auth)
			tlsMode := "starttls"
			if _, port, err := net.SplitHostPort(s.Address); err == nil && port == implicitTLSPort {
				tlsMode = "implicit"
			}
			setDefault(has, key+"tls", &s.TLS, tlsMode)
		default:
			continue
		}
		idle := defaultIdlePollInterval
		if s.PollInterval > 0 && s.PollInterval < idle {
			idle = s.PollInterval
		}
		setDefault(has, key+"idle_poll_interval", &s.IdlePollInterval, idle)
	}
	// users[].source_user defaults to users[].name; see checkUser.
}

func setDefault[T any](has func(string) bool, path string, field *T, value T) {
	if !has(path) {
		*field = value
	}
}
