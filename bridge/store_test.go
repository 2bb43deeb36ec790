package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

func openStore(t testing.TB, dir string) *bridge.Bridge {
	t.Helper()
	b, err := bridge.Open(context.Background(), bridge.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return b
}

func msg(n int) []byte {
	return []byte(fmt.Sprintf("From: a@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d\r\n", n, n, n))
}

func readAll(t testing.TB, mb *bridge.Mailbox, uid bridge.UID) []byte {
	t.Helper()
	f, err := mb.Open(context.Background(), uid)
	if err != nil {
		t.Fatalf("open uid %d: %v", uid, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDefaultMailboxes(t *testing.T) {
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, err := b.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	list, err := u.ListMailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range list {
		got = append(got, m.Name+":"+m.SpecialUse)
	}
	want := `INBOX: Archive:\Archive Drafts:\Drafts Junk:\Junk Sent:\Sent Trash:\Trash`
	if strings.Join(got, " ") != want {
		t.Fatalf("mailboxes = %s, want %s", strings.Join(got, " "), want)
	}
	seen := map[bridge.UIDValidity]bool{}
	for _, m := range list {
		if seen[m.UIDValidity] || m.UIDValidity == 0 {
			t.Fatalf("UIDVALIDITY %d reused or zero", m.UIDValidity)
		}
		seen[m.UIDValidity] = true
		if m.UIDNext != 1 {
			t.Fatalf("%s UIDNEXT = %d, want 1", m.Name, m.UIDNext)
		}
	}
}

func TestReopenKeepsState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	for i := 1; i <= 3; i++ {
		if _, _, err := u.Append(ctx, "INBOX", bytes.NewReader(msg(i)), []string{"\\seen", "$Label"}, time.Unix(1700000000, 0)); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := u.Mailbox(ctx, "inbox")
	if _, err := inbox.Store(ctx, []bridge.UID{2}, bridge.FlagsAdd, []string{"\\Deleted"}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := inbox.Expunge(ctx, nil); err != nil || fmt.Sprint(got) != "[2]" {
		t.Fatalf("expunge = %v, %v", got, err)
	}
	before := inbox.Info()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openStore(t, dir)
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	inbox, err := u.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	after := inbox.Info()
	if after.UIDValidity != before.UIDValidity || after.UIDNext != 4 || after.Messages != 2 {
		t.Fatalf("after reopen: %+v, before: %+v", after, before)
	}
	msgs, err := inbox.Messages(ctx, []bridge.UID{1, 2, 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 3 {
		t.Fatalf("messages = %+v", msgs)
	}
	if got := strings.Join(msgs[1].Flags, " "); got != `$Label \Seen` {
		t.Fatalf("flags = %q, want canonical `$Label \\Seen`", got)
	}
	if !msgs[1].InternalDate.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("internal date = %v", msgs[1].InternalDate)
	}
	if got := readAll(t, inbox, 3); !bytes.Equal(got, msg(3)) {
		t.Fatalf("body = %q", got)
	}
	// A new message gets UID 4, never a reused 2.
	_, uid, err := u.Append(ctx, "INBOX", bytes.NewReader(msg(4)), nil, time.Time{})
	if err != nil || uid != 4 {
		t.Fatalf("append after reopen: uid %d, %v", uid, err)
	}
}

func TestRecreatedMailboxGetsNewUIDValidity(t *testing.T) {
	ctx := context.Background()
	b := openStore(t, t.TempDir())
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	if err := u.CreateMailbox(ctx, "Projects/2026", ""); err != nil {
		t.Fatal(err)
	}
	mb, _ := u.Mailbox(ctx, "Projects/2026")
	old := mb.Info().UIDValidity
	if err := u.DeleteMailbox(ctx, "Projects"); !errors.Is(err, bridge.ErrHasChildren) {
		t.Fatalf("delete parent: %v, want ErrHasChildren", err)
	}
	if err := u.DeleteMailbox(ctx, "Projects/2026"); err != nil {
		t.Fatal(err)
	}
	if err := u.CreateMailbox(ctx, "Projects/2026", ""); err != nil {
		t.Fatal(err)
	}
	mb, _ = u.Mailbox(ctx, "Projects/2026")
	if mb.Info().UIDValidity <= old {
		t.Fatalf("re-created mailbox UIDVALIDITY %d, old %d: must differ and grow", mb.Info().UIDValidity, old)
	}
}

func TestMailboxNames(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"inbox", "INBOX", ""},
		{"Inbox/Sub", "INBOX/Sub", ""},
		{"Archive/2026", "Archive/2026", ""},
		{"Entwürfe", "Entwürfe", ""},
		{"", "", "invalid mailbox name: empty"},
		{"a//b", "", `invalid mailbox name: empty level in "a//b"`},
		{"/etc", "", `invalid mailbox name: empty level in "/etc"`},
		{"a/../b", "", `invalid mailbox name: level ".." not allowed`},
		{"x\x00y", "", "invalid mailbox name: contains control character U+0000"},
		{"bad\xff", "", "invalid mailbox name: not valid UTF-8"},
		{"a*", "", `invalid mailbox name: contains wildcard '*'`},
	} {
		got, err := bridge.CanonicalName(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("CanonicalName(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CanonicalName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalizeFlags(t *testing.T) {
	got := bridge.NormalizeFlags([]string{`\seen`, `\SEEN`, "$Forwarded", `\Recent`, `\flagged`, "$forwarded"})
	if want := `$Forwarded \Flagged \Seen`; strings.Join(got, " ") != want {
		t.Fatalf("NormalizeFlags = %q, want %q", strings.Join(got, " "), want)
	}
}

// TestRollbackDetected: a state database restored from an older copy while
// the data directory has seen later commits gets new UIDVALIDITYs.
func TestRollbackDetected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	inbox, _ := u.Mailbox(ctx, "INBOX")
	old := inbox.Info().UIDValidity
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	backup := copyDir(t, dir)

	b = openStore(t, dir)
	u, _ = b.User(ctx, "alice")
	for i := 0; i < 3; i++ {
		u.Append(ctx, "INBOX", bytes.NewReader(msg(i)), nil, time.Time{})
	}
	b.Close()

	// Restore the old database but keep the newer high-water file.
	for _, f := range []string{"state.db", "state.db-wal", "state.db-shm"} {
		os.Remove(filepath.Join(dir, f))
		if data, err := os.ReadFile(filepath.Join(backup, f)); err == nil {
			os.WriteFile(filepath.Join(dir, f), data, 0o600)
		}
	}
	var resets countingCounter
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dir, Metrics: &bridge.Metrics{UIDValidityResets: &resets, RollbacksDetected: &resets}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, _ = b.User(ctx, "alice")
	inbox, _ = u.Mailbox(ctx, "INBOX")
	if inbox.Info().UIDValidity == old {
		t.Fatalf("UIDVALIDITY unchanged after a rollback: clients would trust stale UIDs")
	}
	if resets == 0 {
		t.Fatalf("rollback not counted")
	}
}

type countingCounter int

func (c *countingCounter) Inc() { *c++ }

func copyDir(t *testing.T, dir string) string {
	out := t.TempDir()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(out, e.Name()), data, 0o600)
	}
	return out
}

func TestDataDirPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b := openStore(t, dir)
	defer b.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	fi, _ = os.Stat(filepath.Join(dir, "state.db"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.db mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestCrashDuringIngest kills a child process that appends messages in a
// loop at random moments, many times, and checks after each kill: every
// message the child reported committed is there exactly once and
// byte-exact, UIDs ascend without reuse, and no blob file is left that no
// message refers to.
func TestCrashDuringIngest(t *testing.T) {
	if os.Getenv("BRIDGE_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	testtool.Long(t, "crash campaign")
	dir := t.TempDir()
	acked := map[int]bool{}
	for round := 0; round < 8; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringIngest$")
		cmd.Env = append(os.Environ(), "BRIDGE_CRASH_CHILD="+dir, "BRIDGE_CRASH_START="+strconv.Itoa(round*100000))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		limit := 3 + round*2
		n := 0
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "committed "); ok {
				i, _ := strconv.Atoi(v)
				acked[i] = true
				n++
				if n >= limit {
					break
				}
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		checkAfterCrash(t, dir, round, acked)
	}
	t.Logf("crash campaign: 8 kills, %d messages acknowledged, all present exactly once", len(acked))
}

// openCrashChild opens the store in dir and alice's account for a crash
// campaign's child process; a failure is printed for the parent, which
// reads the child's output, and ends the child.
func openCrashChild(dir string) (*bridge.Bridge, *bridge.User) {
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	u, err := b.User(ctx, "alice")
	if err != nil {
		fmt.Println("user:", err)
		os.Exit(1)
	}
	return b, u
}

func crashChild() {
	dir := os.Getenv("BRIDGE_CRASH_CHILD")
	start, _ := strconv.Atoi(os.Getenv("BRIDGE_CRASH_START"))
	ctx := context.Background()
	_, u := openCrashChild(dir)
	for i := start; ; i++ {
		if _, _, err := u.Append(ctx, "INBOX", bytes.NewReader(crashMsg(i)), nil, time.Time{}); err != nil {
			fmt.Println("append:", err)
			os.Exit(1)
		}
		fmt.Printf("committed %d\n", i)
	}
}

func TestSecretsPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openStore(t, dir)
	u, _ := b.User(ctx, "alice")
	if err := u.SetSecret(ctx, "legacy", []byte("sealed-1")); err != nil {
		t.Fatal(err)
	}
	if err := u.SetSecret(ctx, "legacy", []byte("sealed-2")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openStore(t, dir)
	defer b.Close()
	got, err := b.Secrets(ctx, "legacy")
	if err != nil || string(got["alice"]) != "sealed-2" || len(got) != 1 {
		t.Fatalf("secrets = %q, %v", got, err)
	}
}
