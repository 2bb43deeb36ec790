package imapfront_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestList(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	c.login("alice")
	c.ok("CREATE Projects/2024/Q1")
	c.ok(`CREATE "Entw&APw-rfe"`) // modified UTF-7 for "Entwürfe"
	// CREATE subscribes nothing: the client does.
	c.ok("SUBSCRIBE Projects/2024")
	c.ok("SUBSCRIBE Projects/2024/Q1")
	c.ok(`SUBSCRIBE "Entw&APw-rfe"`)
	c.ok("UNSUBSCRIBE Junk")

	tests := []struct {
		name string
		cmd  string
		want []string
	}{
		{"all", `LIST "" "*"`, []string{
			`* LIST (\HasNoChildren) "/" INBOX`,
			`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
			`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
			`* LIST (\HasNoChildren) "/" "Entw&APw-rfe"`,
			`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
			`* LIST (\HasChildren) "/" "Projects"`,
			`* LIST (\HasChildren) "/" "Projects/2024"`,
			`* LIST (\HasNoChildren) "/" "Projects/2024/Q1"`,
			`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
			`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
		}},
		{"top level", `LIST "" "%"`, []string{
			`* LIST (\HasNoChildren) "/" INBOX`,
			`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
			`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
			`* LIST (\HasNoChildren) "/" "Entw&APw-rfe"`,
			`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
			`* LIST (\HasChildren) "/" "Projects"`,
			`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
			`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
		}},
		{"reference", `LIST "Projects" "%"`, []string{
			`* LIST (\HasChildren) "/" "Projects/2024"`,
		}},
		{"inbox any case", `LIST "" "inbox"`, []string{
			`* LIST (\HasNoChildren) "/" INBOX`,
		}},
		{"delimiter", `LIST "" ""`, []string{
			`* LIST (\Noselect) "/" ""`,
		}},
		{"special-use selection", `LIST (SPECIAL-USE) "" "*"`, []string{
			`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
			`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
			`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
			`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
			`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
		}},
		{"subscribed", `LIST (SUBSCRIBED) "" "P*"`, []string{
			`* LIST (\HasChildren \Subscribed) "/" "Projects/2024"`,
			`* LIST (\HasNoChildren \Subscribed) "/" "Projects/2024/Q1"`,
		}},
		{"recursivematch", `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`, []string{
			`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
			`* LIST (\HasNoChildren \Subscribed \Archive) "/" "Archive"`,
			`* LIST (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"`,
			`* LIST (\HasNoChildren \Subscribed) "/" "Entw&APw-rfe"`,
			`* LIST (\HasChildren) "/" "Projects" ("CHILDINFO" ("SUBSCRIBED"))`,
			`* LIST (\HasNoChildren \Subscribed \Sent) "/" "Sent"`,
			`* LIST (\HasNoChildren \Subscribed \Trash) "/" "Trash"`,
		}},
		{"return subscribed", `LIST "" "Junk" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)`, []string{
			`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
		}},
		{"return status", `LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE))`, []string{
			`* LIST (\HasNoChildren) "/" INBOX`,
			`* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UNSEEN 0 SIZE 0)`,
		}},
		{"lsub", `LSUB "" "*"`, []string{
			`* LSUB (\HasNoChildren \Subscribed) "/" INBOX`,
			`* LSUB (\HasNoChildren \Subscribed \Archive) "/" "Archive"`,
			`* LSUB (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"`,
			`* LSUB (\HasNoChildren \Subscribed) "/" "Entw&APw-rfe"`,
			`* LSUB (\HasChildren \Subscribed) "/" "Projects/2024"`,
			`* LSUB (\HasNoChildren \Subscribed) "/" "Projects/2024/Q1"`,
			`* LSUB (\HasNoChildren \Subscribed \Sent) "/" "Sent"`,
			`* LSUB (\HasNoChildren \Subscribed \Trash) "/" "Trash"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.ok(tt.cmd); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s:\n got %s\nwant %s", tt.cmd, strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestSelectAndStatus(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3))
	e.appendMsg("alice", "INBOX", simpleMsg(4), []string{`\Seen`, "$Work"}, time.Time{})
	c := e.raw()
	c.login("alice")
	st := c.ok("STATUS INBOX (MESSAGES UIDNEXT UNSEEN DELETED SIZE RECENT APPENDLIMIT)")
	size := 0
	for i := 1; i <= 4; i++ {
		size += len(simpleMsg(i))
	}
	want := "* STATUS INBOX (MESSAGES 4 UIDNEXT 5 UNSEEN 3 DELETED 0 SIZE " + strconv.Itoa(size) + " APPENDLIMIT 67108864 RECENT 4)"
	if len(st) != 1 || st[0] != want {
		t.Errorf("STATUS:\n got %q\nwant %q", st, want)
	}

	got := c.ok("SELECT INBOX")
	uv := uidValidity(t, got)
	wantSel := []string{
		"* 4 EXISTS",
		"* 4 RECENT", // the first session to select INBOX takes them
		"* OK [UNSEEN 1] First unseen message",
		"* OK [UIDVALIDITY " + uv + "] UIDs valid",
		"* OK [UIDNEXT 5] Predicted next UID",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work \*)] Permanent flags`,
	}
	if !reflect.DeepEqual(got, wantSel) {
		t.Errorf("SELECT:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(wantSel, "\n     "))
	}
	if got := c.ok("STATUS INBOX (RECENT)"); got[0] != "* STATUS INBOX (RECENT 0)" {
		t.Errorf("STATUS after SELECT took the recent messages: %q", got)
	}
	_, status := c.cmd("EXAMINE INBOX")
	if status != "OK [READ-ONLY] EXAMINE completed" {
		t.Errorf("EXAMINE: %q", status)
	}
	got = c.ok("EXAMINE Sent")
	if got[0] != "* OK [CLOSED] Previous mailbox is now closed" || got[len(got)-1] != "* OK [PERMANENTFLAGS ()] Permanent flags" {
		t.Errorf("EXAMINE Sent: %q", got)
	}
}

func uidValidity(t *testing.T, lines []string) string {
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "* OK [UIDVALIDITY "); ok {
			return rest[:strings.IndexByte(rest, ']')]
		}
	}
	t.Fatalf("no UIDVALIDITY in %q", lines)
	return ""
}

