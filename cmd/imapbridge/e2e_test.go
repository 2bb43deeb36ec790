package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/internal/testtool"
)

// The end-to-end tests run the built binary against real clients: Python's
// imaplib and mbsync. They need python3 and mbsync; under CI=true a missing
// tool fails the test, elsewhere it skips with the install command.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imapbridge-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "imapbridge")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// e2eMessage is one message of the test spool: what the spool holds and
// what IMAP must return (CRLF, escapes undone).
type e2eMessage struct {
	sender string
	date   time.Time
	raw    string // LF line endings, as a message (no From_ line, no escaping)
}

func (m e2eMessage) imapBytes() string {
	return strings.ReplaceAll(m.raw, "\n", "\r\n")
}

var fromLine = regexp.MustCompile(`(?m)^(>*From )`)

// writeSpool writes messages as an mboxrd spool, as a local MDA would.
func writeSpool(t *testing.T, path string, msgs []e2eMessage, appendTo bool) {
	t.Helper()
	var buf bytes.Buffer
	for _, m := range msgs {
		fmt.Fprintf(&buf, "From %s %s\n", m.sender, m.date.UTC().Format("Mon Jan _2 15:04:05 2006"))
		buf.WriteString(fromLine.ReplaceAllString(m.raw, ">$1"))
		if !strings.HasSuffix(m.raw, "\n") {
			buf.WriteString("\n")
		}
		buf.WriteString("\n")
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func testSpool() []e2eMessage {
	d := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	long := strings.Repeat("0123456789abcdef", 320) // 5120 bytes on one line
	return []e2eMessage{
		{"alice@example.org", d, "From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: Quarterly report\nDate: Sat, 14 Mar 2026 09:26:53 +0000\nMessage-ID: <q1@example.org>\n\nNumbers are up.\n"},
		{"bob@example.org", d.Add(time.Hour), "From: Bob <bob@example.org>\nTo: alice@example.org\nSubject: escapes\nDate: Sat, 14 Mar 2026 10:26:53 +0000\nMessage-ID: <esc@example.org>\n\nA body line with a From after a blank line:\n\nFrom the desk of Bob.\n>From an already quoted line\n>>From twice quoted\nFrom without blank line before\n"},
		{"carol@example.org", d.Add(2 * time.Hour), "From: Carol <carol@example.org>\nTo: alice@example.org\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\nDate: Sat, 14 Mar 2026 11:26:53 +0000\nMessage-ID: <utf8@example.org>\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus Köln — 日本語もOK.\n"},
		{"dave@example.org", d.Add(3 * time.Hour), "From: Dave <dave@example.org>\nTo: alice@example.org\nSubject: long line\nDate: Sat, 14 Mar 2026 12:26:53 +0000\nMessage-ID: <long@example.org>\n\n" + long + "\n.\n..\n.x\n"},
		{"erin@example.org", d.Add(4 * time.Hour), "From: Erin <erin@example.org>\nTo: alice@example.org\nSubject: trailing blank lines\nDate: Sat, 14 Mar 2026 13:26:53 +0000\nMessage-ID: <blank@example.org>\n\nends with blank lines\n\n\n"},
	}
}

type bridgeProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	imap   string
	admin  string
	logBuf *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLine waits (up to 5 s: the child's stderr reaches the buffer through a
// pipe, a little after the reply the test acted on) for a log line that
// holds every one of parts, and reports whether one came.
func (b *syncBuffer) waitLine(parts ...string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(b.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startBridge runs the binary with config and waits until /readyz says
// ready and the first poll of every source has succeeded.
func startBridge(t *testing.T, config, imapAddr, adminAddr string, logs *syncBuffer) *bridgeProc {
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "-config", config)
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &bridgeProc{t: t, cmd: cmd, imap: imapAddr, admin: adminAddr, logBuf: logs}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// Two polls: an mbox spool's last message is taken once a second
		// poll sees the spool unchanged.
		if successfulPolls(adminAddr) > 1 {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("bridge not ready within 30s; log:\n%s", logs.String())
	return nil
}

var pollLine = regexp.MustCompile(`(?m)^imapbridge_source_polls_total\{result="success",source="[^"]+"\} (\d+)`)

func successfulPolls(admin string) int {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	n := 0
	for _, m := range pollLine.FindAllSubmatch(body, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		n += v
	}
	return n
}

func (p *bridgeProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Fatalf("bridge exited with %v after SIGTERM; log:\n%s", err, p.logBuf.String())
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.t.Fatalf("bridge did not stop within 30s of SIGTERM; log:\n%s", p.logBuf.String())
	}
}

func writeConfig(t *testing.T, dir, imapAddr, adminAddr, spoolTemplate string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`data_dir: %s
log: {level: debug, format: text}
imap:
  listen: %s
  allow_insecure_auth: true
admin:
  listen: %s
sources:
  - name: spool
    type: mbox
    path: %s
    poll_interval: 200ms
users:
  - name: alice
    password_hash: %q
    sources: [spool]
`, filepath.Join(dir, "data"), imapAddr, adminAddr, spoolTemplate, string(hash))
	path := filepath.Join(dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type flowMessage struct {
	Flags []string `json:"flags"`
	Body  []byte   `json:"body"` // base64 in the JSON
}

type flowResult struct {
	BadLogin      string                 `json:"bad_login"`
	Capability    string                 `json:"capability"`
	List          []string               `json:"list"`
	Exists        int                    `json:"exists"`
	UIDValidity   uint32                 `json:"uidvalidity"`
	Before        map[string]flowMessage `json:"before"`
	After         map[string]flowMessage `json:"after"`
	Messages      map[string]flowMessage `json:"messages"`
	SearchSubject string                 `json:"search_subject"`
	SearchFromUID string                 `json:"search_from_uid"`
	SearchUnseen  string                 `json:"search_unseen"`
	StoreResp     []string               `json:"store_resp"`
	IdleStore     []string               `json:"idle_store"`
	IdleExpunge   []string               `json:"idle_expunge"`
	IdleExists    []string               `json:"idle_exists"`
	ExpungeResp   []string               `json:"expunge_resp"`
}

func runFlow(t *testing.T, python, imapAddr, spool, mode string) flowResult {
	t.Helper()
	host, port, _ := net.SplitHostPort(imapAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/e2e/imaplib_flow.py", host, port, "alice", "s3cret-pass", spool, mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("imaplib flow %s: %v\n%s", mode, err, stderr.String())
	}
	var res flowResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("imaplib flow output: %v\n%s", err, out)
	}
	return res
}

// summary is a compact, comparable view of a mailbox: UID, flags and a
// hash of each body.
func summary(m map[string]flowMessage) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s:%v:%x", k, m[k].Flags, sha256.Sum256(m[k].Body)))
	}
	return strings.Join(parts, " ")
}

func sortedKeys(m map[string]flowMessage) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, _ := strconv.Atoi(keys[i])
		b, _ := strconv.Atoi(keys[j])
		return a < b
	})
	return keys
}

