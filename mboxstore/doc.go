// Package mboxstore reads (and, where a delete policy asks for it,
// rewrites) mbox spool files such as /var/mail/alice, and offers them to the
// bridge as a bridge.Source.
//
// # Format
//
// The reader accepts the mboxrd family: a message starts with a From_ line
// ("From sender asctime-date") at the start of the file or right after an
// empty line, and ends just before the empty separator line that precedes
// the next From_ line (or at the end of the file). A body line that begins
// with "From " but does not follow an empty line is message text, not a
// boundary. Lines matching ^>+From  lose one '>' when read (mboxrd); a
// mboxo spool reads the same way, which is the documented mboxrd convention.
// Messages are returned with CRLF line endings: a bare LF becomes CRLF, an
// existing CRLF is kept, every other byte (8-bit text, long lines, lone CR)
// is returned as stored.
//
// The scanner works on large buffers with bytes.Index/bytes.IndexByte, keeps
// the byte offsets of every message (From_ line, content, end) so that a
// growing spool can be read from where the previous read stopped, and holds
// back a last message that is not yet followed by a From_ line until the
// caller says the spool has settled.
//
// # Message keys
//
// Every message gets a content key: the first 128 bits of SHA-256 over the
// message as Fetch returns it, with CRLF turned back into LF, and without the
// header fields that mail programs rewrite in place when they mark a message
// read or assign IMAP state: Status, X-Status, X-UID, X-Keywords, X-IMAP,
// X-IMAPbase, Content-Length, Lines, X-Mozilla-Status and X-Mozilla-Status2
// (mutt adds Status, X-Status, Content-Length and Lines when it rewrites a
// spool; Dovecot the X-* IMAP fields and Content-Length; Thunderbird the
// X-Mozilla ones). The From_ line is not part of the key. A spool that
// another program rewrote, reordered or truncated therefore keeps the keys of
// the messages it still holds.
//
// The source id of a message is its key in hex ("3f1c…"); byte-identical
// messages in one spool are numbered by occurrence in spool order: "<hex>",
// "<hex>.2", "<hex>.3". Deleting an earlier copy renumbers the later ones.
//
// # Locking
//
// A spool is read under the locks the local MDA honours, taken in the order
// Dovecot and procmail use: the dotlock file "<spool>.lock" (only if
// configured), then an fcntl lock on the whole file (a read lock for
// reading, upgraded to a write lock to rewrite). fcntl locks belong to the
// process, so a Source serialises its own sessions on one spool and never
// opens a second descriptor of a spool it holds locked.
//
// # Deleting
//
// Deletions are committed by rewriting the spool in place (same inode), so
// that an MDA blocked on the old inode's fcntl lock appends to the live file.
// See Source and the README for what a crash during a rewrite can leave.
//
// It imports bridge (for the Source port and its types) and nothing else of
// this module: no face (imapfront), no other source (pop3), no
// internal/config; cmd/imapbridge builds a Source from the config.
package mboxstore
