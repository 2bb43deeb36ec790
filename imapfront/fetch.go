package imapfront

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/imapbridge/imapbridge/bridge"
)

// Fetch implements imapserver.Session (FETCH and UID FETCH). Flags, dates
// and sizes come from the bridge's in-memory index, ENVELOPE and
// BODYSTRUCTURE from the ingest index; only body sections open the message.
// A BODY[…] or BINARY[…] without .PEEK sets \Seen (not in a mailbox opened
// with EXAMINE) and the new FLAGS go out in the same FETCH response.
func (s *session) Fetch(w *imapserver.FetchWriter, set imap.NumSet, options *imap.FetchOptions) (err error) {
	cmd := numSetCmd(set, "FETCH")
	defer func(start time.Time) { err = s.done(cmd, start, err) }(time.Now())
	if s.guard != nil {
		// One FETCH answers many messages: write them in large writes, not
		// one per response line.
		s.guard.holdWrites()
		defer func() {
			if werr := s.guard.releaseWrites(); err == nil && werr != nil {
				err = werr
			}
		}()
	}
	sel, err := s.selected()
	if err != nil {
		return err
	}
	if options.ModSeq || options.ChangedSince != 0 {
		return badErr("MODSEQ and CHANGEDSINCE require CONDSTORE, which this server does not offer")
	}
	refs, err := sel.resolve(set, s.searchRes)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	needIndex := options.Envelope || options.BodyStructure != nil || wantsHeader(options)
	msgs, err := sel.mb.Messages(s.ctx, refUIDs(refs), needIndex)
	if err != nil {
		return s.imapErr(cmd, sel.mb.Name(), err, false)
	}

	changed := map[bridge.UID]bool{}
	if !sel.readOnly && setsSeen(options) {
		var unseen []bridge.UID
		for _, m := range msgs {
			if !hasFlag(m.Flags, bridge.FlagSeen) {
				unseen = append(unseen, m.UID)
			}
		}
		if len(unseen) > 0 {
			res, err := sel.mb.Store(s.ctx, unseen, bridge.FlagsAdd, []string{bridge.FlagSeen}, sel)
			if err != nil {
				return s.imapErr(cmd, sel.mb.Name(), err, false)
			}
			now := make(map[bridge.UID][]string, len(res))
			for _, mf := range res {
				now[mf.UID] = mf.Flags
			}
			for i := range msgs {
				if f, ok := now[msgs[i].UID]; ok {
					msgs[i].Flags = f
					changed[msgs[i].UID] = true
				}
			}
		}
	}

	// The flags just read may hold a keyword new to the mailbox, whose
	// FLAGS update is queued: it goes out first.
	if err := sel.announceFlags(); err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	var failed, fatal error
	joinRefs(refs, msgs, func(ref msgRef, m *bridge.Message) bool {
		err := s.fetchOne(w, ref.seq, m, options, changed[m.UID])
		var ie *imap.Error
		switch {
		case err == nil:
		case errors.As(err, &ie), errors.Is(err, errWrite):
			fatal = err
			return false
		case errors.Is(err, bridge.ErrNoSuchMessage):
			// Expunged since the command started: nothing to say about it.
		default:
			s.log.Error("imap: fetch failed", "mailbox", sel.mb.Name(), "uid", m.UID, "err", err)
			failed = errInternal
		}
		return true
	})
	if fatal != nil {
		return fatal
	}
	return failed
}

// errWrite marks a failure to write to the client: the connection is gone.
var errWrite = errors.New("imapfront: write to client")

func setsSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

