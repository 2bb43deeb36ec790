package pop3front

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

var timeZero time.Time

// openMaildrop takes the snapshot of the user's INBOX the session serves.
func (s *session) openMaildrop(u *bridge.User) error {
	inbox, err := u.Mailbox(s.ctx, bridge.InboxName)
	if err != nil {
		return fmt.Errorf("open INBOX: %w", err)
	}
	listing, err := inbox.POP3Listing(s.ctx, s.srv.opts.HostUIDL)
	if err != nil {
		return fmt.Errorf("list INBOX: %w", err)
	}
	s.drop = s.drop[:0]
	for _, e := range listing {
		if e.Hidden {
			continue
		}
		s.drop = append(s.drop, dropMsg{uid: e.UID, size: e.Size, uidl: e.UIDL})
	}
	s.user, s.inbox, s.state = u, inbox, stateTransaction
	return nil
}

// message resolves a message-number argument: the message, or false
// after answering why not.
func (s *session) message(arg string) (*dropMsg, int, bool) {
	n, ok := parseNumber(arg)
	if !ok {
		s.invalidNoEnd("-ERR Invalid message number")
		return nil, 0, false
	}
	if n < 1 || n > len(s.drop) {
		s.fail(fmt.Sprintf("-ERR No such message (maildrop has %d)", len(s.drop)))
		return nil, 0, false
	}
	m := &s.drop[n-1]
	if m.deleted {
		s.fail(fmt.Sprintf("-ERR Message %d already deleted", n))
		return nil, 0, false
	}
	return m, n, true
}

// invalidNoEnd is invalid where the caller cannot end the session itself;
// the count still runs, and the next invalid command may end it.
func (s *session) invalidNoEnd(text string) {
	s.lastResult = "err"
	s.bad++
	s.reply(text)
}

func (s *session) stat() (int, int64) {
	var n int
	var total int64
	for _, m := range s.drop {
		if !m.deleted {
			n++
			total += m.size
		}
	}
	return n, total
}

func (s *session) cmdNoop(c command) error {
	if len(c.args) > 0 {
		return s.invalid("-ERR NOOP takes no argument")
	}
	s.ok("")
	return nil
}

func (s *session) cmdStat(c command) error {
	if len(c.args) > 0 {
		return s.invalid("-ERR STAT takes no argument")
	}
	n, total := s.stat()
	s.ok(strconv.Itoa(n) + " " + strconv.FormatInt(total, 10))
	return nil
}

func (s *session) cmdList(c command) error {
	return s.listing(c, "LIST", func(n int, m *dropMsg) string { return strconv.FormatInt(m.size, 10) })
}

func (s *session) cmdUidl(c command) error {
	return s.listing(c, "UIDL", func(n int, m *dropMsg) string { return m.uidl })
}

// listing answers LIST or UIDL, of one message or of all not deleted.
func (s *session) listing(c command, name string, value func(int, *dropMsg) string) error {
	switch len(c.args) {
	case 0:
		n, total := s.stat()
		if name == "LIST" {
			s.ok(fmt.Sprintf("%d messages (%d octets)", n, total))
		} else {
			s.ok("")
		}
		for i := range s.drop {
			if m := &s.drop[i]; !m.deleted {
				s.reply(strconv.Itoa(i+1) + " " + value(i+1, m))
			}
		}
		s.reply(".")
	case 1:
		if m, n, ok := s.message(c.args[0]); ok {
			s.ok(strconv.Itoa(n) + " " + value(n, m))
		}
	default:
		return s.invalid("-ERR " + name + " takes at most one argument: a message number")
	}
	return s.endIfTooBad()
}

func (s *session) cmdRetr(c command) error {
	if len(c.args) != 1 {
		return s.invalid("-ERR RETR takes one argument: a message number")
	}
	m, n, ok := s.message(c.args[0])
	if !ok {
		return s.endIfTooBad()
	}
	return s.send(m, n, -1)
}

// cmdTop: RFC 1939 section 7: the header, the blank line, and the first
// lines of the body.
func (s *session) cmdTop(c command) error {
	if len(c.args) != 2 {
		return s.invalid("-ERR TOP takes two arguments: a message number and a line count")
	}
	m, n, ok := s.message(c.args[0])
	if !ok {
		return s.endIfTooBad()
	}
	lines, ok := parseNumber(c.args[1])
	if !ok {
		return s.invalid("-ERR Invalid line count")
	}
	return s.send(m, n, lines)
}

func (s *session) endIfTooBad() error {
	if s.bad >= s.srv.opts.MaxBadCommands {
		s.srv.limitHit("bad_commands", s.remote, "too many invalid commands", "max", s.srv.opts.MaxBadCommands)
		s.reply("-ERR Too many invalid commands")
		return errEndSession
	}
	return nil
}

