package imapfront

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapbridge/imapbridge/bridge"
)

// List implements imapserver.Session: LIST (with the LIST-EXTENDED selection
// options SUBSCRIBED, RECURSIVEMATCH and SPECIAL-USE and the return options
// SUBSCRIBED, CHILDREN, SPECIAL-USE and STATUS) and LSUB.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) (err error) {
	defer func(start time.Time) { err = s.done("LIST", start, err) }(time.Now())
	if options == nil {
		options = &imap.ListOptions{}
	}
	if options.ReturnStatus != nil {
		if err := checkStatusOptions(options.ReturnStatus); err != nil {
			return err
		}
	}
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and the root.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim, Mailbox: ""})
	}
	infos, err := s.user.ListMailboxes(s.ctx)
	if err != nil {
		return s.imapErr("LIST", "", err, false)
	}
	exists := make(map[string]bool, len(infos))
	for _, info := range infos {
		exists[info.Name] = true
	}
	if options.SelectSubscribed {
		// A subscription outlives its mailbox: LIST (SUBSCRIBED) shows it
		// as \NonExistent (RFC 5258 section 3).
		subs, err := s.user.Subscriptions(s.ctx)
		if err != nil {
			return s.imapErr("LIST", "", err, false)
		}
		listed := make(map[string]bool, len(exists))
		for name := range exists {
			listed[name] = true
		}
		for _, name := range subs {
			if !listed[name] {
				listed[name] = true
				infos = append(infos, bridge.MailboxInfo{Name: name, Subscribed: true})
			}
		}
		if options.SelectRecursiveMatch {
			// A parent that exists no more may still have subscribed
			// children: RECURSIVEMATCH shows it \NonExistent with CHILDINFO.
			for _, name := range subs {
				for p := parentName(name); p != ""; p = parentName(p) {
					if !listed[p] {
						listed[p] = true
						infos = append(infos, bridge.MailboxInfo{Name: p})
					}
				}
			}
		}
		sortInfos(infos)
	}
	ref = canonicalInboxPrefix(ref)
	for i := range patterns {
		patterns[i] = canonicalInboxPrefix(patterns[i])
	}
	matches := func(name string) bool {
		for _, p := range patterns {
			if imapserver.MatchList(name, delim, ref, p) {
				return true
			}
		}
		return false
	}

	// LSUB with "%" (RFC 3501 section 6.3.9): a level the pattern stops at
	// that is not subscribed itself but has a subscribed child the pattern
	// does not match is listed \Noselect, so that the client can walk down.
	noSelect := make(map[string]bool)
	if isLSub(w) {
		subscribed := make(map[string]bool)
		for _, info := range infos {
			if info.Subscribed {
				subscribed[info.Name] = true
			}
		}
		for _, info := range infos {
			if !info.Subscribed || matches(info.Name) {
				continue
			}
			for p := parentName(info.Name); p != ""; p = parentName(p) {
				if !subscribed[p] && !noSelect[p] && matches(p) {
					noSelect[p] = true
				}
			}
		}
		if len(noSelect) > 0 {
			listed := make(map[string]bool, len(infos))
			for _, info := range infos {
				listed[info.Name] = true
			}
			for p := range noSelect {
				if !listed[p] {
					infos = append(infos, bridge.MailboxInfo{Name: p})
				}
			}
			sortInfos(infos)
		}
	}

	if options.SelectRecursiveMatch && s.guard != nil {
		s.guard.holdWrites()
		s.guard.quoteChildInfo()
		defer func() {
			if werr := s.guard.releaseWrites(); err == nil && werr != nil {
				err = werr
			}
		}()
	}

	hasChildren := make(map[string]bool)
	subscribedBelow := make(map[string]bool) // has a subscribed descendant the patterns do not match
	for _, info := range infos {
		unmatchedSub := info.Subscribed && !matches(info.Name)
		for p := parentName(info.Name); p != ""; p = parentName(p) {
			if exists[info.Name] {
				hasChildren[p] = true
			}
			if unmatchedSub {
				subscribedBelow[p] = true
			}
		}
	}

	for _, info := range infos {
		if !matches(info.Name) {
			continue
		}
		if options.SelectSpecialUse && info.SpecialUse == "" {
			continue
		}
		if noSelect[info.Name] {
			if err := w.WriteList(&imap.ListData{Mailbox: info.Name, Delim: delim, Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}}); err != nil {
				return err
			}
			continue
		}
		var childInfo *imap.ListDataChildInfo
		if options.SelectSubscribed {
			if options.SelectRecursiveMatch && subscribedBelow[info.Name] {
				childInfo = &imap.ListDataChildInfo{Subscribed: true}
			} else if !info.Subscribed {
				continue
			}
		}
		data := &imap.ListData{Mailbox: info.Name, Delim: delim, ChildInfo: childInfo}
		// \HasChildren and \HasNoChildren (RFC 5258 section 4) go out with
		// every LIST; they count existing children only. A name that is
		// only subscribed is \NonExistent and, having no children, gets
		// neither.
		switch {
		case hasChildren[info.Name]:
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		case exists[info.Name]:
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if !exists[info.Name] {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		}
		if info.Subscribed && (options.SelectSubscribed || options.ReturnSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		// Special-use attributes go out with every LIST, as RFC 6154
		// recommends and clients expect.
		data.Attrs = append(data.Attrs, specialUseAttrs(info.SpecialUse)...)
		if options.ReturnStatus != nil && exists[info.Name] {
			data.Status = s.statusData(info, options.ReturnStatus)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// isLSub reports whether w writes LSUB responses: go-imap calls List for
// LSUB with the options of LIST (SUBSCRIBED) and says which only in the
// writer's unexported field (TestLSubNoselect fails if that changes).
func isLSub(w *imapserver.ListWriter) bool {
	v := reflect.ValueOf(w).Elem().FieldByName("lsub")
	return v.IsValid() && v.Kind() == reflect.Bool && v.Bool()
}

// sortInfos orders mailboxes as ListMailboxes does: INBOX first, then by
// name.
func sortInfos(infos []bridge.MailboxInfo) {
	sort.Slice(infos, func(i, j int) bool {
		a, b := infos[i].Name, infos[j].Name
		if (a == bridge.InboxName) != (b == bridge.InboxName) {
			return a == bridge.InboxName
		}
		return a < b
	})
}

// parentName returns the name one level up, or "".
func parentName(name string) string {
	i := strings.LastIndex(name, bridge.Delimiter)
	if i < 0 {
		return ""
	}
	return name[:i]
}

// canonicalInboxPrefix spells a leading "inbox" level (in any case, as in
// a pattern "Inbox/%") as the stored "INBOX".
func canonicalInboxPrefix(s string) string {
	first, rest, found := strings.Cut(s, bridge.Delimiter)
	if !strings.EqualFold(first, bridge.InboxName) {
		return s
	}
	if found {
		return bridge.InboxName + bridge.Delimiter + rest
	}
	return bridge.InboxName
}
