package bridge

// Observer is told of every change to a mailbox. Calls are made while the
// mailbox's lock is held, right after the change became durable, in the order
// the changes happened; so an observer that keeps its own copy of a
// mailbox's UID list (as the IMAP front end does for sequence numbers) never
// misses or reorders a change. Implementations must not block and must not
// call back into the Mailbox they are told about.
type Observer interface {
	// Appended: msgs were added at the end of the mailbox, ascending by
	// UID, with their flags. recentFor is the watch that took them as
	// recent, or nil if none did (they stay recent for the next session
	// that opens the mailbox, and for the read-only ones open now).
	Appended(mb *Mailbox, msgs []MessageFlags, recentFor *Watch)
	// Expunged: uids were removed from the mailbox, ascending.
	Expunged(mb *Mailbox, uids []UID)
	// FlagsChanged: the message's flags are now flags. origin is what the
	// caller of Store passed (nil for changes made by the bridge itself).
	FlagsChanged(mb *Mailbox, uid UID, flags []string, origin any)
}
