// Package config owns imapbridge's configuration language: the YAML
// schema and its defaults, strict decoding, the semantic checks and the
// secrets read from files or the environment. It turns a file into a
// validated *Config, or into an *Error listing every problem at once, each
// as "key: problem" ("sources[1].poll_interval: invalid duration ...").
//
// It may import bridge (for domain types a key names, such as a delete
// policy) and nothing else of this module: not imapfront, pop3, mboxstore,
// internal/login nor internal/admin. It describes what the operator asked
// for; wiring that to the parts that do the work is cmd/imapbridge's job.
//
// The file is YAML, decoded strictly: an unknown key is an error naming
// its path, with a suggestion when a known key is close
// ("sources[0].pol_interval: unknown key; did you mean poll_interval?"),
// and a syntax error names the line where it is. A key that is absent (or
// null) takes its default; a key that is present is validated as given.
// Relative paths are relative to the directory of the config file.
//
// Secrets never need to be written into the file itself:
//
//   - secrets.key_file, or the environment variable IMAPBRIDGE_SECRET_KEY;
//   - users[].password_hash, users[].password_hash_file, or
//     IMAPBRIDGE_PASSWORD_HASH_<USER>;
//   - users[].source_password, users[].source_password_file, or
//     IMAPBRIDGE_SOURCE_PASSWORD_<USER>;
//   - users[].accounts[N].password, users[].accounts[N].password_file, or
//     IMAPBRIDGE_ACCOUNT_PASSWORD_<USER>_<N> (N the account's index, from
//     0, as in the key path).
//
// <USER> is the user name upper-cased with every character other than an
// ASCII letter or digit replaced by "_" (alice.smith@example.com becomes
// ALICE_SMITH_EXAMPLE_COM). A non-empty environment variable overrides the
// file; an empty one counts as unset. A *_file is read whole, with trailing
// CR/LF removed. A secret's value never appears in an error or a warning.
//
// # Files
//
//	schema.go    the types (Config, IMAP, Admin, Source, User, ...) and their yaml keys
//	defaults.go  every default, in applyDefaults
//	decode.go    strict decoding: yaml.v3's errors turned into "key: problem"
//	keyindex.go  where each key is in the document (for paths and defaults)
//	check.go     the semantic checks, one method per section
//	faces.go     the lmtp and pop3 sections: types, defaults, checks
//	secrets.go   Secret values from *_file keys and the environment
//	accounts.go  users[].accounts: logins at pop3 sources, each into a folder
//
// # Adding a key
//
//  1. Add the field, with its yaml tag, to its struct in schema.go (a new
//     section is a new struct and a field of Config). Decoding, unknown-key
//     suggestions and "expected a duration" messages follow from the type.
//  2. If it has a default, one line in applyDefaults (defaults.go):
//     setDefault(has, key+"mode", &s.Mode, defaultSourceMode). A key that
//     is present is never defaulted, so "mode: null" and an absent key
//     mean the same.
//  3. Its check in check.go, in the method of its section (check for
//     top-level sections, checkIMAP, checkSource, checkUser): use the
//     helpers, which name the key and collect every problem:
//     p.oneOf(key+".mode", s.Mode, sourceModes), p.positiveDuration,
//     p.positive, p.address, p.path (to make a path relative to the config
//     file), p.errorf(key, ...) and p.warnf(key, ...). A key that applies
//     to one source type only goes in mboxOnlyKeys or pop3OnlyKeys.
//     A list of mappings under a new top-level key uses p.elem(list, i)
//     for the key of its i-th item (yaml.v3 drops items that fail to
//     decode; elem keeps the file's numbering).
//  4. A testdata/config/good_*.yaml or err_*.yaml file and its entry in
//     configFileTests, with the exact problems and warnings.
package config
