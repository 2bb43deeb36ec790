package main

// The configuration file.
//
// The file is YAML, decoded strictly: an unknown key is an error, and every
// problem in the file is reported at once (see ConfigError), each as
// "key: problem". A key that is absent (or null) takes its default; all
// defaults are set in applyDefaults. Relative paths are relative to the
// directory of the config file.
//
// Secrets never need to be written into the file itself:
//
//   - secrets.key_file, or the environment variable IMAPBRIDGE_SECRET_KEY;
//   - users[].password_hash, users[].password_hash_file, or
//     IMAPBRIDGE_PASSWORD_HASH_<USER>;
//   - users[].source_password, users[].source_password_file, or
//     IMAPBRIDGE_SOURCE_PASSWORD_<USER>.
//
// <USER> is the user name upper-cased with every character other than an
// ASCII letter or digit replaced by "_" (alice.smith@example.com becomes
// ALICE_SMITH_EXAMPLE_COM). A non-empty environment variable overrides the
// file; an empty one counts as unset. A *_file is read whole, with trailing
// CR/LF removed. A secret's value never appears in an error or a warning.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// Config is a loaded, validated configuration: defaults applied, durations
// parsed, relative paths made relative to the config file's directory, and
// secrets read from their files or the environment.
type Config struct {
	DataDir string         `yaml:"data_dir"`
	Log     LogConfig      `yaml:"log"`
	IMAP    IMAPConfig     `yaml:"imap"`
	Admin   AdminConfig    `yaml:"admin"`
	Secrets SecretsConfig  `yaml:"secrets"`
	Sources []SourceConfig `yaml:"sources"`
	Users   []UserConfig   `yaml:"users"`
}

