package maildirexport_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
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
	rep, err := maildirexport.Export(ctx, b, "alice", target, maildirexport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("exported %d messages\n", rep.Messages())
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
	var next int
	if _, err := fmt.Sscanf(lines[0], "3 V%d N%d", new(int), &next); err != nil {
		t.Fatalf("header %q: %v", lines[0], err)
	}
	recs := lines[1:]
	if len(recs) != next-1 || len(recs) < 100 {
		t.Fatalf("%d records, UIDNEXT %d: not one commit's state", len(recs), next)
	}
	for i, r := range recs {
		uid, base, ok := strings.Cut(r, " :")
		if !ok || uid != strconv.Itoa(i+1) {
			t.Fatalf("record %d: %q", i+1, r)
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