// spoolBridge is the built binary serving user alice (password
// s3cret-pass) from an mbox spool holding testSpool().
type spoolBridge struct {
	dir, spool, config  string
	imapAddr, adminAddr string
	msgs                []e2eMessage
	logs                *syncBuffer
	proc                *bridgeProc
}

func startSpoolBridge(t *testing.T) *spoolBridge {
	t.Helper()
	e := &spoolBridge{dir: t.TempDir(), msgs: testSpool(), logs: &syncBuffer{}}
	spoolDir := filepath.Join(e.dir, "mail")
	os.MkdirAll(spoolDir, 0o700)
	e.spool = filepath.Join(spoolDir, "alice")
	writeSpool(t, e.spool, e.msgs, false)
	e.imapAddr, e.adminAddr = freePort(t), freePort(t)
	e.config = writeConfig(t, e.dir, e.imapAddr, e.adminAddr, filepath.Join(spoolDir, "{user}"))
	e.proc = startBridge(t, e.config, e.imapAddr, e.adminAddr, e.logs)
	return e
}

func TestEndToEndImaplib(t *testing.T) {
	python := testtool.Need(t, "python3", "python3")
	e := startSpoolBridge(t)
	spool, msgs, imapAddr, adminAddr, config, logs, p := e.spool, e.msgs, e.imapAddr, e.adminAddr, e.config, e.logs, e.proc

	res := runFlow(t, python, imapAddr, spool, "full")
	if !strings.Contains(res.BadLogin, "AUTHENTICATIONFAILED") {
		t.Errorf("wrong password answer = %q, want NO [AUTHENTICATIONFAILED]", res.BadLogin)
	}
	for _, c := range []string{"IMAP4rev1", "IMAP4rev2", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE"} {
		if !strings.Contains(res.Capability, c) {
			t.Errorf("CAPABILITY %q lacks %s", res.Capability, c)
		}
	}
	listed := strings.Join(res.List, "\n")
	for _, want := range []string{`"/" "?INBOX"?$`, `\(\\HasNoChildren \\Sent\) "/" "?Sent"?$`, `\\Trash\) "/" "?Trash"?$`, `\\Drafts\) "/" "?Drafts"?$`, `\\Junk\) "/" "?Junk"?$`, `\\Archive\) "/" "?Archive"?$`} {
		if !regexp.MustCompile("(?m)" + want).MatchString(listed) {
			t.Errorf("LIST lacks %q:\n%s", want, listed)
		}
	}
	if res.Exists != len(msgs) {
		t.Fatalf("SELECT INBOX: %d EXISTS, want %d", res.Exists, len(msgs))
	}
	keys := sortedKeys(res.Before)
	if len(keys) != len(msgs) {
		t.Fatalf("fetched %d messages, want %d", len(keys), len(msgs))
	}
	for i, k := range keys {
		if got, want := string(res.Before[k].Body), msgs[i].imapBytes(); got != want {
			t.Errorf("UID %s BODY[] not byte-exact:\n got %q\nwant %q", k, got, want)
		}
		if len(res.Before[k].Flags) != 0 {
			t.Errorf("UID %s flags before = %v, want none", k, res.Before[k].Flags)
		}
	}
	if res.SearchSubject != "1" {
		t.Errorf(`SEARCH SUBJECT "Quarterly" = %q, want "1"`, res.SearchSubject)
	}
	if res.SearchFromUID != keys[2] {
		t.Errorf(`UID SEARCH FROM "carol" = %q, want %q`, res.SearchFromUID, keys[2])
	}
	if res.SearchUnseen != "1 2 3 4 5" {
		t.Errorf("SEARCH UNSEEN = %q", res.SearchUnseen)
	}
	if got := strings.Join(res.IdleStore, "|"); !strings.Contains(got, `\Flagged`) || !strings.Contains(got, "$Important") {
		t.Errorf("IDLE session not told of STORE: %q", got)
	}
	if got := res.IdleExpunge[len(res.IdleExpunge)-1]; got != "* 2 EXPUNGE" {
		t.Errorf("IDLE session got %q for the expunge, want \"* 2 EXPUNGE\"", got)
	}
	if got := res.IdleExists[len(res.IdleExists)-1]; got != fmt.Sprintf("* %d EXISTS", len(msgs)) {
		t.Errorf("IDLE session got %q for new spool mail, want \"* %d EXISTS\"", got, len(msgs))
	}
	after := res.After
	if len(after) != len(msgs) { // one expunged, one delivered
		t.Fatalf("after the flow: %d messages, want %d", len(after), len(msgs))
	}
	if _, ok := after[keys[1]]; ok {
		t.Errorf("expunged UID %s still there", keys[1])
	}
	if f := strings.Join(after[keys[0]].Flags, " "); f != `$Important \Flagged` {
		t.Errorf("UID %s flags = %q, want `$Important \\Flagged` (canonical case)", keys[0], f)
	}
	p.stop()

	// Restart: same UIDVALIDITY, UIDs, flags and bytes; nothing duplicated.
	p = startBridge(t, config, imapAddr, adminAddr, logs)
	ver := runFlow(t, python, imapAddr, spool, "verify")
	if ver.UIDValidity != res.UIDValidity {
		t.Errorf("UIDVALIDITY %d after restart, was %d", ver.UIDValidity, res.UIDValidity)
	}
	if got, want := summary(ver.Messages), summary(after); got != want {
		t.Errorf("state after restart differs:\n got %s\nwant %s", got, want)
	}
	p.stop()
	if strings.Contains(logs.String(), "s3cret-pass") {
		t.Errorf("a password appears in the logs")
	}
}

