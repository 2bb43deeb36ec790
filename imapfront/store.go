package imapfront

import (
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapbridge/imapbridge/bridge"
)

// Store implements imapserver.Session (STORE and UID STORE, ±FLAGS and
// .SILENT). The change reaches the other sessions through the observer; this
// session answers with FETCH FLAGS itself (the observer skips it as origin).
func (s *session) Store(w *imapserver.FetchWriter, set imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) (err error) {
	cmd := numSetCmd(set, "STORE")
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	sel, err := s.selected()
	if err != nil {
		return err
	}
	if options != nil && options.UnchangedSince != 0 {
		return badErr("UNCHANGEDSINCE requires CONDSTORE, which this server does not offer")
	}
	if sel.readOnly {
		return errReadOnly
	}
	list, err := checkFlags(flags.Flags)
	if err != nil {
		return err
	}
	var op bridge.FlagOp
	switch flags.Op {
	case imap.StoreFlagsSet:
		op = bridge.FlagsSet
	case imap.StoreFlagsAdd:
		op = bridge.FlagsAdd
	case imap.StoreFlagsDel:
		op = bridge.FlagsRemove
	default:
		return badErr("Unknown STORE operation")
	}
	refs, err := sel.resolve(set, s.searchRes)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	result, err := sel.mb.Store(s.ctx, refUIDs(refs), op, list, sel)
	if err != nil {
		return s.imapErr(cmd, sel.mb.Name(), err, false)
	}
	if flags.Silent {
		return nil
	}
	// A keyword new to the mailbox is announced before a FETCH shows it.
	if err := sel.announceFlags(); err != nil {
		return err
	}
	_, withUID := set.(imap.UIDSet)
	for _, mf := range result {
		seq := sel.clientSeq(mf.UID)
		if seq == 0 {
			continue // expunged meanwhile by another session
		}
		rw := w.CreateMessage(seq)
		if withUID {
			rw.WriteUID(imap.UID(mf.UID))
		}
		rw.WriteFlags(sel.flagsFor(mf.UID, mf.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Expunge implements imapserver.Session (EXPUNGE, UID EXPUNGE, and CLOSE,
// which go-imap runs with a writer that writes nothing). The EXPUNGE
// responses come from the poll after the command: the observer queued
// them, in order, for every session of the mailbox, this one included.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) (err error) {
	// go-imap's CLOSE passes a zero ExpungeWriter; EXPUNGE a connected one.
	closing := w == nil || *w == (imapserver.ExpungeWriter{})
	cmd := "EXPUNGE"
	switch {
	case closing:
		cmd = "CLOSE"
	case uids != nil:
		cmd = "UID EXPUNGE"
	}
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	sel, err := s.selected()
	if err != nil {
		return err
	}
	if sel.readOnly {
		if closing {
			return nil // CLOSE of an EXAMINEd mailbox expunges nothing
		}
		return errReadOnly
	}
	var limit []bridge.UID
	if uids != nil {
		refs, err := sel.resolve(*uids, s.searchRes)
		if err != nil {
			return err
		}
		limit = refUIDs(refs)
		if len(limit) == 0 {
			return nil
		}
	}
	if _, err := sel.mb.Expunge(s.ctx, limit); err != nil {
		return s.imapErr(cmd, sel.mb.Name(), err, false)
	}
	return nil
}
