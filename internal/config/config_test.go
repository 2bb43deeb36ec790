package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testHash is a bcrypt hash (cost 10) of "demo-password".
const testHash = "$2a$10$D6FOXPJLJhZE9v0v0oluw.upLsutpWl9fIFHgzmWp3EKNRPxes/rK"

func noEnv(string) (string, bool) { return "", false }

func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// parseTest parses a config with no environment, so that tests do not
// depend on the variables of whoever runs them.
func parseTest(data []byte, baseDir string, env func(string) (string, bool)) (*Config, []string, error) {
	if env == nil {
		env = noEnv
	}
	return newParser(baseDir, env).parse(data)
}

// problemsOf returns the problems of a *Error, or fails the test.
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error %v (%T) is not a *Error", err, err)
	}
	if len(cerr.Problems) == 0 {
		t.Fatalf("Error with no problems")
	}
	return cerr.Problems
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s:\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

// configFileTests lists every file in testdata/config with what parsing it
// must give, exactly.
var configFileTests = []struct {
	file     string
	problems []string
	warnings []string
}{
	{file: "good_minimal.yaml"},
	{
		file:     "good_full.yaml",
		warnings: []string{`sources[0].delete_after: ignored: delete_policy is "keep", not after_days`},
	},
	{file: "good_pop3_passthrough.yaml"},
	{file: "good_anchors.yaml"},
	{
		file: "good_warnings.yaml",
		warnings: []string{
			`imap.allow_insecure_auth: passwords may cross the network in cleartext: imap.listen "0.0.0.0:143" is not a loopback address`,
			`imap.max_connections_per_address: 50 is more than max_connections 10, so one address can take every connection`,
			`imap.idle_timeout: 5m0s is below the 30 minutes RFC 3501 requires: clients that send NOOP every 29 minutes to stay connected are logged out`,
			`sources[0].delete_after: ignored: delete_policy is "keep", not after_days`,
			`sources[1].tls: none: passwords cross the network to 192.0.2.10:110 in cleartext`,
			`sources[2].tls_skip_verify: the certificate of pop.example.org:995 is not verified`,
			`sources[2].idle_poll_interval: 30s is longer than poll_interval 10s, so IDLE sessions see new mail later than others`,
			`users[0].password_hash: bcrypt cost 4 is low; use 10 or more`,
			`users[1].source_password: ignored: none of the user's sources is a pop3 source with auth static`,
			`sources[0].path: has no {user}, so its 2 users all read the same file`,
		},
	},
	{
		file:     "good_plain_listen.yaml",
		warnings: []string{`imap.listen: "[::]:143" offers no STARTTLS (no imap.tls) and allow_insecure_auth is false, so no client can log in there`},
	},
	{
		file: "err_unknown_key.yaml",
		problems: []string{
			`imap.colour: unknown key`,
			`sources[0].pol_interval: unknown key; did you mean poll_interval?`,
		},
	},
	{
		file:     "err_duplicate_source.yaml",
		problems: []string{`sources[1].name: duplicate source name "spool"`},
	},
	{
		file: "err_unknown_source.yaml",
		problems: []string{
			`users[0].sources[0]: unknown source "nope"`,
			`users[0].sources[2]: source "spool" listed twice`,
		},
	},
	{
		file: "err_bad_duration.yaml",
		problems: []string{
			`sources[0].poll_interval: invalid duration "5 parsecs"`,
			`sources[1].poll_interval: invalid duration "60" (a unit is required, e.g. "60s")`,
			`sources[1].timeout: must be a positive duration`,
			`sources[1].idle_poll_interval: must be a positive duration`,
		},
	},
	{
		file: "err_bad_enums.yaml",
		problems: []string{
			`log.level: invalid value "verbose" (want debug, info, warn or error)`,
			`log.format: invalid value "xml" (want text or json)`,
			`sources[0].lock[0]: invalid value "flock" (want dotlock or fcntl)`,
			`sources[0].delete_policy: invalid value "never" (want keep, after_days, on_expunge or after_sync)`,
			`sources[1].tls: invalid value "ssl" (want implicit, starttls or none)`,
			`sources[1].auth: invalid value "kerberos" (want passthrough or static)`,
			`sources[2].type: invalid value "maildir" (want mbox or pop3)`,
		},
	},
	{
		file: "err_missing_required.yaml",
		problems: []string{
			`sources[0].path: required for mbox sources`,
			`sources[1].address: required for pop3 sources`,
			`sources[2].name: required`,
			`sources[3].type: required (mbox or pop3)`,
			`users[0].name: required`,
			`users[1].sources: at least one source is required`,
			`users[1].password_hash: required (or password_hash_file, or $IMAPBRIDGE_PASSWORD_HASH_BOB); make one with imapbridge hash-password`,
		},
	},
	{
		file: "err_wrong_type_keys.yaml",
		problems: []string{
			`sources[0].address: only valid for pop3 sources`,
			`sources[0].timeout: only valid for pop3 sources`,
			`sources[1].lock: only valid for mbox sources`,
		},
	},
	{
		file: "err_not_bcrypt.yaml",
		problems: []string{
			`users[0].password_hash: not a bcrypt hash; make one with imapbridge hash-password`,
			`users[1].password_hash: not a bcrypt hash; make one with imapbridge hash-password`,
			`users[2].password_hash: required (or password_hash_file, or $IMAPBRIDGE_PASSWORD_HASH_CAROL); make one with imapbridge hash-password`,
		},
	},
	{
		file: "err_delete_after.yaml",
		problems: []string{
			`sources[0].delete_after: required with delete_policy after_days`,
			`sources[1].delete_after: must be a positive duration`,
		},
	},
	{
		file:     "err_duplicate_user.yaml",
		problems: []string{`users[1].name: duplicate user name "alice"`},
	},
	{
		file: "err_bad_scalars.yaml",
		problems: []string{
			`imap.max_connections: invalid integer "lots"`,
			`imap.allow_insecure_auth: invalid boolean "maybe" (want true or false)`,
			`imap.max_connections_per_user: must be between 1 and 2147483647`,
			`imap.max_connections_per_address: must be between 1 and 2147483647`,
			`imap.append_limit: must be between 1 and 4294967295`,
			`imap.login_timeout: must be a positive duration`,
		},
	},
	{
		file:     "err_syntax.yaml",
		problems: []string{`line 4: found a tab character that violates indentation`},
	},
	{
		file: "err_duplicate_key.yaml",
		problems: []string{
			`line 7: duplicate key "type" (first at line 5)`,
			`sources[1].path: required for mbox sources`,
		},
	},
	{
		file: "err_empty_items.yaml",
		problems: []string{
			`sources[1].poll_interval: invalid duration "1 fortnight"`,
			`sources[2]: expected a mapping, got a string`,
			`sources[0]: empty list item`,
			`sources[1].lock[1]: empty list item`,
			`users[0].sources[1]: empty list item`,
			`sources[3].address: required for pop3 sources`,
		},
	},
	{
		file:     "err_two_documents.yaml",
		problems: []string{`line 5: a second YAML document; the config must be one document`},
	},
	{
		file:     "err_not_mapping.yaml",
		problems: []string{`line 1: expected a mapping of keys, got a string`},
	},
	{
		file: "err_empty.yaml",
		problems: []string{
			`sources: at least one source is required`,
			`users: at least one user is required (or a pop3 source with auth passthrough, whose users log in with their POP3 password)`,
		},
	},
	// Passthrough without a user list (issue 12 C).
	{file: "good_passthrough_only.yaml"},
	{
		file:     "err_static_only_no_users.yaml",
		problems: []string{`users: at least one user is required (or a pop3 source with auth passthrough, whose users log in with their POP3 password)`},
	},
	// login.fold_case: names folded, so "Alice" and "ALICE" are one user
	// (issue 12 B6); names are capped at 256 bytes.
	{
		file: "err_fold_case.yaml",
		problems: []string{
			`users[1].name: duplicate user name "ALICE" (login.fold_case takes it as "alice")`,
			`users[2].name: longer than 256 bytes`,
		},
	},
	// Caps must be positive; a quota of 0 is none, a negative one an error.
	{
		file: "err_caps.yaml",
		problems: []string{
			`imap.max_keywords_per_mailbox: must be between 1 and 100000`,
			`imap.max_mailboxes_per_user: must be between 1 and 1000000`,
			`users[0].quota.bytes: must not be negative (0 or absent is no limit)`,
			`users[0].quota.messages: must not be negative (0 or absent is no limit)`,
		},
	},
	{
		file: "err_wrong_shape.yaml",
		problems: []string{
			`log: expected a mapping, got a string`,
			`imap.tls: expected a mapping, got a string`,
			`sources[0].path: expected a string, got a list`,
			`users: expected a list, got a string`,
		},
	},
	{
		file: "err_addresses.yaml",
		problems: []string{
			`imap: listen and tls_listen are both empty; set at least one`,
			`admin.listen: invalid address "localhost" (want host:port)`,
			`sources[0].address: invalid address "pop.example.com" (want host:port)`,
			`sources[1].address: invalid port "pop3s"`,
			`sources[2].address: invalid port "0"`,
		},
	},
	{
		file: "err_names.yaml",
		problems: []string{
			`sources[0].name: invalid name "my spool" (use up to 64 letters, digits, '.', '_' and '-')`,
			`sources[0].path: unknown placeholder "{usr}" (only {user} is supported)`,
			`users[0].name: invalid name "../etc" (use letters, digits, '.', '_', '@', '+' and '-')`,
		},
	},
	{
		file:     "err_tls_files.yaml",
		problems: []string{`imap.tls: cert_file and key_file are required with tls_listen`},
	},
	{
		file:     "err_tls_missing_files.yaml",
		problems: []string{`imap.tls.cert_file: file "testdata/config/missing-cert.pem" does not exist`},
	},
	{
		file: "err_static_password.yaml",
		problems: []string{
			`users[0].source_password: required by static-auth source "legacy" (or source_password_file, or $IMAPBRIDGE_SOURCE_PASSWORD_ALICE)`,
			`users[1].password_hash: required (or password_hash_file, or $IMAPBRIDGE_PASSWORD_HASH_BOB); make one with imapbridge hash-password`,
			`users[1].source_password_file: set only one of source_password and source_password_file`,
		},
	},
	{
		file: "err_secret_files.yaml",
		problems: []string{
			`secrets.key_file: file "testdata/config/no-such.key" does not exist`,
			`users[0].password_hash_file: file "testdata/config/does-not-exist.hash" does not exist`,
			`users[1].password_hash_file: "testdata/config" is not a regular file`,
		},
	},
	{
		file: "err_locks.yaml",
		problems: []string{
			`sources[0].lock: must name at least one lock (dotlock, fcntl)`,
			`sources[1].lock[2]: "fcntl" listed twice`,
			`users[1].sources: at least one source is required`,
		},
	},
}

func TestConfigFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tc := range configFileTests {
		listed = append(listed, filepath.Join("testdata/config", tc.file))
	}
	slices.Sort(listed)
	diffLines(t, "files in testdata/config and in configFileTests", listed, files)

	for _, tc := range configFileTests {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/config", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, warnings, err := parseTest(data, "testdata/config", nil)
			diffLines(t, "problems", problemsOf(t, err), tc.problems)
			diffLines(t, "warnings", warnings, tc.warnings)
			if (err == nil) != (cfg != nil) {
				t.Errorf("config %v with error %v", cfg != nil, err)
			}
			if strings.HasPrefix(tc.file, "good_") != (err == nil) {
				t.Errorf("file name says good_ or err_, but error is %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	data, err := os.ReadFile("testdata/config/good_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := parseTest(data, "/etc/imapbridge", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		DataDir: "/etc/imapbridge/data",
		Log:     Log{Level: "info", Format: "text"},
		IMAP: IMAP{
			Listen:                   "127.0.0.1:1143",
			MaxConnections:           1000,
			MaxConnectionsPerUser:    50,
			MaxConnectionsPerAddress: 100,
			AppendLimit:              52428800,
			LoginTimeout:             time.Minute,
			IdleTimeout:              30 * time.Minute,
			MaxKeywordsPerMailbox:    256,
			MaxMailboxesPerUser:      1000,
		},
		Admin:     Admin{Listen: "127.0.0.1:9154"},
		Readiness: Readiness{QuietPeriod: 168 * time.Hour},
		Sources: []Source{{
			Name:             "spool",
			Type:             "mbox",
			Path:             "/var/mail/{user}",
			Lock:             []string{"fcntl"},
			PollInterval:     5 * time.Second,
			IdlePollInterval: 5 * time.Second,
			DeletePolicy:     "keep",
			Mode:             "serve",
		}},
		Users: []User{{
			Name:         "alice",
			PasswordHash: testHash,
			Sources:      []string{"spool"},
			SourceUser:   "alice",
		}},
	}
	assertConfig(t, cfg, want)
}

func TestConfigFull(t *testing.T) {
	data, err := os.ReadFile("testdata/config/good_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := parseTest(data, "testdata/config", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		DataDir: "/var/lib/imapbridge",
		Log:     Log{Level: "debug", Format: "json"},
		IMAP: IMAP{
			Listen:                   "127.0.0.1:1143",
			AllowInsecureAuth:        true,
			MaxConnections:           200,
			MaxConnectionsPerUser:    10,
			MaxConnectionsPerAddress: 20,
			AppendLimit:              10485760,
			LoginTimeout:             30 * time.Second,
			IdleTimeout:              35 * time.Minute,
			MaxKeywordsPerMailbox:    100,
			MaxMailboxesPerUser:      50,
		},
		Admin:     Admin{Listen: "127.0.0.1:9154"},
		Readiness: Readiness{QuietPeriod: 168 * time.Hour},
		Sources: []Source{{
			Name:             "spool",
			Type:             "mbox",
			Path:             "/var/mail/{user}",
			Lock:             []string{"dotlock", "fcntl"},
			PollInterval:     5 * time.Second,
			IdlePollInterval: 2 * time.Second,
			DeletePolicy:     "keep",
			DeleteAfter:      720 * time.Hour,
			Mode:             "serve",
		}, {
			Name:             "legacy",
			Type:             "pop3",
			Address:          "mail.example.com:995",
			TLS:              "implicit",
			Auth:             "static",
			Timeout:          30 * time.Second,
			PollInterval:     time.Minute,
			IdlePollInterval: 15 * time.Second,
			DeletePolicy:     "after_days",
			DeleteAfter:      720 * time.Hour,
			Mode:             "serve",
		}},
		Users: []User{{
			Name:         "alice",
			PasswordHash: testHash,
			Sources:      []string{"spool"},
			SourceUser:   "alice",
		}, {
			Name:           "bob@example.com",
			PasswordHash:   testHash,
			Sources:        []string{"spool", "legacy"},
			SourceUser:     "bob",
			SourcePassword: "correct horse battery staple",
			Quota:          Quota{Bytes: 1000000, Messages: 500},
		}},
	}
	assertConfig(t, cfg, want)
	if got := cfg.Log.SlogLevel(); got != slog.LevelDebug {
		t.Errorf("SlogLevel = %v", got)
	}
}

func TestConfigPOP3Defaults(t *testing.T) {
	for _, tc := range []struct {
		file     string
		sources  []Source
		admin    string
		dataDir  string
		userHash Secret
	}{{
		file:    "good_pop3_passthrough.yaml",
		dataDir: "testdata/config/state",
		sources: []Source{{
			Name: "legacy", Type: "pop3", Address: "pop.example.net:110",
			TLS: "starttls", Auth: "passthrough", Timeout: 30 * time.Second,
			PollInterval: time.Minute, IdlePollInterval: 15 * time.Second, DeletePolicy: "keep", Mode: "serve",
		}, {
			Name: "secure", Type: "pop3", Address: "pop.example.net:995",
			TLS: "implicit", Auth: "passthrough", Timeout: 30 * time.Second,
			PollInterval: 10 * time.Second, IdlePollInterval: 10 * time.Second, DeletePolicy: "keep", Mode: "serve",
		}},
	}, {
		file:    "good_anchors.yaml",
		admin:   "127.0.0.1:9154",
		dataDir: "testdata/config/data",
		sources: []Source{{
			Name: "one", Type: "pop3", Address: "pop.example.com:995",
			TLS: "implicit", Auth: "passthrough", Timeout: 30 * time.Second,
			PollInterval: 2 * time.Minute, IdlePollInterval: 15 * time.Second, DeletePolicy: "keep", Mode: "serve",
		}, {
			Name: "two", Type: "pop3", Address: "pop.example.com:995",
			TLS: "implicit", Auth: "passthrough", Timeout: 30 * time.Second,
			PollInterval: 2 * time.Minute, IdlePollInterval: time.Minute, DeletePolicy: "keep", Mode: "serve",
		}},
	}} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/config", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := parseTest(data, "testdata/config", nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Admin.Listen != tc.admin || cfg.DataDir != tc.dataDir {
				t.Errorf("admin.listen %q, data_dir %q; want %q, %q", cfg.Admin.Listen, cfg.DataDir, tc.admin, tc.dataDir)
			}
			assertJSON(t, "sources", cfg.Sources, tc.sources)
			for _, u := range cfg.Users {
				if u.PasswordHash != "" || u.SourceUser != u.Name {
					t.Errorf("user %s: password_hash set %v, source_user %q", u.Name, u.PasswordHash != "", u.SourceUser)
				}
			}
		})
	}
}

