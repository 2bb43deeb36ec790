package maildirexport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
	"github.com/imapbridge/imapbridge/maildirexport"
)

// smallStore is a store with users alice and bob and a message each.
func smallStore(t *testing.T) *bridge.Bridge {
	t.Helper()
	return smallStoreIn(t, t.TempDir())
}

func smallStoreIn(t *testing.T, dataDir string) *bridge.Bridge {
	t.Helper()
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, name := range []string{"alice", "bob"} {
		u, err := b.User(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("Subject: for %s\r\n\r\nhello\r\n", name)
		if _, _, err := u.Append(ctx, "INBOX", strings.NewReader(msg), []string{bridge.FlagSeen}, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func ls(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestTargetNotEmpty: a target with something in it is refused, named,
// and left as it was; Force replaces it; an empty directory is used.
func TestTargetNotEmpty(t *testing.T) {
	ctx := context.Background()
	b := smallStore(t)
	parent := t.TempDir()
	target := filepath.Join(parent, "Maildir")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(target, "precious")
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := maildirexport.Export(ctx, b, "alice", target, maildirexport.Options{})
	if !errors.Is(err, maildirexport.ErrTargetNotEmpty) || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), `"precious"`) {
		t.Fatalf("export into a non-empty dir: %v", err)
	}
	if data, err := os.ReadFile(keep); err != nil || string(data) != "mine" {
		t.Fatalf("the refused target changed: %q, %v", data, err)
	}
	if got := ls(t, parent); len(got) != 1 {
		t.Errorf("the refused export left %v", got)
	}

	rep, err := maildirexport.Export(ctx, b, "alice", target, maildirexport.Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Force kept the old content: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "dovecot-uidlist")); err != nil {
		t.Errorf("Force: %v", err)
	}
	if got := ls(t, parent); len(got) != 1 || got[0] != "Maildir" {
		t.Errorf("after Force the parent holds %v", got)
	}
	if rep.Messages() != 1 {
		t.Errorf("report: %d messages", rep.Messages())
	}

	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := maildirexport.Export(ctx, b, "bob", empty, maildirexport.Options{}); err != nil {
		t.Errorf("export into an empty dir: %v", err)
	}
}

// TestNoHalfWrittenTarget: while an export runs, the target does not
// exist: only a temporary directory with an unmistakable name does (what
// a crash would leave behind); an export that fails leaves neither.
func TestNoHalfWrittenTarget(t *testing.T) {
	ctx := context.Background()
	b := smallStore(t)
	u, _ := b.User(ctx, "alice")
	src := bridgetest.NewSource("host")
	src.Deliver("alice", []byte("Subject: from the host\r\n\r\nx\r\n"), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	target := filepath.Join(parent, "Maildir")
	var seen []string
	hook := func(_ string, id bridge.SourceID) (string, bool) {
		// Called while the message is being exported.
		seen = ls(t, parent)
		return "host-" + string(id)[:8], true
	}
	rep, err := maildirexport.Export(ctx, b, "alice", target, maildirexport.Options{HostUIDL: hook})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || !regexp.MustCompile(`^\.Maildir\.imapbridge-export-[0-9a-f]{12}$`).MatchString(seen[0]) {
		t.Errorf("during the export the parent held %q, want only the temporary directory", seen)
	}
	if got := ls(t, parent); len(got) != 1 || got[0] != "Maildir" {
		t.Errorf("after the export the parent holds %q", got)
	}
	if n := rep.Users[0].Mailboxes[0].UIDLs; n != 1 {
		t.Errorf("INBOX UIDLs %d, want 1", n)
	}

	// A failure half-way (a mailbox the format cannot hold, listed
	// after INBOX) leaves nothing.
	if err := u.CreateMailbox(ctx, "Zeta", ""); err != nil {
		t.Fatal(err)
	}
	var kws []string
	for i := range 27 {
		kws = append(kws, fmt.Sprintf("kw%02d", i))
	}
	if _, _, err := u.Append(ctx, "Zeta", strings.NewReader("S: x\r\n\r\nx\r\n"), kws, time.Now()); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, "other")
	_, err = maildirexport.Export(ctx, b, "alice", other, maildirexport.Options{})
	if !errors.Is(err, maildirexport.ErrUnrepresentable) || !strings.Contains(err.Error(), `mailbox "Zeta"`) {
		t.Fatalf("export of an unrepresentable mailbox: %v", err)
	}
	if got := ls(t, parent); len(got) != 1 {
		t.Errorf("the failed export left %v", got)
	}
	// So does a cancelled one.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := maildirexport.Export(cctx, b, "bob", other, maildirexport.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled export: %v", err)
	}
	if got := ls(t, parent); len(got) != 1 {
		t.Errorf("the cancelled export left %v", got)
	}
}

// TestTooManyKeywords: a folder with 27 keywords cannot be a Maildir.
func TestTooManyKeywords(t *testing.T) {
	ctx := context.Background()
	b := smallStore(t)
	u, _ := b.User(ctx, "alice")
	var kws []string
	for i := range 27 {
		kws = append(kws, fmt.Sprintf("kw%02d", i))
	}
	if _, _, err := u.Append(ctx, "Archive", strings.NewReader("S: x\r\n\r\nx\r\n"), kws, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := maildirexport.Export(ctx, b, "alice", filepath.Join(t.TempDir(), "m"), maildirexport.Options{})
	if !errors.Is(err, maildirexport.ErrUnrepresentable) || !strings.Contains(err.Error(), `mailbox "Archive": cannot be represented in the export format: 27 keywords in use, a Maildir holds at most 26 (kw26 …)`) {
		t.Fatalf("27 keywords: %v", err)
	}
	// The mbox format keeps no flags: it exports.
	if _, err := maildirexport.Export(ctx, b, "alice", filepath.Join(t.TempDir(), "m"), maildirexport.Options{Format: maildirexport.FormatMbox}); err != nil {
		t.Errorf("mbox: %v", err)
	}
}

// TestExportAllLayout: DIR/<user>/Maildir for every user, or
// DIR/<user>/*.mbox.
func TestExportAllLayout(t *testing.T) {
	ctx := context.Background()
	b := smallStore(t)
	dir := filepath.Join(t.TempDir(), "all")
	rep, err := maildirexport.ExportAll(ctx, b, dir, maildirexport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Users) != 2 || rep.Users[0].User != "alice" || rep.Users[1].Dir != filepath.Join(dir, "bob", "Maildir") {
		t.Fatalf("report users %+v", rep.Users)
	}
	for _, u := range []string{"alice", "bob"} {
		files, _ := filepath.Glob(filepath.Join(dir, u, "Maildir", "cur", "*"))
		if len(files) != 1 {
			t.Fatalf("%s: %v", u, files)
		}
		data, _ := os.ReadFile(files[0])
		if want := fmt.Sprintf("Subject: for %s\r\n\r\nhello\r\n", u); string(data) != want {
			t.Errorf("%s: %q", u, data)
		}
		if n := len(fmt.Sprintf("Subject: for %s\r\n\r\nhello\r\n", u)); !strings.HasSuffix(files[0], fmt.Sprintf(".imapbridge,S=%d,W=%d:2,S", n, n)) {
			t.Errorf("%s: file name %s", u, filepath.Base(files[0]))
		}
		fi, _ := os.Stat(files[0])
		if got := fi.ModTime().Unix(); got != time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Unix() {
			t.Errorf("%s: mtime %v", u, fi.ModTime())
		}
		kw, err := os.ReadFile(filepath.Join(dir, u, "Maildir", ".Sent", "dovecot-keywords"))
		if err != nil || len(kw) != 0 {
			t.Errorf("%s: .Sent/dovecot-keywords %q, %v", u, kw, err)
		}
	}
	mdir := filepath.Join(t.TempDir(), "mbox")
	if _, err := maildirexport.ExportAll(ctx, b, mdir, maildirexport.Options{Format: maildirexport.FormatMbox}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(mdir, "bob", "INBOX.mbox"))
	if err != nil || !bytes.HasPrefix(data, []byte("From MAILER-DAEMON ")) || !bytes.HasSuffix(data, []byte("\nSubject: for bob\n\nhello\n\n")) {
		t.Errorf("bob's INBOX.mbox: %q, %v", data, err)
	}
	if got := strings.Join(ls(t, filepath.Join(mdir, "bob")), " "); got != "Archive.mbox Drafts.mbox INBOX.mbox Junk.mbox Sent.mbox Trash.mbox" {
		t.Errorf("bob's mbox files: %s", got)
	}
}

// TestExportUnknownUser names the user.
func TestExportUnknownUser(t *testing.T) {
	b := smallStore(t)
	_, err := maildirexport.Export(context.Background(), b, "carol", filepath.Join(t.TempDir(), "m"), maildirexport.Options{})
	if !errors.Is(err, bridge.ErrNoSuchUser) || !strings.Contains(err.Error(), `"carol"`) {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestExpungedDuringExportStartsAgain: a message whose body is a file,
// expunged on the live server after the snapshot began and before its
// body was read, makes the export start again from a new snapshot,
// which no longer has it; the export is whole, never a hole.
func TestExpungedDuringExportStartsAgain(t *testing.T) {
	ctx := context.Background()
	b := smallStore(t)
	u, _ := b.User(ctx, "alice")
	src := bridgetest.NewSource("host")
	src.Deliver("alice", []byte("Subject: from the host\r\n\r\nx\r\n"), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if _, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}); err != nil {
		t.Fatal(err)
	}
	// Over the store's 64 KiB inline limit: the body is a file.
	big := "Subject: big\r\n\r\n" + strings.Repeat("z", 64<<10) + "\r\n"
	_, bigUID, err := u.Append(ctx, "INBOX", strings.NewReader(big), []string{bridge.FlagDeleted}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := u.Mailbox(ctx, "INBOX")
	calls := 0
	hook := func(string, bridge.SourceID) (string, bool) {
		calls++
		if calls == 1 {
			// UID 2 (the host's message) is written; the big one,
			// UID 3, comes next.
			if got, err := inbox.Expunge(ctx, []bridge.UID{bigUID}); err != nil || len(got) != 1 {
				t.Errorf("expunge: %v, %v", got, err)
			}
		}
		return "", false
	}
	var logs bytes.Buffer
	rep, err := maildirexport.Export(ctx, b, "alice", filepath.Join(t.TempDir(), "m"), maildirexport.Options{HostUIDL: hook, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("the export ran %d times over the host's message, want 2", calls)
	}
	if n := rep.Users[0].Mailboxes[0].Messages; n != 2 {
		t.Errorf("INBOX exported with %d messages, want 2 (the expunged one gone)", n)
	}
	if !strings.Contains(logs.String(), "starting again from a new snapshot") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}

// TestDovecotConfigConflicts: special use is Dovecot configuration for
// all users; a name used differently is reported.
func TestDovecotConfigConflicts(t *testing.T) {
	ctx := context.Background()
	b := smallStore(t)
	bob, _ := b.User(ctx, "bob")
	if err := bob.DeleteMailbox(ctx, "Archive"); err != nil {
		t.Fatal(err)
	}
	if err := bob.CreateMailbox(ctx, "Archive", ""); err != nil {
		t.Fatal(err)
	}
	if err := bob.CreateMailbox(ctx, "Gesendet", bridge.SpecialAll); err != nil {
		t.Fatal(err)
	}
	rep, err := maildirexport.ExportAll(ctx, b, filepath.Join(t.TempDir(), "all"), maildirexport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conf, conflicts := rep.DovecotConfig()
	if want := []string{`mailbox "Archive" is \Archive for 1, plain for 1 user(s); configured as \Archive for all`}; strings.Join(conflicts, "\n") != strings.Join(want, "\n") {
		t.Errorf("conflicts %q, want %q", conflicts, want)
	}
	if !strings.Contains(conf, "  mailbox \"Gesendet\" {\n    special_use = \\All\n  }\n") || !strings.Contains(conf, "  mailbox \"Archive\" {\n    special_use = \\Archive\n  }\n") {
		t.Errorf("config:\n%s", conf)
	}
}
