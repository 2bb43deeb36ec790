package maildirexport_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/maildirexport"
	"github.com/imapbridge/imapbridge/pop3"
)

// exportFixture exports alice from a read-only handle on the fixture's
// data directory while the bridge that owns it stays open and serving.
func exportFixture(t *testing.T, f *fixture) (string, *maildirexport.Report) {
	t.Helper()
	ro, err := bridge.OpenReadOnly(f.ctx, bridge.Options{DataDir: f.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	target := filepath.Join(t.TempDir(), "Maildir")
	rep, err := maildirexport.Export(f.ctx, ro, "alice", target, maildirexport.Options{HostUIDL: faceHostUIDL, Logger: testLogger()})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return target, rep
}

// TestDovecotServesExport: a stock Dovecot started on the export shows,
// over IMAP, exactly what the bridge shows — every mailbox with its
// UIDVALIDITY, UIDNEXT, special use and subscription, every message with
// its UID, flags, keywords, INTERNALDATE, size and BODY[] bytes — and,
// over POP3, the legacy host's UIDLs.
func TestDovecotServesExport(t *testing.T) {
	f := newFixture(t)
	target, rep := exportFixture(t, f)

	// The files, before Dovecot touches them.
	wantNested := ".Projekte.&ANw-berblick &- Co"
	for _, dir := range []string{wantNested, `.Mr\2e Smith.v1\2e2`, `.\7ehome\5cdir`} {
		if _, err := os.Stat(filepath.Join(target, dir, "maildirfolder")); err != nil {
			t.Errorf("folder: %v", err)
		}
	}
	uidlist, err := os.ReadFile(filepath.Join(target, "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(uidlist), "\n"), "\n")
	var inbox maildirexport.MailboxReport
	for _, m := range rep.Users[0].Mailboxes {
		if m.Name == "INBOX" {
			inbox = m
		}
	}
	if ok, _ := regexp.MatchString(`^3 V`+strconv.FormatUint(uint64(inbox.UIDValidity), 10)+` N`+strconv.FormatUint(uint64(inbox.UIDNext), 10)+` G[0-9a-f]{32}$`, lines[0]); !ok {
		t.Errorf("INBOX dovecot-uidlist header %q (UIDVALIDITY %d, UIDNEXT %d)", lines[0], inbox.UIDValidity, inbox.UIDNext)
	}
	if inbox.UIDLs != len(f.legacyUIDLs) {
		t.Errorf("report: %d INBOX messages with a UIDL, want %d", inbox.UIDLs, len(f.legacyUIDLs))
	}
	if !strings.HasPrefix(lines[1], "1 P"+f.legacyUIDLs[0]+" :") {
		t.Errorf("first INBOX record %q, want UID 1 with P%s", lines[1], f.legacyUIDLs[0])
	}
	subs, err := os.ReadFile(filepath.Join(target, "subscriptions"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "V\t2\n\nINBOX\nAlt\nArchive\nDrafts\nINBOX\tAblage\nMr\\2e Smith\nMr\\2e Smith\tv1\\2e2\nProjekte\nProjekte\t&ANw-berblick &- Co\nSent\nTrash\n\\7ehome\\5cdir\n"; string(subs) != want {
		t.Errorf("subscriptions = %q, want %q", subs, want)
	}
	conf, conflicts := rep.DovecotConfig()
	if len(conflicts) > 0 {
		t.Errorf("conflicts: %v", conflicts)
	}
	// Dovecot runs with the README's settings, exactly as written there.
	if readme := readmeBlock(t, "dovecot"); conf != readme {
		t.Errorf("the export's Dovecot settings differ from the README's:\n%s\nREADME:\n%s", conf, readme)
	} else {
		conf = readme
	}

	want := dumpIMAP(t, f.imapAddr, "alice", bridgePassword)
	// The fixture is what the test means it to be.
	names := map[string]imapMailbox{}
	for _, m := range want {
		names[m.Name] = m
	}
	for name, attrs := range map[string]string{
		"INBOX": `\Subscribed`, "Sent": `\Sent \Subscribed`, "Junk": `\Junk`, "Ungelesen": "",
		nested: `\Subscribed`, "Archive": `\Archive \Subscribed`,
	} {
		if m, ok := names[name]; !ok || m.Attrs != attrs {
			t.Fatalf("bridge mailbox %q: %+v (want attrs %q)", name, m.Attrs, attrs)
		}
	}
	if s := names["(subscriptions)"].Attrs; s != "Alt (nonexistent), Archive, Drafts, INBOX, INBOX/Ablage, Mr. Smith, Mr. Smith/v1.2, Projekte, "+nested+", Sent, Trash, ~home\\dir" {
		t.Fatalf("bridge subscriptions: %s", s)
	}
	if s := names["Sent"]; s.UIDNext != 4 || len(s.Messages) != 2 {
		t.Fatalf("bridge Sent: UIDNEXT %d, %d messages", s.UIDNext, len(s.Messages))
	}
	if in := names["INBOX"]; in.Messages[1].UID != 3 {
		t.Fatalf("bridge INBOX: second UID %d, want 3 (2 expunged)", in.Messages[1].UID)
	}

	srv := dovecottest.StartIMAP(t, dovecottest.IMAPOptions{
		Users:       []dovecottest.MaildirUser{{Name: "alice", Password: exportPassword, Maildir: target}},
		ExtraConfig: conf,
	})
	got := dumpIMAP(t, srv.IMAPAddr(), "alice", exportPassword)
	compareIMAP(t, want, got)
	for _, line := range strings.Split(srv.Log(), "\n") {
		if strings.Contains(line, "Error:") || strings.Contains(line, "Warning:") || strings.Contains(line, "Panic:") {
			t.Errorf("dovecot complained: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("dovecot log:\n%s", srv.Log())
	}

	// A mailbox created in Dovecot gets a UIDVALIDITY above every one
	// the bridge handed out, deleted mailboxes' included.
	var highest uint32
	for _, m := range rep.Users[0].Mailboxes {
		highest = max(highest, uint32(m.UIDValidity))
	}
	if got := createAndExamine(t, srv.IMAPAddr(), "alice", exportPassword, "Neu"); got != rep.LastUIDValidity+1 || got <= highest {
		t.Errorf("new mailbox in Dovecot: UIDVALIDITY %d, want %d (the bridge's last + 1; highest exported %d)", got, rep.LastUIDValidity+1, highest)
	}

	// POP3: the legacy host's UIDLs, then Dovecot's own for the message
	// that came from no host.
	uidls := pop3UIDLs(t, srv.Addr(), "alice", exportPassword)
	if len(uidls) != len(f.legacyUIDLs)+1 {
		t.Fatalf("exported POP3 maildrop lists %d UIDLs, want %d: %q", len(uidls), len(f.legacyUIDLs)+1, uidls)
	}
	if !slices.Equal(uidls[:len(f.legacyUIDLs)], f.legacyUIDLs) {
		t.Errorf("UIDLs over POP3:\n got %q\nwant %q", uidls[:len(f.legacyUIDLs)], f.legacyUIDLs)
	}
	if slices.Contains(f.legacyUIDLs, uidls[len(uidls)-1]) {
		t.Errorf("the appended message got a legacy UIDL %q", uidls[len(uidls)-1])
	}
	// And RETR gives a POP3 client the host's bytes.
	hostMsgs, exported := pop3Messages(t, f.legacy.Addr(), "alice", legacyPassword), pop3Messages(t, srv.Addr(), "alice", exportPassword)
	for _, uidl := range f.legacyUIDLs {
		if h, e := hostMsgs[uidl], exported[uidl]; len(h) == 0 || !bytes.Equal(h, e) {
			t.Errorf("RETR of %s: host %d bytes, export %d bytes, first difference at %d", uidl, len(h), len(e), firstDiff(h, e))
		}
	}
}

// readmeBlock returns the README's fenced block of the language given.
func readmeBlock(t *testing.T, lang string) string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "\n```"+lang+"\n")
	if !ok {
		t.Fatalf("README.md has no ```%s block", lang)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("README.md: the ```%s block does not end", lang)
	}
	return block + "\n"
}

// TestDovecotDuplicateHostUIDLs: a broken legacy host that lists every
// message under one UIDL (the pop3 package then stores the later ones as
// "UIDL#<fingerprint>"). The export follows the bridge's POP3 face
// (bridge.AssignPOP3UIDLs), not the host: the first message keeps the
// host's UIDL, the later ones get the face's generated UIDLs. It used to
// reproduce the host's duplicates; the rule changed so that a POP3 client
// moved from the bridge's POP3 face to the exported Dovecot (the path
// deploy/RETIRING.md walks) downloads nothing again, and RFC 1939 wants
// UIDLs unique anyway.
func TestDovecotDuplicateHostUIDLs(t *testing.T) {
	ctx := context.Background()
	legacy := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: legacyPassword}}, UIDLFormat: "%08Xv"})
	for i := range 3 {
		legacy.Deliver("alice", []byte(fmt.Sprintf("Subject: dup %d\n\nbody %d\n", i, i)))
	}
	host := pop3UIDLs(t, legacy.Addr(), "alice", legacyPassword)
	if len(host) != 3 || host[0] != host[1] || host[1] != host[2] {
		t.Fatalf("the host does not list one UIDL for all: %q", host)
	}
	dataDir := t.TempDir()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dataDir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, _ := b.User(ctx, "alice")
	src := pop3.NewSource(pop3.SourceConfig{Name: sourceName, Address: legacy.Addr(), TLS: pop3.TLSNone, Timeout: 30 * time.Second}, testLogger())
	if _, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice", SourceUser: "alice", Password: legacyPassword}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "Maildir")
	rep, err := maildirexport.Export(ctx, b, "alice", target, maildirexport.Options{HostUIDL: faceHostUIDL})
	if err != nil {
		t.Fatal(err)
	}
	if mr := rep.Users[0].Mailboxes[0]; mr.UIDLs != 1 || mr.GeneratedUIDLs != 2 {
		t.Fatalf("INBOX exported with %d host and %d generated UIDLs, want 1 and 2", mr.UIDLs, mr.GeneratedUIDLs)
	}
	inbox, err := u.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	listing, err := inbox.POP3Listing(ctx, faceHostUIDL)
	if err != nil {
		t.Fatal(err)
	}
	var face []string
	for _, e := range listing {
		face = append(face, e.UIDL)
	}
	want := []string{host[0], bridge.GeneratedUIDL(inbox.Info().UIDValidity, 2), bridge.GeneratedUIDL(inbox.Info().UIDValidity, 3)}
	if !slices.Equal(face, want) {
		t.Fatalf("the bridge's POP3 face lists %q, want %q", face, want)
	}
	conf, _ := rep.DovecotConfig()
	srv := dovecottest.StartIMAP(t, dovecottest.IMAPOptions{
		Users:       []dovecottest.MaildirUser{{Name: "alice", Password: exportPassword, Maildir: target}},
		ExtraConfig: conf,
	})
	if got := pop3UIDLs(t, srv.Addr(), "alice", exportPassword); !slices.Equal(got, face) {
		t.Errorf("exported Dovecot lists UIDLs %q, the bridge's POP3 face %q", got, face)
	}
}

// faceHostUIDL is the wiring's rule (cmd/imapbridge hostUIDLs) for this
// package's one POP3 source.
func faceHostUIDL(source string, id bridge.SourceID) (string, bool) {
	if source != sourceName {
		return "", false
	}
	return pop3.HostUIDL(id)
}
