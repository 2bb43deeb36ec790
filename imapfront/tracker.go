package imapfront

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapbridge/imapbridge/bridge"
)

// hub is the one bridge.Observer of a Server. For every mailbox that at
// least one session has selected it keeps a mailboxState: its own copy of
// the mailbox's UID list (the "server view"), and for each session that
// has it selected a selection with the session's queue of updates not yet
// written to its client. The difference between the server view and the
// queue is the client's view, which sequence numbers are computed from.
//
// Each session has its own queue (not go-imap's shared MailboxTracker)
// because what a session is told differs: \Recent belongs to one session,
// and IMAP4rev1 sessions get RECENT counts.
//
// Lock order: the bridge's mailbox lock (held around every Observer call,
// Mailbox.Watch and Watch.Close) → hub.mu → mailboxState.mu. Sessions take
// mailboxState.mu alone and never call into the bridge or write to the
// network while holding it, so no cycle can form; and every update is
// queued under the bridge's mailbox lock, in the order the bridge made the
// changes.
type hub struct {
	mu    sync.Mutex
	boxes map[bridge.MailboxID]*mailboxState
}

var _ bridge.Observer = (*hub)(nil)

func newHub() *hub {
	return &hub{boxes: make(map[bridge.MailboxID]*mailboxState)}
}

// mailboxState is the shared view of one selected mailbox.
type mailboxState struct {
	id bridge.MailboxID

	mu       sync.Mutex
	uids     []bridge.UID // ascending, the server view
	keywords map[string]bool
	sels     map[*selection]struct{}
}

// updateKind says what an update tells a client.
type updateKind uint8

const (
	updExpunge      updateKind = iota + 1 // * n EXPUNGE
	updExists                             // * n EXISTS
	updRecent                             // * n RECENT (IMAP4rev1)
	updMailboxFlags                       // * FLAGS (…)
	updFetch                              // * n FETCH (UID u FLAGS (…))
)

// update is one untagged response queued for a session. Sequence numbers
// are as they are at the update's place in the queue.
type update struct {
	kind   updateKind
	num    uint32     // expunge: the sequence number; exists, recent: the count
	before uint32     // exists: the count before
	uid    bridge.UID // expunge, fetch
	flags  []imap.Flag
}

// selection is one session's handle on a mailboxState.
type selection struct {
	st       *mailboxState
	mb       *bridge.Mailbox
	watch    *bridge.Watch
	readOnly bool
	// rev1 is set when the client has not enabled IMAP4rev2: it is told
	// about \Recent.
	rev1 bool
	// notify has room for one wake-up: the observer drops a token after it
	// queued updates, IDLE takes it and polls. A token left over while the
	// session was busy only causes one extra, empty, poll.
	notify chan struct{}

	// conn is the session's connection, for what go-imap's writers do not
	// offer (see announceFlags). Set before the first poll.
	conn *imapserver.Conn
	// flagsQueued is set while the queue holds a FLAGS update: the cheap
	// test announceFlags makes before every FETCH response.
	flagsQueued atomic.Bool

	// Guarded by st.mu.
	queue []update
	// known is how many messages the client knows of: the server view's
	// count before the queued updates.
	known uint32
	// The messages recent in this session: the UIDs in [recentFrom,
	// recentTo) it found at SELECT, and those that arrived since and were
	// given to it.
	recentFrom, recentTo bridge.UID
	recentNew            map[bridge.UID]bool
	recentCount          uint32 // recent messages in the server view
	recentTold           uint32 // the last RECENT count queued
}

// isRecent reports whether uid is recent in this session. Called with
// st.mu held, or by the session's own goroutine (which alone changes
// nothing but the queue it polls).
func (sel *selection) isRecentLocked(uid bridge.UID) bool {
	return (uid >= sel.recentFrom && uid < sel.recentTo) || sel.recentNew[uid]
}

