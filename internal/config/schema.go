package config

import (
	"log/slog"
	"strconv"
	"time"
)

// Config is a loaded, validated configuration: defaults applied, durations
// parsed, relative paths made relative to the config file's directory, and
// secrets read from their files or the environment.
type Config struct {
	DataDir string   `yaml:"data_dir"`
	Log     Log      `yaml:"log"`
	IMAP    IMAP     `yaml:"imap"`
	Admin   Admin    `yaml:"admin"`
	Secrets Secrets  `yaml:"secrets"`
	Login   Login    `yaml:"login"`
	LMTP    LMTP     `yaml:"lmtp"`
	POP3    POP3     `yaml:"pop3"`
	Sources []Source `yaml:"sources"`
	Users   []User   `yaml:"users"`
	// Readiness tunes the retirement verdicts (see retirement.go).
	Readiness Readiness `yaml:"readiness"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// SlogLevel returns the configured level as a slog.Level.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// IMAP configures the IMAP listeners and their limits.
type IMAP struct {
	// Listen is the plain (STARTTLS when a certificate is configured)
	// listener; "" disables it.
	Listen string `yaml:"listen"`
	// TLSListen is the implicit-TLS listener (e.g. ":993"); "" disables it.
	TLSListen string   `yaml:"tls_listen"`
	TLS       TLSFiles `yaml:"tls"`
	// AllowInsecureAuth allows LOGIN/AUTHENTICATE without TLS.
	AllowInsecureAuth bool `yaml:"allow_insecure_auth"`
	// MaxConnections caps concurrent IMAP connections in total.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerAddress caps concurrent IMAP connections from one
	// client IP address (loopback included).
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
	// MaxConnectionsPerUser caps concurrent authenticated sessions per user;
	// a login beyond it is answered NO [LIMIT].
	MaxConnectionsPerUser int `yaml:"max_connections_per_user"`
	// AppendLimit is the largest message APPEND accepts, in bytes
	// (advertised as APPENDLIMIT; at most 2^32-1).
	AppendLimit int64 `yaml:"append_limit"`
	// LoginTimeout is how long a connection may stay unauthenticated,
	// however many commands it sends.
	LoginTimeout time.Duration `yaml:"login_timeout"`
	// IdleTimeout is the autologout timer: how long an authenticated
	// connection may send no command before it is logged out. A session in
	// IDLE is not subject to it; one IDLE command may last 30 minutes.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxKeywordsPerMailbox caps the distinct keywords one mailbox may
	// hold; a change bringing one more is answered NO [LIMIT].
	MaxKeywordsPerMailbox int `yaml:"max_keywords_per_mailbox"`
	// MaxMailboxesPerUser caps a user's mailboxes (INBOX and the
	// special-use ones count); CREATE past it is answered NO [LIMIT].
	MaxMailboxesPerUser int `yaml:"max_mailboxes_per_user"`
}

// TLSFiles names a PEM certificate chain and its private key.
type TLSFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Admin configures the admin HTTP server (/metrics /healthz /readyz).
type Admin struct {
	// Listen is the admin listener; "" disables it.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin
	// listener. Off by default: it shows internals to whoever can reach it.
	Pprof bool `yaml:"pprof"`
	// TokenFile holds the bearer token that /status and /status.json
	// require; required when Listen is not a loopback address.
	TokenFile string `yaml:"token_file"`
	// Token is read from TokenFile; "" when it is not set.
	Token Secret `yaml:"-"`
}

// Login configures how login names are taken.
type Login struct {
	// FoldCase takes every login name in lower case ("Alice", "ALICE"
	// and "alice" are one user), for hosts that ignore case in user
	// names. users[].name are folded too; two that fold to one name are
	// an error. Off by default: a host that tells case apart would see
	// two of its users as one.
	FoldCase bool `yaml:"fold_case"`
}

// MaxUserNameLength is the longest user name, in bytes: of users[].name,
// and of any name given at login.
const MaxUserNameLength = 256

// Secrets configures the key the bridge uses for secrets it stores.
type Secrets struct {
	KeyFile string `yaml:"key_file"`
	// Key is read from KeyFile or IMAPBRIDGE_SECRET_KEY; "" when neither
	// is set.
	Key Secret `yaml:"-"`
}

// Source is one legacy mail source. Which keys apply depends on Type.
type Source struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // mbox | pop3

	// mbox
	// Path is the spool file; "{user}" is replaced by the IMAP login name.
	Path string `yaml:"path"`
	// Lock lists the locks to take, in order: "dotlock", "fcntl".
	Lock []string `yaml:"lock"`

	// pop3
	Address       string        `yaml:"address"`         // host:port
	TLS           string        `yaml:"tls"`             // implicit | starttls | none
	TLSSkipVerify bool          `yaml:"tls_skip_verify"` // do not verify the server certificate
	Auth          string        `yaml:"auth"`            // passthrough | static
	Timeout       time.Duration `yaml:"timeout"`         // deadline of each network step

	// both
	// Mode is serve (the default) or shadow: in shadow the bridge never
	// changes the host, whatever DeletePolicy says.
	Mode         string        `yaml:"mode"`
	PollInterval time.Duration `yaml:"poll_interval"`
	// IdlePollInterval is the poll interval while a client of the user
	// is in IMAP IDLE.
	IdlePollInterval time.Duration `yaml:"idle_poll_interval"`
	DeletePolicy     string        `yaml:"delete_policy"` // keep | after_days | on_expunge | after_sync
	// DeleteAfter is how long after it was stored a message is deleted
	// at the source; set only with DeletePolicy "after_days".
	DeleteAfter time.Duration `yaml:"delete_after"`
}

// User is one IMAP user.
type User struct {
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash, from the file itself, from
	// PasswordHashFile or from IMAPBRIDGE_PASSWORD_HASH_<USER>. It is ""
	// only when every source of the user is a pop3 passthrough source (the
	// POP3 host then checks the password).
	PasswordHash     Secret `yaml:"password_hash"`
	PasswordHashFile string `yaml:"password_hash_file"`
	// Sources names the sources that feed the user's INBOX.
	Sources []string `yaml:"sources"`
	// SourceUser is the login name at pop3 sources; defaults to Name.
	SourceUser string `yaml:"source_user"`
	// SourcePassword is the password for pop3 sources with static auth,
	// from the file itself, SourcePasswordFile or
	// IMAPBRIDGE_SOURCE_PASSWORD_<USER>.
	SourcePassword     Secret `yaml:"source_password"`
	SourcePasswordFile string `yaml:"source_password_file"`
	// Accounts are the user's logins at pop3 sources, each feeding a
	// folder (accounts.go); given instead of Sources.
	Accounts []Account `yaml:"accounts"`
	// SourceOAuth2 logs in to the user's static-auth pop3 sources with
	// OAuth2 instead of SourcePassword (until per-user accounts carry
	// their own oauth2).
	SourceOAuth2 *OAuth2 `yaml:"source_oauth2"`
	// Overrides change, for this user only, settings of the named sources
	// (see retirement.go).
	Overrides map[string]Override `yaml:"overrides"`
	// Quota bounds what the user's mailboxes may hold; APPEND and COPY
	// past it are answered NO [OVERQUOTA] (and an LMTP delivery 552
	// 5.2.2). Zero fields are no limit.
	Quota Quota `yaml:"quota"`
}

// Quota is a per-user allowance over all the user's mailboxes.
type Quota struct {
	// Bytes is the total size of the user's messages, every copy counted.
	Bytes int64 `yaml:"bytes"`
	// Messages is the number of the user's messages, every copy counted.
	Messages int64 `yaml:"messages"`
}

// Secret is a string that must not be printed or logged: fmt and slog show
// it as "<redacted>".
type Secret string

const redacted = "<redacted>"

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps the value out of JSON and YAML output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
