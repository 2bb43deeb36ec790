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
// mailbox, a copy of its UID list and, for each session that has it
// selected, the queue of updates that session's client has not been told
// yet. The bridge's events — told under the bridge's mailbox lock, in
// order — become EXISTS, EXPUNGE, FETCH FLAGS, FLAGS and RECENT updates
// with the right sequence numbers for each session (see tracker.go); a
// MOVE is one event pair under both mailboxes' locks, so every session
// watching either mailbox sees it whole.
//
// \Recent follows IMAP4rev1 (RFC 3501 section 2.3.2): a message is recent
// in exactly one session, the first read-write one to select the mailbox
// after it arrived (or the oldest one that has it selected when it
// arrives); EXAMINE sees what nobody took and takes nothing. It is never
// stored as a flag. Clients that enable IMAP4rev2 are told nothing of it.
//
// Mailbox names arrive in modified UTF-7 from IMAP4rev1 clients and in
// UTF-8 once IMAP4rev2 or UTF8=ACCEPT is enabled; go-imap decodes both, the
// bridge stores the one UTF-8 name, and each client is shown its own form.
// DELETE of a mailbox with children is refused with NO [HASCHILDREN] (RFC
// 9051 section 6.3.5 allows that); a subscription outlives its mailbox and
// LIST (SUBSCRIBED) shows it \NonExistent.
//
// LITERAL+ is not offered (LITERAL- is, by go-imap), and the APPEND limit is
// at least 4096 bytes: go-imap refuses a literal over the limit without
// reading it, so a non-synchronizing one would have its bytes read as
// commands. CONDSTORE is not offered: UNCHANGEDSINCE, CHANGEDSINCE and
// MODSEQ are refused with BAD.
//
// Index is the bridge.Indexer that computes ENVELOPE and BODYSTRUCTURE once
// at ingest, so FETCH of them never re-parses a message.
//
// The bridge's sentinel errors become IMAP response codes here and only
// here; any other failure is logged and answered with a generic NO.
//
// Known deviations, all from go-imap v2 beta.8 parsing a command before the
// session is called: a mailbox name that is not valid modified UTF-7, an
// invalid date-time or an unknown search key is answered "NO [SERVERBUG]
// Internal server error" rather than BAD (nothing is changed); a
// non-synchronizing literal over 4096 bytes, which LITERAL- forbids, is
// refused with BAD but its bytes are then read as commands; SEARCH RETURN
// (SAVE) with no other return option still sends an ESEARCH response; in
// UTF-8 mode a "&" in a mailbox name is still written and read as "&-"; and
// there is no MULTIAPPEND.
package imapfront
