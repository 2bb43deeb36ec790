package bridge

import "errors"

// Sentinel errors of the domain. The IMAP front end maps them to responses
// (errors.Is → NO [NONEXISTENT] and so on); everything else is logged and
// answered with a generic message.
var (
	ErrNoSuchMailbox     = errors.New("no such mailbox")
	ErrMailboxExists     = errors.New("mailbox already exists")
	ErrInvalidName       = errors.New("invalid mailbox name")
	ErrInvalidSpecialUse = errors.New("unknown special-use attribute")
	ErrInboxProtected    = errors.New("INBOX cannot be deleted")
	ErrHasChildren       = errors.New("mailbox has child mailboxes")
	ErrNoSuchMessage     = errors.New("no such message")
	ErrTooBig            = errors.New("message too big")
	ErrStoreClosed       = errors.New("store closed")
	ErrStoreNotWritable  = errors.New("store not writable")
)
