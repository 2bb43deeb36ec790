package imapfront

import (
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapbridge/imapbridge/bridge"
)

// hub is the one bridge.Observer of a Server. For every mailbox that at
// least one session has selected it keeps a mailboxState: its own copy of
// the mailbox's UID list (the "server view" that sequence numbers are
// computed from) and an imapserver.MailboxTracker that queues the updates
// for every session.
//
// Lock order: the bridge's mailbox lock (held around every Observer call
// and around Mailbox.View) → hub.mu → mailboxState.mu → the tracker's own
// locks. Sessions take mailboxState.mu alone and never call into the bridge
// while holding it, so no cycle can form; and every tracker update happens
// under the bridge's mailbox lock, in the order the bridge made the changes.
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
	maxUID   bridge.UID   // highest UID ever assigned (UIDNEXT-1)
	keywords map[string]bool
	tracker  *imapserver.MailboxTracker
	sels     map[*selection]struct{}
}

// selection is one session's handle on a mailboxState.
type selection struct {
	st       *mailboxState
	mb       *bridge.Mailbox
	tracker  *imapserver.SessionTracker
	readOnly bool
	// notify has room for one wake-up: the observer drops a token after it
	// queued updates, IDLE takes it and polls. A token left over while the
	// session was busy only causes one extra, empty, poll.
	notify chan struct{}
	// expungesHi is an upper bound on the EXPUNGE updates queued for this
	// session and not yet written (guarded by st.mu); see seqStar.
	expungesHi int
}

func (h *hub) state(id bridge.MailboxID) *mailboxState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.boxes[id]
}

// open selects mb for a session: under the bridge's mailbox lock (View) it
// creates the shared state if nobody has the mailbox selected yet, and
// registers a session tracker, so the UID snapshot and the stream of
// updates after it fit together exactly.
func (h *hub) open(mb *bridge.Mailbox, readOnly bool, keywords []string) (*selection, bridge.MailboxInfo) {
	sel := &selection{mb: mb, readOnly: readOnly, notify: make(chan struct{}, 1)}
	var info bridge.MailboxInfo
	mb.View(func(i bridge.MailboxInfo, uids []bridge.UID) {
		info = i
		h.mu.Lock()
		defer h.mu.Unlock()
		st := h.boxes[i.ID]
		if st == nil {
			maxUID := bridge.UID(0)
			if i.UIDNext > 0 {
				maxUID = i.UIDNext - 1
			}
			st = &mailboxState{
				id:       i.ID,
				uids:     uids,
				maxUID:   maxUID,
				keywords: make(map[string]bool),
				tracker:  imapserver.NewMailboxTracker(uint32(len(uids))),
				sels:     make(map[*selection]struct{}),
			}
			h.boxes[i.ID] = st
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, k := range keywords {
			st.keywords[k] = true
		}
		sel.st = st
		sel.tracker = st.tracker.NewSession()
		st.sels[sel] = struct{}{}
	})
	return sel, info
}

// close releases a selection, and the mailbox's state with the last one.
func (h *hub) close(sel *selection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.sels, sel)
	sel.tracker.Close()
	if len(st.sels) == 0 && h.boxes[st.id] == st {
		delete(h.boxes, st.id)
	}
}

// wake tells every idling session of st that updates are queued. Called
// with st.mu held.
func (st *mailboxState) wake() {
	for sel := range st.sels {
		select {
		case sel.notify <- struct{}{}:
		default:
		}
	}
}

// Appended implements bridge.Observer. The tracker gets one EXISTS update
// per message: beta.8's SessionTracker.EncodeSeqNum only recognises a
// not-yet-announced message if the count grew by one at a time.
func (h *hub) Appended(mb *bridge.Mailbox, uids []bridge.UID) {
	st := h.state(mb.ID())
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, uid := range uids {
		if n := len(st.uids); n > 0 && st.uids[n-1] >= uid {
			continue // never happens: UIDs ascend; refuse to corrupt the view
		}
		st.uids = append(st.uids, uid)
		if uid > st.maxUID {
			st.maxUID = uid
		}
		st.tracker.QueueNumMessages(uint32(len(st.uids)))
	}
	st.wake()
}

// Expunged implements bridge.Observer. The sequence numbers are computed
// from the highest UID down, each against the list as it is before the
// removal, so one pass over the list suffices and every number is in range
// when the tracker sees it.
func (h *hub) Expunged(mb *bridge.Mailbox, uids []bridge.UID) {
	st := h.state(mb.ID())
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	gone := make(map[bridge.UID]bool, len(uids))
	n := 0
	for i := len(uids) - 1; i >= 0; i-- {
		uid := uids[i]
		idx, ok := st.index(uid)
		if !ok || gone[uid] {
			continue
		}
		gone[uid] = true
		st.tracker.QueueExpunge(uint32(idx + 1))
		n++
	}
	if n == 0 {
		return
	}
	kept := st.uids[:0]
	for _, u := range st.uids {
		if !gone[u] {
			kept = append(kept, u)
		}
	}
	st.uids = kept
	for sel := range st.sels {
		sel.expungesHi += n
	}
	st.wake()
}

