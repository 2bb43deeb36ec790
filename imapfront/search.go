package imapfront

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	stdtextproto "net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/imapbridge/imapbridge/bridge"
)

// Search implements imapserver.Session (SEARCH and UID SEARCH, with the
// ESEARCH return options MIN, MAX, ALL, COUNT and SAVE). Sequence sets,
// UIDs, flags, internal dates and sizes are answered from the in-memory
// index, the Date header from the ingest index; only HEADER, SUBJECT,
// FROM, TO, CC, BCC, BODY and TEXT open messages, once each.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (data *imap.SearchData, err error) {
	cmd := uidCmd(kind, "SEARCH")
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	sel, err := s.selected()
	if err != nil {
		return nil, err
	}
	if usesModSeq(criteria) {
		return nil, badErr("MODSEQ requires CONDSTORE, which this server does not offer")
	}
	refs, seqStar, uidStar := sel.snapshot()
	se := &searcher{s: s, sel: sel, seqStar: seqStar, uidStar: uidStar, saved: s.searchRes}
	var msgs []bridge.Message
	if len(refs) > 0 {
		msgs, err = sel.mb.Messages(s.ctx, refUIDs(refs), needsIndex(criteria))
		if err != nil {
			return nil, s.imapErr(cmd, sel.mb.Name(), err, false)
		}
	}

	data = &imap.SearchData{}
	var seqSet imap.SeqSet
	var uidSet imap.UIDSet
	joinRefs(refs, msgs, func(ref msgRef, m *bridge.Message) bool {
		cand := &candidate{ref: ref, m: m}
		ok := se.match(criteria, cand)
		if se.err != nil {
			return false
		}
		if !ok {
			return true
		}
		uidSet.AddNum(imap.UID(m.UID))
		num := ref.seq
		if kind == imapserver.NumKindUID {
			num = uint32(m.UID)
		} else {
			seqSet.AddNum(num)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
		return true
	})
	if se.err != nil {
		return nil, s.imapErr(cmd, sel.mb.Name(), se.err, false)
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	if options != nil && options.ReturnSave {
		s.searchRes = savedResult(options, uidSet, data, kind, refs)
	}
	return data, nil
}

// joinRefs calls fn for each message of msgs with the client's reference
// to it (both ascend by UID; a message missing from either side, expunged
// meanwhile, is skipped), until fn returns false.
func joinRefs(refs []msgRef, msgs []bridge.Message, fn func(ref msgRef, m *bridge.Message) bool) {
	j := 0
	for i := range msgs {
		m := &msgs[i]
		for j < len(refs) && refs[j].uid < m.UID {
			j++
		}
		if j == len(refs) || refs[j].uid != m.UID {
			continue
		}
		if !fn(refs[j], m) {
			return
		}
	}
}

// savedResult is what RETURN (SAVE) keeps for "$" (RFC 5182 section 2.4):
// every match, unless SAVE comes with MIN and/or MAX only, when just those
// messages are kept.
func savedResult(options *imap.SearchOptions, all imap.UIDSet, data *imap.SearchData, kind imapserver.NumKind, refs []msgRef) imap.UIDSet {
	if options.ReturnAll || options.ReturnCount || !(options.ReturnMin || options.ReturnMax) || data.Count == 0 {
		return all
	}
	toUID := func(num uint32) imap.UID {
		if kind == imapserver.NumKindUID {
			return imap.UID(num)
		}
		for _, r := range refs {
			if r.seq == num {
				return imap.UID(r.uid)
			}
		}
		return 0
	}
	var out imap.UIDSet
	if options.ReturnMin {
		out.AddNum(toUID(data.Min))
	}
	if options.ReturnMax {
		out.AddNum(toUID(data.Max))
	}
	return out
}

func usesModSeq(c *imap.SearchCriteria) bool {
	return anyCriterion(c, func(c *imap.SearchCriteria) bool { return c.ModSeq != nil })
}

// needsIndex tells whether the criteria use what the ingest index keeps:
// the Date header or a search field.
func needsIndex(c *imap.SearchCriteria) bool {
	return anyCriterion(c, func(c *imap.SearchCriteria) bool {
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			return true
		}
		for _, h := range c.Header {
			if isSearchField(stdtextproto.CanonicalMIMEHeaderKey(h.Key)) {
				return true
			}
		}
		return false
	})
}

// anyCriterion reports whether pred holds for c or for any criteria nested
// in it (NOT, OR), whatever their polarity.
func anyCriterion(c *imap.SearchCriteria, pred func(*imap.SearchCriteria) bool) bool {
	if pred(c) {
		return true
	}
	for i := range c.Not {
		if anyCriterion(&c.Not[i], pred) {
			return true
		}
	}
	for i := range c.Or {
		if anyCriterion(&c.Or[i][0], pred) || anyCriterion(&c.Or[i][1], pred) {
			return true
		}
	}
	return false
}