// send answers RETR (bodyLines < 0) or TOP: the message as
// bridge.POP3Content gives it, dot-stuffed, then the terminating line. A
// failure once the +OK is out cannot be told to the client: the session
// ends.
func (s *session) send(m *dropMsg, n, bodyLines int) error {
	body, err := s.inbox.Open(s.ctx, m.uid)
	if errors.Is(err, bridge.ErrNoSuchMessage) {
		s.fail(fmt.Sprintf("-ERR Message %d was removed by another session", n))
		return nil
	}
	if err != nil {
		s.log.Error("pop3: open message", "uid", m.uid, "err", err)
		s.fail("-ERR [SYS/TEMP] Message temporarily unavailable")
		return nil
	}
	defer body.Close()
	if bodyLines < 0 {
		s.ok(strconv.FormatInt(m.size, 10) + " octets")
	} else {
		s.ok("")
	}
	dw := &dotWriter{w: s.w, bol: true}
	src := bridge.POP3Content(body)
	if bodyLines < 0 {
		_, err = io.Copy(dw, src)
	} else {
		err = copyTop(dw, src, bodyLines)
	}
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Error("pop3: sending message failed", "uid", m.uid, "err", err)
		}
		return fmt.Errorf("send message %d: %w", n, err)
	}
	if bodyLines < 0 && dw.n != m.size {
		s.log.Error("pop3: message size differs from the listed size", "uid", m.uid, "listed", m.size, "sent", dw.n)
	}
	if !dw.bol {
		// Only an empty message (POP3Content ends the rest in CRLF).
		s.w.WriteString("\r\n")
	}
	s.reply(".")
	return nil
}

// copyTop copies the header, the blank line after it and the first lines
// of the body. A message without a blank line is its header only.
func copyTop(dw *dotWriter, src io.Reader, lines int) error {
	r := bufio.NewReaderSize(src, 16<<10)
	inHeader, lineStart, empty := true, true, false
	for {
		if !inHeader && lines == 0 && lineStart {
			return nil
		}
		chunk, err := r.ReadSlice('\n')
		if len(chunk) > 0 {
			if lineStart {
				empty = len(chunk) == 2 && chunk[0] == '\r' && chunk[1] == '\n'
			}
			if _, werr := dw.Write(chunk); werr != nil {
				return werr
			}
			lineStart = chunk[len(chunk)-1] == '\n'
			if lineStart {
				if inHeader {
					inHeader = !empty
				} else {
					lines--
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

func (s *session) cmdDele(c command) error {
	if len(c.args) != 1 {
		return s.invalid("-ERR DELE takes one argument: a message number")
	}
	m, n, ok := s.message(c.args[0])
	if !ok {
		return s.endIfTooBad()
	}
	m.deleted = true
	s.ok(fmt.Sprintf("Message %d deleted", n))
	return nil
}

func (s *session) cmdRset(c command) error {
	if len(c.args) > 0 {
		return s.invalid("-ERR RSET takes no argument")
	}
	for i := range s.drop {
		s.drop[i].deleted = false
	}
	n, total := s.stat()
	s.ok(fmt.Sprintf("Maildrop has %d messages (%d octets)", n, total))
	return nil
}

// cmdQuit: in the TRANSACTION state the UPDATE state follows (RFC 1939
// section 6): the deleted messages are expunged (or hidden), durably,
// before the +OK.
func (s *session) cmdQuit(c command) error {
	s.quit = true
	if s.state != stateTransaction {
		s.ok("imapbridge POP3 server signing off")
		return nil
	}
	var uids []bridge.UID
	for _, m := range s.drop {
		if m.deleted {
			uids = append(uids, m.uid)
		}
	}
	mode := s.srv.opts.Dele
	if len(uids) > 0 {
		var err error
		done := len(uids)
		if mode == DeleKeep {
			err = s.inbox.HidePOP3(s.ctx, uids)
		} else {
			var del []bridge.UID
			del, err = s.inbox.ExpungeUIDs(s.ctx, uids)
			done = len(del)
		}
		if err != nil {
			s.log.Error("pop3: QUIT could not remove the deleted messages", "mode", mode, "count", len(uids), "err", err)
			s.fail("-ERR [SYS/TEMP] Some deleted messages not removed")
			return nil
		}
		s.srv.metrics.deleted(mode, done)
		s.log.Info("pop3: deleted messages removed", "mode", mode, "count", len(uids))
	}
	n, _ := s.stat()
	s.ok(fmt.Sprintf("imapbridge POP3 server signing off (%d messages left)", n))
	return nil
}

// dotWriter dot-stuffs what it is given (RFC 1939 section 3): a line that
// starts with "." gets another. n counts the bytes given.
type dotWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	n   int64
}

func (d *dotWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return total - len(p), err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			i++ // include the LF
			d.bol = true
		} else {
			i = len(p)
			d.bol = false
		}
		if _, err := d.w.Write(p[:i]); err != nil {
			return total - len(p), err
		}
		d.n += int64(i)
		p = p[i:]
	}
	return total, nil
}
