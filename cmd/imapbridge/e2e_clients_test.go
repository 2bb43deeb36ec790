package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapbridge/imapbridge/internal/testtool"
)

// Real IMAP clients against the built binary, doing what a user's devices
// do to a mailbox: a Thunderbird-like session and a phone (Python's
// imaplib), curl's IMAP client, and mbsync syncing both ways. Each test
// ends by reading the server's whole state with go-imap's client and
// comparing it in detail, before and after a restart of the binary.

const clPassword = "s3cret-pass" // writeConfig's password for alice

// clMessages is the INBOX the client tests start from; tb-3 and tb-5 are
// from 2025, the others from 2026.
func clMessages() []e2eMessage {
	msg := func(n int, from, subject string, date time.Time) e2eMessage {
		return e2eMessage{sender: strings.ToLower(from) + "@example.org", date: date, raw: fmt.Sprintf(
			"From: %s <%s@example.org>\nTo: Alice <alice@example.org>\nSubject: %s\nDate: %s\nMessage-ID: <tb-%d@example.org>\n\n%s, the body.\n",
			from, strings.ToLower(from), subject, date.Format(time.RFC1123Z), n, subject)}
	}
	return []e2eMessage{
		msg(1, "Ann", "Quarterly report", time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)),
		msg(2, "Bob", "Lunch on Friday?", time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)),
		msg(3, "Carol", "Invoice 2025-117", time.Date(2025, 12, 20, 16, 45, 0, 0, time.UTC)),
		msg(4, "Dave", "Newsletter March", time.Date(2026, 3, 15, 7, 0, 0, 0, time.UTC)),
		msg(5, "Erin", "Old thread", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)),
	}
}

// clStartBridge runs the built binary for alice over a spool of msgs.
func clStartBridge(t *testing.T, msgs []e2eMessage) *spoolBridge {
	t.Helper()
	b := &spoolBridge{dir: t.TempDir(), msgs: msgs, logs: &syncBuffer{}}
	spoolDir := filepath.Join(b.dir, "mail")
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	b.spool = filepath.Join(spoolDir, "alice")
	writeSpool(t, b.spool, msgs, false)
	b.imapAddr, b.adminAddr = freePort(t), freePort(t)
	b.config = writeConfig(t, b.dir, b.imapAddr, b.adminAddr, filepath.Join(spoolDir, "{user}"))
	b.proc = startBridge(t, b.config, b.imapAddr, b.adminAddr, b.logs)
	return b
}

// clRestart stops the binary and starts it again on the same data.
func clRestart(t *testing.T, b *spoolBridge) {
	t.Helper()
	b.proc.stop()
	b.proc = startBridge(t, b.config, b.imapAddr, b.adminAddr, b.logs)
}

// clMsg and clFolder are the server's state as a client reads it.
type clMsg struct {
	UID   imap.UID
	Flags string // sorted, \Recent left out (it is the session's)
	ID    string // Message-ID
	Date  string // INTERNALDATE
}

type clFolder struct {
	Name        string
	Attrs       string
	Subscribed  bool
	UIDValidity uint32
	UIDNext     imap.UID
	Msgs        []clMsg
}

// clState reads every mailbox of alice: LIST with STATUS, LIST
// (SUBSCRIBED), then EXAMINE (which changes nothing) and UID FETCH of each.
func clState(t *testing.T, addr string) []clFolder {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", clPassword).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{UIDNext: true, UIDValidity: true}}).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatalf("LIST (SUBSCRIBED): %v", err)
	}
	subscribed := map[string]bool{}
	for _, s := range subs {
		subscribed[s.Mailbox] = true
	}
	idSection := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	var out []clFolder
	for _, l := range list {
		var attrs []string
		for _, a := range l.Attrs {
			attrs = append(attrs, string(a))
		}
		f := clFolder{Name: l.Mailbox, Attrs: "(" + strings.Join(attrs, " ") + ")", Subscribed: subscribed[l.Mailbox]}
		if l.Status != nil {
			f.UIDValidity, f.UIDNext = l.Status.UIDValidity, l.Status.UIDNext
		}
		if _, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("EXAMINE %s: %v", l.Mailbox, err)
		}
		msgs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{idSection}}).Collect()
		if err != nil {
			t.Fatalf("UID FETCH in %s: %v", l.Mailbox, err)
		}
		for _, m := range msgs {
			var flags []string
			for _, fl := range m.Flags {
				if fl != `\Recent` {
					flags = append(flags, string(fl))
				}
			}
			sort.Strings(flags)
			id := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(m.FindBodySection(idSection))), "Message-ID:"))
			f.Msgs = append(f.Msgs, clMsg{UID: m.UID, Flags: "(" + strings.Join(flags, " ") + ")", ID: id, Date: m.InternalDate.Format("02-Jan-2006 15:04:05 -0700")})
		}
		sort.Slice(f.Msgs, func(i, j int) bool { return f.Msgs[i].UID < f.Msgs[j].UID })
		out = append(out, f)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
	return out
}

