package imapfront

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"

	"github.com/imapbridge/imapbridge/bridge"
)

// The ingest index is a small binary record: one version byte, then (from
// version 2) the header fields SEARCH asks for most, as a length-prefixed
// section of (name, value) pairs, then the ENVELOPE, then the BODYSTRUCTURE
// tree. Strings are a uvarint length and the bytes; integers are varints. A
// new layout gets a new version byte; records of an unknown version are
// ignored (FETCH falls back to parsing the body, SEARCH to reading the
// header). Version 1 records, written before the search fields, are read as
// they are. Version 3 has the layout of version 2; its ENVELOPE keeps group
// markers (an address with an empty host), which versions 1 and 2 dropped:
// their ENVELOPE and BODYSTRUCTURE are not used (FETCH parses the message)
// until Bridge.Reindex has rewritten them (IndexCurrent tells which).
//
// Version 4 makes every section length-prefixed, so a reader skips what
// it was not asked for (FETCH (UID FLAGS ENVELOPE) never decodes the
// BODYSTRUCTURE), and adds a fourth: the message's header block, byte for
// byte as stored (up to and including the blank line that ends it), so
// that BODY[HEADER], BODY[HEADER.FIELDS …] and RFC822.HEADER never open the
// body. Its layout: version, search fields, ENVELOPE, BODYSTRUCTURE, header
// block, each a uvarint length and the bytes. The header section is a byte
// 1 and the header, or a byte 0 when the header exceeds maxHeaderKeep (such
// a message's header fetches read the body). Version 3 records still serve
// ENVELOPE and BODYSTRUCTURE; IndexCurrent is false for them, so
// Bridge.Reindex rewrites them with the header block.
const (
	indexVersion1 = 1
	indexVersion2 = 2
	indexVersion3 = 3
	indexVersion4 = 4
)

// IndexCurrent reports whether an index was written by this version of
// Index: it is the bridge.Options.IndexCurrent to pass with Index, so that
// Bridge.Reindex re-derives the records of older versions.
func IndexCurrent(idx []byte) bool {
	return len(idx) > 0 && idx[0] == indexVersion4
}

// maxHeaderKeep bounds the header block an index keeps. Headers are a few
// KB; one larger than this is read from the message when fetched.
const maxHeaderKeep = 64 << 10

// searchFields are the header fields the index keeps for SEARCH (FROM, TO,
// CC, BCC, SUBJECT): every occurrence, value as in the message, unfolded.
// They are a few hundred bytes a message; any other HEADER criterion reads
// the message's header.
var searchFields = [...]string{"From", "To", "Cc", "Bcc", "Subject"}

// maxSearchFieldBytes bounds the search fields kept for one message; a
// message whose fields are larger is searched from its header instead.
const maxSearchFieldBytes = 16 << 10

// isSearchField tells whether the index keeps key (canonical MIME form).
func isSearchField(key string) bool {
	for _, f := range searchFields {
		if f == key {
			return true
		}
	}
	return false
}

// maxIndexDepth bounds the nesting of body parts kept in (and read back from)
// an index, so a hostile message cannot make decoding recurse without end.
const maxIndexDepth = 64

var _ bridge.Indexer = Index

// Index computes a message's ENVELOPE and extended BODYSTRUCTURE once, at
// ingest, and keeps its header block; it returns them serialised for the
// store. It is the bridge.Indexer to pass in bridge.Options.Index; FETCH
// decodes the result instead of re-parsing the message.
func Index(r io.Reader) ([]byte, error) {
	return indexWith(r, indexVersion4, extractEnvelope)
}

// headerTap keeps the first bytes read through it (up to maxHeaderKeep+1),
// so that the header block textproto.ReadHeader consumed can be cut out
// exactly as stored.
type headerTap struct {
	r    io.Reader
	kept []byte
	read int64
}

func (t *headerTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if room := maxHeaderKeep + 1 - len(t.kept); room > 0 {
		t.kept = append(t.kept, p[:min(n, room)]...)
	}
	t.read += int64(n)
	return n, err
}