// assertConfig compares two configs, secrets included.
func assertConfig(t *testing.T, got, want *Config) {
	t.Helper()
	assertJSON(t, "config", got, want)
	if got.Secrets.Key != want.Secrets.Key {
		t.Errorf("secrets key differs")
	}
	if len(got.Users) == len(want.Users) {
		for i := range got.Users {
			if got.Users[i].PasswordHash != want.Users[i].PasswordHash {
				t.Errorf("users[%d].password_hash differs", i)
			}
			if got.Users[i].SourcePassword != want.Users[i].SourcePassword {
				t.Errorf("users[%d].source_password differs", i)
			}
		}
	}
}

// assertJSON compares the JSON form of two values (secrets show as
// "<redacted>" there, so compare them separately).
func assertJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s:\ngot  %s\nwant %s", what, g, w)
	}
}

// writeFiles writes name → content into a new temporary directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const staticConfig = `
secrets: {key_file: %s}
sources:
  - {name: legacy, type: pop3, address: "pop.example.com:995", auth: static}
users:
  - name: alice.smith@example.com
    sources: [legacy]
%s`

func TestConfigSecrets(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"alice.hash":  testHash + "\n",
		"alice.pw":    "pw from file\r\n",
		"secret.key":  "key from file\n\n",
		"empty":       "\n",
		"other.hash":  "$1$saltsalt$qjXMvbEw8oaL.CzflDugX." + "\n", // md5-crypt
		"big":         strings.Repeat("x", maxSecretFile+1),
		"spaces.pw":   "  spaces kept  \n",
		"unused.hash": testHash,
	})
	for _, tc := range []struct {
		name     string
		keyFile  string
		user     string
		env      map[string]string
		hash     Secret
		password Secret
		key      Secret
		problems []string
	}{{
		name:     "files",
		keyFile:  "secret.key",
		user:     "    password_hash_file: alice.hash\n    source_password_file: alice.pw\n",
		hash:     testHash,
		password: "pw from file",
		key:      "key from file",
	}, {
		name:     "relative to the config directory, spaces kept",
		keyFile:  `""`,
		user:     "    password_hash: \"" + testHash + "\"\n    source_password_file: spaces.pw\n",
		hash:     testHash,
		password: "  spaces kept  ",
	}, {
		name:    "environment overrides files and the config",
		keyFile: "secret.key",
		user:    "    password_hash_file: other.hash\n    source_password: inline\n",
		env: map[string]string{
			"IMAPBRIDGE_SECRET_KEY":                               "key from env",
			"IMAPBRIDGE_PASSWORD_HASH_ALICE_SMITH_EXAMPLE_COM":    testHash,
			"IMAPBRIDGE_SOURCE_PASSWORD_ALICE_SMITH_EXAMPLE_COM":  "pw from env",
			"IMAPBRIDGE_SOURCE_PASSWORD_ALICE.SMITH@EXAMPLE.COM":  "wrong name",
			"IMAPBRIDGE_SOURCE_PASSWORD_alice_smith_example_com ": "wrong name",
		},
		hash:     testHash,
		password: "pw from env",
		key:      "key from env",
	}, {
		name:    "an empty variable counts as unset",
		keyFile: "secret.key",
		user:    "    password_hash_file: alice.hash\n    source_password_file: alice.pw\n",
		env: map[string]string{
			"IMAPBRIDGE_SECRET_KEY":                              "",
			"IMAPBRIDGE_SOURCE_PASSWORD_ALICE_SMITH_EXAMPLE_COM": "",
		},
		hash:     testHash,
		password: "pw from file",
		key:      "key from file",
	}, {
		name:    "bad hash from the environment",
		keyFile: `""`,
		user:    "    source_password: x\n",
		env:     map[string]string{"IMAPBRIDGE_PASSWORD_HASH_ALICE_SMITH_EXAMPLE_COM": "plain-secret-value"},
		problems: []string{
			`$IMAPBRIDGE_PASSWORD_HASH_ALICE_SMITH_EXAMPLE_COM: not a bcrypt hash; make one with imapbridge hash-password`,
		},
	}, {
		name:    "bad files",
		keyFile: "empty",
		user:    "    password_hash_file: other.hash\n    source_password_file: big\n",
		problems: []string{
			`secrets.key_file: file "DIR/empty" is empty`,
			`users[0].password_hash_file: not a bcrypt hash; make one with imapbridge hash-password`,
			`users[0].source_password_file: file "DIR/big" is larger than 65536 bytes`,
		},
	}, {
		name:    "both inline and file",
		keyFile: `""`,
		user:    "    password_hash: \"" + testHash + "\"\n    password_hash_file: unused.hash\n    source_password: x\n",
		problems: []string{
			`users[0].password_hash_file: set only one of password_hash and password_hash_file`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			data := fmt.Sprintf(staticConfig, tc.keyFile, tc.user)
			cfg, _, err := parseTest([]byte(data), dir, fakeEnv(tc.env))
			var want []string
			for _, p := range tc.problems {
				want = append(want, strings.ReplaceAll(p, "DIR", dir))
			}
			diffLines(t, "problems", problemsOf(t, err), want)
			if err != nil {
				return
			}
			u := cfg.Users[0]
			if u.PasswordHash != tc.hash || u.SourcePassword != tc.password || cfg.Secrets.Key != tc.key {
				t.Errorf("hash %q, password %q, key %q", string(u.PasswordHash), string(u.SourcePassword), string(cfg.Secrets.Key))
			}
		})
	}
}

// TestConfigSecretsStayOut puts secret values where they do not belong and
// checks that no problem or warning repeats them.
func TestConfigSecretsStayOut(t *testing.T) {
	const s = "Tr0ub4dor-secret-value"
	dir := writeFiles(t, map[string]string{"pw": s + "\n", "hash": s + "\n"})
	for _, doc := range []string{
		"secrets: " + s + "\n",
		"users:\n  - name: a\n    password_hash: " + s + "\n",
		"users:\n  - name: a\n    password_hash_file: hash\n",
		"users:\n  - name: a\n    password_hash: {k: " + s + "}\n",
		"users:\n  - name: a\n    source_password: [" + s + "]\n",
		"users:\n  - name: a\n    source_password: " + s + "\n    source_password_file: pw\n",
		"users:\n  - name: a\n    sources: [x]\n    source_password_file: pw\n",
		"users:\n  - name: a\n    password_hash: $2a$10$" + s + "\n",
		"users:\n  - name: a\n    sources: [" + s + "]\n    source_password: " + s + "\n",
		"imap:\n  tls: " + s + "\n",
		"users: " + s + "\n",
	} {
		env := fakeEnv(map[string]string{"IMAPBRIDGE_PASSWORD_HASH_A": "", "IMAPBRIDGE_SECRET_KEY": s})
		_, warnings, err := parseTest([]byte(doc), dir, env)
		text := strings.Join(append(problemsOf(t, err), warnings...), "\n")
		if strings.Contains(text, s) && !strings.Contains(doc, "sources: ["+s) {
			t.Errorf("config %q: a secret in the output:\n%s", doc, text)
		}
		if strings.Count(text, s) > 1 {
			t.Errorf("config %q: a secret in the output:\n%s", doc, text)
		}
	}
}

func TestConfigEnvNameClash(t *testing.T) {
	doc := "sources: [{name: s, type: mbox, path: /m}]\n" +
		"users:\n" +
		"  - {name: alice.smith, password_hash: \"" + testHash + "\", sources: [s]}\n" +
		"  - {name: alice_smith, password_hash: \"" + testHash + "\", sources: [s]}\n"
	if _, _, err := parseTest([]byte(doc), "", nil); err != nil {
		t.Errorf("no variable set: %v", err)
	}
	env := fakeEnv(map[string]string{"IMAPBRIDGE_SOURCE_PASSWORD_ALICE_SMITH": "x"})
	_, _, err := parseTest([]byte(doc), "", env)
	diffLines(t, "problems", problemsOf(t, err), []string{
		`users[1].name: user "alice_smith" and user "alice.smith" share the environment variables *_ALICE_SMITH; rename one`,
	})
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                   "ALICE",
		"Alice.Smith@Example.COM": "ALICE_SMITH_EXAMPLE_COM",
		"bob+tag-1":               "BOB_TAG_1",
		"ünï":                     "__N__", // bytes, not runes
	} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigTLS(t *testing.T) {
	certPEM, keyPEM := selfSignedPEM(t)
	_, otherKey := selfSignedPEM(t)
	dir := writeFiles(t, map[string]string{"cert.pem": certPEM, "key.pem": keyPEM, "other.pem": otherKey, "garbage.pem": "not pem\n"})
	const doc = "imap:\n  tls_listen: \":993\"\n  tls: {cert_file: %s, key_file: %s}\n" +
		"sources: [{name: s, type: mbox, path: /m}]\n" +
		"users: [{name: a, password_hash: \"" + testHash + "\", sources: [s]}]\n"

	cfg, _, err := parseTest(fmt.Appendf(nil, doc, "cert.pem", "key.pem"), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IMAP.TLS.CertFile != filepath.Join(dir, "cert.pem") || cfg.IMAP.TLS.KeyFile != filepath.Join(dir, "key.pem") {
		t.Errorf("tls files not resolved: %+v", cfg.IMAP.TLS)
	}

	_, _, err = parseTest(fmt.Appendf(nil, doc, "cert.pem", "other.pem"), dir, nil)
	diffLines(t, "mismatched key", problemsOf(t, err), []string{"imap.tls: tls: private key does not match public key"})

	_, _, err = parseTest(fmt.Appendf(nil, doc, "garbage.pem", "key.pem"), dir, nil)
	diffLines(t, "garbage cert", problemsOf(t, err), []string{"imap.tls: tls: failed to find any PEM data in certificate input"})

	_, _, err = parseTest(fmt.Appendf(nil, doc, "garbage.pem", `""`), dir, nil)
	diffLines(t, "no key", problemsOf(t, err), []string{"imap.tls.key_file: required with cert_file"})

	_, _, err = parseTest(fmt.Appendf(nil, doc, `""`, "key.pem"), dir, nil)
	diffLines(t, "no cert", problemsOf(t, err), []string{"imap.tls.cert_file: required with key_file"})
}

func selfSignedPEM(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask
			t.Fatal(err)
		}
		return p
	}
	inline := fmt.Sprintf(staticConfig, `""`, "    password_hash: \""+testHash+"\"\n    source_password: hunter2\n")

	t.Run("missing file", func(t *testing.T) {
		_, _, err := Load(filepath.Join(dir, "nope.yaml"))
		var cerr *Error
		if err == nil || errors.As(err, &cerr) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("inline password, private file", func(t *testing.T) {
		cfg, warnings, err := Load(write("private.yaml", inline, 0o600))
		if err != nil || len(warnings) != 0 {
			t.Fatalf("err %v, warnings %q", err, warnings)
		}
		if cfg.Users[0].SourcePassword != "hunter2" {
			t.Errorf("source_password not loaded")
		}
	})
	t.Run("inline password, readable file", func(t *testing.T) {
		_, warnings, err := Load(write("public.yaml", inline, 0o644))
		if err != nil {
			t.Fatal(err)
		}
		diffLines(t, "warnings", warnings, []string{
			"users[0].source_password: password written in a config file that others can read (mode 0644); use source_password_file or $IMAPBRIDGE_SOURCE_PASSWORD_ALICE_SMITH_EXAMPLE_COM",
		})
	})
	t.Run("invalid", func(t *testing.T) {
		path := write("bad.yaml", "sources: []\nusers: []\ncolour: red\n", 0o600)
		_, _, err := Load(path)
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.File != path {
			t.Fatalf("err = %#v", err)
		}
		want := "config " + path + `: 3 problems: colour: unknown key; sources: at least one source is required; users: at least one user is required (or a pop3 source with auth passthrough, whose users log in with their POP3 password)`
		if err.Error() != want {
			t.Errorf("Error() =\n%s\nwant\n%s", err, want)
		}
	})
	t.Run("relative paths", func(t *testing.T) {
		if err := os.Mkdir(filepath.Join(dir, "etc"), 0o700); err != nil {
			t.Fatal(err)
		}
		doc := "data_dir: state\nsources: [{name: s, type: mbox, path: 'spool/{user}'}]\n" +
			"users: [{name: a, password_hash: \"" + testHash + "\", sources: [s]}]\n"
		cfg, _, err := Load(write("etc/c.yaml", doc, 0o600))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DataDir != filepath.Join(dir, "etc/state") || cfg.Sources[0].Path != filepath.Join(dir, "etc/spool/{user}") {
			t.Errorf("data_dir %q, path %q", cfg.DataDir, cfg.Sources[0].Path)
		}
	})
}

func TestParseConfigUsesEnvironment(t *testing.T) {
	t.Setenv("IMAPBRIDGE_PASSWORD_HASH_ZED", testHash)
	doc := "sources: [{name: s, type: mbox, path: /m}]\nusers: [{name: zed, sources: [s]}]\n"
	cfg, _, err := Parse([]byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Users[0].PasswordHash != testHash {
		t.Errorf("hash not taken from the environment")
	}
}

func TestConfigErrorText(t *testing.T) {
	one := &Error{Problems: []string{"a: b"}}
	if got := one.Error(); got != "config: a: b" {
		t.Errorf("one problem: %q", got)
	}
	two := &Error{File: "x.yaml", Problems: []string{"a: b", "c: d"}}
	if got := two.Error(); got != "config x.yaml: 2 problems: a: b; c: d" {
		t.Errorf("two problems: %q", got)
	}
}

func TestSecretRedacted(t *testing.T) {
	type holder struct {
		Password Secret
		Empty    Secret
	}
	h := holder{Password: "hunter2"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "pw", h.Password, "h", h)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "pw", h.Password, "h", h)
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprint(h.Password), fmt.Sprintf("%v %+v %#v %s", h, h, h, h.Password),
		buf.String(), string(j),
	} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret shown: %s", out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("no %s in: %s", redacted, out)
		}
	}
	if got := fmt.Sprint(h.Empty); got != "" {
		t.Errorf("empty secret prints as %q", got)
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if got := (Log{Level: level}).SlogLevel(); got != want {
			t.Errorf("%s: %v", level, got)
		}
	}
}

// FuzzParseConfig checks that no input makes the parser panic, and that
// every outcome is well formed: a config or a *Error with problems,
// and never the value of a secret in a message.
func FuzzParseConfig(f *testing.F) {
	files, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	const secret = "zQ8-fuzz-secret-value-9Xk"
	env := func(name string) (string, bool) {
		switch {
		case strings.HasPrefix(name, envPasswordHash):
			return testHash, true
		case strings.HasPrefix(name, "IMAPBRIDGE_"):
			return secret, true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, warnings, err := newParser("testdata/config", env).parse(data)
		for _, w := range warnings {
			if !strings.Contains(w, ": ") || strings.Contains(w, secret) {
				t.Errorf("bad warning %q", w)
			}
		}
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			passthrough := slices.ContainsFunc(cfg.Sources, func(s Source) bool { return s.Type == "pop3" && s.Auth == "passthrough" })
			if len(cfg.Sources) == 0 || (len(cfg.Users) == 0 && !passthrough) {
				t.Errorf("valid config with %d sources, %d users and no passthrough source", len(cfg.Sources), len(cfg.Users))
			}
			return
		}
		if cfg != nil {
			t.Errorf("config with error %v", err)
		}
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
			t.Fatalf("error %v (%T) is not a *Error with problems", err, err)
		}
		for _, p := range cerr.Problems {
			if !strings.Contains(p, ": ") || (strings.Contains(p, secret) && !bytes.Contains(data, []byte(secret))) {
				t.Errorf("bad problem %q", p)
			}
		}
	})
}

// TestConfigAliasBomb: merge keys that nest aliases exponentially must not
// make the parser (or its key index) take exponential time.
func TestConfigAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("users: [{name: &a0 x}]\nsources:\n  - &b0 {name: n}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "  - &b%d {<<: [*b%d, *b%d, *b%d, *b%d]}\n", i, i-1, i-1, i-1, i-1)
	}
	_, _, err := parseTest([]byte(b.String()), "", nil)
	diffLines(t, "problems", problemsOf(t, err), []string{"yaml: document contains excessive aliasing"})
}

// TestConfigIdleTimeoutBounds: below RFC 3501's 30 minutes is allowed with
// a warning; beyond go-imap's own 35 minutes has no effect and says so.
func TestConfigIdleTimeoutBounds(t *testing.T) {
	base, err := os.ReadFile("testdata/config/good_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value   string
		want    time.Duration
		warning string
	}{
		{"30m", 30 * time.Minute, ""},
		{"35m", 35 * time.Minute, ""},
		{"29m", 29 * time.Minute, "imap.idle_timeout: 29m0s is below the 30 minutes RFC 3501 requires: clients that send NOOP every 29 minutes to stay connected are logged out"},
		{"1h", time.Hour, "imap.idle_timeout: 1h0m0s has no effect beyond 35m: the IMAP library closes a connection silent for 35 minutes"},
	} {
		data := append([]byte("imap:\n  idle_timeout: "+tc.value+"\n"), base...)
		cfg, warnings, err := parseTest(data, "/etc/imapbridge", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.value, err)
		}
		if cfg.IMAP.IdleTimeout != tc.want {
			t.Errorf("%s: IdleTimeout %v", tc.value, cfg.IMAP.IdleTimeout)
		}
		var want []string
		if tc.warning != "" {
			want = []string{tc.warning}
		}
		diffLines(t, tc.value+" warnings", warnings, want)
	}
}