func hasFlag(flags []string, flag string) bool {
	for _, f := range flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// section is one prepared body or binary section: bytes in memory, or a
// byte range of the message file to stream.
type section struct {
	data     []byte
	stream   bool
	off, len int64
}

// fetchOne writes one message's FETCH response. Everything that can fail
// is done before the response starts, so a failure never leaves a
// half-written response on the wire.
func (s *session) fetchOne(w *imapserver.FetchWriter, seq uint32, m *bridge.Message, options *imap.FetchOptions, flagsChanged bool) error {
	body := &messageBody{s: s, mb: s.sel.mb, uid: m.UID}
	defer body.close()

	ix := fetchIndex{s: s, body: body, m: m}
	var env *imap.Envelope
	if options.Envelope {
		env = ix.envelope()
	}
	var bstruct imap.BodyStructure
	if options.BodyStructure != nil {
		bstruct = ix.bodyStructure()
	}

	bodySections := make([]section, len(options.BodySection))
	for i, bs := range options.BodySection {
		if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone {
			size, err := body.size()
			if err != nil {
				return err
			}
			off, n := partialRange(size, bs.Partial)
			bodySections[i] = section{stream: true, off: off, len: n}
			continue
		}
		if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader {
			if hdr, ok := ix.header(); ok {
				// The header block alone parses as the whole message's
				// header does: the same bytes out, without the body.
				data, ok := headerSection(hdr, bs)
				if !ok {
					data = imapserver.ExtractBodySection(bytes.NewReader(hdr), bs)
				}
				bodySections[i] = section{data: data}
				continue
			}
		}
		raw, err := body.bytes()
		if err != nil {
			return err
		}
		bodySections[i] = section{data: imapserver.ExtractBodySection(bytes.NewReader(raw), bs)}
	}
	binSections := make([]section, len(options.BinarySection))
	for i, bs := range options.BinarySection {
		data, err := body.binary(bs.Part)
		if err != nil {
			return err
		}
		off, n := partialRange(int64(len(data)), bs.Partial)
		binSections[i] = section{data: data[off : off+n]}
	}
	binSizes := make([]uint32, len(options.BinarySectionSize))
	for i, bs := range options.BinarySectionSize {
		data, err := body.binary(bs.Part)
		if err != nil {
			return err
		}
		binSizes[i] = uint32(len(data))
	}

	rw := w.CreateMessage(seq)
	// go-imap's encoder stays locked until the message writer is closed:
	// a write error must close it too, or the session blocks for good in
	// its next response (and a shutdown waits out its drain budget).
	closed := false
	defer func() {
		if !closed {
			rw.Close()
		}
	}()
	if options.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if options.Flags || flagsChanged {
		rw.WriteFlags(s.sel.flagsFor(m.UID, m.Flags))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.Envelope {
		rw.WriteEnvelope(env)
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(bstruct)
	}
	for i, bs := range options.BodySection {
		sec := bodySections[i]
		if sec.stream {
			lw := rw.WriteBodySection(bs, sec.len)
			_, err := io.Copy(lw, io.NewSectionReader(body.f, sec.off, sec.len))
			if cerr := lw.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%w: %w", errWrite, err)
			}
			continue
		}
		if err := writeLiteral(rw.WriteBodySection(bs, int64(len(sec.data))), sec.data); err != nil {
			return err
		}
	}
	for i, bs := range options.BinarySection {
		data := binSections[i].data
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(data))), data); err != nil {
			return err
		}
	}
	for i, bs := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bs, binSizes[i])
	}
	closed = true
	if err := rw.Close(); err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// wantsHeader tells whether a FETCH asks for a message's header
// (BODY[HEADER], BODY[HEADER.FIELDS …], RFC822.HEADER), which the ingest
// index keeps.
func wantsHeader(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader {
			return true
		}
	}
	return false
}

// fetchIndex serves one message's ENVELOPE, BODYSTRUCTURE and header from
// its ingest index, decoding only what is asked; a missing or unreadable
// index is rebuilt from the message, once.
type fetchIndex struct {
	s      *session
	body   *messageBody
	m      *bridge.Message
	stored *messageIndex
	opened bool
	parsed *messageIndex
}

func (ix *fetchIndex) storedIndex() *messageIndex {
	if !ix.opened {
		ix.opened = true
		if ix.m.Index != nil {
			mi, err := openMessageIndex(ix.m.Index)
			if err != nil {
				ix.s.log.Debug("imap: unreadable index; parsing the message", "uid", ix.m.UID, "err", err)
			}
			ix.stored = mi
		}
	}
	return ix.stored
}

// reparsed indexes the message itself (nil when it cannot be read).
func (ix *fetchIndex) reparsed() *messageIndex {
	if ix.parsed != nil {
		return ix.parsed
	}
	raw, err := ix.body.bytes()
	if err != nil {
		return nil
	}
	b, err := Index(bytes.NewReader(raw))
	if err != nil {
		return nil
	}
	mi, err := openMessageIndex(b)
	if err != nil {
		return nil
	}
	ix.parsed = mi
	return mi
}

func (ix *fetchIndex) envelope() *imap.Envelope {
	if mi := ix.storedIndex(); mi != nil {
		if env, err := mi.Envelope(); err == nil {
			return env
		}
	}
	if mi := ix.reparsed(); mi != nil {
		if env, err := mi.Envelope(); err == nil {
			return env
		}
	}
	return &imap.Envelope{}
}

func (ix *fetchIndex) bodyStructure() imap.BodyStructure {
	if mi := ix.storedIndex(); mi != nil {
		if bs, err := mi.BodyStructure(); err == nil {
			return bs
		}
	}
	if mi := ix.reparsed(); mi != nil {
		if bs, err := mi.BodyStructure(); err == nil {
			return bs
		}
	}
	return emptyTextPart()
}

// header returns the stored header block; ok is false when the index does
// not keep one (the caller reads the message).
func (ix *fetchIndex) header() ([]byte, bool) {
	if mi := ix.storedIndex(); mi != nil {
		return mi.Header()
	}
	return nil, false
}