// mbsyncChannel writes an mbsync config syncing user alice's whole
// account at imapAddr (plain IMAP, LOGIN) two ways with the Maildir local,
// and returns a function running one sync; a failing sync fails the test
// with mbsync's output and the bridge's log.
func mbsyncChannel(t *testing.T, dir, imapAddr, password, local string, logs *syncBuffer) func(step string) string {
	t.Helper()
	mbsync := testtool.Need(t, "mbsync", "isync")
	host, port, _ := net.SplitHostPort(imapAddr)
	if err := os.MkdirAll(local, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf(`IMAPAccount bridge
Host %s
Port %s
User alice
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore bridge-remote
Account bridge

MaildirStore bridge-local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel bridge
Far :bridge-remote:
Near :bridge-local:
Patterns *
Create Both
Expunge Both
SyncState *
`, host, port, password, local, local)), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(step string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, mbsync, "-c", rc, "bridge").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync %s: %v\n%s\nbridge log:\n%s", step, err, out, logs.String())
		}
		return string(out)
	}
}

// mbsync (isync) pulls the mailbox to a local Maildir, changes flags and
// folders locally, pushes, and a second pull is a no-op.
func TestEndToEndMbsync(t *testing.T) {
	python := testtool.Need(t, "python3", "python3")
	e := startSpoolBridge(t)
	dir, spool, msgs, imapAddr, logs, p := e.dir, e.spool, e.msgs, e.imapAddr, e.logs, e.proc
	defer p.stop()

	local := filepath.Join(dir, "Maildir")
	runMbsync := mbsyncChannel(t, dir, imapAddr, "s3cret-pass", local, logs)
	runMbsync("pull")
	files, _ := filepath.Glob(filepath.Join(local, "INBOX", "cur", "*"))
	newFiles, _ := filepath.Glob(filepath.Join(local, "INBOX", "new", "*"))
	files = append(files, newFiles...)
	if len(files) != len(msgs) {
		t.Fatalf("mbsync pulled %d messages, want %d", len(files), len(msgs))
	}
	bodies := map[string]bool{}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		// mbsync stores with LF and may add an X-TUID header.
		s := regexp.MustCompile(`(?m)^X-TUID: .*\n`).ReplaceAllString(string(data), "")
		bodies[s] = true
	}
	for i, m := range msgs {
		if !bodies[m.raw] {
			t.Errorf("message %d not pulled byte-exact (modulo line endings)", i+1)
		}
	}
	// Locally: flag one message (F), mark one seen (S), create a folder.
	sort.Strings(files)
	flagged := files[0]
	os.Rename(flagged, filepath.Join(local, "INBOX", "cur", filepath.Base(strings.SplitN(flagged, ":2,", 2)[0])+":2,FS"))
	os.MkdirAll(filepath.Join(local, "Projects", "cur"), 0o700)
	os.MkdirAll(filepath.Join(local, "Projects", "new"), 0o700)
	os.MkdirAll(filepath.Join(local, "Projects", "tmp"), 0o700)
	runMbsync("push")
	snapshot := func() string {
		var names []string
		filepath.WalkDir(local, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.Contains(p, ".mbsyncstate") && !strings.HasSuffix(p, ".uidvalidity") {
				names = append(names, strings.TrimPrefix(p, local))
			}
			return nil
		})
		sort.Strings(names)
		return strings.Join(names, "\n")
	}
	localBefore := snapshot()
	serverBefore := runFlow(t, python, imapAddr, spool, "verify")
	runMbsync("no-op")
	if got := snapshot(); got != localBefore {
		t.Errorf("third sync changed the local Maildir:\nbefore:\n%s\nafter:\n%s", localBefore, got)
	}
	ver := runFlow(t, python, imapAddr, spool, "verify")
	if got, want := summary(ver.Messages), summary(serverBefore.Messages); got != want {
		t.Errorf("third sync changed the server:\nbefore %s\nafter %s", want, got)
	}
	if !regexp.MustCompile(`(?m)"/" "?Projects"?$`).MatchString(strings.Join(ver.List, "\n")) {
		t.Errorf("folder created locally not created on the server by mbsync push: %v", ver.List)
	}
	n := 0
	for _, m := range ver.Messages {
		if strings.Contains(strings.Join(m.Flags, " "), `\Flagged`) {
			n++
			if !strings.Contains(strings.Join(m.Flags, " "), `\Seen`) {
				t.Errorf("pushed flags = %v, want \\Flagged \\Seen", m.Flags)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d messages flagged on the server after mbsync push, want 1", n)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
