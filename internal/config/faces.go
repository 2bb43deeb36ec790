package config

import (
	"io/fs"
	"math"
	"strconv"
	"strings"
	"time"
)

// The retirement faces: LMTP intake (lmtp) and the bridge's own POP3
// server (pop3). Their types, defaults and checks live here, apart from
// the IMAP and source sections.

// LMTP configures the LMTP intake an MTA delivers to.
type LMTP struct {
	// Listen is "host:port" or "unix:/path"; "" (the default) disables
	// LMTP. A relative socket path is relative to the config file.
	Listen string `yaml:"listen"`
	// SocketMode is the octal mode of a unix socket ("0660"): the MTA's
	// user needs write permission on it. Only with a unix: listen.
	SocketMode string `yaml:"socket_mode"`
	// FileMode is SocketMode parsed; 0 for a TCP listen.
	FileMode fs.FileMode `yaml:"-"`
	// Hostname is the name in the greeting; "" takes the host's name.
	Hostname string `yaml:"hostname"`
	// MaxMessageSize is the largest message accepted, in bytes (SIZE).
	MaxMessageSize int64 `yaml:"max_message_size"`
	// MaxRecipients per transaction.
	MaxRecipients int `yaml:"max_recipients"`
	// MaxConnections open at once.
	MaxConnections int `yaml:"max_connections"`
	// Timeout is how long a command, or the next piece of a message, may
	// take to arrive.
	Timeout time.Duration `yaml:"timeout"`
}

// deliveryOnly: LMTP is on, so a user (or the whole config) may have no
// legacy source: its INBOX is fed by delivery alone.
func (l LMTP) deliveryOnly() bool { return l.Listen != "" }

// SocketPath is the unix socket path of Listen, ok false for TCP.
func (l LMTP) SocketPath() (string, bool) { return strings.CutPrefix(l.Listen, "unix:") }