// flagsFor returns a message's flags as this session is told them: the
// stored flags, and \Recent for an IMAP4rev1 client if the message is
// recent here. Called with st.mu held.
func (sel *selection) flagsForLocked(uid bridge.UID, flags []string) []imap.Flag {
	out := imapFlags(flags)
	if sel.rev1 && sel.isRecentLocked(uid) {
		out = append(out, imap.Flag(`\Recent`))
	}
	return out
}

// flagsFor is flagsForLocked for the session's own responses.
func (sel *selection) flagsFor(uid bridge.UID, flags []string) []imap.Flag {
	sel.st.mu.Lock()
	defer sel.st.mu.Unlock()
	return sel.flagsForLocked(uid, flags)
}

// isRecent is isRecentLocked for the session's own commands.
func (sel *selection) isRecent(uid bridge.UID) bool {
	sel.st.mu.Lock()
	defer sel.st.mu.Unlock()
	return sel.rev1 && sel.isRecentLocked(uid)
}

func (h *hub) state(id bridge.MailboxID) *mailboxState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.boxes[id]
}

// open selects mb for a session. Under the bridge's mailbox lock (Watch)
// it creates the shared state if nobody has the mailbox selected yet and
// registers the session, so the snapshot and the stream of updates after
// it fit together exactly. A read-write IMAP4rev1 session takes the
// mailbox's recent messages.
func (h *hub) open(ctx context.Context, mb *bridge.Mailbox, readOnly, rev1 bool) (*selection, bridge.Snapshot, error) {
	sel := &selection{mb: mb, readOnly: readOnly, rev1: rev1, notify: make(chan struct{}, 1)}
	var snap bridge.Snapshot
	_, err := mb.Watch(ctx, !readOnly && rev1, func(s bridge.Snapshot) {
		snap = s
		h.mu.Lock()
		defer h.mu.Unlock()
		st := h.boxes[s.Info.ID]
		if st == nil {
			st = &mailboxState{
				id:       s.Info.ID,
				uids:     s.UIDs,
				keywords: make(map[string]bool),
				sels:     make(map[*selection]struct{}),
			}
			h.boxes[s.Info.ID] = st
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, k := range s.Info.Keywords {
			st.keywords[k] = true
		}
		sel.st = st
		// Set here, under the mailbox lock, not after Watch returns: an
		// Appended may come the moment the lock is released, and reads
		// sel.watch to hand out \Recent.
		sel.watch = s.Watch
		sel.known = uint32(len(st.uids))
		sel.recentFrom, sel.recentTo = s.FirstRecent, s.Info.UIDNext
		sel.recentCount = s.Info.Recent
		sel.recentTold = sel.recentCount
		st.sels[sel] = struct{}{}
	})
	if err != nil {
		return nil, snap, err
	}
	return sel, snap, nil
}

// close releases a selection, and the mailbox's state with the last one.
func (h *hub) close(sel *selection) {
	sel.watch.Close(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		st := sel.st
		st.mu.Lock()
		defer st.mu.Unlock()
		delete(st.sels, sel)
		if len(st.sels) == 0 && h.boxes[st.id] == st {
			delete(h.boxes, st.id)
		}
	})
}

// push queues an update for one session and wakes it if it idles. Called
// with st.mu held.
func (sel *selection) push(u update) {
	sel.queue = append(sel.queue, u)
	if u.kind == updMailboxFlags {
		sel.flagsQueued.Store(true)
	}
	select {
	case sel.notify <- struct{}{}:
	default:
	}
}

