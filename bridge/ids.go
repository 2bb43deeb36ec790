package bridge

// Strong types for identities that must never be mixed up.

// UID is an IMAP-style unique identifier of a message within one mailbox.
// UIDs in a mailbox strictly ascend and are never reused.
type UID uint32

// UIDValidity identifies one incarnation of a mailbox's UID space. It never
// changes while the state store exists, unless the store itself decides the
// old UIDs can no longer be trusted (and then it logs why and counts it).
type UIDValidity uint32

// ModSeq is a per-mailbox modification sequence, kept from the start so that
// CONDSTORE/QRESYNC can be offered later without a change of meaning.
type ModSeq uint64

// SourceID is the stable identifier a Source gives a message: a POP3 UIDL,
// an mbox content key. It is unique within one (user, source) pair.
type SourceID string

// MailboxID is the store's internal key of a mailbox.
type MailboxID int64
