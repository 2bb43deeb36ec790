package imapfront

import (
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapbridge/imapbridge/bridge"
)

// Copy implements imapserver.Session (COPY and UID COPY, with COPYUID).
func (s *session) Copy(set imap.NumSet, dest string) (data *imap.CopyData, err error) {
	cmd := numSetCmd(set, "COPY")
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	sel, err := s.selected()
	if err != nil {
		return nil, err
	}
	destMb, err := s.destination(cmd, dest)
	if err != nil {
		return nil, err
	}
	refs, err := sel.resolve(set, s.searchRes)
	if err != nil {
		return nil, err
	}
	uids := refUIDs(refs)
	if len(uids) == 0 {
		return nil, nil
	}
	uv, src, dst, err := sel.mb.CopyTo(s.ctx, uids, destMb)
	if err != nil {
		return nil, s.imapErr(cmd, destMb.Name(), err, true)
	}
	return copyData(uv, src, dst), nil
}

// Move implements imapserver.SessionMove (MOVE and UID MOVE, RFC 6851): the
// COPYUID goes out first, the EXPUNGEs follow from the poll go-imap runs
// after the command, as for any expunge.
func (s *session) Move(w *imapserver.MoveWriter, set imap.NumSet, dest string) (err error) {
	cmd := numSetCmd(set, "MOVE")
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	sel, err := s.selected()
	if err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	destMb, err := s.destination(cmd, dest)
	if err != nil {
		return err
	}
	refs, err := sel.resolve(set, s.searchRes)
	if err != nil {
		return err
	}
	uids := refUIDs(refs)
	if len(uids) == 0 {
		return nil
	}
	uv, src, dst, err := sel.mb.MoveTo(s.ctx, uids, destMb, sel)
	if err != nil {
		return s.imapErr(cmd, destMb.Name(), err, true)
	}
	if data := copyData(uv, src, dst); data != nil {
		return w.WriteCopyData(data)
	}
	return nil
}

func (s *session) destination(cmd, name string) (*bridge.Mailbox, error) {
	cn, err := canonicalName(name)
	if err != nil {
		return nil, err // not a name that CREATE would take: no [TRYCREATE]
	}
	mb, err := s.user.Mailbox(s.ctx, cn)
	if err != nil {
		return nil, s.imapErr(cmd, cn, err, true)
	}
	return mb, nil
}

func copyData(uv bridge.UIDValidity, src, dst []bridge.UID) *imap.CopyData {
	if len(src) == 0 {
		return nil
	}
	data := &imap.CopyData{UIDValidity: uint32(uv)}
	for i := range src {
		data.SourceUIDs.AddNum(imap.UID(src[i]))
		data.DestUIDs.AddNum(imap.UID(dst[i]))
	}
	return data
}

func refUIDs(refs []msgRef) []bridge.UID {
	out := make([]bridge.UID, len(refs))
	for i, r := range refs {
		out[i] = r.uid
	}
	return out
}
