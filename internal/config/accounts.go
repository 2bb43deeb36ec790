package config

import (
	"fmt"

	"github.com/imapbridge/imapbridge/bridge"
)

// This file is users[].accounts: several logins at pop3 sources for one
// user, each with its own credentials and target folder.
//
//	users:
//	  - name: alice
//	    password_hash: "$2a$10$..."
//	    accounts:
//	      - source: oldisp          # a pop3 source with auth static
//	        user: alice.smith       # the login at that host
//	        password_file: /run/secrets/alice-oldisp
//	        folder: INBOX           # default INBOX; created if missing
//
// An account's password comes from users[].accounts[N].password,
// password_file, or the environment variable
// IMAPBRIDGE_ACCOUNT_PASSWORD_<USER>_<N>, N being the account's index in
// the list (as in the key path, from 0) and <USER> the user name as for
// the other variables. oauth2 is reserved for OAuth2 toward the host; it
// is refused until that is built.
//
// A user gives accounts or sources, not both. The store keeps a source-id
// map per account (see Account.ID): UIDs stay stable per folder and a
// message fetched through two accounts is stored once for each.

// envAccountPassword is the prefix of an account's password variable:
// + envName(user) + "_" + N.
const envAccountPassword = "IMAPBRIDGE_ACCOUNT_PASSWORD_"

// Account is one login at a pop3 source feeding one folder of a user.
type Account struct {
	Source string `yaml:"source"`
	// User is the login at the host.
	User string `yaml:"user"`
	// Password is from the file itself, PasswordFile or
	// IMAPBRIDGE_ACCOUNT_PASSWORD_<USER>_<N>.
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Folder is where the account's mail goes; defaults to INBOX.
	Folder string `yaml:"folder"`
	// OAuth2 is reserved for OAuth2 toward the host (issue 16 item 2).
	OAuth2 map[string]any `yaml:"oauth2"`

	// ID tells the account apart in the store from the user's other
	// accounts at the same source (bridge.Feed.AccountID): "" for the
	// first account at its source in the list — the same state as the
	// sources: form, so moving a user from that form to accounts keeps
	// its UIDs — and the login for any later one. Set by the checks.
	ID string `yaml:"-"`
}

// checkAccounts checks users[i].accounts of u (the key is users[i]).
func (p *parser) checkAccounts(key string, u *User, sources map[string]*Source, sourcesComplete bool) {
	ak := key + ".accounts"
	if p.index.has(key + ".sources") {
		p.errorf(ak, "set only one of sources and accounts")
	}
	for _, k := range []string{"source_user", "source_password", "source_password_file"} {
		if p.index.has(key + "." + k) {
			p.errorf(key+"."+k, "not used with accounts: give each account its user and password")
		}
	}
	if len(u.Accounts) == 0 && len(p.dropped[ak]) == 0 {
		p.errorf(ak, "at least one account is required")
	}
	type login struct{ source, user string }
	seen := map[login]string{}
	first := map[string]bool{}
	for i := range u.Accounts {
		a := &u.Accounts[i]
		k := p.elem(ak, i)
		s, ok := sources[a.Source]
		switch {
		case a.Source == "":
			p.errorf(k+".source", "required")
		case !ok:
			if sourcesComplete {
				p.errorf(k+".source", "unknown source %s", quoteShort(a.Source))
			}
		case s.Type != "pop3":
			p.errorf(k+".source", "%q is an %s source; accounts are logins at pop3 sources", a.Source, s.Type)
		case s.Auth == "passthrough":
			p.errorf(k+".source", "%q has auth passthrough (the user's own login is the account): list it under sources instead", a.Source)
		}
		if a.User == "" {
			p.errorf(k+".user", "required (the login at the host)")
		}
		if a.Folder == "" {
			a.Folder = bridge.InboxName
		} else if cn, err := bridge.CanonicalName(a.Folder); err != nil {
			p.errorf(k+".folder", "invalid folder name %s: %v", quoteShort(a.Folder), err)
		} else {
			a.Folder = cn
		}
		env := fmt.Sprintf("%s%s_%d", envAccountPassword, envName(u.Name), i)
		pwKey, failed := p.secret(k+".password", &a.Password, k+".password_file", &a.PasswordFile, env)
		switch {
		case failed:
		case a.OAuth2 != nil || p.index.has(k+".oauth2"):
			if pwKey != "" {
				p.errorf(k+".oauth2", "set only one of password and oauth2")
			} else {
				p.errorf(k+".oauth2", "not supported yet: give a password")
			}
		case pwKey == "":
			p.errorf(k+".password", "required (or password_file, or $%s)", env)
		}
		if pwKey == k+".password" {
			p.inline = append(p.inline, inlineSecret{pwKey, "password_file or $" + env})
		}
		if a.Source == "" || a.User == "" {
			continue
		}
		l := login{a.Source, a.User}
		if prev, dup := seen[l]; dup {
			p.errorf(k, "duplicate account: source %q, user %q is already %s", a.Source, a.User, prev)
			continue
		}
		seen[l] = k
		if !first[a.Source] {
			first[a.Source] = true
		} else {
			a.ID = a.User
		}
	}
}
