// Package maildirexport writes a bridge user's mailboxes out for a
// standard mail server, so that the bridge itself can be retired: a
// Maildir++ tree that a stock Dovecot serves with the same UIDVALIDITY,
// UIDs and UIDNEXT in every folder, the same flags, keywords, INTERNALDATE
// and subscriptions, and, for mail that came from a legacy POP3 host, that
// host's UIDLs (so neither IMAP nor POP3 clients download anything again);
// or plain mboxrd files for archiving.
//
// It reads one consistent bridge.ReadSnapshot (see bridge.OpenReadOnly for an
// export beside a running server) and owns only the files it writes. It
// imports bridge and the standard library only: never imapfront, pop3,
// mboxstore or cmd.
//
// # The Maildir++ tree
//
// For a user, under the target directory (what Dovecot's
// "mail_location = maildir:~/Maildir" names):
//
//	cur/ new/ tmp/          INBOX
//	dovecot-uidlist         "3 V<uidvalidity> N<uidnext> G<guid>", then per
//	                        message "<uid> [P<pop3 uidl>] :<base name>" (P on
//	                        every INBOX message: the UIDL the bridge's POP3
//	                        face lists, bridge.AssignPOP3UIDLs)
//	dovecot-keywords        "<index> <keyword>" (index 0 is letter a)
//	subscriptions           "V\t2\n\n", then one name a line, levels
//	                        separated by a tab, spelt as the folders are
//	                        (Dovecot's version 2 format, as it writes it)
//	dovecot-uidvalidity     Dovecot's UIDVALIDITY counter ("%08x", and the
//	                        marker dovecot-uidvalidity.<value>), set to the
//	                        highest value the bridge ever handed out, so a
//	                        mailbox created in Dovecot gets one above it
//	.Sent/ .Archive.2024/   one directory per other mailbox: Maildir++
//	                        names, levels joined by ".", each level in
//	                        modified UTF-7 with "\", "." and a leading "~"
//	                        escaped as Dovecot's listescape plugin does
//	                        ("\5c", "\2e", "\7e"); each holds cur/ new/
//	                        tmp/, maildirfolder, dovecot-uidlist,
//	                        dovecot-keywords
//
// A message is the file cur/<base>:2,<info>, its bytes exactly as the
// bridge stores them (CRLF line endings, as the bridge serves them), base
// "<date>.U<uid>V<uidvalidity>.imapbridge,S=<size>,W=<virtual size>", info
// the flag letters D F R S T (\Draft \Flagged \Answered \Seen \Deleted) and
// then the keyword letters, each group in ASCII order, and the file's mtime
// the INTERNALDATE (to the second; Dovecot keeps no zone).
//
// Dovecot needs the listescape plugin and "separator = /" on the inbox
// namespace to show the names as the bridge did, and special-use
// attributes are configuration in Dovecot: Report.DovecotConfig writes
// all three. Maildir filenames carry at most 26 keywords a folder: an
// export of a user with more is refused, naming the mailbox.
package maildirexport
