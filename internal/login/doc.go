// Package login owns who may log in: a configured user's bcrypt hash
// (static), or the legacy POP3 host itself (auth: passthrough); what a
// login name may be (CheckName, login.fold_case); the failure limiter,
// which refuses guessing per client address and per address and user
// name, and only slows it per user name (so that strangers cannot lock a
// user out); and the passthrough credentials, sealed at rest
// (AES-256-GCM under secrets.key_file) so that a user's polls resume after
// a restart before the user logs in again. It also owns OAuth2 toward
// source hosts (oauth2.go): OAuth2Tokens refreshes an account's access
// tokens through golang.org/x/oauth2, keeps a rotated refresh token sealed
// in the data directory and stops at a revoked one; OAuth2Source hands
// the token to a source as the account's password; DeviceLogin gets the
// first refresh token (RFC 8628).
//
// A protocol face (imapfront today, a POP3 face later) calls
// Service.Authenticate and turns ErrFailed into its own "bad credentials"
// answer; any other error means the password could not be checked (the
// host is down) and is answered "try again later".
//
// It imports bridge (users, sources, the syncer, the secret store) and
// internal/config (users and sources as configured). It must not import
// imapfront, pop3, mboxstore or any other face or source: what a
// source-specific error means for a login is given in Options.
package login
