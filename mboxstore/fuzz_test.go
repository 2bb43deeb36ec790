package mboxstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// refMessage is a message as found by refScan.
type refMessage struct {
	offset, content, end int64
	fetched              []byte
}

// refScan is a deliberately naive, line-by-line statement of the format
// rules, to check the buffered scanner against. corruptAt is -1 if the
// spool is valid.
func refScan(spool []byte) (msgs []refMessage, corruptAt int64) {
	type line struct {
		off  int64
		text []byte // with its LF, if any
	}
	var lines []line
	for off := 0; off < len(spool); {
		n := bytes.IndexByte(spool[off:], '\n')
		end := len(spool)
		if n >= 0 {
			end = off + n + 1
		}
		lines = append(lines, line{int64(off), spool[off:end]})
		off = end
	}
	empty := func(l line) bool { return string(l.text) == "\n" || string(l.text) == "\r\n" }
	if len(lines) == 0 {
		return nil, -1
	}
	if !bytes.HasPrefix(lines[0].text, fromSP) {
		return nil, 0
	}
	i := 0
	for {
		// lines[i] is a From_ line
		if !bytes.HasSuffix(lines[i].text, []byte("\n")) {
			return msgs, lines[i].off // truncated From_ line
		}
		m := refMessage{offset: lines[i].off, content: lines[i].off + int64(len(lines[i].text))}
		j := i + 1
		next, corrupt := -1, false
		for ; j < len(lines); j++ {
			if j-1 >= i+1 && empty(lines[j-1]) {
				if bytes.HasPrefix(lines[j].text, fromSP) {
					next = j
					break
				}
				if lines[j].text[0] == 0 {
					next, corrupt = j, true
					break
				}
			}
		}
		contentLines := lines[i+1 : j]
		if next >= 0 {
			contentLines = contentLines[:len(contentLines)-1] // the separator
		} else if n := len(contentLines); n > 0 && !bytes.HasSuffix(contentLines[n-1].text, []byte("\n")) {
			return msgs, m.offset // truncated last message
		} else if n > 0 && empty(contentLines[n-1]) {
			contentLines = contentLines[:n-1]
		}
		m.end = m.content
		var raw []byte
		for _, l := range contentLines {
			m.end += int64(len(l.text))
			t := l.text
			if bytes.HasPrefix(bytes.TrimLeft(t, ">"), fromSP) && t[0] == '>' {
				t = t[1:]
			}
			raw = append(raw, t...)
		}
		for k := 0; k < len(raw); k++ {
			if raw[k] == '\n' && (k == 0 || raw[k-1] != '\r') {
				m.fetched = append(m.fetched, '\r')
			}
			m.fetched = append(m.fetched, raw[k])
		}
		msgs = append(msgs, m)
		if next < 0 {
			return msgs, -1
		}
		if corrupt {
			return msgs, lines[next].off
		}
		i = next
	}
}

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/spool/*.mbox")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("From a\n\nFrom b\n>From c\n\n\x00"))
	f.Add([]byte("From a\r\n\r\nFrom b\r\n>>From\r\r\n\n\n"))
}

// FuzzReader checks that Scan never panics, agrees with refScan, does not
// depend on the buffer size, gives ordered in-range offsets, can resume at
// any message, and that writing the messages with Writer and reading them
// again gives the same messages and keys.
func FuzzReader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, spool []byte) {
		res, err := scanBytes(t, spool, ScanOptions{Complete: true, Keys: true})
		var ce *CorruptError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("non-corruption error: %v", err)
		}
		ref, refCorrupt := refScan(spool)
		if (ce == nil) != (refCorrupt < 0) || ce != nil && ce.Offset != refCorrupt {
			t.Fatalf("corruption: got %v, reference says %d", err, refCorrupt)
		}
		if len(res.Messages) != len(ref) {
			t.Fatalf("%d messages, reference %d", len(res.Messages), len(ref))
		}
		prevEnd := int64(0)
		for i, m := range res.Messages {
			r := ref[i]
			if m.Offset != r.offset || m.ContentOffset != r.content || m.End != r.end {
				t.Fatalf("message %d: offsets %d/%d/%d, reference %d/%d/%d", i, m.Offset, m.ContentOffset, m.End, r.offset, r.content, r.end)
			}
			if m.Offset < prevEnd || m.ContentOffset <= m.Offset || m.End < m.ContentOffset || m.End > int64(len(spool)) {
				t.Fatalf("message %d: offsets out of order: %+v", i, m)
			}
			prevEnd = m.End
			got := fetchBytes(t, spool, m)
			if !bytes.Equal(got, r.fetched) {
				t.Fatalf("message %d: fetched %q, reference %q", i, got, r.fetched)
			}
			if m.Size != int64(len(got)) || m.Key != keyOf(got) {
				t.Fatalf("message %d: size %d key %s, want %d %s", i, m.Size, m.Key, len(got), keyOf(got))
			}
		}
		for _, bufSize := range []int{64, 67, 1021} {
			res2, err2 := scanBytes(t, spool, ScanOptions{Complete: true, Keys: true, BufferSize: bufSize})
			if !sameResult(res, res2) || (err == nil) != (err2 == nil) {
				t.Fatalf("buffer %d: different result", bufSize)
			}
		}
		for i, m := range res.Messages {
			res2, _ := scanBytes(t, spool, ScanOptions{Start: m.Offset, Complete: true, Keys: true, BufferSize: 97})
			if !sameResult(Result{Messages: res.Messages[i:], Next: res.Next}, res2) {
				t.Fatalf("resume at message %d (byte %d): different result", i, m.Offset)
			}
		}
		// Not known complete: the last message is held back, the others not.
		res3, err3 := scanBytes(t, spool, ScanOptions{Keys: true})
		if err == nil && len(res.Messages) > 0 {
			last := res.Messages[len(res.Messages)-1]
			if err3 != nil || res3.Tail == nil || res3.Tail.Key != last.Key || len(res3.Messages) != len(res.Messages)-1 || res3.Next != last.Offset {
				t.Fatalf("incomplete read: %v, %d messages, tail %v", err3, len(res3.Messages), res3.Tail)
			}
		}

		// Write the messages again and read them back.
		var out bytes.Buffer
		w := NewWriter(&out)
		w.Location = time.UTC
		for _, m := range res.Messages {
			if err := w.WriteMessage(m.Sender, m.Date, fetchBytes(t, spool, m)); err != nil {
				t.Fatal(err)
			}
		}
		again, err := scanBytes(t, out.Bytes(), ScanOptions{Complete: true, Keys: true, BufferSize: 71})
		if err != nil {
			t.Fatalf("re-reading written spool: %v\n%q", err, out.Bytes())
		}
		if len(again.Messages) != len(res.Messages) {
			t.Fatalf("rewritten spool has %d messages, want %d\n%q", len(again.Messages), len(res.Messages), out.Bytes())
		}
		for i, m := range again.Messages {
			o := res.Messages[i]
			if !bytes.Equal(fetchBytes(t, out.Bytes(), m), fetchBytes(t, spool, o)) || m.Key != o.Key || m.Size != o.Size {
				t.Fatalf("message %d changed by a write/read round trip", i)
			}
			switch {
			case o.Date.IsZero():
				if !m.Date.Equal(time.Unix(0, 0)) {
					t.Fatalf("message %d: zero date written as %v", i, m.Date)
				}
			case o.Date.UTC().Year() >= 1000 && o.Date.UTC().Year() <= 9999:
				if !m.Date.Equal(o.Date) {
					t.Fatalf("message %d: date %v became %v", i, o.Date, m.Date)
				}
				if want := sanitizeSender(o.Sender); m.Sender != want && len(want) < 1000 {
					t.Fatalf("message %d: sender %q became %q", i, want, m.Sender)
				}
			}
		}
	})
}

func sanitizeSender(s string) string {
	if s == "" {
		return "MAILER-DAEMON"
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c == 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

func sameResult(a, b Result) bool {
	if len(a.Messages) != len(b.Messages) || a.Next != b.Next || (a.Tail == nil) != (b.Tail == nil) {
		return false
	}
	for i := range a.Messages {
		if !sameMessage(a.Messages[i], b.Messages[i]) {
			return false
		}
	}
	return a.Tail == nil || sameMessage(*a.Tail, *b.Tail)
}

func sameMessage(a, b Message) bool {
	return a.Offset == b.Offset && a.ContentOffset == b.ContentOffset && a.End == b.End &&
		a.Sender == b.Sender && a.Date.Equal(b.Date) && a.Size == b.Size && a.Key == b.Key && a.Internal == b.Internal
}

// FuzzRematch rewrites a spool the way mutt and Dovecot do (dropping some
// messages, adding Status, X-Status, X-UID, X-Keywords, Content-Length and
// Lines fields to the others, writing it afresh) and checks that every
// message left keeps its key.
func FuzzRematch(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, spool []byte) {
		res, _ := scanBytes(t, spool, ScanOptions{Complete: true, Keys: true})
		var out bytes.Buffer
		w := NewWriter(&out)
		var kept []Key
		for i, m := range res.Messages {
			if (m.Key[0]+byte(i))%3 == 0 {
				continue // deleted by the other program
			}
			msg := fetchBytes(t, spool, m)
			add := []byte("Status: RO\r\nX-Status: AF\r\nX-UID: 17\r\nX-Keywords: $Junk     \r\nContent-Length: 4711\r\nLines: 3\r\n")
			if i%2 == 1 {
				add = []byte("Status: O\r\n")
			}
			at := len(msg)
			if msg0 := bytes.Index(append([]byte("\r\n"), msg...), []byte("\r\n\r\n")); msg0 >= 0 {
				at = msg0
			}
			msg = append(append(append([]byte{}, msg[:at]...), add...), msg[at:]...)
			if err := w.WriteMessage(m.Sender, m.Date, msg); err != nil {
				t.Fatal(err)
			}
			kept = append(kept, m.Key)
		}
		again, err := scanBytes(t, out.Bytes(), ScanOptions{Complete: true, Keys: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Messages) != len(kept) {
			t.Fatalf("%d messages after rewrite, want %d", len(again.Messages), len(kept))
		}
		for i, m := range again.Messages {
			if m.Key != kept[i] {
				t.Fatalf("message %d: key %s after rewrite, was %s\n%q", i, m.Key, kept[i], out.Bytes())
			}
		}
	})
}
