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
// reading it. CONDSTORE is not offered: UNCHANGEDSINCE, CHANGEDSINCE and
// MODSEQ are refused with BAD.
//
// # Limits
//
// A public server must bound what one client can take. Each limit below
// ends in a BYE (or a NO) whose text says which, a log line, and a call of
// Metrics.Limit:
//
//   - MaxConnections in total and MaxConnectionsPerAddress from one IP
//     address (loopback included): the connection over it is greeted with
//     "* BYE" and closed.
//   - MaxConnectionsPerUser: a LOGIN or AUTHENTICATE beyond it is answered
//     "NO [LIMIT]" (RFC 5530); it is not an authentication failure, so it
//     does not count towards the BYE after three failures.
//   - LoginTimeout: a connection not logged in within it gets "* BYE Login
//     timeout", however many commands it sends. (go-imap itself closes a
//     connection silent for 30 seconds before login, without a word.)
//   - IdleTimeout, the autologout timer of RFC 3501 section 5.4: a
//     logged-in session with no byte either way for that long gets "* BYE
//     Autologout; idle for too long". It is 30 minutes by default, RFC
//     3501's minimum; go-imap closes a session silent for 35 minutes
//     without a word, so more has no effect.
//   - MaxIdleDuration: IDLE is not subject to IdleTimeout; one IDLE command
//     may last MaxIdleDuration (30 minutes, as RFC 2177 allows: clients
//     re-issue IDLE every 29), then the session gets "* BYE Autologout;
//     IDLE for too long".
//   - MaxCommandLength (48 KiB, not counting literal data): a longer
//     command gets "* BYE Command line too long" before go-imap has read
//     it, instead of go-imap's silent close at 50 KiB. Memory does not grow
//     with the line: nothing buffers more than go-imap's 50 KiB.
//   - A non-synchronizing literal over 4096 bytes (LITERAL- forbids it)
//     gets "* BYE Non-synchronizing literal of N bytes refused": go-imap
//     would refuse it and then read its bytes as commands. A synchronizing
//     literal over the APPEND limit is refused by go-imap with NO [TOOBIG]
//     before the client sends it.
//   - MaxBadCommands (20) BAD answers in a row: "* BYE Too many invalid
//     commands", so a client streaming junk is cut off after a few lines.
//     One unknown command, or a line without a tag, is only answered BAD,
//     before login too.
//   - MaxSearchDepth (100) levels of SEARCH nesting (NOT, OR, parentheses):
//     deeper gets BAD before go-imap's recursive parser sees it (10,000
//     levels cost it ~36 MB); deeper after a literal, where the guard
//     cannot answer in order, gets "* BYE SEARCH nested too deeply".
//   - A literal over 4096 bytes outside APPEND gets "NO [TOOBIG]" (go-imap
//     would refuse it and then wait for the rest of the line forever), or
//     BYE later in a command.
//   - Client-supplied values in log lines (user and mailbox names, ID
//     values, go-imap's own lines) are clipped to 256 bytes with their
//     length ("alice…[45012 bytes]"), see Clip.
//   - Plaintext pipelined after STARTTLS in the same packet (the command
//     injection of CVE-2011-0411) closes the connection after the
//     STARTTLS answer; it is never answered.
//
// All but the first three are enforced by a guard between the socket and
// go-imap (guard.go) that follows the IMAP framing in both directions —
// lines, and the literals they announce, and whether the server accepted
// a synchronizing literal with "+". At the start of a command it holds the
// line (at most MaxCommandLength; literal data is never held) until it is
// whole and go-imap has answered the command before, then hands it on,
// rewrites it, or answers it itself in order (cmdcheck.go): ID (RFC 2971,
// with the ID capability added to go-imap's list), unknown commands,
// names and dates go-imap would answer "NO [SERVERBUG]". The guard does
// the TLS layer itself, below it, for implicit TLS and for STARTTLS alike
// (which go-imap would otherwise put above it, out of its sight): go-imap
// is told of neither, allows LOGIN, and the session refuses it with "NO
// [PRIVACYREQUIRED]" until STARTTLS unless insecure authentication is
// allowed; the guard completes go-imap's capability lists (STARTTLS,
// LOGINDISABLED, ID) to match. A per-session watchdog
// goroutine enforces the timeouts. TLS below 1.2 is refused whatever the
// caller's tls.Config says.
//
// Index is the bridge.Indexer that computes ENVELOPE and BODYSTRUCTURE once
// at ingest, so FETCH of them never re-parses a message.
//
// The bridge's sentinel errors become IMAP response codes here and only
// here; any other failure is logged and answered with a generic NO.
//
// LSUB with "%" lists a level that is not subscribed but has a subscribed
// child \Noselect (RFC 3501 section 6.3.9); CREATE subscribes nothing.
// go-imap writes LIST's CHILDINFO tag as an atom; the guard writes it
// quoted, as RFC 5258's examples do.
//
// Known deviations, all from go-imap v2 beta.8 parsing a command before the
// session is called: a mailbox name that is not valid modified UTF-7, an
// invalid date or an unknown search key sent in a literal (where the guard
// does not look) is still answered "NO [SERVERBUG] Internal server error"
// (nothing is changed); SEARCH RETURN (SAVE) with no other return option
// still sends an ESEARCH response; in UTF-8 mode a "&" in a mailbox name is
// still written and read as "&-"; and there is no MULTIAPPEND.
//
// It owns the IMAP protocol: sessions, TLS, limits and IMAP metrics hooks.
// It imports bridge and go-imap; it must not import pop3, mboxstore, a
// sibling face (pop3front, lmtpfront) or internal/config: what it serves
// and how logins are checked is given in Options by cmd/imapbridge.
package imapfront