func writeLiteral(lw io.WriteCloser, data []byte) error {
	_, err := lw.Write(data)
	if cerr := lw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// partialRange applies <offset.size> to a section of size bytes.
func partialRange(size int64, p *imap.SectionPartial) (off, n int64) {
	if p == nil {
		return 0, size
	}
	if p.Offset >= size || p.Offset < 0 || p.Size <= 0 {
		return 0, 0
	}
	n = min(p.Size, size-p.Offset)
	return p.Offset, n
}

// messageBody opens a message's blob at most once per FETCH response.
type messageBody struct {
	s   *session
	mb  *bridge.Mailbox
	uid bridge.UID
	f   bridge.Body
	raw []byte
	// bin are the decoded parts BINARY and BINARY.SIZE asked for, by part
	// path: a part named by both is decoded once.
	bin map[string][]byte
}

// binary returns a part's content with its transfer encoding undone
// (RFC 3516), for BINARY[part] and BINARY.SIZE[part].
func (b *messageBody) binary(part []int) ([]byte, error) {
	key := fmt.Sprint(part)
	if data, ok := b.bin[key]; ok {
		return data, nil
	}
	raw, err := b.bytes()
	if err != nil {
		return nil, err
	}
	data, err := binarySection(raw, part)
	if err != nil {
		return nil, err
	}
	if b.bin == nil {
		b.bin = map[string][]byte{}
	}
	b.bin[key] = data
	return data, nil
}

func (b *messageBody) open() error {
	if b.f != nil {
		return nil
	}
	f, err := b.mb.Open(b.s.ctx, b.uid)
	if err != nil {
		return err
	}
	b.f = f
	return nil
}

func (b *messageBody) size() (int64, error) {
	if err := b.open(); err != nil {
		return 0, err
	}
	return b.f.Size(), nil
}

func (b *messageBody) bytes() ([]byte, error) {
	if b.raw != nil {
		return b.raw, nil
	}
	if err := b.open(); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.NewSectionReader(b.f, 0, b.f.Size()))
	if err != nil {
		return nil, fmt.Errorf("imapfront: read message %d: %w", b.uid, err)
	}
	b.raw = raw
	return raw, nil
}

func (b *messageBody) close() {
	if b.f != nil {
		b.f.Close()
	}
}

var errUnknownCTE = noErr(imap.ResponseCodeUnknownCTE, "Cannot decode the content transfer encoding of this part")

// binarySection returns a section with its content transfer encoding
// undone (RFC 3516 BINARY): the whole message for an empty part (header and
// body), else the part's body. Unlike go-imap's ExtractBinarySection it
// never converts charsets: BINARY is about transfer encodings only.
func binarySection(raw []byte, part []int) ([]byte, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	header, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, nil
	}
	header, body, ok := findPart(header, br, part)
	if !ok {
		return nil, nil
	}
	var buf bytes.Buffer
	if len(part) == 0 {
		if err := textproto.WriteHeader(&buf, header); err != nil {
			return nil, nil
		}
	}
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	dec := body
	if !strings.HasPrefix(mt, "multipart/") {
		dec, err = decodeTransfer(header.Get("Content-Transfer-Encoding"), body)
		if err != nil {
			return nil, err
		}
	}
	if _, err := io.Copy(&buf, dec); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, errUnknownCTE
	}
	return buf.Bytes(), nil
}

// decodeTransfer undoes a Content-Transfer-Encoding.
func decodeTransfer(cte string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return r, nil
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &base64Filter{r: r}), nil
	case "quoted-printable":
		return quotedprintable.NewReader(r), nil
	default:
		return nil, errUnknownCTE
	}
}

// base64Filter drops everything that is not base64 alphabet or padding
// (line breaks, stray spaces), as mail decoders do.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// findPart walks to a body part by its IMAP part number (RFC 9051 section
// 6.4.5): a message that is not multipart has its body as part 1; the parts
// of an encapsulated message/rfc822 are numbered inside it.
func findPart(header textproto.Header, body io.Reader, path []int) (textproto.Header, io.Reader, bool) {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") && len(path) > 0 && path[0] == 1 {
		path = path[1:]
	}
	for _, n := range path {
		header, body = openEncapsulated(header, body)
		mt, params, _ := mime.ParseMediaType(header.Get("Content-Type"))
		if !strings.HasPrefix(mt, "multipart/") {
			if n != 1 {
				return textproto.Header{}, nil, false
			}
			continue
		}
		mr := textproto.NewMultipartReader(body, params["boundary"])
		found := false
		for i := 1; i <= n; i++ {
			p, err := mr.NextPart()
			if err != nil {
				return textproto.Header{}, nil, false
			}
			if i == n {
				header, body, found = p.Header, p, true
			}
		}
		if !found {
			return textproto.Header{}, nil, false
		}
	}
	return header, body, true
}

func openEncapsulated(header textproto.Header, body io.Reader) (textproto.Header, io.Reader) {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if mt != "message/rfc822" && mt != "message/global" {
		return header, body
	}
	br := bufio.NewReader(body)
	inner, _ := textproto.ReadHeader(br) // a broken header: what was read of it
	return inner, br
}
