package maildirexport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/pop3"
)

const (
	legacyPassword = "legacy-pw"
	bridgePassword = "bridge-pw"
	exportPassword = "dovecot-pw"
	sourceName     = "legacy"
)

// nested is the non-ASCII nested folder of the fixture ("&" too: modified
// UTF-7 spells it "&-").
const nested = "Projekte/Überblick & Co"

func testLogger() *slog.Logger {
	if os.Getenv("EXPORT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fixture is a bridge that fronted a real Dovecot POP3 host and was then
// used over IMAP: flags, keywords, folders, expunges, subscriptions.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	dataDir  string
	b        *bridge.Bridge
	legacy   *dovecottest.Server
	imapAddr string // imapfront over b
	// legacyUIDLs are the host's UIDLs of the messages the bridge's
	// INBOX still holds, in INBOX order.
	legacyUIDLs []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, dataDir: t.TempDir()}
	f.legacy = dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: legacyPassword}}})
	corpus := dovecottest.Corpus()
	for _, fx := range corpus {
		f.legacy.Deliver("alice", fx.Data)
	}
	var err error
	f.b, err = bridge.Open(ctx, bridge.Options{DataDir: f.dataDir, Index: imapfront.Index, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.b.Close() })
	u, err := f.b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}

	// The legacy host, through the real POP3 source and the sync engine.
	src := pop3.NewSource(pop3.SourceConfig{Name: sourceName, Address: f.legacy.Addr(), TLS: pop3.TLSNone, Timeout: 30 * time.Second}, testLogger())
	syncer := bridge.NewSyncer(f.b, bridge.SyncerOptions{Logger: testLogger()})
	syncer.Add(u, []bridge.Feed{{
		Source:       src,
		Account:      bridge.Account{User: "alice", SourceUser: "alice", Password: legacyPassword},
		Policy:       bridge.DeletePolicy{Mode: bridge.DeleteKeep},
		PollInterval: time.Hour,
	}})
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := syncer.PollAndWait(pctx, "alice"); err != nil {
		t.Fatalf("poll the legacy host: %v", err)
	}
	if err := syncer.Stop(pctx); err != nil {
		t.Fatal(err)
	}
	inbox := f.mailbox(u, "INBOX")
	if n := len(inbox.UIDs()); n != len(corpus) {
		t.Fatalf("INBOX holds %d messages after the poll, want %d", n, len(corpus))
	}
	hostUIDLs := f.hostUIDLs()

	// What a user did over IMAP since.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	store := func(mb *bridge.Mailbox, uid bridge.UID, flags ...string) {
		t.Helper()
		_, err := mb.Store(ctx, []bridge.UID{uid}, bridge.FlagsSet, flags, nil)
		must(err)
	}
	store(inbox, 1, bridge.FlagSeen)
	store(inbox, 2, bridge.FlagFlagged, "$Forwarded", bridge.FlagDeleted)
	store(inbox, 3, bridge.FlagSeen, bridge.FlagAnswered, "Project-X")
	store(inbox, 4, bridge.FlagSeen, bridge.FlagFlagged, bridge.FlagAnswered, bridge.FlagDraft, "$Label1", "Project-X")
	// UID 2 expunged: a gap, and its host UIDL no longer in INBOX.
	_, err = inbox.Expunge(ctx, []bridge.UID{2})
	must(err)
	for i, uidl := range hostUIDLs {
		if i != 1 {
			f.legacyUIDLs = append(f.legacyUIDLs, uidl)
		}
	}
	// A message that came from no POP3 host.
	appendMsg := func(mailbox, subject string, date time.Time, flags ...string) bridge.UID {
		t.Helper()
		body := fmt.Sprintf("From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@example.org>\r\n\r\n%s\r\nFrom the start of a line.\r\n", subject, date.Format(time.RFC1123Z), strings.ReplaceAll(subject, " ", "."), subject)
		_, uid, err := u.Append(ctx, mailbox, strings.NewReader(body), flags, date)
		must(err)
		return uid
	}
	zone := time.FixedZone("", -5*3600)
	appendMsg("INBOX", "appended", time.Date(2023, 12, 24, 18, 0, 5, 0, zone))
	// Sent: three, the last expunged, so UIDNEXT is past the last UID.
	appendMsg("Sent", "sent one", time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC), bridge.FlagSeen)
	appendMsg("Sent", "sent two", time.Date(2022, 2, 3, 4, 5, 6, 0, zone), bridge.FlagSeen, bridge.FlagAnswered)
	last := appendMsg("Sent", "sent three", time.Date(2022, 3, 4, 5, 6, 7, 0, time.UTC), bridge.FlagDeleted)
	_, err = f.mailbox(u, "Sent").Expunge(ctx, []bridge.UID{last})
	must(err)
	appendMsg("Drafts", "a draft", time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), bridge.FlagDraft)
	appendMsg("Trash", "thrown away", time.Date(2024, 6, 7, 8, 9, 10, 0, time.UTC), bridge.FlagSeen, bridge.FlagDeleted)
	// A nested folder with a non-ASCII name, keywords.
	// CREATE subscribes nothing; a client subscribes what it creates
	// (Thunderbird does, parents included).
	subscribe := func(name string) {
		parts := strings.Split(name, "/")
		for i := range parts {
			must(u.SetSubscribed(ctx, strings.Join(parts[:i+1], "/"), true))
		}
	}
	must(u.CreateMailbox(ctx, nested, ""))
	subscribe(nested)
	appendMsg(nested, "über alles", time.Date(2021, 7, 8, 9, 10, 11, 0, time.UTC), "Wichtig", "$Label1")
	appendMsg(nested, "noch eins", time.Date(2021, 8, 9, 10, 11, 12, 0, time.UTC), bridge.FlagSeen, "Wichtig")
	// A folder below INBOX (Maildir++: .INBOX.Ablage).
	must(u.CreateMailbox(ctx, "INBOX/Ablage", ""))
	subscribe("INBOX/Ablage")
	appendMsg("INBOX/Ablage", "filed away", time.Date(2023, 3, 3, 3, 3, 3, 0, time.UTC), bridge.FlagSeen, "Project-X")
	// Names Maildir++ cannot spell as they are: "." (its separator),
	// "\\", a leading "~" (stored escaped, read by listescape).
	must(u.CreateMailbox(ctx, "Mr. Smith/v1.2", ""))
	subscribe("Mr. Smith/v1.2")
	appendMsg("Mr. Smith/v1.2", "release notes", time.Date(2023, 4, 4, 4, 4, 4, 0, time.UTC), "Wichtig")
	must(u.CreateMailbox(ctx, `~home\dir`, ""))
	subscribe(`~home\dir`)
	// Unsubscribed folders: one made so, one the user never wanted.
	must(u.CreateMailbox(ctx, "Ungelesen", ""))
	must(u.SetSubscribed(ctx, "Ungelesen", false))
	must(u.SetSubscribed(ctx, "Junk", false))
	appendMsg("Ungelesen", "nobody reads this", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	// A subscription that outlived its mailbox.
	must(u.CreateMailbox(ctx, "Alt", ""))
	subscribe("Alt")
	must(u.DeleteMailbox(ctx, "Alt"))
	// A copy of a host message in Archive keeps its origin.
	_, _, _, err = inbox.CopyTo(ctx, []bridge.UID{3}, f.mailbox(u, "Archive"))
	must(err)

	// The bridge's IMAP face, in process.
	srv := imapfront.New(imapfront.Options{
		Bridge:            f.b,
		Logger:            testLogger(),
		AllowInsecureAuth: true,
		Authenticate: func(ctx context.Context, username, pw string, _ net.Addr) (*bridge.User, error) {
			if username != "alice" || pw != bridgePassword {
				return nil, fmt.Errorf("check %q: %w", username, imapfront.ErrAuthFailed)
			}
			return f.b.User(ctx, username)
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	f.imapAddr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("imapfront shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, imapfront.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func (f *fixture) mailbox(u *bridge.User, name string) *bridge.Mailbox {
	f.t.Helper()
	mb, err := u.Mailbox(f.ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return mb
}

// hostUIDLs lists the legacy host's UIDLs, in its order.
func (f *fixture) hostUIDLs() []string {
	return pop3UIDLs(f.t, f.legacy.Addr(), "alice", legacyPassword)
}

func pop3UIDLs(t *testing.T, addr, user, pass string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pop3.Dial(ctx, addr, pop3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, user, pass); err != nil {
		t.Fatalf("pop3 login at %s: %v", addr, err)
	}
	list, err := c.UIDL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Quit(ctx)
	sort.Slice(list, func(i, j int) bool { return list[i].Num < list[j].Num })
	out := make([]string, len(list))
	for i, u := range list {
		out[i] = string(u.UIDL)
	}
	return out
}

// pop3Messages returns every message of a maildrop by UIDL, as RETR
// sends it.
func pop3Messages(t *testing.T, addr, user, pass string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pop3.Dial(ctx, addr, pop3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, user, pass); err != nil {
		t.Fatalf("pop3 login at %s: %v", addr, err)
	}
	list, err := c.UIDL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, u := range list {
		r, err := c.Retr(ctx, u.Num)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[string(u.UIDL)] = data
	}
	c.Quit(ctx)
	return out
}

// imapMessage is what an IMAP client sees of a message.
type imapMessage struct {
	UID          imap.UID
	Flags        string // sorted, \Recent left out
	InternalDate int64  // Unix seconds: Dovecot keeps no zone
	Size         int64
	Body         []byte
}

// imapMailbox is what an IMAP client sees of a mailbox.
type imapMailbox struct {
	Name        string
	Attrs       string // special-use, \Subscribed, \NonExistent, \Noselect
	UIDValidity uint32
	UIDNext     imap.UID
	Messages    []imapMessage
}

var keptAttrs = map[imap.MailboxAttr]bool{
	imap.MailboxAttrSent: true, imap.MailboxAttrDrafts: true, imap.MailboxAttrTrash: true,
	imap.MailboxAttrJunk: true, imap.MailboxAttrArchive: true, imap.MailboxAttrAll: true,
	imap.MailboxAttrFlagged: true, imap.MailboxAttrSubscribed: true, imap.MailboxAttrNonExistent: true,
	imap.MailboxAttrNoSelect: true,
}

// dumpIMAP logs in at addr and reads every mailbox, message by message.
func dumpIMAP(t *testing.T, addr, user, pass string) []imapMailbox {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login at %s: %v", addr, err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnSubscribed: true, ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("LIST at %s: %v", addr, err)
	}
	// LIST (SUBSCRIBED): the subscriptions, a mailbox gone or not.
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatalf("LIST (SUBSCRIBED) at %s: %v", addr, err)
	}
	var subscribed []string
	for _, l := range subs {
		s := l.Mailbox
		if slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			s += " (nonexistent)"
		}
		subscribed = append(subscribed, s)
	}
	sort.Strings(subscribed)
	out := []imapMailbox{{Name: "(subscriptions)", Attrs: strings.Join(subscribed, ", ")}}
	for _, l := range list {
		if l.Delim != '/' {
			t.Errorf("%s: %q has delimiter %q, want '/'", addr, l.Mailbox, l.Delim)
		}
		mb := imapMailbox{Name: l.Mailbox}
		var attrs []string
		noselect := false
		for _, a := range l.Attrs {
			if keptAttrs[a] {
				attrs = append(attrs, string(a))
			}
			noselect = noselect || a == imap.MailboxAttrNoSelect || a == imap.MailboxAttrNonExistent
		}
		sort.Strings(attrs)
		mb.Attrs = strings.Join(attrs, " ")
		if !noselect {
			sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
			if err != nil {
				t.Fatalf("EXAMINE %q at %s: %v", l.Mailbox, addr, err)
			}
			mb.UIDValidity, mb.UIDNext = sel.UIDValidity, sel.UIDNext
			if sel.NumMessages > 0 {
				msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
					UID: true, Flags: true, InternalDate: true, RFC822Size: true,
					BodySection: []*imap.FetchItemBodySection{{Peek: true}},
				}).Collect()
				if err != nil {
					t.Fatalf("FETCH in %q at %s: %v", l.Mailbox, addr, err)
				}
				for _, m := range msgs {
					var flags []string
					for _, fl := range m.Flags {
						if fl != `\Recent` {
							flags = append(flags, string(fl))
						}
					}
					sort.Strings(flags)
					var body []byte
					if len(m.BodySection) == 1 {
						body = m.BodySection[0].Bytes
					}
					mb.Messages = append(mb.Messages, imapMessage{UID: m.UID, Flags: strings.Join(flags, " "), InternalDate: m.InternalDate.Unix(), Size: m.RFC822Size, Body: body})
				}
				sort.Slice(mb.Messages, func(i, j int) bool { return mb.Messages[i].UID < mb.Messages[j].UID })
			}
		}
		out = append(out, mb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	c.Logout().Wait()
	return out
}

// compareIMAP reports every difference between what two servers show.
func compareIMAP(t *testing.T, want, got []imapMailbox) {
	t.Helper()
	byName := map[string]imapMailbox{}
	for _, m := range got {
		byName[m.Name] = m
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		if !ok {
			t.Errorf("mailbox %q missing from the export", w.Name)
			continue
		}
		delete(byName, w.Name)
		if w.Attrs != g.Attrs || w.UIDValidity != g.UIDValidity || w.UIDNext != g.UIDNext {
			t.Errorf("mailbox %q: bridge attrs %q UIDVALIDITY %d UIDNEXT %d; export %q %d %d", w.Name, w.Attrs, w.UIDValidity, w.UIDNext, g.Attrs, g.UIDValidity, g.UIDNext)
		}
		if len(w.Messages) != len(g.Messages) {
			t.Errorf("mailbox %q: bridge has %d messages, export %d", w.Name, len(w.Messages), len(g.Messages))
			continue
		}
		for i, wm := range w.Messages {
			gm := g.Messages[i]
			if wm.UID != gm.UID || wm.Flags != gm.Flags || wm.InternalDate != gm.InternalDate || wm.Size != gm.Size {
				t.Errorf("mailbox %q message %d: bridge UID %d flags %q date %d size %d; export UID %d flags %q date %d size %d",
					w.Name, i+1, wm.UID, wm.Flags, wm.InternalDate, wm.Size, gm.UID, gm.Flags, gm.InternalDate, gm.Size)
			}
			if !bytes.Equal(wm.Body, gm.Body) {
				t.Errorf("mailbox %q UID %d: BODY[] differs (bridge %d bytes, export %d bytes; first difference at %d)", w.Name, wm.UID, len(wm.Body), len(gm.Body), firstDiff(wm.Body, gm.Body))
			}
		}
	}
	for n := range byName {
		t.Errorf("the export has a mailbox %q the bridge does not", n)
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// createAndExamine creates a mailbox and returns its UIDVALIDITY.
func createAndExamine(t *testing.T, addr, user, pass, name string) uint32 {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE %q: %v", name, err)
	}
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	return sel.UIDValidity
}