// Appended implements bridge.Observer: a FLAGS update first if the new
// messages bring keywords the mailbox had not used, then EXISTS, and for
// IMAP4rev1 sessions RECENT when their count of recent messages changed.
func (h *hub) Appended(mb *bridge.Mailbox, msgs []bridge.MessageFlags, recentFor *bridge.Watch) {
	st := h.state(mb.ID())
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	before := uint32(len(st.uids))
	newKeyword := false
	for _, m := range msgs {
		if n := len(st.uids); n > 0 && st.uids[n-1] >= m.UID {
			continue // never happens: UIDs ascend; refuse to corrupt the view
		}
		st.uids = append(st.uids, m.UID)
		newKeyword = st.addKeywords(m.Flags) || newKeyword
	}
	after := uint32(len(st.uids))
	if after == before {
		return
	}
	added := st.uids[before:]
	for sel := range st.sels {
		if newKeyword {
			sel.push(update{kind: updMailboxFlags, flags: st.mailboxFlags()})
		}
		sel.push(update{kind: updExists, num: after, before: before})
		// Recent here: given to this session's watch, or nobody's and
		// this session is one that takes nothing (read-only).
		if recentFor == sel.watch || (recentFor == nil && sel.readOnly) {
			if sel.recentNew == nil {
				sel.recentNew = make(map[bridge.UID]bool)
			}
			for _, uid := range added {
				sel.recentNew[uid] = true
			}
			sel.recentCount += uint32(len(added))
		}
		if sel.rev1 && sel.recentCount != sel.recentTold {
			sel.recentTold = sel.recentCount
			sel.push(update{kind: updRecent, num: sel.recentCount})
		}
	}
}

// addKeywords records keywords in use and reports whether any was new.
// Called with st.mu held.
func (st *mailboxState) addKeywords(flags []string) bool {
	added := false
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) && !st.keywords[f] {
			st.keywords[f] = true
			added = true
		}
	}
	return added
}

