package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// Disk faults under a running bridge: the data directory's filesystem
// fills up, or turns read-only. They need mounts (a small tmpfs, a
// read-only bind mount), so root: CI runs as root; elsewhere they skip
// (testtool.Require). Everything mounted is unmounted in t.Cleanup.

// needMount fails (CI) or skips the test unless it can mount.
func needMount(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testtool.Require(t, errors.New("disk fault tests mount a tmpfs and need root"), "run the tests as root (CI does)")
	}
}

// mountTmpfs mounts a tmpfs of size (mount's syntax: "8m") on dir.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	needMount(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("imapbridge-test", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		testtool.Require(t, fmt.Errorf("mount tmpfs on %s: %w", dir, err), "run the tests as root with CAP_SYS_ADMIN (CI does)")
	}
	t.Cleanup(func() { unmount(t, dir) })
}

// mountReadOnly bind-mounts dir read-only on itself until the returned
// function is called (also called in t.Cleanup).
func mountReadOnly(t *testing.T, dir string) (undo func()) {
	t.Helper()
	needMount(t)
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		testtool.Require(t, fmt.Errorf("bind mount %s: %w", dir, err), "run the tests as root with CAP_SYS_ADMIN (CI does)")
	}
	// A file open for writing on it (a blob being written) makes the
	// remount busy; try again.
	var err error
	for i := 0; i < 100; i++ {
		if err = syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		unmount(t, dir)
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	done := false
	undo = func() {
		if !done {
			done = true
			unmount(t, dir)
		}
	}
	t.Cleanup(undo)
	return undo
}

func unmount(t *testing.T, dir string) {
	if err := syscall.Unmount(dir, 0); err != nil {
		// Busy (a process still has a file open there): detach it.
		if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
			t.Errorf("unmount %s: %v; lazy unmount: %v", dir, err, err2)
		}
	}
}

// fillUp writes path until the filesystem is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			break
		}
	}
	// The last bytes: fill to the block.
	small := make([]byte, 512)
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
}

// readyz returns /readyz's status code and body.
func readyz(admin string) (int, string) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + admin + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// appendError APPENDs a small message to INBOX and returns the error (nil:
// OK) and the UID it got.
func appendError(t *testing.T, addr, user string, msg []byte) (imap.UID, error) {
	t.Helper()
	s := p3LoginIMAP(t, addr, user, p3IMAPPassword)
	defer s.c.Close()
	cmd := s.c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		return 0, err
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, err
	}
	s.c.Logout().Wait()
	return data.UID, nil
}

// diskFaultCase is how the data directory goes wrong and comes back.
type diskFaultCase struct {
	name string
	// setup runs before the bridge starts, with the data directory path.
	setup func(t *testing.T, data string)
	// fault breaks the data directory and returns what undoes it.
	fault func(t *testing.T, data string) (undo func())
	// reason must appear in the log line, /readyz and the poll error.
	reason string
	// faultSize is the size of the mail delivered and APPENDed during
	// the fault; 0 for small messages (stored inline, in the state
	// database).
	faultSize int
}

