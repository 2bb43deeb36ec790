package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// TestCrashDuringBatchIngest is the crash campaign for group commit: a
// child process polls a source of 400 messages (one source per round, so
// every round ingests new mail) and prints each message the moment an
// observer hears of it, which is after its batch is durable. The parent
// kills it with SIGKILL, alternately
//
//   - after a number of acknowledged messages (anywhere in the pipeline:
//     fetching, writing blobs, syncing, committing), and
//   - exactly between a batch's blob sync and its commit (the child
//     announces the sync and then waits, so the kill lands there: the
//     batch's blob files are in place and durable, no row names them),
//
// then reopens the store and checks: every acknowledged message is there
// exactly once and byte-exact, UIDs ascend, UIDNEXT is above them, no blob
// file is left that no message refers to (the files of the killed batch
// are swept at Open) and no temp file is left.
func TestCrashDuringBatchIngest(t *testing.T) {
	if os.Getenv("BRIDGE_BATCH_CRASH_CHILD") != "" {
		batchCrashChild()
		return
	}
	testtool.Long(t, "crash campaign")
	dir := t.TempDir()
	acked := map[int]bool{}
	betweenKills := 0
	const rounds = 8
	for round := 0; round < rounds; round++ {
		betweenSyncAndCommit := round%2 == 1
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringBatchIngest$")
		cmd.Env = append(os.Environ(), "BRIDGE_BATCH_CRASH_CHILD="+dir, "BRIDGE_CRASH_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		limit := 5 + round*20
		n, syncs, placedAtKill := 0, 0, 0
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "committed "); ok {
				i, _ := strconv.Atoi(v)
				acked[i] = true
				n++
				if !betweenSyncAndCommit && n >= limit {
					break
				}
			}
			if v, ok := strings.CutPrefix(line, "synced "); ok && betweenSyncAndCommit {
				// The first batch's sync: every poll has one. (A later
				// one may not exist: the committer takes what arrived
				// meanwhile, up to 256, and the in-memory source has all
				// 400 at once.)
				syncs++
				if syncs == 1 {
					placedAtKill, _ = strconv.Atoi(v)
					break
				}
			}
			if strings.HasPrefix(line, "done") {
				t.Fatalf("round %d: the child ingested everything before the kill", round)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		filesBefore := countFiles(t, filepath.Join(dir, "blobs"))
		seen, files := checkAfterCrash(t, dir, round, acked)
		if betweenSyncAndCommit {
			// The killed batch: its files were in place, its rows not.
			// Every message of this round that is stored was
			// acknowledged (the child read to the sync line).
			stored := 0
			for i := round * 100000; i < round*100000+400; i++ {
				if _, ok := seen[string(crashMsg(i))]; ok {
					stored++
				}
			}
			if stored != n {
				t.Fatalf("round %d: killed between a batch's sync and its commit: %d messages of the round stored, %d acknowledged", round, stored, n)
			}
			if filesBefore != files+placedAtKill {
				t.Fatalf("round %d: %d blob files before the sweep, want %d stored + %d of the killed batch", round, filesBefore, files, placedAtKill)
			}
			betweenKills++
		}
		t.Logf("round %d: killed %s; %d messages stored (%d acknowledged over all rounds), %d blob files before the sweep, %d after",
			round, map[bool]string{true: "between a blob sync and its commit", false: fmt.Sprintf("after %d acknowledgements", n)}[betweenSyncAndCommit],
			len(seen), len(acked), filesBefore, files)
	}
	if betweenKills != rounds/2 {
		t.Fatalf("%d kills between sync and commit, want %d", betweenKills, rounds/2)
	}
}

// crashMsg is message i of the crash campaigns: every third one is larger
// than InlineLimit, so that both ways of storing a body (a file of its own,
// a row of the database) are killed in every stage.
func crashMsg(i int) []byte {
	m := msg(i)
	if i%3 == 2 {
		m = append(m, bytes.Repeat([]byte("a line of a large message to push it past the inline limit\r\n"), bridge.InlineLimit/60+10)...)
	}
	return m
}

// checkAfterCrash reopens the store in dir after a kill and checks what
// every crash campaign relies on: each message once, UIDs ascending and
// below UIDNEXT, every acknowledged message present, and after Open's
// sweep a blob file for every message too large to be inline (and no
// other) and no temp file left. It
// returns the stored bodies (with their UIDs) and the blob file count.
func checkAfterCrash(t *testing.T, dir string, round int, acked map[int]bool) (seen map[string]bridge.UID, files int) {
	t.Helper()
	ctx := context.Background()
	b := openStore(t, dir)
	u, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := u.Mailbox(ctx, "INBOX")
	msgs, _ := inbox.Messages(ctx, inbox.UIDs(), false)
	seen = map[string]bridge.UID{}
	var last bridge.UID
	for _, m := range msgs {
		if m.UID <= last {
			t.Fatalf("round %d: UIDs not ascending: %d after %d", round, m.UID, last)
		}
		last = m.UID
		body := string(readAll(t, inbox, m.UID))
		if prev, dup := seen[body]; dup {
			t.Fatalf("round %d: message stored twice (uids %d and %d)", round, prev, m.UID)
		}
		seen[body] = m.UID
	}
	for i := range acked {
		if _, ok := seen[string(crashMsg(i))]; !ok {
			t.Fatalf("round %d: acknowledged message %d lost", round, i)
		}
	}
	if inbox.Info().UIDNext <= last {
		t.Fatalf("round %d: UIDNEXT %d not above last UID %d", round, inbox.Info().UIDNext, last)
	}
	b.Close()
	large := 0
	for body := range seen {
		if len(body) >= bridge.InlineLimit {
			large++
		}
	}
	files = countFiles(t, filepath.Join(dir, "blobs"))
	if files != large {
		t.Fatalf("round %d: %d blob files for %d messages too large to be inline (of %d) after the sweep", round, files, large, len(msgs))
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Fatalf("round %d: temp files left: %d", round, len(entries))
	}
	return seen, files
}

func countFiles(t *testing.T, root string) int {
	t.Helper()
	files := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	return files
}

func batchCrashChild() {
	dir := os.Getenv("BRIDGE_BATCH_CRASH_CHILD")
	round, _ := strconv.Atoi(os.Getenv("BRIDGE_CRASH_ROUND"))
	ctx := context.Background()
	b, u := openCrashChild(dir)
	// Messages round*100000 … +399, in source order; a fresh source name
	// per round so that every round's mail is new to the store.
	src := bridgetest.NewSource(fmt.Sprintf("legacy-%d", round))
	start := round * 100000
	for i := start; i < start+400; i++ {
		src.Deliver("alice", crashMsg(i), time.Time{})
	}
	// Acknowledge in source order: the n-th message appended is start+n.
	var mu sync.Mutex
	next := start
	b.AddObserver(ackObserver(func(k int) {
		mu.Lock()
		defer mu.Unlock()
		for range k {
			fmt.Printf("committed %d\n", next)
			next++
		}
	}))
	bridge.SetAfterBlobSync(b, func(n int) {
		fmt.Printf("synced %d\n", n)
		time.Sleep(20 * time.Millisecond) // the parent kills here in odd rounds
	})
	res, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}})
	if err != nil {
		fmt.Println("poll:", err)
		os.Exit(1)
	}
	fmt.Println("done", res.Fetched)
	time.Sleep(time.Minute)
}

// ackObserver calls fn with the number of messages of each Appended.
type ackObserver func(n int)

func (f ackObserver) Appended(_ *bridge.Mailbox, msgs []bridge.MessageFlags, _ *bridge.Watch) {
	f(len(msgs))
}
func (ackObserver) Expunged(*bridge.Mailbox, []bridge.UID)                  {}
func (ackObserver) FlagsChanged(*bridge.Mailbox, bridge.UID, []string, any) {}
