package mboxstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wantMessage is one expected message of a testdata/spool/*.want file.
type wantMessage struct {
	offset int64
	sender string
	date   time.Time // zero: no date
	body   []byte    // CRLF, as Fetch returns it
}

// readWant parses a .want file: an optional "!corrupt <offset>" line, then
// per message "=== offset=N size=N date=RFC3339|zero sender=S" and exactly
// size bytes followed by a newline.
func readWant(t testing.TB, path string) (msgs []wantMessage, corruptAt int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	corruptAt = -1
	if rest, ok := bytes.CutPrefix(b, []byte("!corrupt ")); ok {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		corruptAt, err = strconv.ParseInt(string(line), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		b = after
	}
	for len(b) > 0 {
		line, after, ok := bytes.Cut(b, []byte("\n"))
		if !ok || !bytes.HasPrefix(line, []byte("=== ")) {
			t.Fatalf("%s: bad header line %q", path, line)
		}
		var w wantMessage
		var size int
		var date string
		fields := strings.SplitN(string(line[4:]), " ", 4)
		for _, f := range fields {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "offset":
				w.offset, _ = strconv.ParseInt(v, 10, 64)
			case "size":
				size, _ = strconv.Atoi(v)
			case "date":
				date = v
			case "sender":
				w.sender = v
			}
		}
		if date != "zero" {
			if w.date, err = time.Parse(time.RFC3339, date); err != nil {
				t.Fatal(err)
			}
		}
		w.body = after[:size]
		b = after[size+1:]
		msgs = append(msgs, w)
	}
	return msgs, corruptAt
}

// fetchBytes returns message m of spool as Fetch would.
func fetchBytes(t testing.TB, spool []byte, m Message) []byte {
	t.Helper()
	b, err := io.ReadAll(newMessageReader(context.Background(), bytes.NewReader(spool), "spool", m))
	if err != nil {
		t.Fatalf("fetch message at %d: %v", m.Offset, err)
	}
	return b
}

func scanBytes(t testing.TB, spool []byte, opts ScanOptions) (Result, error) {
	t.Helper()
	opts.Size = int64(len(spool))
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	return Scan(context.Background(), bytes.NewReader(spool), "spool", opts)
}

// TestScanFixtures reads every testdata/spool/*.mbox with several buffer
// sizes (so that boundaries, escapes and CRLFs fall across buffer ends) and
// compares the messages byte for byte with the .want file.
func TestScanFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/spool/*.mbox")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".mbox")
		spool, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want, corruptAt := readWant(t, strings.TrimSuffix(file, ".mbox")+".want")
		for _, bufSize := range []int{64, 100, 4093, 0} {
			t.Run(fmt.Sprintf("%s/buf%d", name, bufSize), func(t *testing.T) {
				res, err := scanBytes(t, spool, ScanOptions{Complete: true, Keys: true, BufferSize: bufSize})
				if corruptAt >= 0 {
					var ce *CorruptError
					if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
						t.Fatalf("err = %v, want a CorruptError", err)
					}
					if ce.Offset != corruptAt || ce.Path != "spool" {
						t.Errorf("corrupt at %s byte %d, want spool byte %d (%v)", ce.Path, ce.Offset, corruptAt, err)
					}
					if !strings.Contains(err.Error(), fmt.Sprintf("mboxstore: spool at byte %d: ", corruptAt)) {
						t.Errorf("error text %q does not name the file and offset", err)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if len(res.Messages) != len(want) {
					t.Fatalf("got %d messages, want %d", len(res.Messages), len(want))
				}
				for i, m := range res.Messages {
					w := want[i]
					if m.Offset != w.offset {
						t.Errorf("message %d: offset %d, want %d", i, m.Offset, w.offset)
					}
					if m.Sender != w.sender {
						t.Errorf("message %d: sender %q, want %q", i, m.Sender, w.sender)
					}
					if !m.Date.Equal(w.date) || m.Date.IsZero() != w.date.IsZero() {
						t.Errorf("message %d: date %v, want %v", i, m.Date, w.date)
					}
					got := fetchBytes(t, spool, m)
					if !bytes.Equal(got, w.body) {
						t.Errorf("message %d: fetched\n%q\nwant\n%q", i, trunc(got), trunc(w.body))
					}
					if m.Size != int64(len(w.body)) {
						t.Errorf("message %d: size %d, want %d", i, m.Size, len(w.body))
					}
					if m.Key != keyOf(w.body) {
						t.Errorf("message %d: key %s, want %s", i, m.Key, keyOf(w.body))
					}
				}
			})
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 300 {
		return append(b[:300:300], "…"...)
	}
	return b
}

// keyOf is a plain, line-by-line implementation of the key definition,
// to check the streaming one: SHA-256 of the CRLF message with CRLF as LF
// and without the volatile header fields.
func keyOf(msg []byte) Key {
	norm := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	var out []byte
	lines := bytes.SplitAfter(norm, []byte("\n"))
	inHeader, skip := true, false
	for _, line := range lines {
		if inHeader {
			if string(line) == "\n" {
				inHeader = false
				out = append(out, line...)
				continue
			}
			if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
				if !skip {
					out = append(out, line...)
				}
				continue
			}
			skip = false
			if name, _, ok := bytes.Cut(line, []byte(":")); ok && !bytes.Contains(name, []byte("\n")) {
				skip = isVolatile(bytes.TrimRight(name, " \t"))
			}
			if !skip {
				out = append(out, line...)
			}
			continue
		}
		out = append(out, line...)
	}
	h := newKeyHasher()
	h.reset()
	h.inHeader = false
	h.h.Write(out)
	var k Key
	copy(k[:], h.h.Sum(nil))
	return k
}

// TestScanLongLine reads a 1 MiB line, longer than the read buffer, and a
// 100 KiB From_ line.
func TestScanLongLine(t *testing.T) {
	line := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	var spool bytes.Buffer
	w := NewWriter(&spool)
	w.Location = time.UTC
	msg := append(append([]byte("Subject: long\n\n"), line...), '\n')
	if err := w.WriteMessage("a@example.org", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), msg); err != nil {
		t.Fatal(err)
	}
	spool.WriteString("From " + strings.Repeat("x", 100<<10) + " Mon Jan  2 15:04:05 2006\nSubject: after\n\nok\n\n")
	res, err := scanBytes(t, spool.Bytes(), ScanOptions{Complete: true, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 2 {
		t.Fatalf("%d messages", len(res.Messages))
	}
	want := bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
	if got := fetchBytes(t, spool.Bytes(), res.Messages[0]); !bytes.Equal(got, want) {
		t.Errorf("long line not intact: got %d bytes, want %d", len(got), len(want))
	}
	if m := res.Messages[1]; !m.Date.IsZero() || len(m.Sender) != maxFromLine-len(fromSP) {
		t.Errorf("overlong From_ line: sender of %d bytes, date %v", len(m.Sender), m.Date)
	}
}