// FlagsChanged implements bridge.Observer. The session that made the change
// (origin, its *imapserver.SessionTracker) answers for itself and is
// skipped. A keyword new to the mailbox also queues a FLAGS update.
func (h *hub) FlagsChanged(mb *bridge.Mailbox, uid bridge.UID, flags []string, origin any) {
	st := h.state(mb.ID())
	if st == nil {
		return
	}
	src, _ := origin.(*imapserver.SessionTracker)
	st.mu.Lock()
	defer st.mu.Unlock()
	idx, ok := st.index(uid)
	if !ok {
		return
	}
	newKeyword := false
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) && !st.keywords[f] {
			st.keywords[f] = true
			newKeyword = true
		}
	}
	if newKeyword {
		st.tracker.QueueMailboxFlags(st.mailboxFlags())
	}
	st.tracker.QueueMessageFlags(uint32(idx+1), imap.UID(uid), imapFlags(flags), src)
	st.wake()
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

// msgRef is one message as a session's client knows it.
type msgRef struct {
	seq uint32 // the client's sequence number
	uid bridge.UID
}

// resolve turns a client's number set into the messages it names that
// still exist and that the client has been told about, in ascending order.
// saved is the SEARCHRES result, for "$".
func (sel *selection) resolve(set imap.NumSet, saved imap.UIDSet) []msgRef {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if imap.IsSearchRes(set) {
		set = saved
	}
	switch set := set.(type) {
	case imap.SeqSet:
		return sel.resolveSeqLocked(set)
	case imap.UIDSet:
		return sel.resolveUIDLocked(set)
	}
	return nil
}

func (sel *selection) resolveSeqLocked(set imap.SeqSet) []msgRef {
	uids := sel.st.uids
	star, limit := sel.seqStarLocked()
	var ranges [][2]uint32
	for _, r := range set {
		a, b := r.Start, r.Stop
		if a == 0 {
			a = star
		}
		if b == 0 {
			b = star
		}
		if a > b {
			a, b = b, a
		}
		if b > limit {
			b = limit
		}
		if a == 0 {
			a = 1
		}
		if a <= b {
			ranges = append(ranges, [2]uint32{a, b})
		}
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i][0] < ranges[j][0] })
	var out []msgRef
	next := uint32(1)
	for _, r := range ranges {
		a := max(r[0], next)
		for c := a; c <= r[1]; c++ {
			s := sel.tracker.DecodeSeqNum(c)
			if s == 0 || s > uint32(len(uids)) {
				continue
			}
			// DecodeSeqNum also maps numbers past the client's view onto
			// messages not announced yet; those are not the client's.
			if sel.tracker.EncodeSeqNum(s) != c {
				continue
			}
			out = append(out, msgRef{seq: c, uid: uids[s-1]})
		}
		if r[1]+1 > next {
			next = r[1] + 1
		}
	}
	return out
}

// seqStarLocked returns what "*" means in a client's sequence set, which is
// also the highest number worth looking at.
//
// The client's message count C is the server's count adjusted by the
// updates queued and not yet written, which the tracker does not expose.
// Let A be the messages at the end of the server view not announced yet
// (EncodeSeqNum gives 0), M the client number of the last announced one,
// and E an upper bound on queued expunges (counted by the observer, reset
// when a poll writes them). Then M ≤ C ≤ N−A+E. When the bounds meet, "*"
// is exact; when they don't, the client's last message(s) are expunged and
// waiting to be reported, so "*" is taken as the upper bound: "n:*" still
// names the right live messages for every n ≤ M and none above, where a
// lower guess could wrongly name message M.
func (sel *selection) seqStarLocked() (star, limit uint32) {
	uids := sel.st.uids
	n := uint32(len(uids))
	announced := n
	for announced > 0 && sel.tracker.EncodeSeqNum(announced) == 0 {
		announced--
	}
	var m uint32
	if announced > 0 {
		m = sel.tracker.EncodeSeqNum(announced)
	}
	hi := max(announced+uint32(sel.expungesHi), m)
	return hi, hi
}

func (sel *selection) resolveUIDLocked(set imap.UIDSet) []msgRef {
	uids := sel.st.uids
	maxUID := uint32(sel.st.maxUID)
	var ranges [][2]uint32
	for _, r := range set {
		a, b := uint32(r.Start), uint32(r.Stop)
		if a == 0 {
			a = maxUID
		}
		if b == 0 {
			b = maxUID
		}
		if a > b {
			a, b = b, a
		}
		ranges = append(ranges, [2]uint32{a, b})
	}
	sort.Slice(ranges, func(i, j int) bool { return ranges[i][0] < ranges[j][0] })
	var out []msgRef
	next := 0 // index into uids not yet covered
	for _, r := range ranges {
		i := sort.Search(len(uids), func(i int) bool { return uint32(uids[i]) >= r[0] })
		i = max(i, next)
		for ; i < len(uids) && uint32(uids[i]) <= r[1]; i++ {
			c := sel.tracker.EncodeSeqNum(uint32(i + 1))
			if c == 0 {
				continue // not announced to this client yet
			}
			out = append(out, msgRef{seq: c, uid: uids[i]})
		}
		next = max(next, i)
	}
	return out
}

// all returns every message the client knows of that still exists.
func (sel *selection) all() []msgRef {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]msgRef, 0, len(st.uids))
	for i, uid := range st.uids {
		c := sel.tracker.EncodeSeqNum(uint32(i + 1))
		if c == 0 {
			continue
		}
		out = append(out, msgRef{seq: c, uid: uid})
	}
	return out
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
	return sel.tracker.EncodeSeqNum(uint32(i + 1))
}

// poll writes the queued updates. When expunges may be written, the
// expunge bound is reset first: an expunge queued between the reset and the
// tracker taking its queue is counted although written, which keeps the
// count an upper bound.
func (sel *selection) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if allowExpunge {
		sel.st.mu.Lock()
		sel.expungesHi = 0
		sel.st.mu.Unlock()
	}
	return sel.tracker.Poll(w, allowExpunge)
}
