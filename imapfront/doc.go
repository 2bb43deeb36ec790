// Package imapfront is the IMAP face of imapbridge: an imapserver.Session
// (go-imap v2) over the bridge's users and mailboxes.
//
// A Server serves any number of listeners, plain (with STARTTLS) or implicit
// TLS, and hands credentials to Options.Authenticate. Each connection gets
// a session with its own context, cancelled when the connection ends and
// passed to every bridge call.
//
// Every session of a user sees every change (the multi-device promise): the
// Server registers one bridge.Observer that keeps, for each selected
// mailbox, a copy of its UID list and an imapserver.MailboxTracker, and
// turns the bridge's events — told under the bridge's mailbox lock, in
// order — into EXISTS, EXPUNGE, FETCH FLAGS and FLAGS updates with the
// right sequence numbers for each session (see tracker.go).
//
// Index is the bridge.Indexer that computes ENVELOPE and BODYSTRUCTURE once
// at ingest, so FETCH of them never re-parses a message.
//
// The bridge's sentinel errors become IMAP response codes here and only
// here; any other failure is logged and answered with a generic NO.
package imapfront