// clRender writes a state one line per mailbox and message; validity adds
// each mailbox's UIDVALIDITY, dates each message's INTERNALDATE.
func clRender(folders []clFolder, validity, dates bool) string {
	var b strings.Builder
	for _, f := range folders {
		fmt.Fprintf(&b, "%s %s", f.Name, f.Attrs)
		if f.Subscribed {
			b.WriteString(" subscribed")
		}
		if validity {
			fmt.Fprintf(&b, " uidvalidity=%d", f.UIDValidity)
		}
		fmt.Fprintf(&b, " uidnext=%d\n", f.UIDNext)
		for _, m := range f.Msgs {
			fmt.Fprintf(&b, "  %d %s %s", m.UID, m.ID, m.Flags)
			if dates {
				fmt.Fprintf(&b, " %s", m.Date)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func clFind(folders []clFolder, name string) clFolder {
	for _, f := range folders {
		if f.Name == name {
			return f
		}
	}
	return clFolder{}
}

func clDiff(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s--- want\n%s", what, got, want)
	}
}

type thunderbirdResult struct {
	Capability      string              `json:"capability"`
	SpecialUse      map[string]string   `json:"special_use"`
	ReadSubject     string              `json:"read_subject"`
	DeleteCopyUID   []string            `json:"delete_copyuid"`
	PhoneSaw        []string            `json:"phone_saw"`
	SentAppendUID   string              `json:"sent_appenduid"`
	DraftAppendUIDs []string            `json:"draft_appenduids"`
	DraftExpunge    []string            `json:"draft_expunge"`
	ArchiveCreated  []string            `json:"archive_created"`
	ArchiveByYear   map[string][]string `json:"archive_by_year"`
	PhoneIdleEnd    string              `json:"phone_idle_end"`
	PhoneInbox      []string            `json:"phone_inbox"`
}

// TestClientsThunderbirdFlow: Thunderbird's ways with a mailbox, done by
// imaplib from two devices: delete is a move to Trash, send an APPEND to
// Sent, a draft saved again replaces the old one (APPEND, STORE \Deleted,
// EXPUNGE), archiving files messages into Archive/<year> folders created
// on the way. The phone, idling in INBOX, hears of every change at once.
// The server's state is then checked message by message, and again after
// a restart of the binary.
func TestClientsThunderbirdFlow(t *testing.T) {
	python := testtool.Need(t, "python3", "python3")
	b := clStartBridge(t, clMessages())
	host, port, _ := net.SplitHostPort(b.imapAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/clients/thunderbird_flow.py", host, port, "alice", clPassword)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("thunderbird_flow.py: %v\n%s\nbridge log:\n%s", err, stderr.String(), b.logs.String())
	}
	var res thunderbirdResult
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("thunderbird_flow.py output: %v\n%s", err, raw)
	}

	for _, c := range []string{"MOVE", "UIDPLUS", "SPECIAL-USE", "IDLE", "LIST-EXTENDED", "APPENDLIMIT=52428800"} {
		if !strings.Contains(" "+res.Capability+" ", " "+c+" ") {
			t.Errorf("CAPABILITY %q lacks %s", res.Capability, c)
		}
	}
	if want := map[string]string{`\Archive`: "Archive", `\Drafts`: "Drafts", `\Junk`: "Junk", `\Sent`: "Sent", `\Trash`: "Trash"}; !reflect.DeepEqual(res.SpecialUse, want) {
		t.Errorf("special-use folders %v, want %v", res.SpecialUse, want)
	}
	if res.ReadSubject != "Quarterly report" {
		t.Errorf("read subject %q", res.ReadSubject)
	}
	state := clState(t, b.imapAddr)
	trashUV, sentUV, draftsUV := clFind(state, "Trash").UIDValidity, clFind(state, "Sent").UIDValidity, clFind(state, "Drafts").UIDValidity
	if want := []string{fmt.Sprintf("[COPYUID %d 2 1] COPY completed", trashUV)}; !reflect.DeepEqual(res.DeleteCopyUID, want) {
		t.Errorf("MOVE to Trash answered %q, want %q", res.DeleteCopyUID, want)
	}
	if want := fmt.Sprintf("%d 1", sentUV); res.SentAppendUID != want {
		t.Errorf("APPEND to Sent: APPENDUID %q, want %q", res.SentAppendUID, want)
	}
	if !reflect.DeepEqual(res.DraftAppendUIDs, []string{"1", "2"}) || !reflect.DeepEqual(res.DraftExpunge, []string{"1"}) || draftsUV == 0 {
		t.Errorf("drafts: APPENDUIDs %q, EXPUNGE %q", res.DraftAppendUIDs, res.DraftExpunge)
	}
	if !reflect.DeepEqual(res.ArchiveCreated, []string{"Archive/2025", "Archive/2026"}) ||
		!reflect.DeepEqual(res.ArchiveByYear, map[string][]string{"2025": {"3", "5"}, "2026": {"1"}}) {
		t.Errorf("archive: created %q, by year %v", res.ArchiveCreated, res.ArchiveByYear)
	}
	// The phone selected INBOX first: the messages are \Recent there. It is
	// told of the read, the flag, the move to Trash and the two archive
	// moves, each at its sequence number at that point.
	wantPhone := []string{
		`* 1 FETCH (UID 1 FLAGS (\Seen \Recent))`,
		`* 1 FETCH (UID 1 FLAGS (\Flagged \Seen \Recent))`,
		`* 2 EXPUNGE`,
		`* 2 EXPUNGE`,
		`* 3 EXPUNGE`,
		`* 1 EXPUNGE`,
	}
	if !reflect.DeepEqual(res.PhoneSaw, wantPhone) || !strings.HasSuffix(res.PhoneIdleEnd, " OK IDLE completed") {
		t.Errorf("the phone saw\n%s\nthen %q; want\n%s", strings.Join(res.PhoneSaw, "\n"), res.PhoneIdleEnd, strings.Join(wantPhone, "\n"))
	}
	if !reflect.DeepEqual(res.PhoneInbox, []string{"<tb-4@example.org>"}) {
		t.Errorf("the phone's INBOX: %q", res.PhoneInbox)
	}

	want := `INBOX (\HasNoChildren) subscribed uidnext=6
  4 <tb-4@example.org> () 15-Mar-2026 07:00:00 +0000
Archive (\HasChildren \Archive) subscribed uidnext=1
Archive/2025 (\HasNoChildren) subscribed uidnext=3
  1 <tb-3@example.org> () 20-Dec-2025 16:45:00 +0000
  2 <tb-5@example.org> () 01-Jun-2025 12:00:00 +0000
Archive/2026 (\HasNoChildren) subscribed uidnext=2
  1 <tb-1@example.org> (\Flagged \Seen) 14-Mar-2026 09:26:53 +0000
Drafts (\HasNoChildren \Drafts) subscribed uidnext=3
  2 <tb-draft-2@example.org> (\Draft \Seen)
Junk (\HasNoChildren \Junk) subscribed uidnext=1
Sent (\HasNoChildren \Sent) subscribed uidnext=2
  1 <tb-reply@example.org> (\Seen) 14-Mar-2026 12:00:00 +0100
Trash (\HasNoChildren \Trash) subscribed uidnext=2
  1 <tb-2@example.org> () 14-Mar-2026 10:00:00 +0000
`
	// The draft's date is the time it was appended: left out.
	rendered := clRender(state, false, true)
	rendered = regexp.MustCompile(`(?m)^(  2 <tb-draft-2@example.org> \(\\Draft \\Seen\)) .*$`).ReplaceAllString(rendered, "$1")
	clDiff(t, "server state after the Thunderbird flow", rendered, want)

	before := clRender(state, true, true)
	clRestart(t, b)
	clDiff(t, "server state after a restart", clRender(clState(t, b.imapAddr), true, true), before)
	b.proc.stop()
}

// TestClientsCurl: curl's IMAP client lists, searches, fetches by UID, by
// sequence number and by section, checks UIDVALIDITY in the URL, and
// uploads (APPEND).
func TestClientsCurl(t *testing.T) {
	curl := testtool.Need(t, "curl", "curl")
	msgs := clMessages()
	b := clStartBridge(t, msgs)
	defer b.proc.stop()
	run := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, curl, append([]string{"-sS", "--user", "alice:" + clPassword}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		return stdout.String(), strings.TrimSpace(stderr.String()), code
	}
	base := "imap://" + b.imapAddr
	uv := fmt.Sprint(clFind(clState(t, b.imapAddr), "INBOX").UIDValidity)
	upload := filepath.Join(t.TempDir(), "sent.eml")
	uploaded := "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: sent with curl\r\nMessage-ID: <curl-1@example.org>\r\n\r\nUploaded.\r\n"
	if err := os.WriteFile(upload, []byte(uploaded), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		out, err   string
		code       int
		exactBytes bool
	}{
		{name: "list", args: []string{"--url", base + "/"}, out: `* LIST (\HasNoChildren) "/" INBOX` + "\r\n" +
			`* LIST (\HasNoChildren \Archive) "/" "Archive"` + "\r\n" +
			`* LIST (\HasNoChildren \Drafts) "/" "Drafts"` + "\r\n" +
			`* LIST (\HasNoChildren \Junk) "/" "Junk"` + "\r\n" +
			`* LIST (\HasNoChildren \Sent) "/" "Sent"` + "\r\n" +
			`* LIST (\HasNoChildren \Trash) "/" "Trash"` + "\r\n"},
		{name: "list with a pattern", args: []string{"--url", base + "/", "--request", `LIST "" "*r*"`}, out: `* LIST (\HasNoChildren \Archive) "/" "Archive"` + "\r\n" +
			`* LIST (\HasNoChildren \Drafts) "/" "Drafts"` + "\r\n" +
			`* LIST (\HasNoChildren \Trash) "/" "Trash"` + "\r\n"},
		{name: "status", args: []string{"--url", base + "/", "--request", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)"}, out: "* STATUS INBOX (MESSAGES 5 UIDNEXT 6 UNSEEN 5)\r\n"},
		{name: "search", args: []string{"--url", base + "/INBOX?SUBJECT%20invoice"}, out: "* SEARCH 3\r\n"},
		{name: "search dates", args: []string{"--url", base + "/INBOX?BEFORE%201-Jan-2026"}, out: "* SEARCH 3 5\r\n"},
		{name: "fetch by UID", args: []string{"--url", base + "/INBOX;UID=3"}, out: msgs[2].imapBytes(), exactBytes: true},
		{name: "fetch with UIDVALIDITY", args: []string{"--url", base + "/INBOX;UIDVALIDITY=" + uv + ";UID=4"}, out: msgs[3].imapBytes(), exactBytes: true},
		{name: "fetch by sequence number", args: []string{"--url", base + "/INBOX;MAILINDEX=2"}, out: msgs[1].imapBytes(), exactBytes: true},
		{name: "fetch a section", args: []string{"--url", base + "/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)"}, out: "Subject: Quarterly report\r\n\r\n", exactBytes: true},
		{name: "stale UIDVALIDITY", args: []string{"--url", base + "/INBOX;UIDVALIDITY=1;UID=1"}, err: "curl: (78) Mailbox UIDVALIDITY has changed", code: 78},
		{name: "no such mailbox", args: []string{"--url", base + "/Nope;UID=1"}, err: "curl: (67) Select failed", code: 67},
		{name: "upload", args: []string{"-T", upload, "--url", base + "/Sent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(tt.args...)
			if code != tt.code || errOut != tt.err {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, errOut, tt.code, tt.err)
			}
			if out != tt.out {
				if tt.exactBytes {
					t.Fatalf("not byte-exact:\n got %q\nwant %q", out, tt.out)
				}
				t.Fatalf("got\n%s\nwant\n%s", out, tt.out)
			}
		})
	}
	// curl fetches without PEEK: what it read is \Seen; its upload is in
	// Sent, \Seen, byte for byte.
	state := clState(t, b.imapAddr)
	got := clRender([]clFolder{clFind(state, "INBOX"), clFind(state, "Sent")}, false, false)
	want := `INBOX (\HasNoChildren) subscribed uidnext=6
  1 <tb-1@example.org> (\Seen)
  2 <tb-2@example.org> (\Seen)
  3 <tb-3@example.org> (\Seen)
  4 <tb-4@example.org> (\Seen)
  5 <tb-5@example.org> ()
Sent (\HasNoChildren \Sent) subscribed uidnext=2
  1 <curl-1@example.org> (\Seen)
`
	clDiff(t, "state after curl", got, want)
	if out, errOut, code := run("--url", base+"/Sent;UID=1"); out != uploaded || code != 0 {
		t.Errorf("uploaded message read back: %q (exit %d, %s)", out, code, errOut)
	}
}

// clMaildir maps each message file of a Maildir to its folder, Message-ID
// and Maildir flags.
type clLocal struct {
	path, folder, id, flags string
}

func clMaildir(t *testing.T, root string) []clLocal {
	t.Helper()
	var out []clLocal
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		dir := filepath.Base(filepath.Dir(p))
		if dir != "cur" && dir != "new" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`(?mi)^Message-ID:\s*(\S+)`).FindSubmatch(data)
		if m == nil {
			return fmt.Errorf("%s: no Message-ID", p)
		}
		rel, _ := filepath.Rel(root, filepath.Dir(filepath.Dir(p)))
		flags := ""
		if _, f, ok := strings.Cut(filepath.Base(p), ":2,"); ok {
			flags = f
		}
		out = append(out, clLocal{path: p, folder: rel, id: string(m[1]), flags: flags})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].folder+out[i].id < out[j].folder+out[j].id })
	return out
}

