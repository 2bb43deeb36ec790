package imapfront_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestKeywordCap: 25,000 keywords tried on one mailbox, 50 a STORE, stop at
// the default cap of 256 with NO [LIMIT] naming it; SELECT's FLAGS line
// stays a few kilobytes; APPEND and COPY cannot bring more either.
func TestKeywordCap(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))
	e.appendMsg("alice", "Archive", simpleMsg(2), []string{"$Elsewhere"}, time.Now())
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	const limitText = "NO [LIMIT] Too many keywords in a mailbox (limit 256)"
	ok, refused := 0, 0
	for i := 0; i < 25000; i += 50 {
		kw := make([]string, 50)
		for j := range kw {
			kw[j] = "k" + strconv.Itoa(i+j)
		}
		_, status := c.cmd("STORE 1 +FLAGS.SILENT (" + strings.Join(kw, " ") + ")")
		switch {
		case strings.HasPrefix(status, "OK"):
			ok++
		case status == limitText:
			refused++
		default:
			t.Fatalf("STORE: %q", status)
		}
	}
	if ok != 5 || refused != 495 {
		t.Fatalf("%d STOREs accepted and %d refused, want 5 (250 keywords) and 495", ok, refused)
	}
	for i := 0; i < 10; i++ { // one at a time up to the cap exactly
		_, status := c.cmd(fmt.Sprintf("STORE 1 +FLAGS.SILENT (one%d)", i))
		if want := i < 6; strings.HasPrefix(status, "OK") != want {
			t.Fatalf("keyword %d: %q", 251+i, status)
		}
	}
	// A keyword already in use is always accepted, and removing frees room.
	c.ok("STORE 1 -FLAGS.SILENT (k0)")
	c.ok("STORE 1 +FLAGS.SILENT (k0 k1)")
	msg := simpleMsg(3)
	if _, status := c.cmd("APPEND INBOX ($Brand-new) {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg); status != limitText {
		t.Errorf("APPEND with a new keyword: %q", status)
	}
	if _, status := c.cmd("APPEND INBOX (k5) {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg); !strings.HasPrefix(status, "OK") {
		t.Errorf("APPEND with a keyword in use: %q", status)
	}
	arch := e.raw()
	arch.login("alice")
	arch.ok("SELECT Archive")
	if _, status := arch.cmd("COPY 1 INBOX"); status != limitText {
		t.Errorf("COPY bringing a new keyword: %q", status)
	}
	if _, status := arch.cmd("MOVE 1 INBOX"); status != limitText {
		t.Errorf("MOVE bringing a new keyword: %q", status)
	}
	var flagsLine string
	ex := e.raw()
	ex.login("alice")
	for _, l := range ex.ok("EXAMINE INBOX") {
		if strings.HasPrefix(l, "* FLAGS (") {
			flagsLine = l
		}
	}
	if n := len(strings.Fields(flagsLine)) - 2; n != 5+256 {
		t.Errorf("FLAGS names %d flags, want 5 system flags and 256 keywords", n)
	}
	if len(flagsLine) > 4096 {
		t.Errorf("FLAGS line %d bytes", len(flagsLine))
	}
}

// TestMailboxCap: CREATE past MaxMailboxesPerUser (INBOX and the five
// special-use mailboxes count) is NO [LIMIT] naming the limit, parents
// created on the way included; DELETE makes room again.
func TestMailboxCap(t *testing.T) {
	e := newEnv(t, withBridge(func(o *bridge.Options) { o.MaxMailboxesPerUser = 10 }))
	c := e.raw()
	c.login("alice")
	for i := 1; i <= 4; i++ {
		c.ok(fmt.Sprintf("CREATE box%d", i))
	}
	const limitText = "NO [LIMIT] Too many mailboxes (limit 10)"
	if _, status := c.cmd("CREATE box5"); status != limitText {
		t.Errorf("the 11th mailbox: %q", status)
	}
	c.ok("DELETE box4")
	if _, status := c.cmd("CREATE a/b"); status != limitText {
		t.Errorf("CREATE a/b, two mailboxes, with room for one: %q", status)
	}
	c.ok("CREATE a")
	if got := c.ok(`LIST "" *`); len(got) != 10 {
		t.Errorf("LIST: %d mailboxes, want 10: %q", len(got), got)
	}
}

// TestQuota: repeated COPY 1:* INBOX doubles the mailbox until the
// message quota answers NO [OVERQUOTA]; nothing of the refused COPY is
// stored, state.db stays small, a MOVE (which adds nothing) still works at
// the quota, and the byte quota refuses an APPEND past it.
func TestQuota(t *testing.T) {
	dir := t.TempDir()
	quota := bridge.Quota{Messages: 100, Bytes: 1 << 20}
	e := newEnv(t, withDataDir(dir), withBridge(func(o *bridge.Options) {
		o.Quota = func(user string) bridge.Quota {
			if user == "alice" {
				return quota
			}
			return bridge.Quota{}
		}
	}))
	kw := make([]string, 200)
	for i := range kw {
		kw[i] = "k" + strconv.Itoa(i)
	}
	e.appendMsg("alice", "INBOX", simpleMsg(1), kw, time.Now())
	e.appendMsg("alice", "INBOX", simpleMsg(2), kw, time.Now())
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	var statuses []string
	for i := 0; i < 11; i++ {
		_, status := c.cmd("COPY 1:* INBOX")
		statuses = append(statuses, strings.Join(strings.Fields(status)[:2], " "))
		if strings.HasPrefix(status, "NO") && status != "NO [OVERQUOTA] Quota exceeded: 64 messages stored, 64 more would pass the limit of 100" {
			t.Errorf("COPY %d: %q", i+1, status)
		}
	}
	want := "OK [COPYUID OK [COPYUID OK [COPYUID OK [COPYUID OK [COPYUID NO [OVERQUOTA] NO [OVERQUOTA] NO [OVERQUOTA] NO [OVERQUOTA] NO [OVERQUOTA] NO [OVERQUOTA]"
	if got := strings.Join(statuses, " "); got != want {
		t.Errorf("COPY answers:\n got %s\nwant %s", got, want)
	}
	usage, err := e.user("alice").Usage(e.ctx)
	if err != nil || usage.Messages != 64 {
		t.Errorf("usage %+v, %v; want 64 messages", usage, err)
	}
	c.ok("MOVE 1:10 Archive")
	e.close()
	var total int64
	for _, f := range []string{"state.db", "state.db-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			total += fi.Size()
		}
	}
	if total > 4<<20 {
		t.Errorf("state.db and its WAL hold %d bytes for 64 small messages", total)
	}

	quota = bridge.Quota{Bytes: 64*int64(len(simpleMsg(1))) + 100}
	e = newEnv(t, withDataDir(dir), withBridge(func(o *bridge.Options) {
		o.Quota = func(string) bridge.Quota { return quota }
	}))
	c = e.raw()
	c.login("alice")
	msg := simpleMsg(3)
	if _, status := c.cmd("APPEND INBOX {" + strconv.Itoa(len(msg)) + "+}\r\n" + msg); !strings.HasPrefix(status, "NO [OVERQUOTA] Quota exceeded: ") || !strings.Contains(status, "bytes stored") {
		t.Errorf("APPEND past the byte quota: %q", status)
	}
}
