package imapfront

import (
	_ "unsafe" // go:linkname, below

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// RFC 3501 section 7.2.6: a client learns the flags of a mailbox from FLAGS
// (and what it may set from PERMANENTFLAGS), and a FETCH may show only
// flags it has been told. A keyword new to the mailbox (a STORE, COPY, MOVE
// or APPEND by any session) queues a FLAGS update for every session (see
// hub); but a session's own answers — the FETCH responses of FETCH and
// STORE — are written during the command, before go-imap polls the queue
// after it. So those commands first write the FLAGS and PERMANENTFLAGS
// that are queued (announceFlags), out of the queue's order: neither names
// a sequence number, so moving them ahead of EXISTS or EXPUNGE changes
// nothing else the client knows.
//
// go-imap v2.0.0-beta.8 offers no way to write FLAGS from inside a command
// (FetchWriter writes only FETCH responses) nor PERMANENTFLAGS outside
// SELECT: its Conn's own writers are used, through go:linkname. They take
// the connection's encoder lock like every other response, so they never
// interleave with one. TestFlagsAnnouncedBeforeFetch fails if a go-imap
// upgrade changes them.

//go:linkname connWriteFlags github.com/emersion/go-imap/v2/imapserver.(*Conn).writeFlags
func connWriteFlags(c *imapserver.Conn, flags []imap.Flag) error

//go:linkname connWritePermanentFlags github.com/emersion/go-imap/v2/imapserver.(*Conn).writePermanentFlags
func connWritePermanentFlags(c *imapserver.Conn, flags []imap.Flag) error

// permanentFlags is PERMANENTFLAGS for a mailbox whose FLAGS are flags:
// all of them and \* (new keywords may be made), or none when read-only.
func permanentFlags(flags []imap.Flag, readOnly bool) []imap.Flag {
	if readOnly {
		return []imap.Flag{}
	}
	return append(append(make([]imap.Flag, 0, len(flags)+1), flags...), imap.FlagWildcard)
}

// writeMailboxFlags writes "* FLAGS" and "* OK [PERMANENTFLAGS]".
func (sel *selection) writeMailboxFlags(flags []imap.Flag) error {
	if err := connWriteFlags(sel.conn, flags); err != nil {
		return err
	}
	return connWritePermanentFlags(sel.conn, permanentFlags(flags, sel.readOnly))
}

// announceFlags writes, ahead of the queue, the FLAGS updates it holds,
// as one FLAGS (the latest list: each is a superset of the one before).
// Called by the session's goroutine before it writes FETCH responses, never
// while a response is being written.
func (sel *selection) announceFlags() error {
	if !sel.flagsQueued.Load() {
		return nil
	}
	st := sel.st
	st.mu.Lock()
	var flags []imap.Flag
	kept := sel.queue[:0]
	for _, u := range sel.queue {
		if u.kind == updMailboxFlags {
			flags = u.flags
			continue
		}
		kept = append(kept, u)
	}
	clear(sel.queue[len(kept):])
	sel.queue = kept
	sel.flagsQueued.Store(false)
	st.mu.Unlock()
	if flags == nil {
		return nil
	}
	return sel.writeMailboxFlags(flags)
}
