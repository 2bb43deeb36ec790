package mboxstore

// One test per defect of github.com/emersion/go-mbox v1.0.4 that made the
// bridge write its own reader (see the package README).

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// Defect 1: the From_ line was thrown away, so there was no envelope date
// for INTERNALDATE. Here it becomes Message.Date and SourceMessage.Date.
func TestDefectFromLineDiscarded(t *testing.T) {
	spool := []byte("From alice@example.org Tue Feb 13 09:00:00 2024\nSubject: a\n\nx\n\n")
	res, err := scanBytes(t, spool, ScanOptions{Complete: true})
	if err != nil || len(res.Messages) != 1 {
		t.Fatal(res, err)
	}
	m := res.Messages[0]
	if m.Sender != "alice@example.org" || !m.Date.Equal(time.Date(2024, 2, 13, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("envelope: %q %v", m.Sender, m.Date)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alice"), spool)
	src, _ := testSource(t, dir)
	msgs := settle(t, src, "alice")
	want := time.Date(2024, 2, 13, 9, 0, 0, 0, time.Local)
	if len(msgs) != 1 || !msgs[0].Date.Equal(want) {
		t.Errorf("SourceMessage.Date = %v, want %v (INTERNALDATE)", msgs, want)
	}
}

// recordingReader records the lowest offset read.
type recordingReader struct {
	r      *bytes.Reader
	mu     sync.Mutex
	lowest int64
}

func (r *recordingReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.lowest = min(r.lowest, off)
	r.mu.Unlock()
	return r.r.ReadAt(p, off)
}

// Defect 2: no byte offsets, so a growing spool could not be read from
// where the last read stopped. Here every message has its offsets, and a
// read from Result.Next of the grown file never touches the old part.
func TestDefectNoByteOffsets(t *testing.T) {
	old := spoolBytes(t, msgN(1), msgN(2))
	res, err := scanBytes(t, old, ScanOptions{Complete: true})
	if err != nil || len(res.Messages) != 2 || res.Next != int64(len(old)) {
		t.Fatal(res, err)
	}
	second := int64(bytes.Index(old, []byte("From sender2")))
	m := res.Messages[1]
	if m.Offset != second || m.ContentOffset != second+int64(bytes.IndexByte(old[second:], '\n'))+1 || m.End != int64(len(old))-1 {
		t.Errorf("offsets %d/%d/%d", m.Offset, m.ContentOffset, m.End)
	}
	grown := append(bytes.Clone(old), spoolBytes(t, msgN(3), msgN(4))...)
	rr := &recordingReader{r: bytes.NewReader(grown), lowest: 1 << 62}
	res2, err := Scan(context.Background(), rr, "spool", ScanOptions{Start: res.Next, Size: int64(len(grown)), Complete: true, Location: time.UTC})
	if err != nil || len(res2.Messages) != 2 || res2.Messages[0].Sender != "sender3@example.org" {
		t.Fatal(res2, err)
	}
	if rr.lowest < res.Next {
		t.Errorf("read from byte %d, below the old end %d", rr.lowest, res.Next)
	}
}

// Defect 3: messages appended after EOF was reached were never seen, and a
// half-written last message was returned as complete. Here the last message
// is held back (Result.Tail) until a From_ line follows it or the spool is
// known complete, and reading on from Result.Next sees appended mail.
func TestDefectAppendAfterEOFAndHalfMessage(t *testing.T) {
	full := spoolBytes(t, msgN(1), msgN(2))
	half := full[:bytes.Index(full, []byte("Body of message 2"))]
	res, err := scanBytes(t, half, ScanOptions{})
	if err != nil || len(res.Messages) != 1 || res.Tail == nil {
		t.Fatalf("half-written: %d messages, tail %v, %v", len(res.Messages), res.Tail, err)
	}
	grown := append(bytes.Clone(full), spoolBytes(t, msgN(3))...)
	res2, err := Scan(context.Background(), bytes.NewReader(grown), "spool", ScanOptions{Start: res.Next, Size: int64(len(grown)), Location: time.UTC})
	if err != nil || len(res2.Messages) != 1 || res2.Messages[0].Sender != "sender2@example.org" || res2.Tail == nil || res2.Tail.Sender != "sender3@example.org" {
		t.Fatalf("after append: %+v, %v", res2, err)
	}
	if got, want := fetchBytes(t, grown, res2.Messages[0]), bytes.ReplaceAll([]byte(msgN(2).body), []byte("\n"), []byte("\r\n")); !bytes.Equal(got, want) {
		t.Errorf("completed message:\n%q\nwant\n%q", got, want)
	}
	// The Source: see TestSourceHalfWrittenLastMessage.
}

// Defect 4: only mboxo was read, so mboxrd's ">>From " stayed escaped.
func TestDefectMboxoOnly(t *testing.T) {
	spool := []byte("From a Tue Feb 13 09:00:00 2024\nSubject: q\n\n>From one\n>>From two\n>>>From three\n\n")
	res, err := scanBytes(t, spool, ScanOptions{Complete: true})
	if err != nil || len(res.Messages) != 1 {
		t.Fatal(res, err)
	}
	want := "Subject: q\r\n\r\nFrom one\r\n>From two\r\n>>From three\r\n"
	if got := fetchBytes(t, spool, res.Messages[0]); string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Defect 5: a blank line was added to messages whose body ends in one,
// changing their bytes and RFC822.SIZE. Here the separator line alone is
// dropped.
func TestDefectBlankLineAdded(t *testing.T) {
	for _, body := range []string{"Subject: b\n\nends in a blank line\n\n", "Subject: b\n\ntwo\n\n\n", "Subject: b\n\nnone\n"} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "alice"), spoolBytes(t, testMsg{"a@example.org", time.Unix(0, 0), body}, msgN(2)))
		src, _ := testSource(t, dir)
		msgs := settle(t, src, "alice")
		ctx := context.Background()
		ss, _ := src.Open(ctx, bridge.Account{User: "alice"})
		ss.List(ctx)
		want := bytes.ReplaceAll([]byte(body), []byte("\n"), []byte("\r\n"))
		if got := fetch(t, ss, msgs[0].ID); !bytes.Equal(got, want) || msgs[0].Size != int64(len(want)) {
			t.Errorf("got %q (size %d), want %q", got, msgs[0].Size, want)
		}
		ss.Abort()
	}
}

// Defect 6: a message was split at any body line beginning "From ", even
// without a blank line before it. Here only a blank line then a From_ line
// is a boundary.
func TestDefectSplitWithoutBlankLine(t *testing.T) {
	spool := []byte("From a Tue Feb 13 09:00:00 2024\nSubject: s\n\nRegards,\nFrom the desk of Alice\nFrom: not a header either\n\nFrom b Tue Feb 13 09:00:01 2024\nSubject: t\n\nx\n\n")
	res, err := scanBytes(t, spool, ScanOptions{Complete: true})
	if err != nil || len(res.Messages) != 2 {
		t.Fatalf("%d messages, %v", len(res.Messages), err)
	}
	want := "Subject: s\r\n\r\nRegards,\r\nFrom the desk of Alice\r\nFrom: not a header either\r\n"
	if got := fetchBytes(t, spool, res.Messages[0]); string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
