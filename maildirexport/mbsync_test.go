package maildirexport_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// mbsyncrc writes an mbsync configuration syncing the far store at addr
// with the local Maildir, keeping its sync state in the Maildir.
func mbsyncrc(t *testing.T, path, addr, pass, local string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`IMAPAccount far
Host %s
Port %s
User alice
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore far
Account far

MaildirStore near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel mail
Far :far:
Near :near:
Patterns *
Create Both
Expunge None
SyncState *
`, host, port, pass, local, local)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runMbsync runs mbsync on a pseudo-terminal (script(1)): mbsync prints
// its progress counters only to a terminal. It returns the output and
// the final counters: "F: +a/b *c/d #e/f  N: +g/h *i/j #k/l", messages
// added, flags updated and messages expunged on the far and near side.
func runMbsync(t *testing.T, script, bin, rc string) (out, counters string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := fmt.Sprintf("'%s' -c '%s' mail", bin, rc)
	raw, err := exec.CommandContext(ctx, script, "-q", "-e", "-c", cmd, "/dev/null").CombinedOutput()
	out = string(raw)
	if err != nil {
		t.Fatalf("mbsync -c %s: %v\n%s", rc, err, out)
	}
	all := mbsyncCounters.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		t.Fatalf("mbsync printed no progress counters:\n%s", out)
	}
	return out, all[len(all)-1][1]
}

// localState lists every file of the local Maildir tree (mbsync's state
// files included) with a digest of its content.
func localState(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(d.Name(), ".lock") || strings.Contains(d.Name(), ".journal") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out = append(out, fmt.Sprintf("%s %x", rel, sha256.Sum256(data)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

var mbsyncCounters = regexp.MustCompile(`(F: \+\d+/\d+ \*\d+/\d+ #\d+/\d+  N: \+\d+/\d+ \*\d+/\d+ #\d+/\d+)`)

// TestMbsyncAfterExportTransfersNothing: a client that synced with the
// bridge (mbsync, its state keyed by UIDVALIDITY and UIDs) and is then
// pointed at the exported Dovecot finds nothing to transfer: no message
// pulled or pushed, no flag changed, no file of its Maildir touched.
func TestMbsyncAfterExportTransfersNothing(t *testing.T) {
	mbsync := testtool.Need(t, "mbsync", "isync")
	script := testtool.Need(t, "script", "bsdutils")
	f := newFixture(t)
	work := t.TempDir()
	local := filepath.Join(work, "local")
	if err := os.Mkdir(local, 0o700); err != nil {
		t.Fatal(err)
	}
	rcBridge := filepath.Join(work, "bridge.mbsyncrc")
	mbsyncrc(t, rcBridge, f.imapAddr, bridgePassword, local)
	out, counters := runMbsync(t, script, mbsync, rcBridge)
	if !strings.HasPrefix(counters, "F: +0/0 *0/0 #0/0  N: +") || strings.HasPrefix(counters, "F: +0/0 *0/0 #0/0  N: +0/") {
		t.Fatalf("first mbsync against the bridge: counters %q, want messages added near only\n%s", counters, out)
	}
	t.Logf("mbsync against the bridge: %s", counters)
	before := localState(t, local)
	if len(before) < 20 {
		t.Fatalf("local Maildir after the first sync: %d files", len(before))
	}

	target, rep := exportFixture(t, f)
	conf, _ := rep.DovecotConfig()
	srv := dovecottest.StartIMAP(t, dovecottest.IMAPOptions{
		Users:       []dovecottest.MaildirUser{{Name: "alice", Password: exportPassword, Maildir: target}},
		ExtraConfig: conf,
	})
	rcDovecot := filepath.Join(work, "dovecot.mbsyncrc")
	mbsyncrc(t, rcDovecot, srv.IMAPAddr(), exportPassword, local)
	out, counters = runMbsync(t, script, mbsync, rcDovecot)
	if want := "F: +0/0 *0/0 #0/0  N: +0/0 *0/0 #0/0"; counters != want {
		t.Errorf("mbsync against the export: counters %q, want %q\n%s", counters, want, out)
	}
	t.Logf("mbsync against the export: %s", counters)
	after := localState(t, local)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("the local Maildir changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	// And the export still shows what the bridge shows.
	compareIMAP(t, dumpIMAP(t, f.imapAddr, "alice", bridgePassword), dumpIMAP(t, srv.IMAPAddr(), "alice", exportPassword))
}