// The data directory fills up, or turns read-only, while the bridge runs
// with an after_sync POP3 source (real Dovecot). While the fault lasts:
// new mail is not stored and not deleted at the host; every failed poll is
// logged with the path and the operation; imapbridge_store_write_errors_total
// counts; /readyz is 503 with the reason; an APPEND is answered NO
// [UNAVAILABLE]; what was stored stays readable, byte for byte, with its
// UIDs. When the fault ends: /readyz 200, the new mail arrives once, the
// host drains, APPEND works, and a restart finds everything intact.
func TestDiskFaultDataDir(t *testing.T) {
	t.Parallel()
	cases := []diskFaultCase{
		{
			name:   "disk full",
			setup:  func(t *testing.T, data string) { mountTmpfs(t, data, "6m") },
			reason: "no space left on device",
			fault: func(t *testing.T, data string) func() {
				filler := filepath.Join(data, "filler")
				fillUp(t, filler)
				return func() {
					if err := os.Remove(filler); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		{
			// Files open for writing (the state database) keep a
			// filesystem from turning read-only under a running
			// process; the blob directories, where every message too
			// large to be inline is written first, can. Small messages
			// go to the database, which this fault leaves writable (and
			// are stored, rightly): the mail of this case is larger.
			name:      "read-only",
			reason:    "read-only file system",
			faultSize: 100 << 10,
			fault: func(t *testing.T, data string) func() {
				undoTmp := mountReadOnly(t, filepath.Join(data, "tmp"))
				undoBlobs := mountReadOnly(t, filepath.Join(data, "blobs"))
				return func() { undoBlobs(); undoTmp() }
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			needMount(t)
			diskFault(t, c)
		})
	}
}

func diskFault(t *testing.T, c diskFaultCase) {
	const popPW = "pop-Disk-71"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	data := filepath.Join(e.dir, "data")
	if c.setup != nil {
		c.setup(t, data)
	}
	expected := map[string][]byte{}
	deliver := func(from, to, size int) {
		for i := from; i <= to; i++ {
			m := p3GenMessage("disk", i, size)
			e.srv.Deliver("alice", m)
			expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
		}
	}
	deliver(1, 2, 3000)
	conf := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr(), DeletePolicy: "after_sync", Timeout: 5 * time.Second}},
		[]p3User{p3StaticUser(t, "alice", popPW, "legacy")})
	conf.LogLevel = "info"
	cfgPath := conf.write(t)
	p := p3LaunchBridge(t, cfgPath, e.imap, e.admin, e.logs)
	uv, before := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 2, 15*time.Second)
	p3WaitFor(t, 15*time.Second, "host drained", func() (bool, string) {
		n := len(e.srv.Messages("alice"))
		return n == 0, fmt.Sprintf("host holds %d", n)
	})
	p3WaitPolls(t, e.admin, 1)

	undo := c.fault(t, data)
	faultSize := 40000
	if c.faultSize > 0 {
		faultSize = c.faultSize
	}
	// pad makes an APPENDed message as large as the fault's mail.
	pad := func(m []byte) []byte {
		if c.faultSize == 0 {
			return m
		}
		return append(m, bytes.Repeat([]byte("padding to make this message too large to be stored inline\r\n"), c.faultSize/60)...)
	}
	deliver(3, 4, faultSize)
	p3WaitFor(t, 20*time.Second, "two failed polls and a store write error", func() (bool, string) {
		errs := p3MetricSum(e.admin, "imapbridge_store_write_errors_total")
		polls := p3MetricSum(e.admin, "imapbridge_source_polls_total", `result="error"`)
		return errs >= 1 && polls >= 2, fmt.Sprintf("write errors %v, failed polls %v", errs, polls)
	})
	code, body := readyz(e.admin)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, c.reason) {
		t.Errorf("/readyz during the fault: %d %q, want 503 naming %q", code, body, c.reason)
	}
	t.Logf("/readyz during the fault: %d %s", code, strings.TrimSpace(body))
	// The failed polls name the operation and the path.
	var logged string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `msg="sync: poll failed"`) && strings.Contains(line, c.reason) {
			logged = line
			break
		}
	}
	switch {
	case logged == "":
		t.Errorf("no failed poll logged with %q", c.reason)
	case !strings.Contains(logged, data):
		t.Errorf("the failed poll's log line does not name the path under %s: %s", data, logged)
	case !strings.Contains(logged, "store: "):
		t.Errorf("the failed poll's log line does not say it was the store: %s", logged)
	default:
		t.Logf("logged: %s", logged[strings.Index(logged, "level="):])
	}
	if n := len(e.srv.Messages("alice")); n != 2 {
		t.Errorf("after_sync during the fault: the host holds %d messages, want the 2 not stored", n)
	}
	// APPEND: NO [UNAVAILABLE].
	appMsg := pad([]byte("From: a@example.org\r\nSubject: append during the fault\r\nMessage-ID: <disk-append@imapbridge.test>\r\n\r\nhello\r\n"))
	_, err := appendError(t, e.imap, "alice", appMsg)
	var ierr *imap.Error
	if !errors.As(err, &ierr) || ierr.Type != imap.StatusResponseTypeNo || ierr.Code != imap.ResponseCodeUnavailable {
		t.Errorf("APPEND during the fault: %v, want NO [UNAVAILABLE]", err)
	} else {
		t.Logf("APPEND during the fault: NO [%s] %s", ierr.Code, ierr.Text)
	}
	appendLogged := e.logs.waitLine(`msg="imap: APPEND: store unavailable"`, data, c.reason)
	if !appendLogged {
		t.Errorf("the refused APPEND was not logged with the path and %q", c.reason)
	}
	// A flag change needs no new blob, only the state database: it is
	// either stored (the database had room) or answered NO [UNAVAILABLE],
	// never an internal error; either way the answer holds after the fault.
	flagged := storeFlagged(t, e.imap, "alice", before[0].UID)
	// What was stored is intact and readable.
	uv2, during := p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
	if uv2 != uv || fmt.Sprint(p3UIDsByID(during)) != fmt.Sprint(p3UIDsByID(before)) {
		t.Errorf("during the fault: UIDVALIDITY %d UIDs %v, want %d %v", uv2, p3UIDsByID(during), uv, p3UIDsByID(before))
	}
	p3CheckMessages(t, "INBOX during the fault", during, map[string][]byte{before[0].MsgID: expected[before[0].MsgID], before[1].MsgID: expected[before[1].MsgID]})

	undo()
	p3WaitFor(t, 20*time.Second, "/readyz 200 after the fault", func() (bool, string) {
		code, body := readyz(e.admin)
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	})
	_, after := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 4, 20*time.Second)
	p3CheckMessages(t, "INBOX after the fault", after, expected)
	p3WaitFor(t, 15*time.Second, "host drained after the fault", func() (bool, string) {
		n := len(e.srv.Messages("alice"))
		return n == 0, fmt.Sprintf("host holds %d", n)
	})
	uid, err := appendError(t, e.imap, "alice", appMsg)
	if err != nil {
		t.Fatalf("APPEND after the fault: %v", err)
	}
	expected[p3MessageID(appMsg)] = appMsg
	if uid <= after[len(after)-1].UID {
		t.Errorf("APPEND after the fault got UID %d, not above %d", uid, after[len(after)-1].UID)
	}
	// The fault again, met only by an APPEND (no new mail to store):
	// /readyz says so, and says ready again once the fault is gone,
	// without waiting for some later write to succeed.
	undo = c.fault(t, data)
	appMsg2 := pad([]byte("From: a@example.org\r\nSubject: append during the second fault\r\nMessage-ID: <disk-append-2@imapbridge.test>\r\n\r\nhello again\r\n"))
	if _, err := appendError(t, e.imap, "alice", appMsg2); !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeUnavailable {
		t.Errorf("APPEND during the second fault: %v, want NO [UNAVAILABLE]", err)
	}
	if code, body := readyz(e.admin); code != http.StatusServiceUnavailable || !strings.Contains(body, c.reason) {
		t.Errorf("/readyz after an APPEND met the fault: %d %q, want 503 naming %q", code, body, c.reason)
	}
	undo()
	p3WaitFor(t, 10*time.Second, "/readyz 200 after the second fault, with nothing new to write", func() (bool, string) {
		code, body := readyz(e.admin)
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	})
	p.stop()
	// No corruption: a restart finds everything, same UIDs, and the flag
	// as the STORE during the fault was answered.
	p = p3LaunchBridge(t, cfgPath, e.imap, e.admin, e.logs)
	defer p.stop()
	uv3, final := p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
	p3CheckMessages(t, "INBOX after a restart", final, expected)
	if uv3 != uv {
		t.Errorf("UIDVALIDITY %d after the restart, was %d", uv3, uv)
	}
	for _, m := range after {
		if p3UIDsByID(final)[m.MsgID] != m.UID {
			t.Errorf("%s: UID %d after the restart, was %d", m.MsgID, p3UIDsByID(final)[m.MsgID], m.UID)
		}
	}
	if got := hasFlag(t, e.imap, "alice", before[0].UID, imap.FlagFlagged); got != flagged {
		t.Errorf("after the restart UID %d \\Flagged is %v; the STORE during the fault was answered %v", before[0].UID, got, map[bool]string{true: "OK", false: "NO"}[flagged])
	}
	if got := p3MetricSum(e.admin, "imapbridge_store_uidvalidity_resets_total"); got != 0 {
		t.Errorf("uidvalidity resets %v", got)
	}
}