// indexWith writes an index record of the given version with the ENVELOPE
// extract gives (the upgrade tests write older records with it).
func indexWith(r io.Reader, version byte, extract func(textproto.Header) *imap.Envelope) ([]byte, error) {
	tap := &headerTap{r: r}
	br := bufio.NewReader(tap)
	header, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("imapfront: index: read header: %w", err)
	}
	var headerBlock []byte
	keptHeader := false
	if n := tap.read - int64(br.Buffered()); n <= maxHeaderKeep && n <= int64(len(tap.kept)) {
		headerBlock, keptHeader = tap.kept[:n], true
	}
	env := extract(header)
	bs := sanitizeBodyStructure(bodyStructure(header, br), 0)
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("imapfront: index: read body: %w", err)
	}
	var w indexWriter
	w.buf = append(w.buf, version)
	if version < indexVersion4 {
		if version >= indexVersion2 {
			w.searchFields(header)
		}
		w.envelope(env)
		w.body(bs, 0)
		return w.buf, nil
	}
	w.searchFields(header)
	w.section(func(s *indexWriter) { s.envelope(env) })
	w.section(func(s *indexWriter) { s.body(bs, 0) })
	w.section(func(s *indexWriter) {
		if !keptHeader {
			s.byte(0)
			return
		}
		s.byte(1)
		s.buf = append(s.buf, headerBlock...)
	})
	return w.buf, nil
}

// messageIndex is a stored ingest index, decoded lazily: each item on its
// first use, and only the items asked for.
type messageIndex struct {
	version byte
	env     []byte // the ENVELOPE's encoding
	body    []byte // the BODYSTRUCTURE's encoding (version 3: runs to the end)
	header  []byte // the header block, nil when not kept
	hasHdr  bool
}

var errBadIndex = errors.New("imapfront: malformed index")

// openMessageIndex splits an index written by Index into its sections,
// decoding none of them. Versions before 3 are refused (their ENVELOPE
// lost group markers).
func openMessageIndex(b []byte) (*messageIndex, error) {
	if len(b) == 0 {
		return nil, errBadIndex
	}
	switch b[0] {
	case indexVersion3:
		r := indexReader{buf: b[1:]}
		n := r.count()
		if r.err != nil {
			return nil, r.err
		}
		r.buf = r.buf[n:]
		// The ENVELOPE has no length here: it is decoded to find where
		// the BODYSTRUCTURE starts.
		start := r.buf
		r.envelope()
		if r.err != nil {
			return nil, r.err
		}
		return &messageIndex{version: b[0], env: start[:len(start)-len(r.buf)], body: r.buf}, nil
	case indexVersion4:
		r := indexReader{buf: b[1:]}
		r.section() // search fields
		m := &messageIndex{version: b[0], env: r.section(), body: r.section()}
		hdr := r.section()
		if r.err != nil {
			return nil, r.err
		}
		if len(r.buf) != 0 {
			return nil, fmt.Errorf("%w: %d bytes past the end", errBadIndex, len(r.buf))
		}
		if len(hdr) == 0 {
			return nil, fmt.Errorf("%w: no header section", errBadIndex)
		}
		switch hdr[0] {
		case 0:
		case 1:
			m.header, m.hasHdr = hdr[1:], true
		default:
			return nil, fmt.Errorf("%w: header section flag %d", errBadIndex, hdr[0])
		}
		return m, nil
	case indexVersion1, indexVersion2:
		return nil, fmt.Errorf("%w: version %d, from before groups were kept", errBadIndex, b[0])
	default:
		return nil, fmt.Errorf("%w: unknown version %d", errBadIndex, b[0])
	}
}

// Envelope decodes the ENVELOPE.
func (m *messageIndex) Envelope() (*imap.Envelope, error) {
	r := indexReader{buf: m.env}
	env := r.envelope()
	if r.err == nil && len(r.buf) != 0 {
		r.fail("envelope length")
	}
	return env, r.err
}

// BodyStructure decodes the BODYSTRUCTURE.
func (m *messageIndex) BodyStructure() (imap.BodyStructure, error) {
	r := indexReader{buf: m.body}
	bs := r.body(0)
	if r.err == nil && len(r.buf) != 0 {
		r.fail("body structure length")
	}
	return bs, r.err
}

