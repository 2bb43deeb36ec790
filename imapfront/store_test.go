package imapfront_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/imapfront"
)

func TestStore(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2))
	c := e.raw()
	c.login("alice")
	// This session is the first to select INBOX since the messages arrived:
	// they are \Recent here (RFC 3501 section 2.3.2), and \Recent cannot
	// be stored or removed.
	c.ok("SELECT INBOX")
	tests := []struct {
		cmd    string
		want   []string
		status string
	}{
		{`STORE 1 FLAGS (\seen \FLAGGED $Custom)`, []string{`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Custom)`, `* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Custom \*)] Permanent flags`, `* 1 FETCH (FLAGS ($Custom \Flagged \Seen \Recent))`}, "OK STORE completed"},
		{`STORE 1 +FLAGS (\answered $custom NonJunk)`, []string{`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Custom NonJunk)`, `* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Custom NonJunk \*)] Permanent flags`, `* 1 FETCH (FLAGS ($Custom NonJunk \Answered \Flagged \Seen \Recent))`}, "OK STORE completed"},
		{`STORE 1 -FLAGS ($CUSTOM \Flagged)`, []string{`* 1 FETCH (FLAGS (NonJunk \Answered \Seen \Recent))`}, "OK STORE completed"},
		{`UID STORE 1:2 +FLAGS (\Draft)`, []string{`* 1 FETCH (UID 1 FLAGS (NonJunk \Answered \Draft \Seen \Recent))`, `* 2 FETCH (UID 2 FLAGS (\Draft \Recent))`}, "OK UID STORE completed"},
		{`STORE 2 +FLAGS.SILENT (\Seen)`, nil, "OK STORE completed"},
		{`STORE 2 -FLAGS \Draft`, []string{`* 2 FETCH (FLAGS (\Seen \Recent))`}, "OK STORE completed"},
		{`STORE 2 -FLAGS (\Recent)`, []string{`* 2 FETCH (FLAGS (\Seen \Recent))`}, "OK STORE completed"},
		{`STORE 2 +FLAGS (\Bogus)`, nil, "BAD [CLIENTBUG] Invalid system flag \\Bogus"},
		{`STORE 9 +FLAGS (\Seen)`, nil, "BAD [CLIENTBUG] No such message: the last message is 2"},
		{`UID STORE 9 +FLAGS (\Seen)`, nil, "OK UID STORE completed"},
		{`STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\Seen)`, nil, "BAD"},
		{`FETCH 1:2 (FLAGS)`, []string{`* 1 FETCH (FLAGS (NonJunk \Answered \Draft \Seen \Recent))`, `* 2 FETCH (FLAGS (\Seen \Recent))`}, "OK FETCH completed"},
	}
	for _, tt := range tests {
		got, status := c.cmd(tt.cmd)
		if !strings.HasPrefix(status, tt.status) {
			t.Errorf("%s: status %q, want %q", tt.cmd, status, tt.status)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.cmd, got, tt.want)
		}
	}
	// Stored with their canonical case, as a fresh session sees them (no
	// longer \Recent: the first session took that).
	c2 := e.client("alice")
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, c2, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true})
	if want := []imap.Flag{"NonJunk", imap.FlagAnswered, imap.FlagDraft, imap.FlagSeen}; !reflect.DeepEqual(m.Flags, want) {
		t.Errorf("stored flags %q, want %q", m.Flags, want)
	}
}

func TestReadOnly(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2))
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	c.ok("EXAMINE INBOX")
	for _, cmd := range []string{"STORE 2 +FLAGS (\\Seen)", "EXPUNGE", "UID EXPUNGE 1", "MOVE 1 Trash"} {
		if _, status := c.cmd(cmd); status != "NO [READ-ONLY] Mailbox is open read-only" {
			t.Errorf("%s in EXAMINE: %q", cmd, status)
		}
	}
	if got := c.ok("COPY 2 Trash"); len(got) != 0 {
		t.Errorf("COPY: %q", got)
	}
	if got := c.ok("CLOSE"); len(got) != 0 {
		t.Errorf("CLOSE: %q", got)
	}
	if got := c.ok("SELECT INBOX"); got[0] != "* 2 EXISTS" {
		t.Errorf("CLOSE after EXAMINE expunged: %q", got)
	}
}