// A data directory that is read-only when the bridge starts: the bridge
// exits 1 with an error that names the directory and says it cannot be
// written and why (SQLite alone says "unable to open database file"); once
// the directory is writable again it starts, with its mail and UIDs.
func TestDiskFaultReadOnlyAtStart(t *testing.T) {
	t.Parallel()
	const popPW = "pop-ROStart-5"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	data := filepath.Join(e.dir, "data")
	mountTmpfs(t, data, "8m")
	m := p3GenMessage("rostart", 1, 5000)
	e.srv.Deliver("alice", m)
	expected := map[string][]byte{p3MessageID(m): dovecottest.ExpectedPOP3(m)}
	conf := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr()}}, []p3User{p3StaticUser(t, "alice", popPW, "legacy")})
	conf.LogLevel = "info"
	cfgPath := conf.write(t)
	p := p3LaunchBridge(t, cfgPath, e.imap, e.admin, e.logs)
	uv, before := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 1, 15*time.Second)
	p.stop()

	if err := syscall.Mount("", data, "", syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV, "size=8m"); err != nil {
		t.Fatalf("remount %s read-only: %v", data, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "serve", "-config", cfgPath).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("serve on a read-only data directory: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"start failed", "data_dir " + data + " cannot be written", "read-only file system"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("serve on a read-only data directory: output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("serve on a read-only data directory: %s", strings.TrimSpace(string(out)))

	if err := syscall.Mount("", data, "", syscall.MS_REMOUNT|syscall.MS_NOSUID|syscall.MS_NODEV, "size=8m"); err != nil {
		t.Fatalf("remount %s read-write: %v", data, err)
	}
	p = p3LaunchBridge(t, cfgPath, e.imap, e.admin, e.logs)
	defer p.stop()
	uv2, after := p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
	p3CheckMessages(t, "INBOX after the directory is writable again", after, expected)
	if uv2 != uv || len(after) != 1 || after[0].UID != before[0].UID {
		t.Errorf("UIDVALIDITY/UID after the restart: %d/%v, was %d/%v", uv2, p3UIDsByID(after), uv, p3UIDsByID(before))
	}
}

// storeFlagged sets \Flagged on uid in user's INBOX and says whether the
// server answered OK; any answer but OK and NO [UNAVAILABLE] fails the test.
func storeFlagged(t *testing.T, addr, user string, uid imap.UID) bool {
	t.Helper()
	s := p3LoginIMAP(t, addr, user, p3IMAPPassword)
	defer s.c.Close()
	if _, err := s.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	err := s.c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close()
	var ierr *imap.Error
	switch {
	case err == nil:
		t.Logf("STORE during the fault: OK")
		return true
	case errors.As(err, &ierr) && ierr.Code == imap.ResponseCodeUnavailable:
		t.Logf("STORE during the fault: NO [%s] %s", ierr.Code, ierr.Text)
		return false
	}
	t.Errorf("STORE during the fault: %v, want OK or NO [UNAVAILABLE]", err)
	return false
}

// hasFlag says whether uid in user's INBOX has flag.
func hasFlag(t *testing.T, addr, user string, uid imap.UID, flag imap.Flag) bool {
	t.Helper()
	s := p3LoginIMAP(t, addr, user, p3IMAPPassword)
	defer s.c.Close()
	if _, err := s.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch flags of UID %d: %v (%d messages)", uid, err, len(msgs))
	}
	for _, f := range msgs[0].Flags {
		if f == flag {
			return true
		}
	}
	return false
}