// Header returns the message's header block as stored (ok false when the
// index does not keep it).
func (m *messageIndex) Header() (header []byte, ok bool) {
	return m.header, m.hasHdr
}

// decodedIndex is an index with every item decoded (the tests' view).
type decodedIndex struct {
	Envelope      *imap.Envelope
	BodyStructure imap.BodyStructure
}

// decodeIndex reads a whole index written by Index.
func decodeIndex(b []byte) (*decodedIndex, error) {
	m, err := openMessageIndex(b)
	if err != nil {
		return nil, err
	}
	env, err := m.Envelope()
	if err != nil {
		return nil, err
	}
	bs, err := m.BodyStructure()
	if err != nil {
		return nil, err
	}
	return &decodedIndex{Envelope: env, BodyStructure: bs}, nil
}

// indexSentDate returns only the Date header (the envelope's first field)
// from an index, for SENTBEFORE and friends.
func indexSentDate(b []byte) (time.Time, bool) {
	r, ok := openIndex(b)
	if !ok {
		return time.Time{}, false
	}
	t := r.date()
	return t, r.err == nil
}

// openIndex positions a reader on an index's ENVELOPE, past the search
// fields of a version 2 record. ok is false for an unknown version.
func openIndex(b []byte) (r *indexReader, ok bool) {
	if len(b) == 0 {
		return nil, false
	}
	r = &indexReader{buf: b[1:]}
	switch b[0] {
	case indexVersion1:
	case indexVersion2, indexVersion3:
		n := r.count()
		r.buf = r.buf[n:]
	case indexVersion4:
		r.section()
		r.buf = r.section()
	default:
		return nil, false
	}
	return r, true
}

// indexField is one header field kept in the index for SEARCH.
type indexField struct{ key, value string }

// indexSearchFields returns the search fields of a version 2 index; ok is
// false for an older or unreadable record, whose message must be read.
func indexSearchFields(b []byte) (fields []indexField, ok bool) {
	if len(b) == 0 || (b[0] != indexVersion2 && b[0] != indexVersion3 && b[0] != indexVersion4) {
		return nil, false
	}
	r := indexReader{buf: b[1:]}
	n := r.count()
	if r.err != nil {
		return nil, false
	}
	sec := indexReader{buf: r.buf[:n]}
	if sec.byte() == 0 {
		return nil, false // too large to keep: read the header
	}
	for len(sec.buf) > 0 && sec.err == nil {
		k := sec.string()
		for _, f := range searchFields {
			if f == k {
				k = f // one copy of each name, not one per message
			}
		}
		fields = append(fields, indexField{k, sec.string()})
	}
	return fields, sec.err == nil
}

// sanitizeBodyStructure makes a tree the wire writer can always encode: a
// multipart without parts (a broken boundary) gets one empty text/plain
// part, nesting is cut at maxIndexDepth, and every part has extension data.
func sanitizeBodyStructure(bs imap.BodyStructure, depth int) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if depth >= maxIndexDepth {
			return emptyTextPart()
		}
		if len(bs.Children) == 0 {
			bs.Children = []imap.BodyStructure{emptyTextPart()}
		}
		for i, c := range bs.Children {
			bs.Children[i] = sanitizeBodyStructure(c, depth+1)
		}
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureMultiPartExt{}
		}
		return bs
	case *imap.BodyStructureSinglePart:
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureSinglePartExt{}
		}
		if m := bs.MessageRFC822; m != nil {
			if depth >= maxIndexDepth {
				bs.MessageRFC822 = nil
			} else {
				if m.Envelope == nil {
					m.Envelope = &imap.Envelope{}
				}
				m.BodyStructure = sanitizeBodyStructure(m.BodyStructure, depth+1)
			}
		}
		return bs
	default:
		return emptyTextPart()
	}
}

