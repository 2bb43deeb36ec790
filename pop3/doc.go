// Package pop3 is a POP3 client (RFC 1939, with CAPA and response codes from
// RFC 2449, STLS from RFC 2595, AUTH from RFC 5034 and the AUTH response code
// from RFC 3206) and the POP3 source of the bridge.
//
// The client is written on the standard library for correctness on the mail
// that real maildrops hold:
//
//   - RETR and TOP return a streaming *Body: dot-stuffing is undone, CRLF
//     and 8-bit bytes are kept, lines of any length pass intact, and a
//     message of any size needs no more memory than the read buffer.
//   - Every read and write has a deadline (Options.Timeout); every blocking
//     method takes a context.Context: cancelling it while the call (or the
//     Body it returned) is in progress closes the connection, and a call
//     made with a context already done sends nothing.
//   - A malformed reply is an error that names the command (ErrMalformed),
//     never a panic; a -ERR reply is a *Error carrying the server's text and
//     its RFC 2449/3206 response code (IN-USE, AUTH, SYS/TEMP, ...).
//   - After a failure that leaves the conversation out of step (a timeout,
//     a cut connection, a reply that is not a status line) the Client
//     refuses further commands (ErrClosed) rather than misread replies.
//   - RetrMany pipelines RETR commands when the server advertises
//     PIPELINING.
//   - Passwords and bearer tokens never appear in errors or logs.
//   - AUTH XOAUTH2 and AUTH OAUTHBEARER (RFC 7628) send the token in a
//     continuation after "+ " (Microsoft 365 refuses it on the AUTH line)
//     and answer a server's error challenge before its -ERR
//     (TokenRefusedError, ErrTokenRefused).
//
// A Client is not safe for concurrent use, except that Close may be called
// from another goroutine to abort a blocked call.
//
// Source (source.go) implements bridge.Source on top of the client: one POP3
// session per poll, UIDL-based message ids with a header fingerprint for
// servers without UIDL, deletions committed only by QUIT.
//
// It imports bridge (for the Source port and its types) and nothing else of
// this module: no face (imapfront), no other source (mboxstore), no
// internal/config; cmd/imapbridge builds a Source from the config.
package pop3
