package mboxstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

func TestSourceMissingSpoolIsEmpty(t *testing.T) {
	src, _ := testSource(t, t.TempDir())
	msgs, err := tryList(src, "nobody")
	if err != nil || len(msgs) != 0 {
		t.Fatalf("List of a missing spool = %v, %v; want empty, nil", msgs, err)
	}
}

func TestSourceRejectsBadUserNames(t *testing.T) {
	src, _ := testSource(t, t.TempDir())
	for _, user := range []string{"", "../etc/passwd", "a/b", "..", "x..y", "nul\x00"} {
		if _, err := src.Open(context.Background(), bridge.Account{User: user}); err == nil {
			t.Errorf("Open(%q) succeeded", user)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Locks: []string{"flock", "fcntl", "fcntl"}, LockTimeout: -1}.Validate()
	for _, want := range []string{"PathTemplate is empty", `unknown lock "flock"`, "LockTimeout -1ns is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if err := (Config{PathTemplate: "/var/mail/{user}"}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestSourceIDsStable checks that the ids of messages do not change when the
// spool grows, when the bridge restarts, and when another program rewrites
// the spool (dropping messages, adding status headers) in place or by
// replacing the file.
func TestSourceIDsStable(t *testing.T) {
	base := []testMsg{msgN(1), msgN(2), msgN(3), msgN(4), msgN(5)}
	withHeader := func(m testMsg, fields string) testMsg {
		h, b, _ := strings.Cut(m.body, "\n\n")
		m.body = h + "\n" + fields + "\n\n" + b
		return m
	}
	tests := []struct {
		name    string
		change  func(t *testing.T, path string) // what happens to the spool
		restart bool                            // a new Source reads it
		gone    []int                           // indexes of base no longer there
		added   int                             // messages added
	}{
		{name: "unchanged restart", restart: true},
		{name: "grown", change: func(t *testing.T, path string) {
			appendFile(t, path, spoolBytes(t, msgN(6), msgN(7)))
		}, added: 2},
		{name: "grown then restart", restart: true, change: func(t *testing.T, path string) {
			appendFile(t, path, spoolBytes(t, msgN(6)))
		}, added: 1},
		{name: "mutt marks read in place", change: func(t *testing.T, path string) {
			ms := slices.Clone(base)
			ms[0] = withHeader(ms[0], "Status: RO\nContent-Length: 42\nLines: 2")
			ms[3] = withHeader(ms[3], "Status: O\nX-Status: AF")
			rewriteInPlace(t, path, spoolBytes(t, ms...))
		}},
		{name: "mutt deletes two in place", change: func(t *testing.T, path string) {
			rewriteInPlace(t, path, spoolBytes(t, withHeader(base[0], "Status: RO"), base[2], base[4]))
		}, gone: []int{1, 3}},
		{name: "dovecot adds its headers", change: func(t *testing.T, path string) {
			ms := slices.Clone(base)
			ms[0] = withHeader(ms[0], "X-IMAPbase: 1712345678 0000000005\nStatus: RO\nX-UID: 1\nX-Keywords: $Forwarded                   \nContent-Length: 31")
			for i := 1; i < len(ms); i++ {
				ms[i] = withHeader(ms[i], "Status: O\nX-UID: "+string(rune('1'+i))+"\nX-Keywords:                           ")
			}
			rewriteInPlace(t, path, spoolBytes(t, ms...))
		}},
		{name: "replaced by a new file without the first", restart: true, change: func(t *testing.T, path string) {
			tmp := path + ".new"
			writeFile(t, tmp, spoolBytes(t, base[1:]...))
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, gone: []int{0}},
		{name: "truncated to the first two", change: func(t *testing.T, path string) {
			b := spoolBytes(t, base[:2]...)
			if err := os.Truncate(path, int64(len(b))); err != nil {
				t.Fatal(err)
			}
		}, gone: []int{2, 3, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "alice")
			writeFile(t, path, spoolBytes(t, base...))
			src, _ := testSource(t, dir)
			before := ids(settle(t, src, "alice"))
			if len(before) != len(base) {
				t.Fatalf("listed %d messages, want %d", len(before), len(base))
			}
			if tc.change != nil {
				tc.change(t, path)
			}
			if tc.restart {
				src, _ = testSource(t, dir)
			}
			after := ids(settle(t, src, "alice"))
			var want []bridge.SourceID
			for i, id := range before {
				if !slices.Contains(tc.gone, i) {
					want = append(want, id)
				}
			}
			if got := after[:min(len(after), len(want))]; !slices.Equal(got, want) {
				t.Errorf("ids after the change:\n%v\nwant\n%v", after, want)
			}
			if len(after) != len(want)+tc.added {
				t.Errorf("%d messages after the change, want %d", len(after), len(want)+tc.added)
			}
		})
	}
}

// rewriteInPlace writes b over the file (same inode), as mutt does.
func rewriteInPlace(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// TestSourceGrownSpoolReadFromEnd checks that a grown spool is read from the
// end of the previous listing only, and that a spool changed before that
// end is read in full again.
func TestSourceGrownSpoolReadFromEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	writeFile(t, path, spoolBytes(t, msgN(1), msgN(2)))
	src, logs := testSource(t, dir)
	settle(t, src, "alice")
	size := fileSize(t, path)
	appendFile(t, path, spoolBytes(t, msgN(3)))
	list(t, src, "alice")
	if !strings.Contains(logs.String(), "mode=grown from="+strconv.FormatInt(size, 10)) {
		t.Errorf("grown spool not read from its old end %d:\n%s", size, logs)
	}
	// A byte changed near the end of the listed part: fingerprint differs.
	b, _ := os.ReadFile(path)
	i := bytes.LastIndex(b, []byte("Body of message 2"))
	b[i] = 'b'
	rewriteInPlace(t, path, append(b, spoolBytes(t, msgN(4))...))
	msgs := list(t, src, "alice")
	if !strings.Contains(logs.String(), "mode=full") {
		t.Errorf("changed spool not read in full:\n%s", logs)
	}
	if len(msgs) != 3 { // 1, changed 2, 3; 4 held back
		t.Errorf("%d messages, want 3", len(msgs))
	}
}

func fileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestSourceHalfWrittenLastMessage: a last message without a From_ line
// after it is not listed until it is followed by one, or until the spool
// was seen unchanged by two polls in a row.
func TestSourceHalfWrittenLastMessage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	full := spoolBytes(t, msgN(1), msgN(2))
	second := bytes.Index(full, []byte("From sender2"))
	half := full[:second+60]
	writeFile(t, path, half)
	src, _ := testSource(t, dir)
	if n := len(list(t, src, "alice")); n != 1 {
		t.Fatalf("with a half-written second message: %d listed, want 1", n)
	}
	// The MDA finishes it and delivers another: now followed by a boundary.
	appendFile(t, path, full[len(half):])
	appendFile(t, path, spoolBytes(t, msgN(3)))
	msgs := list(t, src, "alice")
	if len(msgs) != 2 {
		t.Fatalf("after completion: %d listed, want 2", len(msgs))
	}
	// Unchanged since the last poll: the third is complete.
	msgs = list(t, src, "alice")
	if len(msgs) != 3 {
		t.Fatalf("after a quiet poll: %d listed, want 3", len(msgs))
	}
	ss, err := src.Open(context.Background(), bridge.Account{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Abort()
	if _, err := ss.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(msgN(3).body, "\n", "\r\n")
	if got := fetch(t, ss, msgs[2].ID); string(got) != want {
		t.Errorf("third message:\n%q\nwant\n%q", got, want)
	}
}

// TestSourceFetchFixtures lists and fetches every valid fixture spool and
// compares each message byte for byte, with its size and date.
func TestSourceFetchFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/spool/*.mbox")
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".mbox")
		want, corruptAt := readWant(t, strings.TrimSuffix(file, ".mbox")+".want")
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b, _ := os.ReadFile(file)
			writeFile(t, filepath.Join(dir, "alice"), b)
			src, _ := testSource(t, dir)
			tryList(src, "alice") // the second List accepts the last message
			ss, err := src.Open(context.Background(), bridge.Account{User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer ss.Abort()
			msgs, err := ss.List(context.Background())
			if corruptAt >= 0 {
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.Offset != corruptAt || ce.Path != filepath.Join(dir, "alice") {
					t.Fatalf("err = %v, want corruption at byte %d", err, corruptAt)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != len(want) {
				t.Fatalf("%d messages, want %d", len(msgs), len(want))
			}
			for i, m := range msgs {
				got := fetch(t, ss, m.ID)
				if !bytes.Equal(got, want[i].body) || m.Size != int64(len(got)) {
					t.Errorf("message %d (size %d):\n%q\nwant\n%q", i, m.Size, trunc(got), trunc(want[i].body))
				}
				if m.Date.IsZero() != want[i].date.IsZero() || !m.Date.Equal(want[i].date) && !want[i].date.IsZero() && want[i].date.Location() != time.UTC {
					t.Errorf("message %d: date %v, want %v", i, m.Date, want[i].date)
				}
			}
		})
	}
}

func TestSourceSkipsFolderInternalData(t *testing.T) {
	dir := t.TempDir()
	pseudo := testMsg{sender: "MAILER-DAEMON", date: time.Unix(0, 0), body: "Date: Thu, 01 Jan 1970 00:00:00 +0000\nFrom: Mail System Internal Data <MAILER-DAEMON@example.org>\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1712345678 0000000002\nStatus: RO\n\nThis text is part of the internal format of your mail folder.\n"}
	writeFile(t, filepath.Join(dir, "alice"), spoolBytes(t, pseudo, msgN(1), msgN(2)))
	src, _ := testSource(t, dir)
	if n := len(settle(t, src, "alice")); n != 2 {
		t.Errorf("%d messages listed, want 2 (pseudo message skipped)", n)
	}
}

func TestSourceRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "secret")
	writeFile(t, target, spoolBytes(t, msgN(1)))
	if err := os.Symlink(target, filepath.Join(dir, "alice")); err != nil {
		t.Fatal(err)
	}
	src, _ := testSource(t, dir)
	if _, err := tryList(src, "alice"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("List through a symlink: %v", err)
	}
}

// TestSourceDeleteRewritesInPlace deletes messages and checks the spool is
// the kept messages byte for byte, in the same inode, with the same ids.
func TestSourceDeleteRewritesInPlace(t *testing.T) {
	all := []testMsg{msgN(1), msgN(2), msgN(3), msgN(4), msgN(5), msgN(6)}
	tests := []struct {
		name string
		del  []int
	}{
		{"first", []int{0}},
		{"middle", []int{2, 3}},
		{"last", []int{5}},
		{"alternate", []int{0, 2, 4}},
		{"all", []int{0, 1, 2, 3, 4, 5}},
		{"none marked", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "alice")
			writeFile(t, path, spoolBytes(t, all...))
			before, _ := os.Stat(path)
			src, _ := testSource(t, dir)
			settle(t, src, "alice")
			ctx := context.Background()
			ss, err := src.Open(ctx, bridge.Account{User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := ss.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var del []bridge.SourceID
			var kept []testMsg
			var keptIDs []bridge.SourceID
			for i, m := range msgs {
				if slices.Contains(tc.del, i) {
					del = append(del, m.ID)
				} else {
					kept = append(kept, all[i])
					keptIDs = append(keptIDs, m.ID)
				}
			}
			if err := ss.Delete(ctx, del); err != nil {
				t.Fatal(err)
			}
			if err := ss.Close(ctx); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if want := spoolBytes(t, kept...); !bytes.Equal(got, want) {
				t.Errorf("spool after delete:\n%q\nwant\n%q", got, want)
			}
			after, _ := os.Stat(path)
			if !os.SameFile(before, after) {
				t.Error("the spool was replaced, not rewritten in place")
			}
			if got := ids(list(t, src, "alice")); !slices.Equal(got, keptIDs) {
				t.Errorf("ids after delete %v, want %v", got, keptIDs)
			}
			// A new Source agrees.
			src2, _ := testSource(t, dir)
			if got := ids(settle(t, src2, "alice")); !slices.Equal(got, keptIDs) {
				t.Errorf("ids after restart %v, want %v", got, keptIDs)
			}
		})
	}
}

// TestSourceDeleteRefused checks that nothing is deleted when the spool is
// not exactly what was listed.
func TestSourceDeleteRefused(t *testing.T) {
	tests := []struct {
		name    string
		between func(t *testing.T, path string, size int64) // after List, before Close
		settle  bool
		wantErr error
	}{
		{name: "appended by a writer ignoring the locks", settle: true, between: func(t *testing.T, path string, _ int64) {
			appendFile(t, path, spoolBytes(t, msgN(9)))
		}, wantErr: ErrChanged},
		{name: "deleted message changed in place", settle: true, between: func(t *testing.T, path string, _ int64) {
			fi, _ := os.Stat(path)
			b, _ := os.ReadFile(path)
			i := bytes.Index(b, []byte("Body of message 2"))
			b[i] = 'X'
			rewriteInPlace(t, path, b)
			os.Chtimes(path, fi.ModTime(), fi.ModTime()) // hide it from the mtime check
		}, wantErr: ErrChanged},
		{name: "last message not yet listed", settle: false, wantErr: bridge.ErrSourceBusy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "alice")
			writeFile(t, path, spoolBytes(t, msgN(1), msgN(2), msgN(3)))
			src, _ := testSource(t, dir)
			if tc.settle {
				list(t, src, "alice")
			}
			ctx := context.Background()
			ss, err := src.Open(ctx, bridge.Account{User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := ss.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := ss.Delete(ctx, []bridge.SourceID{msgs[1].ID}); err != nil {
				t.Fatal(err)
			}
			if tc.between != nil {
				tc.between(t, path, fileSize(t, path))
			}
			before, _ := os.ReadFile(path)
			err = ss.Close(ctx)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Close = %v, want %v", err, tc.wantErr)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the spool was changed by a refused delete")
			}
			// The locks are released: a new session opens.
			if _, err := tryList(src, "alice"); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
		})
	}
}

func TestSourceAbortDeletesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	spool := spoolBytes(t, msgN(1), msgN(2))
	writeFile(t, path, spool)
	src, _ := testSource(t, dir)
	msgs := settle(t, src, "alice")
	ctx := context.Background()
	ss, _ := src.Open(ctx, bridge.Account{User: "alice"})
	ss.List(ctx)
	if err := ss.Delete(ctx, ids(msgs)); err != nil {
		t.Fatal(err)
	}
	ss.Abort()
	if got, _ := os.ReadFile(path); !bytes.Equal(got, spool) {
		t.Error("Abort changed the spool")
	}
	if err := ss.Delete(ctx, ids(msgs)); err == nil {
		t.Error("Delete on an aborted session succeeded")
	}
}

func TestSourceUnknownIDs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alice"), spoolBytes(t, msgN(1), msgN(2)))
	src, _ := testSource(t, dir)
	ctx := context.Background()
	ss, _ := src.Open(ctx, bridge.Account{User: "alice"})
	defer ss.Abort()
	ss.List(ctx)
	if _, err := ss.Fetch(ctx, "nope"); !errors.Is(err, bridge.ErrSourceGone) {
		t.Errorf("Fetch of an unknown id: %v", err)
	}
	if err := ss.Delete(ctx, []bridge.SourceID{"nope"}); !errors.Is(err, bridge.ErrSourceGone) {
		t.Errorf("Delete of an unknown id: %v", err)
	}
}

// TestSourceFetchNoticesRewrite: a spool rewritten behind the locks makes
// Fetch fail with ErrChanged rather than return other bytes.
func TestSourceFetchNoticesRewrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice")
	writeFile(t, path, spoolBytes(t, msgN(1), msgN(2)))
	src, _ := testSource(t, dir)
	msgs := settle(t, src, "alice")
	ctx := context.Background()
	ss, _ := src.Open(ctx, bridge.Account{User: "alice"})
	defer ss.Abort()
	ss.List(ctx)
	rewriteInPlace(t, path, spoolBytes(t, msgN(2), msgN(1)))
	rc, err := ss.Fetch(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); !errors.Is(err, ErrChanged) {
		t.Errorf("Fetch after a rewrite: %v", err)
	}
}

// TestSourceDuplicateMessages: identical messages get "<hex>", "<hex>.2".
func TestSourceDuplicateMessages(t *testing.T) {
	dir := t.TempDir()
	m := msgN(1)
	later := m
	later.date = later.date.Add(time.Hour) // a different From_ line only
	writeFile(t, filepath.Join(dir, "alice"), spoolBytes(t, m, msgN(2), later, m))
	src, _ := testSource(t, dir)
	got := ids(settle(t, src, "alice"))
	k := string(got[0])
	want := []bridge.SourceID{bridge.SourceID(k), got[1], bridge.SourceID(k + ".2"), bridge.SourceID(k + ".3")}
	if !slices.Equal(got, want) || len(k) != 32 {
		t.Errorf("ids %v, want %v", got, want)
	}
}

// TestSourceSessionsSerialised: a second session on the same spool waits
// for the first (fcntl locks do not exclude within one process).
func TestSourceSessionsSerialised(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alice"), spoolBytes(t, msgN(1)))
	src, _ := testSource(t, dir)
	src.cfg.LockTimeout = 200 * time.Millisecond
	ctx := context.Background()
	ss, err := src.Open(ctx, bridge.Account{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Open(ctx, bridge.Account{User: "alice"}); !errors.Is(err, bridge.ErrSourceBusy) {
		t.Errorf("second Open: %v, want ErrSourceBusy", err)
	}
	done := make(chan error, 1)
	go func() {
		src2 := src
		ss2, err := src2.Open(ctx, bridge.Account{User: "alice"})
		if err == nil {
			ss2.Abort()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ss.Close(ctx)
	if err := <-done; err != nil {
		t.Errorf("Open after the first session closed: %v", err)
	}
	// Other users are not held up.
	ss3, err := src.Open(ctx, bridge.Account{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	ss3.Abort()
}