func emptyTextPart() *imap.BodyStructureSinglePart {
	return &imap.BodyStructureSinglePart{
		Type:     "text",
		Subtype:  "plain",
		Params:   map[string]string{"charset": "us-ascii"},
		Encoding: "7bit",
		Text:     &imap.BodyStructureText{},
		Extended: &imap.BodyStructureSinglePartExt{},
	}
}

const (
	nodeSingle = 1
	nodeMulti  = 2

	singleHasText = 1 << 0
	singleHasMsg  = 1 << 1
)

type indexWriter struct{ buf []byte }

func (w *indexWriter) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *indexWriter) varint(v int64)   { w.buf = binary.AppendVarint(w.buf, v) }
func (w *indexWriter) byte(b byte)      { w.buf = append(w.buf, b) }

// section writes what fill writes, length-prefixed.
func (w *indexWriter) section(fill func(*indexWriter)) {
	var sec indexWriter
	fill(&sec)
	w.uvarint(uint64(len(sec.buf)))
	w.buf = append(w.buf, sec.buf...)
}

func (w *indexWriter) string(s string) {
	w.uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *indexWriter) strings(l []string) {
	w.uvarint(uint64(len(l)))
	for _, s := range l {
		w.string(s)
	}
}

func (w *indexWriter) params(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.string(k)
		w.string(m[k])
	}
}

func (w *indexWriter) date(t time.Time) {
	if t.IsZero() {
		w.byte(0)
		return
	}
	w.byte(1)
	_, off := t.Zone()
	w.varint(t.Unix())
	w.varint(int64(off))
}

// searchFields writes the length-prefixed search-field section: a byte that
// says whether the fields are kept (0 when they exceed
// maxSearchFieldBytes), then (name, value) pairs in header order.
func (w *indexWriter) searchFields(h textproto.Header) {
	var sec indexWriter
	sec.byte(1)
	for f := h.Fields(); f.Next(); {
		if key := f.Key(); isSearchField(key) {
			sec.string(key)
			sec.string(f.Value())
		}
	}
	if len(sec.buf) > maxSearchFieldBytes {
		sec.buf = []byte{0}
	}
	w.uvarint(uint64(len(sec.buf)))
	w.buf = append(w.buf, sec.buf...)
}

func (w *indexWriter) envelope(env *imap.Envelope) {
	if env == nil {
		env = &imap.Envelope{}
	}
	w.date(env.Date)
	w.string(env.Subject)
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		w.uvarint(uint64(len(l)))
		for _, a := range l {
			w.string(a.Name)
			w.string(a.Mailbox)
			w.string(a.Host)
		}
	}
	w.strings(env.InReplyTo)
	w.string(env.MessageID)
}

func (w *indexWriter) disposition(d *imap.BodyStructureDisposition) {
	if d == nil {
		w.byte(0)
		return
	}
	w.byte(1)
	w.string(d.Value)
	w.params(d.Params)
}

func (w *indexWriter) body(bs imap.BodyStructure, depth int) {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		w.byte(nodeMulti)
		w.uvarint(uint64(len(bs.Children)))
		for _, c := range bs.Children {
			w.body(c, depth+1)
		}
		w.string(bs.Subtype)
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureMultiPartExt{}
		}
		w.params(ext.Params)
		w.disposition(ext.Disposition)
		w.strings(ext.Language)
		w.string(ext.Location)
	case *imap.BodyStructureSinglePart:
		w.byte(nodeSingle)
		w.string(bs.Type)
		w.string(bs.Subtype)
		w.params(bs.Params)
		w.string(bs.ID)
		w.string(bs.Description)
		w.string(bs.Encoding)
		w.uvarint(uint64(bs.Size))
		var flags byte
		if bs.Text != nil {
			flags |= singleHasText
		}
		if bs.MessageRFC822 != nil {
			flags |= singleHasMsg
		}
		w.byte(flags)
		if bs.Text != nil {
			w.varint(bs.Text.NumLines)
		}
		if m := bs.MessageRFC822; m != nil {
			w.envelope(m.Envelope)
			w.body(m.BodyStructure, depth+1)
			w.varint(m.NumLines)
		}
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureSinglePartExt{}
		}
		w.disposition(ext.Disposition)
		w.strings(ext.Language)
		w.string(ext.Location)
	}
}

