package imapfront

import (
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/bridge"
)

// Append implements imapserver.Session. go-imap refuses a literal over
// AppendLimit before reading it (NO [TOOBIG]); the limit is enforced here
// again while reading, for a client whose literal lies about its size.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (data *imap.AppendData, err error) {
	defer func(start time.Time) { err = s.done("APPEND", start, err) }(time.Now())
	limit := int64(s.srv.opts.AppendLimit)
	if r.Size() > limit {
		return nil, noErr(imap.ResponseCodeTooBig, fmt.Sprintf("Messages are limited to %d bytes", limit))
	}
	cn, err := canonicalName(name)
	if err != nil {
		return nil, err // not a name that CREATE would take: no [TRYCREATE]
	}
	var flags []string
	var date time.Time
	if options != nil {
		if flags, err = checkFlags(options.Flags); err != nil {
			return nil, err
		}
		date = options.Time
	}
	lr := &limitReader{r: r, n: limit}
	uidValidity, uid, err := s.user.Append(s.ctx, cn, lr, flags, date)
	if lr.over {
		return nil, noErr(imap.ResponseCodeTooBig, fmt.Sprintf("Messages are limited to %d bytes", limit))
	}
	if err != nil {
		return nil, s.imapErr("APPEND", cn, err, true)
	}
	return &imap.AppendData{UIDValidity: uint32(uidValidity), UID: imap.UID(uid)}, nil
}

// limitReader fails once more than n bytes were read.
type limitReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		l.over = true
		return n, fmt.Errorf("imapfront: append: %w", bridge.ErrTooBig)
	}
	return n, err
}