func TestExpunge(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3), simpleMsg(4))
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
	if got := c.ok("UID EXPUNGE 2,4"); !reflect.DeepEqual(got, []string{"* 2 EXPUNGE"}) {
		t.Errorf("UID EXPUNGE: %q", got)
	}
	if got := c.ok("EXPUNGE"); !reflect.DeepEqual(got, []string{"* 1 EXPUNGE", "* 1 EXPUNGE"}) {
		t.Errorf("EXPUNGE: %q", got)
	}
	if got := c.ok("UID FETCH 1:* (UID)"); !reflect.DeepEqual(got, []string{"* 1 FETCH (UID 4)"}) {
		t.Errorf("left: %q", got)
	}
	c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	if got := c.ok("CLOSE"); len(got) != 0 {
		t.Errorf("CLOSE: %q", got)
	}
	if got := c.ok("STATUS INBOX (MESSAGES)"); got[0] != "* STATUS INBOX (MESSAGES 0)" {
		t.Errorf("after CLOSE: %q", got)
	}
}

func TestCopyMoveWithClient(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3))
	c := e.client("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Keep"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	cd, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("Archive", &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cd.UIDValidity != st.UIDValidity || cd.SourceUIDs.String() != "1:2" || cd.DestUIDs.String() != "1:2" {
		t.Errorf("COPYUID %+v", cd)
	}
	md, err := c.Move(imap.UIDSetNum(3), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if md.SourceUIDs.String() != "3" || md.DestUIDs.String() != "3" {
		t.Errorf("MOVE COPYUID %+v", md)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); err == nil || !strings.Contains(err.Error(), "TRYCREATE") {
		t.Errorf("COPY to missing mailbox: %v", err)
	}
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || !reflect.DeepEqual(msgs[0].Flags, []imap.Flag{"$Keep", `\Recent`}) || string(msgs[2].BodySection[0].Bytes) != simpleMsg(3) {
		t.Errorf("copied messages %+v", msgs)
	}
}

func TestAppend(t *testing.T) {
	e := newEnv(t, withServer(func(o *imapfront.Options) { o.AppendLimit = 5000 }))
	c := e.client("alice")
	date := time.Date(2023, 12, 24, 18, 30, 0, 0, time.FixedZone("", 3600))
	msg := simpleMsg(7)
	cmd := c.Append("Drafts", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{`\draft`, "Later"}, Time: date})
	cmd.Write([]byte(msg))
	cmd.Close()
	data, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("Drafts", &imap.StatusOptions{UIDValidity: true, NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.UID != 1 || data.UIDValidity != st.UIDValidity || *st.NumMessages != 1 {
		t.Errorf("APPENDUID %+v, status %+v", data, st)
	}
	if _, err := c.Select("Drafts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if !m.InternalDate.Equal(date) || m.RFC822Size != int64(len(msg)) || !reflect.DeepEqual(m.Flags, []imap.Flag{"Later", imap.FlagDraft, `\Recent`}) || string(m.BodySection[0].Bytes) != msg {
		t.Errorf("appended message: date %v size %d flags %q", m.InternalDate, m.RFC822Size, m.Flags)
	}

	raw := e.raw()
	raw.login("alice")
	tests := []struct{ cmd, want string }{
		{"APPEND INBOX {5001}", "NO [TOOBIG] Literals are limited to 5000 bytes for this command"},
		{"APPEND Nope {1+}\r\nx", "NO [TRYCREATE] Mailbox does not exist"},
		{"APPEND INBOX (\\Bogus) {1+}\r\nx", "BAD [CLIENTBUG] Invalid system flag \\Bogus"},
		{"APPEND INBOX {1+}\r\nx", "OK [APPENDUID "},
	}
	for _, tt := range tests {
		if _, got := raw.cmd(tt.cmd); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.cmd, got, tt.want)
		}
	}
	if got := raw.ok("NOOP"); len(got) != 0 {
		t.Errorf("NOOP after refused APPEND: %q", got)
	}
}
