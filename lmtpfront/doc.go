// Package lmtpfront is the bridge's mail intake: an LMTP server (RFC 2033,
// on github.com/emersion/go-smtp) that an MTA such as Postfix delivers to.
// Each recipient is a bridge user, looked up by the wiring; each accepted
// recipient gets its own reply after DATA, and 250 only once the message is
// durable in that user's INBOX (through bridge.Spool.Deliver, the same path
// as an IMAP APPEND, so every IDLE session is told).
//
// It owns the LMTP wire, its limits and its delivery metrics hooks. It
// imports bridge and go-smtp only: never imapfront, pop3, mboxstore, the
// config or cmd packages.
//
// What a delivered copy looks like: two header lines are put in front of
// the message as the MTA sent it, in this order, as a delivery agent does
// (Dovecot's LMTP and Postfix's local(8) write the same two, in the same
// order):
//
//	Return-Path: <sender>        (the MAIL FROM address; <> for a bounce)
//	Delivered-To: recipient      (the RCPT TO address, as the MTA gave it)
//
// Unlike Dovecot, which saves one copy for all recipients and so writes
// Delivered-To only when there is a single one, every recipient's copy
// here carries its own Delivered-To. Dovecot also adds a Received line of
// its own (with LMTP id ...); this intake does not, the MTA's Received
// line above being the one that says where the message came from. Nothing in the message itself is
// changed or removed (an existing Return-Path stays below the new one; an
// MTA such as Postfix removes those already). INTERNALDATE is the time the
// DATA ended, the same for every recipient of one transaction.
//
// The window a crash can duplicate in: a recipient's 250 is written after
// its copy is committed. If the process dies after the commit and before
// the MTA has read the 250, the MTA retries and the user gets the message
// twice; a crash at any other point gives it once (before the commit:
// nothing was stored, the MTA retries; after the 250: the MTA is done).
// This is the window Dovecot's LMTP documents too.
package lmtpfront
