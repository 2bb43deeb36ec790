// Package bridge is the domain core of imapbridge: users, mailboxes, stable
// UIDs, the durable state store, the sync engine that pulls mail from legacy
// sources, and the change fan-out that keeps every session of a user in step.
//
// It knows nothing of IMAP wire syntax, POP3 or mbox. A legacy mail host is a
// Source (see source.go); the IMAP front end talks to Bridge, User and
// Mailbox and observes changes through Observer.
package bridge