// LogConfig configures log/slog.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// SlogLevel returns the configured level as a slog.Level.
func (l LogConfig) SlogLevel() slog.Level {
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

// IMAPConfig configures the IMAP listeners and their limits.
type IMAPConfig struct {
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
}

// TLSFiles names a PEM certificate chain and its private key.
type TLSFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// AdminConfig configures the admin HTTP server (/metrics /healthz /readyz).
type AdminConfig struct {
	// Listen is the admin listener; "" disables it.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin
	// listener. Off by default: it shows internals to whoever can reach it.
	Pprof bool `yaml:"pprof"`
}

// SecretsConfig configures the key the bridge uses for secrets it stores.
type SecretsConfig struct {
	KeyFile string `yaml:"key_file"`
	// Key is read from KeyFile or IMAPBRIDGE_SECRET_KEY; "" when neither
	// is set.
	Key Secret `yaml:"-"`
}

// SourceConfig is one legacy mail source. Which keys apply depends on Type.
type SourceConfig struct {
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
	PollInterval time.Duration `yaml:"poll_interval"`
	// IdlePollInterval is the poll interval while a client of the user
	// is in IMAP IDLE.
	IdlePollInterval time.Duration `yaml:"idle_poll_interval"`
	DeletePolicy     string        `yaml:"delete_policy"` // keep | after_days | on_expunge | after_sync
	// DeleteAfter is how long after it was stored a message is deleted
	// at the source; set only with DeletePolicy "after_days".
	DeleteAfter time.Duration `yaml:"delete_after"`
}

// UserConfig is one IMAP user.
type UserConfig struct {
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

// Environment variables that override the file.
const (
	envSecretKey      = "IMAPBRIDGE_SECRET_KEY"
	envPasswordHash   = "IMAPBRIDGE_PASSWORD_HASH_"   // + envName(user)
	envSourcePassword = "IMAPBRIDGE_SOURCE_PASSWORD_" // + envName(user)
)

// envName turns a user name into the suffix of its environment variables.
func envName(user string) string {
	b := []byte(user)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// ConfigError lists every problem found in a configuration, each as
// "key: problem" (or "line N: problem" where no key can be named).
type ConfigError struct {
	File     string // "" when the config did not come from a file
	Problems []string
}

func (e *ConfigError) Error() string {
	where := "config"
	if e.File != "" {
		where = "config " + e.File
	}
	if len(e.Problems) == 1 {
		return where + ": " + e.Problems[0]
	}
	return fmt.Sprintf("%s: %d problems: %s", where, len(e.Problems), strings.Join(e.Problems, "; "))
}

// LoadConfig reads, parses and validates the config file at path. Warnings
// are problems that do not stop the bridge but that an operator should see.
// A config that is invalid returns a *ConfigError.
func LoadConfig(path string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	p := newConfigParser(filepath.Dir(path), os.LookupEnv)
	cfg, warnings, err := p.parse(data)
	var cerr *ConfigError
	if errors.As(err, &cerr) {
		cerr.File = path
	}
	if err != nil {
		return nil, warnings, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		for _, w := range p.inline {
			warnings = append(warnings, fmt.Sprintf("%s: password written in a config file that others can read (mode %04o); use %s", w.key, fi.Mode().Perm(), w.instead))
		}
	}
	return cfg, warnings, nil
}

// ParseConfig parses and validates a config held in memory. Relative paths
// in it are taken relative to baseDir.
func ParseConfig(data []byte, baseDir string) (*Config, []string, error) {
	return newConfigParser(baseDir, os.LookupEnv).parse(data)
}

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
	setDefault(has, "admin.listen", &c.Admin.Listen, defaultAdminListen)
	for i := range c.Sources {
		s, key := &c.Sources[i], keys.elem("sources", i)+"."
		setDefault(has, key+"delete_policy", &s.DeletePolicy, defaultDeletePolicy)
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

// configParser holds the state of one parse.
type configParser struct {
	baseDir   string
	lookupEnv func(string) (string, bool)
	index     *keyIndex
	problems  []string
	warnings  []string
	bad       map[string]bool  // keys whose value failed to decode
	dropped   map[string][]int // list key → indices of items that failed to decode
	inline    []inlineSecret   // passwords written in the file itself
}

type inlineSecret struct{ key, instead string }

func newConfigParser(baseDir string, lookupEnv func(string) (string, bool)) *configParser {
	return &configParser{baseDir: baseDir, lookupEnv: lookupEnv, bad: map[string]bool{}, dropped: map[string][]int{}}
}

func (p *configParser) parse(data []byte) (*Config, []string, error) {
	// First pass: the document as a node tree, to know where each key is.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && err != io.EOF {
		return nil, nil, &ConfigError{Problems: []string{yamlSyntaxProblem(err)}}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return nil, nil, &ConfigError{Problems: []string{yamlSyntaxProblem(err)}}
	default:
		return nil, nil, &ConfigError{Problems: []string{fmt.Sprintf("line %d: a second YAML document; the config must be one document", extra.Line)}}
	}
	p.index = newKeyIndex(&root)

	// Second pass: strict decoding into the typed struct.
	cfg := new(Config)
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && err != io.EOF {
		var terr *yaml.TypeError
		if !errors.As(err, &terr) {
			return nil, nil, &ConfigError{Problems: []string{yamlSyntaxProblem(err)}}
		}
		for _, msg := range terr.Errors {
			p.decodeProblem(msg)
		}
	}

	p.emptyItems()
	applyDefaults(cfg, p)
	p.check(cfg)
	if len(p.problems) > 0 {
		return nil, p.warnings, &ConfigError{Problems: p.problems}
	}
	return cfg, p.warnings, nil
}

func (p *configParser) errorf(key, format string, args ...any) {
	if p.isBad(key) {
		return // the decode error already said what is wrong here
	}
	p.problems = append(p.problems, key+": "+fmt.Sprintf(format, args...))
}

func (p *configParser) warnf(key, format string, args ...any) {
	p.warnings = append(p.warnings, key+": "+fmt.Sprintf(format, args...))
}

// markBad notes that key failed to decode. yaml.v3 drops a list item that
// fails to decode, so the items after it move up; elem undoes that.
func (p *configParser) markBad(key string) {
	p.bad[key] = true
	if !strings.HasSuffix(key, "]") {
		return
	}
	i := strings.LastIndex(key, "[")
	n, err := strconv.Atoi(key[i+1 : len(key)-1])
	if err != nil {
		return
	}
	list := key[:i]
	if !slices.Contains(p.dropped[list], n) {
		p.dropped[list] = append(p.dropped[list], n)
		slices.Sort(p.dropped[list])
	}
}

// elem returns the key of the i-th decoded item of a list: its index in
// the file, counting the items that were dropped.
func (p *configParser) elem(list string, i int) string {
	for _, d := range p.dropped[list] {
		if d <= i {
			i++
		}
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

func (p *configParser) has(key string) bool { return p.index.has(key) }

// emptyItems reports null items of the config's lists, which yaml.v3
// drops without a word.
func (p *configParser) emptyItems() {
	lists := map[string]string{"sources": "lock", "users": "sources"}
	for _, list := range []string{"sources", "users"} {
		p.emptyItemsOf(list)
		if n := p.index.values[list]; n != nil && n.Kind == yaml.SequenceNode {
			for i := range n.Content {
				p.emptyItemsOf(fmt.Sprintf("%s[%d].%s", list, i, lists[list]))
			}
		}
	}
}

func (p *configParser) emptyItemsOf(list string) {
	n := p.index.values[list]
	if n == nil || n.Kind != yaml.SequenceNode {
		return
	}
	for i, item := range n.Content {
		if item.Kind == yaml.ScalarNode && item.ShortTag() == "!!null" {
			key := fmt.Sprintf("%s[%d]", list, i)
			p.errorf(key, "empty list item")
			p.markBad(key)
		}
	}
}

// isBad reports whether key, or a key containing it, failed to decode.
func (p *configParser) isBad(key string) bool {
	for {
		if p.bad[key] {
			return true
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return p.bad[""]
		}
		key = key[:i]
	}
}

func yamlSyntaxProblem(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "yaml: "); ok && strings.HasPrefix(rest, "line ") {
		return rest
	}
	return msg
}

var (
	reUnknownField  = regexp.MustCompile(`^line (\d+): field (.*) not found in type \S+$`)
	reFieldSetTwice = regexp.MustCompile(`^line (\d+): field (.*) already set in type \S+$`)
	reDuplicateKey  = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	reCannotDecode  = regexp.MustCompile("(?s)^line (\\d+): cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")
)

// decodeProblem turns one of yaml.v3's type errors into a problem that
// names the key where it can, and notes the key as bad so that validation
// does not report the same value twice.
func (p *configParser) decodeProblem(msg string) {
	if m := reUnknownField.FindStringSubmatch(msg); m != nil {
		p.problems = append(p.problems, fmt.Sprintf("line %s: unknown key %s", m[1], quoteShort(m[2])))
		return
	}
	if m := reFieldSetTwice.FindStringSubmatch(msg); m != nil {
		p.problems = append(p.problems, fmt.Sprintf("line %s: key %s set twice", m[1], quoteShort(m[2])))
		return
	}
	if m := reDuplicateKey.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, err := strconv.Unquote(m[2])
		if err != nil {
			key = m[2]
		}
		// yaml.v3 skips a mapping with a duplicate key entirely.
		if parent, ok := p.index.mappingWithKey(line, key); ok {
			p.markBad(parent)
		}
		p.problems = append(p.problems, fmt.Sprintf("line %s: duplicate key %s (first at line %s)", m[1], quoteShort(key), m[3]))
		return
	}
	m := reCannotDecode.FindStringSubmatch(msg)
	if m == nil {
		p.problems = append(p.problems, msg)
		return
	}
	line, _ := strconv.Atoi(m[1])
	tag, value, into := m[2], m[3], m[4]
	if into == "main.Config" {
		p.bad[""] = true
		p.problems = append(p.problems, fmt.Sprintf("line %d: expected a mapping of keys, got %s", line, describeTag(tag)))
		return
	}
	key, node, ok := p.index.valueAt(line, tag, value)
	if ok {
		p.markBad(key)
		if node.Kind == yaml.ScalarNode {
			value = node.Value
		}
	} else {
		key = "line " + m[1]
	}
	want := describeGoType(into)
	got := describeTag(tag)
	switch {
	case got == "a mapping" || got == "a list" || got == "null":
		p.problems = append(p.problems, fmt.Sprintf("%s: expected %s, got %s", key, want, got))
	case want == "a duration":
		hint := ""
		if _, err := strconv.ParseFloat(value, 64); err == nil && len(value) < 20 {
			hint = ` (a unit is required, e.g. "` + value + `s")`
		}
		p.problems = append(p.problems, fmt.Sprintf("%s: invalid duration %s%s", key, quoteShort(value), hint))
	case want == "an integer":
		p.problems = append(p.problems, fmt.Sprintf("%s: invalid integer %s", key, quoteShort(value)))
	case want == "true or false":
		p.problems = append(p.problems, fmt.Sprintf("%s: invalid boolean %s (want true or false)", key, quoteShort(value)))
	default:
		// Never echo the value here: a secret put under the wrong key
		// lands in this branch.
		p.problems = append(p.problems, fmt.Sprintf("%s: expected %s, got %s", key, want, got))
	}
}

func describeGoType(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration"
	case t == "bool":
		return "true or false"
	case t == "string" || t == "main.Secret":
		return "a string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}

func describeTag(tag string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!null":
		return "null"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!str":
		return "a string"
	}
	return "a value tagged " + tag
}

// quoteShort quotes a (non-secret) value for a message, cut to a sane
// length.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return strconv.Quote(s)
}

// keyIndex maps the keys of a YAML document ("imap.listen",
// "sources[1].name") to their value nodes. yaml.v3's type errors carry only
// a line number; the index lets them name the key, and lets defaults tell
// an absent key from one set to a zero value.
type keyIndex struct {
	values map[string]*yaml.Node
	lines  map[int][]indexEntry // by line of the value node
	keys   map[int][]indexEntry // by line of the key node; path is the mapping's
	budget int                  // nodes left to visit: merge keys can nest aliases exponentially
}

// maxIndexNodes bounds the work of indexing one document. A real config
// has a few hundred nodes; past the bound yaml.v3 rejects the document for
// excessive aliasing anyway.
const maxIndexNodes = 1 << 16

type indexEntry struct {
	path string
	node *yaml.Node
}

func newKeyIndex(root *yaml.Node) *keyIndex {
	ix := &keyIndex{values: map[string]*yaml.Node{}, lines: map[int][]indexEntry{}, keys: map[int][]indexEntry{}, budget: maxIndexNodes}
	ix.walk("", root, 0)
	return ix
}

func (ix *keyIndex) walk(path string, n *yaml.Node, depth int) {
	if depth > 64 || ix.budget <= 0 {
		return
	}
	ix.budget--
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			ix.walk(path, c, depth+1)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			if k.ShortTag() == "!!merge" {
				// "<<: *base" merges base's keys into this mapping.
				ix.walkMerge(path, v, depth+1)
				continue
			}
			ix.keys[k.Line] = append(ix.keys[k.Line], indexEntry{path, k})
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.add(p, v, depth)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ix.add(fmt.Sprintf("%s[%d]", path, i), c, depth)
		}
	}
}