func clRenderLocal(files []clLocal) string {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s %s %s\n", f.folder, f.id, f.flags)
	}
	return b.String()
}

// TestClientsMbsyncTwoWay: mbsync pulls the mailbox to a local Maildir;
// locally a message is moved to another folder, one flagged, one marked
// read, one deleted, and a new folder with a message is created; mbsync
// pushes all of it; the next sync changes nothing on either side; the
// server's state is checked message by message, and again after a restart.
func TestClientsMbsyncTwoWay(t *testing.T) {
	b := clStartBridge(t, clMessages())
	defer func() { b.proc.stop() }() // the process after the restart
	local := filepath.Join(b.dir, "Maildir")
	run := mbsyncChannel(t, b.dir, b.imapAddr, clPassword, local, b.logs)
	sync := func(step string) { t.Helper(); run(step) }

	sync("pull")
	clDiff(t, "Maildir after the first pull", clRenderLocal(clMaildir(t, local)), `INBOX <tb-1@example.org> 
INBOX <tb-2@example.org> 
INBOX <tb-3@example.org> 
INBOX <tb-4@example.org> 
INBOX <tb-5@example.org> 
`)

	// Local changes, as a mail reader on the Maildir makes them.
	files := map[string]clLocal{}
	for _, f := range clMaildir(t, local) {
		files[f.id] = f
	}
	rename := func(id, folder, flags string) {
		t.Helper()
		f := files[id]
		name := strings.SplitN(filepath.Base(f.path), ":2,", 2)[0]
		if folder != "INBOX" {
			// A file moved to another folder loses the UID mbsync gave it
			// in the old one.
			name = regexp.MustCompile(`,U=\d+`).ReplaceAllString(name, "")
		}
		dst := filepath.Join(local, folder, "cur", name+":2,"+flags)
		if err := os.Rename(f.path, dst); err != nil {
			t.Fatal(err)
		}
	}
	rename("<tb-1@example.org>", "INBOX", "F")
	rename("<tb-5@example.org>", "INBOX", "S")
	rename("<tb-2@example.org>", "Archive", "S")
	if err := os.Remove(files["<tb-4@example.org>"].path); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(local, "Projects", d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(local, "Projects", "new", "1773500000.plan.local"), []byte("From: Alice <alice@example.org>\nSubject: plan\nMessage-ID: <mb-plan@example.org>\n\nThe plan.\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	sync("push")
	state := clState(t, b.imapAddr)
	// mbsync CREATEs Projects and does not SUBSCRIBE it; CREATE subscribes
	// nothing (as Dovecot, and as RFC 3501 leaves subscriptions to clients).
	want := `INBOX (\HasNoChildren) subscribed uidnext=6
  1 <tb-1@example.org> (\Flagged)
  3 <tb-3@example.org> ()
  5 <tb-5@example.org> (\Seen)
Archive (\HasNoChildren \Archive) subscribed uidnext=2
  1 <tb-2@example.org> (\Seen)
Drafts (\HasNoChildren \Drafts) subscribed uidnext=1
Junk (\HasNoChildren \Junk) subscribed uidnext=1
Projects (\HasNoChildren) uidnext=2
  1 <mb-plan@example.org> ()
Sent (\HasNoChildren \Sent) subscribed uidnext=1
Trash (\HasNoChildren \Trash) subscribed uidnext=1
`
	clDiff(t, "server state after mbsync pushed", clRender(state, false, false), want)

	// The next sync is a no-op on both sides.
	localBefore := clRenderLocal(clMaildir(t, local))
	serverBefore := clRender(state, true, true)
	sync("no-op")
	clDiff(t, "Maildir after a sync with nothing to do", clRenderLocal(clMaildir(t, local)), localBefore)
	clDiff(t, "server after a sync with nothing to do", clRender(clState(t, b.imapAddr), true, true), serverBefore)

	// Folders, flags and UIDs survive a restart, and mbsync agrees.
	clRestart(t, b)
	clDiff(t, "server after a restart", clRender(clState(t, b.imapAddr), true, true), serverBefore)
	sync("after restart")
	clDiff(t, "Maildir after a sync following a restart", clRenderLocal(clMaildir(t, local)), localBefore)
}
