// Package pop3front is the bridge's own POP3 face: a POP3 server (RFC 1939,
// CAPA and response codes from RFC 2449, STLS from RFC 2595, AUTH PLAIN from
// RFC 5034) over each user's INBOX, for the POP3 clients left when a legacy
// host is retired.
//
// It owns the POP3 protocol of the bridge's users and nothing else. It
// imports only the bridge; it must not import imapfront, the pop3 client
// package, mboxstore or cmd. (Package pop3 is the client the bridge polls
// legacy hosts with; this is the server its own users connect to.)
//
// # The maildrop
//
// A session's maildrop is the user's INBOX as it was when the login
// succeeded: message numbers, sizes and UIDLs are fixed for the session
// (RFC 1939 section 3), whatever IMAP sessions do meanwhile; a message
// expunged elsewhere is still listed and RETR of it answers -ERR.
//
// UIDL is the legacy host's UIDL for every message that came from a POP3
// host (Options.HostUIDL says which), so a POP3 client moved from the host
// to the bridge downloads nothing again; every other message (delivered,
// APPENDed, from an mbox spool) gets bridge.GeneratedUIDL, stable while
// the mailbox's UIDVALIDITY is. LIST and STAT sizes are the exact octets
// RETR sends before dot-stuffing (bridge.POP3Content: a bare LF is sent
// as CRLF, and a message not ending in a line ending gets one, as
// Dovecot does; mail from a POP3 host or an mbox spool is already so and
// goes out byte for byte).
//
// DELE marks; QUIT commits (RFC 1939 section 6). With Options.Dele
// DeleExpunge (the default) the marked messages are expunged in the bridge,
// in one transaction, through the bridge's own expunge, so every IMAP
// session is told (EXPUNGE) and an on_expunge source deletes them at the
// host; with DeleKeep they are only hidden from POP3, for good, and stay
// on every other device. QUIT answers +OK only once that change is
// durable; a connection that ends without QUIT, or times out, changes
// nothing.
//
// # Authentication and limits
//
// USER/PASS and AUTH PLAIN (with an initial response or after a "+ "
// continuation) go to Options.Authenticate, the same check the IMAP face
// uses. Without TLS (before STLS on the plain listener) they are refused
// with "-ERR [AUTH]" naming STLS, and CAPA does not offer them, unless
// Options.AllowInsecureAuth. TLS below 1.2 is refused whatever the caller's
// tls.Config says. Three failed logins on one connection close it.
//
// Each limit ends or refuses something with a text that says which, a log
// line and a call of Metrics.Limit: MaxConnections and
// MaxConnectionsPerAddress (greeted "-ERR [SYS/TEMP]" and closed),
// MaxConnectionsPerUser (the login is answered "-ERR [IN-USE]"),
// LoginTimeout (counted from connect, however busy), IdleTimeout (RFC 1939
// section 3's autologout timer; no UPDATE follows), MaxCommandLength (the
// line is not read further) and MaxBadCommands in a row. Plaintext
// pipelined behind STLS is never answered: the connection is closed
// (the command injection of CVE-2011-0411).
//
// Logs go through log/slog with the fixed keys "remote" and "user"; a
// name the client sent is capped and stripped of control characters, and
// no password or AUTH data is ever logged.
package pop3front