func TestMailboxErrors(t *testing.T) {
	e := newEnv(t)
	c := e.raw()
	c.login("alice")
	c.ok("CREATE Work/Clients")
	tests := []struct {
		cmd, want string
	}{
		{"SELECT Nope", "NO [NONEXISTENT] Mailbox does not exist"},
		{`CREATE ""`, "NO [CANNOT] Invalid mailbox name: empty"},
		{"CREATE Lists/", "OK CREATE completed"}, // trailing delimiter: creates "Lists"
		{`CREATE "a*b"`, `NO [CANNOT] Invalid mailbox name: contains wildcard '*'`},
		{"STATUS Nope (MESSAGES)", "NO [NONEXISTENT] Mailbox does not exist"},
		{"CREATE Work", "NO [ALREADYEXISTS] Mailbox already exists"},
		{"CREATE inbox", "NO [ALREADYEXISTS] Mailbox already exists"},
		{"CREATE Work/../x", `NO [CANNOT] Invalid mailbox name: level ".." not allowed`},
		{"CREATE a//b", `NO [CANNOT] Invalid mailbox name: empty level in "a//b"`},
		{`CREATE "&AOk-t&AOk-"`, "OK CREATE completed"}, // "été" in modified UTF-7
		{"CREATE Things (USE (\\Important))", "NO [USEATTR] Unsupported special-use attribute \\Important"},
		{"CREATE Outbox (USE (\\Sent))", "OK CREATE completed"},
		{"DELETE INBOX", "NO [CANNOT] INBOX cannot be deleted"},
		{"DELETE Work", "NO [HASCHILDREN] Mailbox has child mailboxes; delete them first"},
		{"DELETE Nope", "NO [NONEXISTENT] Mailbox does not exist"},
		{"RENAME Nope Other", "NO [NONEXISTENT] Mailbox does not exist"},
		{"RENAME Work Sent", "NO [ALREADYEXISTS] Mailbox already exists"},
		{"RENAME Work Work/Sub", `NO [CANNOT] Invalid mailbox name: cannot rename "Work" into itself`},
		{"RENAME Work Jobs", "OK RENAME completed"},
		{"DELETE Jobs/Clients", "OK DELETE completed"},
		{"SUBSCRIBE Nope", "NO [NONEXISTENT] Mailbox does not exist"},
		{"STATUS INBOX (DELETED-STORAGE)", "BAD Unsupported STATUS data item"},
	}
	for _, tt := range tests {
		if _, got := c.cmd(tt.cmd); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.cmd, got, tt.want)
		}
	}
	got := c.ok(`LIST "" "*" RETURN (SPECIAL-USE)`)
	joined := strings.Join(got, "\n")
	for _, want := range []string{`"/" "Jobs"`, `(\HasNoChildren \Sent) "/" "Outbox"`, `"/" "&AOk-t&AOk-"`, `"/" "Lists"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("LIST lacks %s:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "Work") {
		t.Errorf("renamed mailbox still listed:\n%s", joined)
	}
}

func TestListWithClient(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice")
	if err := c.Create("Archive/2023", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
		if l.Status == nil || l.Status.NumMessages == nil {
			t.Errorf("%s: no STATUS", l.Mailbox)
		}
	}
	want := []string{"INBOX", "Archive", "Archive/2023", "Drafts", "Junk", "Sent", "Trash"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	sel, err := c.Select("Archive/2023", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 0 || sel.UIDNext != 1 {
		t.Errorf("select %+v", sel)
	}
}
