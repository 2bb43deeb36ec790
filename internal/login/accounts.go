package login

import (
	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
)

// accountFeeds builds the feeds of a user given with users[].accounts:
// one per account, with the account's login, password and folder and its
// source's mode, policy and intervals, the user's override of that source
// applied (to every account of the user at it). Accounts are static
// logins: they poll without the user logging in.
func (s *Service) accountFeeds(name string, u config.User) []bridge.Feed {
	out := make([]bridge.Feed, 0, len(u.Accounts))
	for _, a := range u.Accounts {
		f := feedOf(s.opts.Sources[a.Source], bridge.Account{User: name, SourceUser: a.User, Password: string(a.Password)}, u.Feed(s.sources[a.Source]))
		f.AccountID, f.AccountName, f.Folder = a.ID, a.User, a.Folder
		out = append(out, f)
	}
	return out
}
