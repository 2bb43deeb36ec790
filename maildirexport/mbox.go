package maildirexport

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// mboxFile returns the path of a mailbox's mbox file relative to the
// user's directory: "INBOX.mbox", "Archive/2024.mbox" (each level a
// directory, the last the file; UTF-8 names).
func mboxFile(name string) string {
	levels := strings.Split(name, bridge.Delimiter)
	levels[len(levels)-1] += ".mbox"
	return filepath.Join(levels...)
}

func writeMboxUser(ctx context.Context, snap *bridge.ReadSnapshot, mbs []bridge.SnapshotMailbox, dir string, ur *UserReport) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, mb := range mbs {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := mboxFile(mb.Name)
		mr := MailboxReport{Name: mb.Name, SpecialUse: mb.SpecialUse, Path: rel, UIDValidity: mb.UIDValidity, UIDNext: mb.UIDNext}
		if err := writeMbox(ctx, snap, mb, filepath.Join(dir, rel), &mr); err != nil {
			return fmt.Errorf("mailbox %q: %w", mb.Name, err)
		}
		ur.Mailboxes = append(ur.Mailboxes, mr)
	}
	return nil
}

func writeMbox(ctx context.Context, snap *bridge.ReadSnapshot, mb bridge.SnapshotMailbox, path string, mr *MailboxReport) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	msgs, err := snap.Messages(ctx, mb.ID)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	for _, m := range msgs {
		if err = ctx.Err(); err != nil {
			break
		}
		var body bridge.Body
		if body, err = snap.Open(ctx, m); err != nil {
			break
		}
		err = writeMboxMessage(w, body, m.InternalDate)
		body.Close()
		if err != nil {
			err = fmt.Errorf("uid %d: %w", m.UID, err)
			break
		}
		mr.Messages++
		mr.Bytes += m.Size
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var fromSP = []byte("From ")

// writeMboxMessage writes one message in mboxrd form: a From_ line with
// the envelope sender (Return-Path, else MAILER-DAEMON) and the
// INTERNALDATE in asctime form in the local time zone (asctime has none;
// mbox readers assume local time), the message with CRLF line endings
// turned into LF (a CR before a CRLF stays) and every line matching
// ^>*From  given one more ">", a final LF if the message lacks one, and
// an empty separator line. A reader that turns LF back into CRLF and
// strips one ">" gets the stored bytes back.
func writeMboxMessage(w *bufio.Writer, r io.Reader, date time.Time) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(64 << 10)
	fmt.Fprintf(w, "From %s %s\n", envelopeSender(head), date.Local().Format("Mon Jan _2 15:04:05 2006"))
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: write it in pieces; only
			// its start can be a From_ line and only its end a CRLF.
			if err := writeLinePiece(w, line, true, false); err != nil {
				return err
			}
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
					return err
				}
				if werr := writeLinePiece(w, line, false, err == nil); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		if len(line) > 0 {
			if werr := writeLinePiece(w, line, true, err == nil); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			if len(line) > 0 {
				w.WriteByte('\n') // the message lacked a final newline
			}
			break
		}
	}
	return w.WriteByte('\n')
}

// writeLinePiece writes part of a line: start says it begins the line (it
// may need a ">"), end that it ends with the line's LF.
func writeLinePiece(w *bufio.Writer, p []byte, start, end bool) error {
	if start && bytes.HasPrefix(bytes.TrimLeft(p, ">"), fromSP) {
		w.WriteByte('>')
	}
	if end {
		p = p[:len(p)-1] // the LF
		if n := len(p); n > 0 && p[n-1] == '\r' && (n < 2 || p[n-2] != '\r') {
			p = p[:n-1]
		}
		w.Write(p)
		return w.WriteByte('\n')
	}
	_, err := w.Write(p)
	return err
}

// envelopeSender finds the Return-Path address in a message's header,
// or MAILER-DAEMON.
func envelopeSender(head []byte) string {
	for len(head) > 0 {
		k := bytes.IndexByte(head, '\n')
		var line []byte
		if k < 0 {
			line, head = head, nil
		} else {
			line, head = head[:k], head[k+1:]
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if name, val, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(name), "Return-Path") {
			addr := strings.Trim(strings.TrimSpace(string(val)), "<>")
			if addr != "" && !strings.ContainsAny(addr, " \t") {
				return addr
			}
		}
	}
	return "MAILER-DAEMON"
}