// searcher evaluates criteria against the messages of one SEARCH.
type searcher struct {
	s       *session
	sel     *selection
	seqStar uint32
	uidStar uint32
	saved   imap.UIDSet
	err     error // the first failure to read a message; stops the search
}

// candidate is one message under evaluation, with what was loaded for it.
type candidate struct {
	ref  msgRef
	m    *bridge.Message
	text *searchText

	// fields are the search fields of the ingest index (FROM, TO, CC,
	// BCC, SUBJECT answered without opening the message).
	fields       []indexField
	fieldsOK     bool
	fieldsLoaded bool

	// hdr is the message's header alone, for the other header criteria:
	// read without the body, which is most of the bytes and all of the
	// MIME work.
	hdr       *textproto.Header
	hdrLoaded bool

	sentLoaded bool
	sent       time.Time
}

func (se *searcher) match(c *imap.SearchCriteria, cand *candidate) bool {
	// Cheap criteria first: numbers, flags, dates, sizes.
	for _, set := range c.SeqNum {
		if !seqSetContains(set, cand.ref.seq, se.seqStar) {
			return false
		}
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			set = se.saved
		}
		if !uidSetContains(set, uint32(cand.m.UID), se.uidStar) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !se.hasFlag(cand, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if se.hasFlag(cand, f) {
			return false
		}
	}
	if !c.Since.IsZero() || !c.Before.IsZero() {
		if !dateInRange(cand.m.InternalDate, c.Since, c.Before) {
			return false
		}
	}
	if c.Larger > 0 && cand.m.Size <= c.Larger {
		return false
	}
	if c.Smaller > 0 && cand.m.Size >= c.Smaller {
		return false
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		sent, ok := se.sentDate(cand)
		if !ok || !dateInRange(sent, c.SentSince, c.SentBefore) {
			return false
		}
	}
	// Then the ones that read the message.
	for _, h := range c.Header {
		values, ok := se.headerValues(cand, h.Key)
		if !ok || !headerMatches(values, h) {
			return false
		}
	}
	for _, v := range c.Body {
		t := se.text(cand)
		if t == nil || !strings.Contains(t.body, strings.ToLower(v)) {
			return false
		}
	}
	for _, v := range c.Text {
		t := se.text(cand)
		lv := strings.ToLower(v)
		if t == nil || !(strings.Contains(t.fields, lv) || strings.Contains(t.body, lv)) {
			return false
		}
	}
	for i := range c.Not {
		if se.match(&c.Not[i], cand) {
			return false
		}
	}
	for i := range c.Or {
		if !se.match(&c.Or[i][0], cand) && !se.match(&c.Or[i][1], cand) {
			return false
		}
	}
	return true
}

// hasFlag: \Recent is the session's, every other flag the message's.
func (se *searcher) hasFlag(cand *candidate, f imap.Flag) bool {
	if strings.EqualFold(string(f), `\Recent`) {
		return se.sel.isRecent(cand.m.UID)
	}
	return hasFlag(cand.m.Flags, string(f))
}

// text loads a message's search text, once. A message expunged meanwhile
// matches nothing; any other failure stops the search.
func (se *searcher) text(cand *candidate) *searchText {
	if cand.text != nil || se.err != nil {
		return cand.text
	}
	f := se.open(cand)
	if f == nil {
		return nil
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		se.err = err
		return nil
	}
	cand.text = extractSearchText(buf.Bytes())
	return cand.text
}

// open opens a candidate's message, or returns nil: for a message expunged
// meanwhile (which matches nothing), and for any other failure, which is
// kept in se.err and stops the search.
func (se *searcher) open(cand *candidate) bridge.Body {
	f, err := se.sel.mb.Open(se.s.ctx, cand.m.UID)
	if err != nil {
		if !errors.Is(err, bridge.ErrNoSuchMessage) {
			se.err = err
		}
		return nil
	}
	return f
}

// headerValues returns the values of a header field: from the ingest index
// for a search field, else from the message's header. ok is false when the
// message could not be read.
func (se *searcher) headerValues(cand *candidate, key string) (values []string, ok bool) {
	key = stdtextproto.CanonicalMIMEHeaderKey(key)
	if isSearchField(key) {
		if !cand.fieldsLoaded {
			cand.fieldsLoaded = true
			cand.fields, cand.fieldsOK = indexSearchFields(cand.m.Index)
		}
		if cand.fieldsOK {
			for _, f := range cand.fields {
				if f.key == key {
					values = append(values, f.value)
				}
			}
			return values, true
		}
	}
	h := se.header(cand)
	if h == nil {
		return nil, false
	}
	return h.Values(key), true
}

