package bridge

import (
	"context"
	"errors"
	"io"
	"time"
)

// Source is a legacy mail host the bridge polls: a POP3 maildrop, an mbox
// spool. Implementations live outside this package (pop3, mboxstore) and in
// bridgetest (the in-memory reference).
type Source interface {
	// Name is the configured source name (used in logs and metric labels).
	Name() string
	// Open starts one session against the source for one account. For POP3
	// this is one connection (greeting, auth); for mbox it takes the locks.
	// A maildrop held by another client returns an error wrapping
	// ErrSourceBusy; bad credentials one wrapping ErrSourceAuth.
	Open(ctx context.Context, acct Account) (SourceSession, error)
}

// Account names whose mail a source session reads.
type Account struct {
	// User is the bridge (IMAP) user name.
	User string
	// SourceUser and Password are the credentials at the source, when it
	// needs any (POP3). mbox sources ignore them.
	SourceUser string
	Password   string
}

// SourceMessage is one message as listed by a source.
type SourceMessage struct {
	// ID is stable for as long as the message exists at the source.
	ID SourceID
	// Size is the size the source reports, in bytes (for POP3 the octet
	// count from LIST, for mbox the CRLF size that Fetch will return).
	Size int64
	// Date is the delivery date if the source knows it (the mbox From_
	// line); zero otherwise. It becomes the INTERNALDATE.
	Date time.Time
}

// SourceSession is one open session against a source. It is used from one
// goroutine only. Deletions take effect at Close; a session that is dropped
// with Abort deletes nothing.
type SourceSession interface {
	// List returns every message currently at the source, in source order.
	// A source that can read only part of what it holds (a corrupt mbox)
	// returns the messages it could read together with the error: the
	// bridge stores those, deletes nothing in that poll, and reports the
	// error.
	List(ctx context.Context) ([]SourceMessage, error)
	// Fetch streams one message, exactly as the source holds it, with CRLF
	// line endings. The caller closes the reader before the next call.
	Fetch(ctx context.Context, id SourceID) (io.ReadCloser, error)
	// Delete marks messages for deletion; they are removed at Close.
	Delete(ctx context.Context, ids []SourceID) error
	// Close ends the session and commits the deletions (POP3 QUIT, mbox
	// rewrite).
	Close(ctx context.Context) error
	// Abort ends the session without committing anything.
	Abort()
}

// Errors a Source reports, for the sync engine to tell apart.
var (
	// ErrSourceBusy: the maildrop is locked by another client (POP3
	// [IN-USE], an mbox lock held elsewhere). Retry later; it is not empty.
	ErrSourceBusy = errors.New("source busy")
	// ErrSourceAuth: the source refused the credentials.
	ErrSourceAuth = errors.New("source refused the credentials")
	// ErrSourceGone: the message is no longer at the source.
	ErrSourceGone = errors.New("message no longer at the source")
)

// SourceBatchFetcher is offered by sessions that can fetch many messages
// faster than one at a time (POP3 PIPELINING). fn is called once per id in
// order, with a reader valid only during the call; an error from fn stops
// the batch and is returned.
type SourceBatchFetcher interface {
	FetchMany(ctx context.Context, ids []SourceID, fn func(id SourceID, r io.Reader) error) error
}

// SourceIDLister is offered by sessions that can list their messages' ids
// more cheaply than List (POP3: UIDL alone, without LIST's sizes). Poll
// asks for the ids first and calls List only when they show something to
// fetch or delete, so that a poll with no new mail costs one listing. ok
// is false when the ids alone cannot be trusted to be what List would
// give; Poll then calls List, on the same session. An error fails the
// poll, as one from List does.
type SourceIDLister interface {
	ListIDs(ctx context.Context) (ids []SourceID, ok bool, err error)
}
