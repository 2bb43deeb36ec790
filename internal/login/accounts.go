package login

import (
	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
)

// accountFeeds builds the feeds of a user given with users[].accounts:
// one per account, with the account's login, password and folder and its
// source's policy and intervals. Accounts are static logins: they poll
// without the user logging in.
func (s *Service) accountFeeds(name string, u config.User) []bridge.Feed {
	out := make([]bridge.Feed, 0, len(u.Accounts))
	for _, a := range u.Accounts {
		sc := s.sources[a.Source]
		out = append(out, bridge.Feed{
			Source:           s.opts.Sources[a.Source],
			Account:          bridge.Account{User: name, SourceUser: a.User, Password: string(a.Password)},
			AccountID:        a.ID,
			AccountName:      a.User,
			Folder:           a.Folder,
			Policy:           bridge.DeletePolicy{Mode: bridge.DeleteMode(sc.DeletePolicy), After: sc.DeleteAfter},
			PollInterval:     sc.PollInterval,
			IdlePollInterval: sc.IdlePollInterval,
		})
	}
	return out
}