// header loads a message's header, once, reading no further than its end.
// Like text, a message expunged meanwhile matches nothing.
func (se *searcher) header(cand *candidate) *textproto.Header {
	if cand.text != nil {
		return &cand.text.header
	}
	if cand.hdrLoaded || se.err != nil {
		return cand.hdr
	}
	cand.hdrLoaded = true
	f := se.open(cand)
	if f == nil {
		return nil
	}
	defer f.Close()
	// A malformed header is searched as far as it parses, as in text; a
	// failure to read the file stops the search.
	rr := &readErrReader{r: f}
	h, _ := textproto.ReadHeader(bufio.NewReaderSize(rr, 4096))
	if rr.err != nil {
		se.err = rr.err
		return nil
	}
	cand.hdr = &h
	return cand.hdr
}

// readErrReader remembers the first read error other than io.EOF.
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// sentDate is the Date header: from the ingest index if there is one, else
// from the message.
func (se *searcher) sentDate(cand *candidate) (time.Time, bool) {
	if !cand.sentLoaded {
		cand.sentLoaded = true
		if t, ok := indexSentDate(cand.m.Index); ok {
			cand.sent = t
		} else if h := se.header(cand); h != nil {
			mh := mail.Header{Header: gomessage.Header{Header: *h}}
			cand.sent, _ = mh.Date()
		}
	}
	return cand.sent, !cand.sent.IsZero()
}

// headerMatches: the field exists and, unless the value is empty, one of
// its decoded values contains it (case-insensitively). An address field
// (FROM, TO, CC, BCC, and HEADER Sender or Reply-To) matches too where its
// addresses as a mail client shows them do (addressText): an address
// written with a quoted local part ("user"@domain.org), with spaces or
// comments around "@", or named in a comment is found by the address as
// the user sees it.
func headerMatches(values []string, h imap.SearchCriteriaHeaderField) bool {
	if len(values) == 0 {
		return false
	}
	if h.Value == "" {
		return true
	}
	want := strings.ToLower(h.Value)
	addr := isAddressField(h.Key)
	for _, v := range values {
		if containsFold(decodeWords(v), want) {
			return true
		}
		if addr && containsFold(addressText(v), want) {
			return true
		}
		// An address written inside an encoded word (a broken mailer's
		// "=?utf-8?q?user=40domain.org?=") is shown decoded.
		if addr && strings.Contains(v, "=?") && containsFold(addressText(decodeWords(v)), want) {
			return true
		}
	}
	return false
}

// isAddressField tells whether a header field holds an address list.
func isAddressField(key string) bool {
	switch stdtextproto.CanonicalMIMEHeaderKey(key) {
	case "From", "To", "Cc", "Bcc", "Sender", "Reply-To":
		return true
	}
	return false
}

// containsFold reports whether s contains lowerNeedle (already lower-case),
// ignoring case; ASCII text, the usual case, is compared without copying.
func containsFold(s, lowerNeedle string) bool {
	if !isASCII(s) || !isASCII(lowerNeedle) {
		return strings.Contains(strings.ToLower(s), lowerNeedle)
	}
	n := len(lowerNeedle)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lowerNeedle[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// dateInRange compares dates only, "disregarding time and timezone": the
// message's calendar date in its own zone against the criteria's dates.
func dateInRange(t time.Time, since, before time.Time) bool {
	d := civilDate(t)
	if !since.IsZero() && d < civilDate(since) {
		return false
	}
	if !before.IsZero() && d >= civilDate(before) {
		return false
	}
	return true
}

func civilDate(t time.Time) int {
	y, m, d := t.Date()
	return y*10000 + int(m)*100 + d
}

// rangeBounds turns one range of a set into ascending bounds, with 0 (the
// client's "*") standing for star.
func rangeBounds(start, stop, star uint32) (uint32, uint32) {
	if start == 0 {
		start = star
	}
	if stop == 0 {
		stop = star
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

func seqSetContains(set imap.SeqSet, num, star uint32) bool {
	for _, r := range set {
		if a, b := rangeBounds(r.Start, r.Stop, star); a <= num && num <= b {
			return true
		}
	}
	return false
}

func uidSetContains(set imap.UIDSet, uid, star uint32) bool {
	for _, r := range set {
		if a, b := rangeBounds(uint32(r.Start), uint32(r.Stop), star); a <= uid && uid <= b {
			return true
		}
	}
	return false
}