// Expunged implements bridge.Observer. The expunges go out in ascending
// order, each number counted after the ones before it are gone, as in the
// example of RFC 9051 section 6.4.3 (messages 3, 4, 7 and 11 expunged:
// "* 3 EXPUNGE", "* 3 EXPUNGE", "* 5 EXPUNGE", "* 8 EXPUNGE").
func (h *hub) Expunged(mb *bridge.Mailbox, uids []bridge.UID) {
	st := h.state(mb.ID())
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	sorted := append([]bridge.UID(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	gone := make(map[bridge.UID]bool, len(sorted))
	for _, uid := range sorted {
		idx, ok := st.index(uid)
		if !ok || gone[uid] {
			continue
		}
		seq := uint32(idx+1) - uint32(len(gone))
		gone[uid] = true
		for sel := range st.sels {
			sel.push(update{kind: updExpunge, num: seq, uid: uid})
			if sel.isRecentLocked(uid) {
				sel.recentCount--
				sel.recentTold = min(sel.recentTold, sel.recentCount)
			}
		}
	}
	if len(gone) == 0 {
		return
	}
	kept := st.uids[:0]
	for _, u := range st.uids {
		if !gone[u] {
			kept = append(kept, u)
		}
	}
	st.uids = kept
}

// FlagsChanged implements bridge.Observer. The session that made the change
// (origin, its *selection) answers for itself and gets no new update, but
// any it has queued for the message are brought up to date. A keyword new
// to the mailbox also queues a FLAGS update.
func (h *hub) FlagsChanged(mb *bridge.Mailbox, uid bridge.UID, flags []string, origin any) {
	st := h.state(mb.ID())
	if st == nil {
		return
	}
	src, _ := origin.(*selection)
	st.mu.Lock()
	defer st.mu.Unlock()
	idx, ok := st.index(uid)
	if !ok {
		return
	}
	newKeyword := st.addKeywords(flags)
	for sel := range st.sels {
		if newKeyword {
			sel.push(update{kind: updMailboxFlags, flags: st.mailboxFlags()})
		}
		if sel == src {
			// The session answers for its own change (STORE's FETCH, or
			// nothing with .SILENT). Updates of this message still queued
			// for it are older, and written after that answer (go-imap
			// polls after the command) they would take the change back
			// in the client's view: they now carry the flags after it.
			for i := range sel.queue {
				if u := &sel.queue[i]; u.kind == updFetch && u.uid == uid {
					u.flags = sel.flagsForLocked(uid, flags)
				}
			}
			continue
		}
		sel.push(update{kind: updFetch, num: uint32(idx + 1), uid: uid, flags: sel.flagsForLocked(uid, flags)})
	}
}

// index finds uid in the server view. Called with st.mu held.
func (st *mailboxState) index(uid bridge.UID) (int, bool) {
	i := sort.Search(len(st.uids), func(i int) bool { return st.uids[i] >= uid })
	return i, i < len(st.uids) && st.uids[i] == uid
}

var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// mailboxFlags is the FLAGS list: the system flags and every keyword seen in
// the mailbox. Called with st.mu held.
func (st *mailboxState) mailboxFlags() []imap.Flag {
	out := append([]imap.Flag(nil), systemFlags...)
	kw := make([]string, 0, len(st.keywords))
	for k := range st.keywords {
		kw = append(kw, k)
	}
	sort.Strings(kw)
	for _, k := range kw {
		out = append(out, imap.Flag(k))
	}
	return out
}

func imapFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}

// encodeLocked maps a position in the server view (1-based) to the
// client's sequence number, or 0 if the client has not been told of that
// message yet. It undoes the queued updates from the last to the first.
func (sel *selection) encodeLocked(pos uint32) uint32 {
	for i := len(sel.queue) - 1; i >= 0; i-- {
		u := &sel.queue[i]
		switch u.kind {
		case updExists:
			if pos > u.before {
				return 0
			}
		case updExpunge:
			if pos >= u.num {
				pos++
			}
		}
	}
	return pos
}

// decodeLocked maps a client's sequence number to a position in the server
// view, or 0 if the message is expunged (and the client not told yet) or
// the number is not one the client knows.
func (sel *selection) decodeLocked(seq uint32) uint32 {
	if seq == 0 || seq > sel.known {
		return 0
	}
	for i := range sel.queue {
		u := &sel.queue[i]
		if u.kind != updExpunge {
			continue
		}
		switch {
		case seq == u.num:
			return 0
		case seq > u.num:
			seq--
		}
	}
	return seq
}

// uidStarLocked is what "*" means in the client's UID sets: the UID of the
// last message it knows of, which may be one expunged and not reported.
func (sel *selection) uidStarLocked() uint32 {
	var star bridge.UID
	for i := len(sel.st.uids); i > 0; i-- {
		if sel.encodeLocked(uint32(i)) != 0 {
			star = sel.st.uids[i-1]
			break
		}
	}
	for _, u := range sel.queue {
		if u.kind == updExpunge && u.uid > star {
			star = u.uid
		}
	}
	return uint32(star)
}

// msgRef is one message as a session's client knows it.
type msgRef struct {
	seq uint32 // the client's sequence number
	uid bridge.UID
}

// resolve turns a client's number set into the messages it names that
// still exist and that the client has been told about, in ascending order.
// saved is the SEARCHRES result, for "$". A sequence number past the
// client's last message, or "*" when it knows of none, is answered BAD, as
// RFC 9051 (formal syntax, seq-number) says; a UID that does not exist is
// ignored (section 6.4.9).
func (sel *selection) resolve(set imap.NumSet, saved imap.UIDSet) ([]msgRef, error) {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if imap.IsSearchRes(set) {
		set = saved
	}
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			for _, n := range []uint32{r.Start, r.Stop} {
				if n > sel.known || (n == 0 && sel.known == 0) {
					return nil, errBadSeq(sel.known)
				}
			}
		}
		return sel.resolveSeqLocked(set), nil
	case imap.UIDSet:
		return sel.resolveUIDLocked(set), nil
	}
	return nil, nil
}

func errBadSeq(known uint32) error {
	if known == 0 {
		return badErr("No messages: the mailbox is empty")
	}
	return badErr(fmt.Sprintf("No such message: the last message is %d", known))
}

