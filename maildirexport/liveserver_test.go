package maildirexport_test

import (
	"context"
	"fmt"
	"log/slog"
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
	"github.com/imapbridge/imapbridge/maildirexport"
)

// TestHelperProcessExport is the export process of
// TestExportFromAnotherProcessWhileServing; it does nothing otherwise.
func TestHelperProcessExport(t *testing.T) {
	dataDir, target := os.Getenv("EXPORT_HELPER_DATA"), os.Getenv("EXPORT_HELPER_TARGET")
	if dataDir == "" {
		return
	}
	ctx := context.Background()
	b, err := bridge.OpenReadOnly(ctx, bridge.Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var opts maildirexport.Options
	if marker := os.Getenv("EXPORT_HELPER_HANG"); marker != "" {
		// Stop for good in the middle of the export, while INBOX's
		// UIDLs are assigned (its folder is begun in the temporary
		// tree): the parent kills us here.
		opts.HostUIDL = func(string, bridge.SourceID) (string, bool) {
			if err := os.WriteFile(marker, nil, 0o600); err != nil {
				t.Error(err)
			}
			select {}
		}
	}
	rep, err := maildirexport.Export(ctx, b, "alice", target, opts)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("exported %d messages\n", rep.Messages())
}

// TestExportKilledMidway: an export process killed (SIGKILL) half-way
// leaves no target, only its temporary directory, named so that nobody
// takes it for an export; the next export writes the target whole and
// names what the killed one left.
func TestExportKilledMidway(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	b := smallStoreIn(t, dataDir)
	u, _ := b.User(ctx, "alice")
	src := bridgetest.NewSource("host")
	src.Deliver("alice", []byte("Subject: from the host\r\n\r\nx\r\n"), time.Now())
	if _, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.Append(ctx, "Sent", strings.NewReader("Subject: s\r\n\r\ns\r\n"), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	target := filepath.Join(parent, "Maildir")
	marker := filepath.Join(t.TempDir(), "midway")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessExport$", "-test.count=1")
	cmd.Env = append(os.Environ(), "EXPORT_HELPER_DATA="+dataDir, "EXPORT_HELPER_TARGET="+target, "EXPORT_HELPER_HANG="+marker)
	// It never ends by itself: if this test binary dies, so does it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Wait for the export to reach the middle (the marker), bounded.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the export process ended before the middle: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("the export process did not reach the middle in 60s\n%s", out.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	left := ls(t, parent)
	if len(left) != 1 || !strings.HasPrefix(left[0], ".Maildir.imapbridge-export-") {
		t.Fatalf("after the kill the parent holds %q, want only the temporary directory", left)
	}
	// The hook runs when INBOX's UIDLs are assigned, after its folder is
	// made and before its first message is written (it used to run per
	// message; the UIDL rule now needs every host UIDL of the folder
	// first, see bridge.AssignPOP3UIDLs).
	if files, err := filepath.Glob(filepath.Join(parent, left[0], "cur", "*")); err != nil || len(files) != 0 {
		t.Errorf("the killed export had written %d INBOX messages (%v), want 0 (it stopped before the first)", len(files), err)
	}
	if _, err := os.Stat(filepath.Join(parent, left[0], "cur")); err != nil {
		t.Errorf("the killed export had not begun INBOX: %v", err)
	}

	var logs strings.Builder
	rep, err := maildirexport.Export(ctx, b, "alice", target, maildirexport.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages() != 3 {
		t.Errorf("the next export wrote %d messages, want 3", rep.Messages())
	}
	if !strings.Contains(logs.String(), "an earlier export of this target did not finish") || !strings.Contains(logs.String(), left[0]) {
		t.Errorf("the stale directory was not named: %s", logs.String())
	}
}

// TestExportFromAnotherProcessWhileServing: an export run as a separate
// process (as "imapbridge export" is) beside a server that keeps taking
// mail is one commit's state: the UIDs written are exactly 1 … UIDNEXT-1
// (no message of a later commit, none missing, UIDNEXT of the same
// commit), with every file in place, while the server never stops.
func TestExportFromAnotherProcessWhileServing(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dataDir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	body := func(i int) string {
		s := fmt.Sprintf("Subject: live %d\r\n\r\nline\r\n", i)
		if i%10 == 0 {
			s += strings.Repeat("big body line\r\n", 5000) // a file, not inline
		}
		return s
	}
	n := 0
	appendOne := func() error {
		n++
		_, _, err := u.Append(ctx, "INBOX", strings.NewReader(body(n)), []string{bridge.FlagSeen}, time.Now())
		return err
	}
	for range 100 {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	// The server keeps taking mail until the export process is done.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var appendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := appendOne(); err != nil {
				appendErr = err
				return
			}
		}
	}()
	target := filepath.Join(t.TempDir(), "Maildir")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessExport$", "-test.count=1")
	cmd.Env = append(os.Environ(), "EXPORT_HELPER_DATA="+dataDir, "EXPORT_HELPER_TARGET="+target)
	out, err := cmd.CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("export process: %v\n%s", err, out)
	}
	if appendErr != nil {
		t.Fatalf("the server failed to take mail during the export: %v", appendErr)
	}
	uidlist, err := os.ReadFile(filepath.Join(target, "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(uidlist), "\n"), "\n")
	var next, uv int
	if _, err := fmt.Sscanf(lines[0], "3 V%d N%d", &uv, &next); err != nil {
		t.Fatalf("header %q: %v", lines[0], err)
	}
	recs := lines[1:]
	if len(recs) != next-1 || len(recs) < 100 {
		t.Fatalf("%d records, UIDNEXT %d: not one commit's state", len(recs), next)
	}
	for i, r := range recs {
		// "<uid> P<uidl> :<base>": every INBOX message has the UIDL
		// the bridge's POP3 face gives it (no POP3 host here: generated).
		uid, base, ok := strings.Cut(r, " :")
		wantUIDL := bridge.GeneratedUIDL(bridge.UIDValidity(uv), bridge.UID(i+1))
		if !ok || uid != strconv.Itoa(i+1)+" P"+wantUIDL {
			t.Fatalf("record %d: %q, want UID %d with P%s", i+1, r, i+1, wantUIDL)
		}
		data, err := os.ReadFile(filepath.Join(target, "cur", base+":2,S"))
		if err != nil || string(data) != body(i+1) {
			t.Fatalf("UID %d: %d bytes, %v", i+1, len(data), err)
		}
	}
	t.Logf("exported %d messages while the server took %d in all", len(recs), n)
	if n <= len(recs) {
		t.Logf("the server took no mail during the export (it finished first); the snapshot is still checked")
	}
}