func (ix *keyIndex) walkMerge(path string, v *yaml.Node, depth int) {
	if depth > 64 || ix.budget <= 0 {
		return
	}
	ix.budget--
	switch v.Kind {
	case yaml.AliasNode:
		if v.Alias != nil {
			ix.walkMerge(path, v.Alias, depth+1)
		}
	case yaml.SequenceNode:
		for _, c := range v.Content {
			ix.walkMerge(path, c, depth+1)
		}
	case yaml.MappingNode:
		ix.walk(path, v, depth)
	}
}

func (ix *keyIndex) add(path string, v *yaml.Node, depth int) {
	if _, dup := ix.values[path]; !dup {
		ix.values[path] = v
	}
	ix.lines[v.Line] = append(ix.lines[v.Line], indexEntry{path, v})
	ix.walk(path, v, depth+1)
}

// has reports whether the document sets path to something other than null.
func (ix *keyIndex) has(path string) bool {
	n, ok := ix.values[path]
	if !ok {
		return false
	}
	return !(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// valueAt finds the one key whose value starts on line and matches what
// yaml.v3 reported (its tag, and its value cut to 7 characters when long).
func (ix *keyIndex) valueAt(line int, tag, value string) (string, *yaml.Node, bool) {
	var found []indexEntry
	for _, e := range ix.lines[line] {
		switch tag {
		case "!!map":
			if e.node.Kind != yaml.MappingNode {
				continue
			}
		case "!!seq":
			if e.node.Kind != yaml.SequenceNode {
				continue
			}
		default:
			if e.node.Kind != yaml.ScalarNode {
				continue
			}
			if v, cut := strings.CutSuffix(value, "..."); cut && len(e.node.Value) > 10 {
				if !strings.HasPrefix(e.node.Value, v) {
					continue
				}
			} else if e.node.Value != value {
				continue
			}
		}
		found = append(found, e)
	}
	if len(found) != 1 {
		return "", nil, false
	}
	return found[0].path, found[0].node, true
}

// mappingWithKey finds the mapping that holds key on line.
func (ix *keyIndex) mappingWithKey(line int, key string) (string, bool) {
	for _, e := range ix.keys[line] {
		if e.node.Value == key {
			return e.path, true
		}
	}
	return "", false
}

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
	reUserName    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,254}$`)
	rePlaceholder = regexp.MustCompile(`\{[^{}]*\}`)
	reBcrypt      = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)
)

func (p *configParser) check(c *Config) {
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

	if len(c.Sources) == 0 && len(p.dropped["sources"]) == 0 {
		p.errorf("sources", "at least one source is required")
	}
	sources := map[string]*SourceConfig{}
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

	if len(c.Users) == 0 && len(p.dropped["users"]) == 0 {
		p.errorf("users", "at least one user is required")
	}
	users := map[string]bool{}
	envUsers := map[string]string{}
	for i := range c.Users {
		u := &c.Users[i]
		key := p.elem("users", i)
		p.checkUser(key, u, sources)
		if u.Name == "" {
			continue
		}
		if users[u.Name] {
			p.errorf(key+".name", "duplicate user name %q", u.Name)
			continue
		}
		users[u.Name] = true
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

	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Type == "mbox" && s.Path != "" && usersOf[s.Name] > 1 && !strings.Contains(s.Path, "{user}") {
			p.warnf(p.elem("sources", i)+".path", "has no {user}, so its %d users all read the same file", usersOf[s.Name])
		}
	}
}

func (p *configParser) checkIMAP(m *IMAPConfig) {
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

func (p *configParser) checkSource(key string, s *SourceConfig) {
	if s.Name == "" {
		p.errorf(key+".name", "required")
	} else if !reSourceName.MatchString(s.Name) {
		p.errorf(key+".name", "invalid name %s (use up to 64 letters, digits, '.', '_' and '-')", quoteShort(s.Name))
	}
	var other []string
	switch s.Type {
	case "":
		p.errorf(key+".type", "required (mbox or pop3)")
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
		p.errorf(key+".type", "invalid value %s (want mbox or pop3)", quoteShort(s.Type))
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

func (p *configParser) checkUser(key string, u *UserConfig, sources map[string]*SourceConfig) {
	if u.Name == "" {
		p.errorf(key+".name", "required")
	} else if !reUserName.MatchString(u.Name) {
		p.errorf(key+".name", "invalid name %s (use letters, digits, '.', '_', '@', '+' and '-')", quoteShort(u.Name))
	}
	if u.SourceUser == "" {
		u.SourceUser = u.Name
	}

	// A source that failed to decode is not in sources: do not call the
	// names that refer to it unknown.
	sourcesComplete := len(p.dropped["sources"]) == 0 && !p.isBad("sources")
	needHash, needPassword := false, ""
	if len(u.Sources) == 0 {
		if len(p.dropped[key+".sources"]) == 0 {
			p.errorf(key+".sources", "at least one source is required")
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
	case pwKey == "" && needPassword != "":
		p.errorf(key+".source_password", "required by static-auth source %q (or source_password_file, or $%s%s)", needPassword, envSourcePassword, en)
	case pwKey != "" && needPassword == "" && !p.isBad(key+".sources"):
		p.warnf(pwKey, "ignored: none of the user's sources is a pop3 source with auth static")
	}
	if pwKey == key+".source_password" {
		p.inline = append(p.inline, inlineSecret{pwKey, fmt.Sprintf("source_password_file or $%s%s", envSourcePassword, en)})
	}
}

// secret resolves one secret from the environment, its *_file key or the
// file itself, in that order, and returns the key (or "$VARIABLE") it came
// from, or "" when it is not set. failed is true when the problem has
// been reported.
func (p *configParser) secret(inlineKey string, value *Secret, fileKey string, file *string, env string) (from string, failed bool) {
	if v, ok := p.env(env); ok {
		*value = Secret(v)
		return "$" + env, false
	}
	if *file == "" {
		if *value == "" {
			return "", p.isBad(inlineKey)
		}
		return inlineKey, false
	}
	if *value != "" {
		p.errorf(fileKey, "set only one of %s and %s", lastKey(inlineKey), lastKey(fileKey))
		*value = ""
		return "", true
	}
	*file = p.path(*file)
	v, err := readSecretFile(*file)
	if err != nil {
		p.errorf(fileKey, "%v", err)
		return "", true
	}
	*value = Secret(v)
	return fileKey, false
}

func lastKey(key string) string { return key[strings.LastIndex(key, ".")+1:] }

func (p *configParser) env(name string) (string, bool) {
	if p.lookupEnv == nil {
		return "", false
	}
	v, ok := p.lookupEnv(name)
	return v, ok && v != ""
}

func (p *configParser) envInUse(suffix string) bool {
	_, a := p.env(envPasswordHash + suffix)
	_, b := p.env(envSourcePassword + suffix)
	return a || b
}

// path makes a relative path relative to the config file's directory.
func (p *configParser) path(name string) string {
	if filepath.IsAbs(name) || p.baseDir == "" {
		return name
	}
	return filepath.Join(p.baseDir, name)
}

func (p *configParser) oneOf(key, value string, allowed []string) bool {
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

func (p *configParser) positive(key string, v, max int64) {
	if v < 1 || v > max {
		p.errorf(key, "must be between 1 and %d", max)
	}
}

func (p *configParser) positiveDuration(key string, d time.Duration) bool {
	if d <= 0 {
		p.errorf(key, "must be a positive duration")
		return false
	}
	return true
}

// address checks a host:port listen or dial address.
func (p *configParser) address(key, addr string) bool {
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

// maxSecretFile bounds what readSecretFile reads: a password or a key, not
// a mistake like /dev/zero.
const maxSecretFile = 64 << 10

// readSecretFile reads a secret from a file, trimming trailing CR and LF.
// Its errors name the file but never its content.
func readSecretFile(name string) (string, error) {
	if err := checkRegularFile(name); err != nil {
		return "", err
	}
	f, err := os.Open(name)
	if err != nil {
		return "", fileError(name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fileError(name, err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("file %q is larger than %d bytes", name, maxSecretFile)
	}
	v := strings.TrimRight(string(data), "\r\n")
	if v == "" {
		return "", fmt.Errorf("file %q is empty", name)
	}
	return v, nil
}

// checkRegularFile refuses what is not a regular file before it is opened
// (a FIFO would block, a device could be endless).
func checkRegularFile(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return fileError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%q is not a regular file", name)
	}
	return nil
}

func fileError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("file %q does not exist", name)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("file %q: permission denied", name)
	}
	var perr *fs.PathError
	if errors.As(err, &perr) {
		err = perr.Err
	}
	return fmt.Errorf("cannot read %q: %v", name, err)
}