// resolveSeqLocked: "*" is the client's last message; numbers past it name
// nothing (a client may name only messages it was told of).
func (sel *selection) resolveSeqLocked(set imap.SeqSet) []msgRef {
	uids := sel.st.uids
	star := sel.known
	var ranges [][2]uint32
	for _, r := range set {
		a, b := rangeBounds(r.Start, r.Stop, star)
		b = min(b, star)
		a = max(a, 1)
		if a <= b {
			ranges = append(ranges, [2]uint32{a, b})
		}
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i][0] < ranges[j][0] })
	var out []msgRef
	next := uint32(1)
	for _, r := range ranges {
		for c := max(r[0], next); c <= r[1]; c++ {
			if p := sel.decodeLocked(c); p != 0 {
				out = append(out, msgRef{seq: c, uid: uids[p-1]})
			}
		}
		next = max(next, r[1]+1)
	}
	return out
}

func (sel *selection) resolveUIDLocked(set imap.UIDSet) []msgRef {
	uids := sel.st.uids
	star := sel.uidStarLocked()
	var ranges [][2]uint32
	for _, r := range set {
		a, b := rangeBounds(uint32(r.Start), uint32(r.Stop), star)
		ranges = append(ranges, [2]uint32{a, b})
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i][0] < ranges[j][0] })
	var out []msgRef
	next := 0 // index into uids not yet covered
	for _, r := range ranges {
		i := sort.Search(len(uids), func(i int) bool { return uint32(uids[i]) >= r[0] })
		i = max(i, next)
		for ; i < len(uids) && uint32(uids[i]) <= r[1]; i++ {
			if c := sel.encodeLocked(uint32(i + 1)); c != 0 {
				out = append(out, msgRef{seq: c, uid: uids[i]})
			}
		}
		next = max(next, i)
	}
	return out
}

// snapshot returns every message the client knows of that still exists,
// with what "*" means in its sequence and UID sets.
func (sel *selection) snapshot() (refs []msgRef, seqStar, uidStar uint32) {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	refs = make([]msgRef, 0, len(st.uids))
	for i, uid := range st.uids {
		if c := sel.encodeLocked(uint32(i + 1)); c != 0 {
			refs = append(refs, msgRef{seq: c, uid: uid})
		}
	}
	return refs, sel.known, sel.uidStarLocked()
}

// clientSeq returns the client's sequence number of uid now, or 0.
func (sel *selection) clientSeq(uid bridge.UID) uint32 {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	i, ok := st.index(uid)
	if !ok {
		return 0
	}
	return sel.encodeLocked(uint32(i + 1))
}

// poll writes the queued updates; without allowExpunge (FETCH, STORE,
// SEARCH) only those before the first EXPUNGE, which must wait. The queue
// is taken under the lock and written without it.
func (sel *selection) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	// FLAGS first: a queued FETCH may show a keyword whose FLAGS update
	// is queued after it (FlagsChanged brings the session's own older
	// updates up to date, keywords and all).
	if err := sel.announceFlags(); err != nil {
		return err
	}
	st := sel.st
	st.mu.Lock()
	n := len(sel.queue)
	if !allowExpunge {
		for i, u := range sel.queue {
			if u.kind == updExpunge {
				n = i
				break
			}
		}
	}
	updates := make([]update, n)
	copy(updates, sel.queue[:n])
	rest := copy(sel.queue, sel.queue[n:])
	clear(sel.queue[rest:])
	sel.queue = sel.queue[:rest]
	for _, u := range updates {
		switch u.kind {
		case updExists:
			sel.known = u.num
		case updExpunge:
			sel.known--
		}
	}
	st.mu.Unlock()

	for _, u := range updates {
		var err error
		switch u.kind {
		case updExpunge:
			err = w.WriteExpunge(u.num)
		case updExists:
			err = w.WriteNumMessages(u.num)
		case updRecent:
			err = w.WriteNumRecent(u.num)
		case updMailboxFlags:
			err = sel.writeMailboxFlags(u.flags)
		case updFetch:
			err = w.WriteMessageFlags(u.num, imap.UID(u.uid), u.flags)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
