package imapfront

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/bridge"
)

// Select implements imapserver.Session (SELECT and EXAMINE).
func (s *session) Select(name string, options *imap.SelectOptions) (data *imap.SelectData, err error) {
	cmd := "SELECT"
	if options != nil && options.ReadOnly {
		cmd = "EXAMINE"
	}
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	if s.sel != nil { // go-imap unselects first; be safe anyway
		s.Unselect()
	}
	cn, err := canonicalName(name)
	if err != nil {
		return nil, noErr(imap.ResponseCodeNonExistent, "Mailbox does not exist")
	}
	mb, err := s.user.Mailbox(s.ctx, cn)
	if err != nil {
		return nil, s.imapErr(cmd, cn, err, false)
	}
	readOnly := options != nil && options.ReadOnly
	rev1 := !s.conn.EnabledCaps().Has(imap.CapIMAP4rev2)
	sel, snap, err := s.srv.hub.open(s.ctx, mb, readOnly, rev1)
	if sel != nil {
		sel.conn = s.conn
	}
	if err != nil {
		return nil, s.imapErr(cmd, cn, err, false)
	}
	s.sel = sel
	s.searchRes = nil
	info := snap.Info

	// The client's view starts as the snapshot: its numbers are positions
	// in it.
	var unseenSeq uint32
	if snap.FirstUnseen != 0 {
		unseenSeq = uint32(sort.Search(len(snap.UIDs), func(i int) bool { return snap.UIDs[i] >= snap.FirstUnseen }) + 1)
	}
	var numRecent uint32
	if rev1 {
		numRecent = info.Recent // taken by this session, or seen without taking (EXAMINE)
	}
	sel.st.mu.Lock()
	flags := sel.st.mailboxFlags()
	sel.st.mu.Unlock()
	numMessages := uint32(len(snap.UIDs))

	permanent := permanentFlags(flags, readOnly)
	data = &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    permanent,
		NumMessages:       numMessages,
		NumRecent:         numRecent,
		FirstUnseenSeqNum: unseenSeq,
		UIDNext:           imap.UID(info.UIDNext),
		UIDValidity:       uint32(info.UIDValidity),
	}
	if s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		data.List = &imap.ListData{Mailbox: info.Name, Delim: delim, Attrs: specialUseAttrs(info.SpecialUse)}
	}
	s.log.Debug("imap: selected", "mailbox", Clip(info.Name), "read_only", readOnly, "messages", numMessages)
	return data, nil
}

// Create implements imapserver.Session (CREATE, with RFC 6154 USE).
func (s *session) Create(name string, options *imap.CreateOptions) (err error) {
	defer func(start time.Time) { err = s.done("CREATE", start, err) }(time.Now())
	// A trailing delimiter only says the client means to create children.
	name = strings.TrimSuffix(name, string(delim))
	cn, err := canonicalName(name)
	if err != nil {
		return err
	}
	use := ""
	if options != nil {
		switch len(options.SpecialUse) {
		case 0:
		case 1:
			use = string(options.SpecialUse[0])
		default:
			return noErr(codeUseAttr, "Only one special-use attribute per mailbox")
		}
	}
	err = s.user.CreateMailbox(s.ctx, cn, use)
	if errors.Is(err, bridge.ErrInvalidSpecialUse) {
		return noErr(codeUseAttr, "Unsupported special-use attribute "+use)
	}
	if err != nil {
		return s.imapErr("CREATE", cn, err, false)
	}
	return nil
}

// Delete implements imapserver.Session.
func (s *session) Delete(name string) (err error) {
	defer func(start time.Time) { err = s.done("DELETE", start, err) }(time.Now())
	cn, err := canonicalName(name)
	if err != nil {
		return noErr(imap.ResponseCodeNonExistent, "Mailbox does not exist")
	}
	if err := s.user.DeleteMailbox(s.ctx, cn); err != nil {
		return s.imapErr("DELETE", cn, err, false)
	}
	return nil
}

// Rename implements imapserver.Session.
func (s *session) Rename(from, to string, _ *imap.RenameOptions) (err error) {
	defer func(start time.Time) { err = s.done("RENAME", start, err) }(time.Now())
	cfrom, err := canonicalName(from)
	if err != nil {
		return noErr(imap.ResponseCodeNonExistent, "Mailbox does not exist")
	}
	cto, err := canonicalName(strings.TrimSuffix(to, string(delim)))
	if err != nil {
		return err
	}
	if err := s.user.RenameMailbox(s.ctx, cfrom, cto); err != nil {
		return s.imapErr("RENAME", cfrom, err, false)
	}
	return nil
}

// Subscribe implements imapserver.Session.
func (s *session) Subscribe(name string) error {
	return s.setSubscribed("SUBSCRIBE", name, true)
}

// Unsubscribe implements imapserver.Session.
func (s *session) Unsubscribe(name string) error {
	return s.setSubscribed("UNSUBSCRIBE", name, false)
}

// setSubscribed: SUBSCRIBE needs an existing mailbox (RFC 9051 section
// 6.3.7 allows checking); UNSUBSCRIBE succeeds for a name that is not
// subscribed or whose mailbox is gone (section 6.3.8).
func (s *session) setSubscribed(cmd, name string, on bool) (err error) {
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	cn, err := canonicalName(name)
	if err != nil {
		if !on {
			return nil // such a name was never subscribed
		}
		return noErr(imap.ResponseCodeNonExistent, "Mailbox does not exist")
	}
	if err := s.user.SetSubscribed(s.ctx, cn, on); err != nil {
		return s.imapErr(cmd, cn, err, false)
	}
	return nil
}

// Status implements imapserver.Session.
func (s *session) Status(name string, options *imap.StatusOptions) (data *imap.StatusData, err error) {
	defer func(start time.Time) { err = s.done("STATUS", start, err) }(time.Now())
	if err := checkStatusOptions(options); err != nil {
		return nil, err
	}
	cn, err := canonicalName(name)
	if err != nil {
		return nil, noErr(imap.ResponseCodeNonExistent, "Mailbox does not exist")
	}
	mb, err := s.user.Mailbox(s.ctx, cn)
	if err != nil {
		return nil, s.imapErr("STATUS", cn, err, false)
	}
	return s.statusData(mb.Info(), options), nil
}

// checkStatusOptions refuses items this server does not compute (go-imap
// would dereference a nil answer for them).
func checkStatusOptions(options *imap.StatusOptions) error {
	if options.DeletedStorage || options.HighestModSeq {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unsupported STATUS data item"}
	}
	return nil
}

func (s *session) statusData(info bridge.MailboxInfo, options *imap.StatusOptions) *imap.StatusData {
	data := &imap.StatusData{Mailbox: info.Name}
	if options.NumMessages {
		n := info.Messages
		data.NumMessages = &n
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(info.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = uint32(info.UIDValidity)
	}
	if options.NumUnseen {
		n := info.Unseen
		data.NumUnseen = &n
	}
	if options.NumDeleted {
		n := info.Deleted
		data.NumDeleted = &n
	}
	if options.Size {
		n := info.Size
		data.Size = &n
	}
	if options.NumRecent {
		n := info.Recent
		data.NumRecent = &n
	}
	if options.AppendLimit {
		n := s.srv.opts.AppendLimit
		data.AppendLimit = &n
	}
	return data
}

func specialUseAttrs(use string) []imap.MailboxAttr {
	if use == "" {
		return nil
	}
	return []imap.MailboxAttr{imap.MailboxAttr(use)}
}