// POP3 configures the bridge's own POP3 server, for the POP3 clients left
// when the legacy host is switched off. Its certificate is imap.tls.
type POP3 struct {
	// Listen is the plain listener (STLS when imap.tls is set); "" (the
	// default) disables it.
	Listen string `yaml:"listen"`
	// TLSListen is the implicit-TLS listener (":995"); "" disables it.
	TLSListen string `yaml:"tls_listen"`
	// AllowInsecureAuth allows USER/PASS and AUTH without TLS.
	AllowInsecureAuth bool `yaml:"allow_insecure_auth"`
	// Dele is what DELE + QUIT does: "expunge" (from the bridge, IMAP
	// sessions see it) or "keep" (only hidden from POP3).
	Dele                     string        `yaml:"dele"`
	MaxConnections           int           `yaml:"max_connections"`
	MaxConnectionsPerAddress int           `yaml:"max_connections_per_address"`
	MaxConnectionsPerUser    int           `yaml:"max_connections_per_user"`
	LoginTimeout             time.Duration `yaml:"login_timeout"`
	// IdleTimeout: RFC 1939 asks for at least 10 minutes.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Enabled reports whether any POP3 listener is configured.
func (p POP3) Enabled() bool { return p.Listen != "" || p.TLSListen != "" }

const (
	defaultLMTPSocketMode     = "0660"
	defaultLMTPMaxMessageSize = 50 << 20
	defaultLMTPMaxRecipients  = 100
	defaultLMTPMaxConnections = 100
	defaultLMTPTimeout        = 5 * time.Minute
	defaultPOP3Dele           = "expunge"
	defaultPOP3MaxConns       = 1000
	defaultPOP3MaxConnsAddr   = 100
	defaultPOP3MaxConnsUser   = 10
	defaultPOP3LoginTimeout   = time.Minute
	defaultPOP3IdleTimeout    = 10 * time.Minute
	minPOP3IdleTimeout        = 10 * time.Minute // RFC 1939 section 3
)

var pop3DeleModes = []string{"expunge", "keep"}

func applyFaceDefaults(c *Config, has func(string) bool) {
	if _, unix := c.LMTP.SocketPath(); unix {
		setDefault(has, "lmtp.socket_mode", &c.LMTP.SocketMode, defaultLMTPSocketMode)
	}
	setDefault(has, "lmtp.max_message_size", &c.LMTP.MaxMessageSize, defaultLMTPMaxMessageSize)
	setDefault(has, "lmtp.max_recipients", &c.LMTP.MaxRecipients, defaultLMTPMaxRecipients)
	setDefault(has, "lmtp.max_connections", &c.LMTP.MaxConnections, defaultLMTPMaxConnections)
	setDefault(has, "lmtp.timeout", &c.LMTP.Timeout, defaultLMTPTimeout)
	setDefault(has, "pop3.dele", &c.POP3.Dele, defaultPOP3Dele)
	setDefault(has, "pop3.max_connections", &c.POP3.MaxConnections, defaultPOP3MaxConns)
	setDefault(has, "pop3.max_connections_per_address", &c.POP3.MaxConnectionsPerAddress, defaultPOP3MaxConnsAddr)
	setDefault(has, "pop3.max_connections_per_user", &c.POP3.MaxConnectionsPerUser, defaultPOP3MaxConnsUser)
	setDefault(has, "pop3.login_timeout", &c.POP3.LoginTimeout, defaultPOP3LoginTimeout)
	setDefault(has, "pop3.idle_timeout", &c.POP3.IdleTimeout, defaultPOP3IdleTimeout)
}

func (p *parser) checkLMTP(l *LMTP) {
	if path, unix := l.SocketPath(); unix {
		if path == "" {
			p.errorf("lmtp.listen", "unix: needs a socket path (unix:/run/imapbridge/lmtp.sock)")
		} else {
			l.Listen = "unix:" + p.path(path)
		}
		if l.SocketMode != "" {
			m, err := strconv.ParseUint(l.SocketMode, 8, 32)
			if err != nil || m > 0o777 {
				p.errorf("lmtp.socket_mode", "invalid mode %s (want octal permissions such as 0660)", quoteShort(l.SocketMode))
			} else {
				l.FileMode = fs.FileMode(m)
			}
		}
	} else {
		if l.Listen != "" && p.address("lmtp.listen", l.Listen) && !isLoopback(l.Listen) {
			p.warnf("lmtp.listen", "%q is not a loopback address: LMTP has no authentication, so whoever reaches it can deliver mail to any user", l.Listen)
		}
		if l.SocketMode != "" {
			p.errorf("lmtp.socket_mode", "only valid with a unix:/path listen")
		}
	}
	if strings.ContainsAny(l.Hostname, " \t\r\n") {
		p.errorf("lmtp.hostname", "invalid name %s (no spaces)", quoteShort(l.Hostname))
	}
	p.positive("lmtp.max_message_size", l.MaxMessageSize, math.MaxInt32)
	p.positive("lmtp.max_recipients", int64(l.MaxRecipients), math.MaxInt32)
	p.positive("lmtp.max_connections", int64(l.MaxConnections), math.MaxInt32)
	p.positiveDuration("lmtp.timeout", l.Timeout)
}

// checkPOP3 checks the pop3 section; its certificate is the IMAP one.
func (p *parser) checkPOP3(m *POP3, imap *IMAP) {
	haveCert := imap.TLS.CertFile != "" && imap.TLS.KeyFile != ""
	if m.Listen != "" && p.address("pop3.listen", m.Listen) {
		loop := isLoopback(m.Listen)
		switch {
		case !haveCert && !(m.AllowInsecureAuth && loop):
			p.errorf("pop3.listen", "needs a certificate for STLS: set imap.tls (or allow_insecure_auth with a loopback address)")
		case m.AllowInsecureAuth && !loop:
			p.warnf("pop3.allow_insecure_auth", "passwords may cross the network in cleartext: pop3.listen %q is not a loopback address", m.Listen)
		}
	}
	if m.TLSListen != "" && p.address("pop3.tls_listen", m.TLSListen) && !haveCert {
		p.errorf("pop3.tls_listen", "needs a certificate: set imap.tls")
	}
	if m.AllowInsecureAuth && m.Listen == "" && p.has("pop3.allow_insecure_auth") {
		p.warnf("pop3.allow_insecure_auth", "ignored: pop3.listen is not set")
	}
	p.oneOf("pop3.dele", m.Dele, pop3DeleModes)
	p.positive("pop3.max_connections", int64(m.MaxConnections), math.MaxInt32)
	p.positive("pop3.max_connections_per_address", int64(m.MaxConnectionsPerAddress), math.MaxInt32)
	p.positive("pop3.max_connections_per_user", int64(m.MaxConnectionsPerUser), math.MaxInt32)
	p.positiveDuration("pop3.login_timeout", m.LoginTimeout)
	if p.positiveDuration("pop3.idle_timeout", m.IdleTimeout) && m.IdleTimeout < minPOP3IdleTimeout {
		p.warnf("pop3.idle_timeout", "%v is below the 10 minutes RFC 1939 asks for: slow clients are logged out", m.IdleTimeout)
	}
}
