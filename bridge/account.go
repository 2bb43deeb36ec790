package bridge

import "strings"

// This file is how the store tells the accounts of a user apart. The
// source-id map (origins), the feed records (feeds) and the drain chart
// (feed_history) are keyed by (user, feed key). The feed key of a source's
// one account (AccountID "") is the source name itself, which is what
// every row written before accounts existed holds: such a store keeps its
// UIDs and source-id maps with no rewrite. Any other account's key is
// "<source>#<AccountID>"; source names never hold '#' (the config allows
// letters, digits, '.', '_' and '-'), so a key splits back unambiguously.

// accountSep separates the source name from the account id in a feed key.
const accountSep = "#"

// FeedKey is the store key of the account id at the source called source.
func FeedKey(source, id string) string {
	if id == "" {
		return source
	}
	return source + accountSep + id
}

// SplitFeedKey returns the source name and account id of a feed key.
func SplitFeedKey(key string) (source, id string) {
	source, id, _ = strings.Cut(key, accountSep)
	return source, id
}

// Key is the feed's store key: FeedKey(f.Source.Name(), f.AccountID).
func (f Feed) Key() string { return FeedKey(f.Source.Name(), f.AccountID) }

// folder is the mailbox the feed delivers to.
func (f Feed) folder() string {
	if f.Folder == "" {
		return InboxName
	}
	return f.Folder
}