// indexReader decodes what indexWriter wrote. The first problem sticks in
// err; every later read returns zero values, so callers check err once.
type indexReader struct {
	buf []byte
	err error
}

func (r *indexReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", errBadIndex, what)
	}
	r.buf = nil
}

func (r *indexReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *indexReader) varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *indexReader) byte() byte {
	if len(r.buf) == 0 {
		r.fail("byte")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

// count reads a list length, refusing one that cannot fit in what is left
// (each element takes at least one byte).
func (r *indexReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail("count")
		return 0
	}
	return int(n)
}

// section returns a length-prefixed section's bytes and moves past them.
func (r *indexReader) section() []byte {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail("section")
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

func (r *indexReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail("string")
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}

func (r *indexReader) strings() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = r.string()
	}
	return l
}

func (r *indexReader) params() map[string]string {
	n := r.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k := r.string()
		m[k] = r.string()
	}
	return m
}

func (r *indexReader) date() time.Time {
	if r.byte() == 0 {
		return time.Time{}
	}
	sec := r.varint()
	off := r.varint()
	if off < -24*3600 || off > 24*3600 {
		r.fail("zone")
		return time.Time{}
	}
	return time.Unix(sec, 0).In(time.FixedZone("", int(off)))
}

func (r *indexReader) addresses() []imap.Address {
	n := r.count()
	if n == 0 {
		return nil
	}
	l := make([]imap.Address, n)
	for i := range l {
		l[i] = imap.Address{Name: r.string(), Mailbox: r.string(), Host: r.string()}
	}
	return l
}

func (r *indexReader) envelope() *imap.Envelope {
	env := &imap.Envelope{Date: r.date(), Subject: r.string()}
	env.From = r.addresses()
	env.Sender = r.addresses()
	env.ReplyTo = r.addresses()
	env.To = r.addresses()
	env.Cc = r.addresses()
	env.Bcc = r.addresses()
	env.InReplyTo = r.strings()
	env.MessageID = r.string()
	return env
}

func (r *indexReader) disposition() *imap.BodyStructureDisposition {
	if r.byte() == 0 {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: r.string(), Params: r.params()}
}

func (r *indexReader) body(depth int) imap.BodyStructure {
	if depth > maxIndexDepth {
		r.fail("nesting")
		return emptyTextPart()
	}
	switch r.byte() {
	case nodeMulti:
		n := r.count()
		if n == 0 {
			r.fail("multipart")
			return emptyTextPart()
		}
		bs := &imap.BodyStructureMultiPart{Children: make([]imap.BodyStructure, 0, n)}
		for i := 0; i < n && r.err == nil; i++ {
			bs.Children = append(bs.Children, r.body(depth+1))
		}
		bs.Subtype = r.string()
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      r.params(),
			Disposition: r.disposition(),
			Language:    r.strings(),
			Location:    r.string(),
		}
		return bs
	case nodeSingle:
		bs := &imap.BodyStructureSinglePart{
			Type:        r.string(),
			Subtype:     r.string(),
			Params:      r.params(),
			ID:          r.string(),
			Description: r.string(),
			Encoding:    r.string(),
		}
		size := r.uvarint()
		if size > math.MaxUint32 {
			r.fail("size")
		}
		bs.Size = uint32(size)
		flags := r.byte()
		if flags&singleHasText != 0 {
			bs.Text = &imap.BodyStructureText{NumLines: r.varint()}
		}
		if flags&singleHasMsg != 0 {
			m := &imap.BodyStructureMessageRFC822{Envelope: r.envelope()}
			m.BodyStructure = r.body(depth + 1)
			m.NumLines = r.varint()
			bs.MessageRFC822 = m
		}
		bs.Extended = &imap.BodyStructureSinglePartExt{
			Disposition: r.disposition(),
			Language:    r.strings(),
			Location:    r.string(),
		}
		return bs
	default:
		r.fail("part kind")
		return emptyTextPart()
	}
}
