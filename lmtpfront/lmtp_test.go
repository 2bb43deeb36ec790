package lmtpfront_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

const lhloReply = "250-Hello mta.test\n250-PIPELINING\n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n250-CHUNKING\n250-SIZE 1000\n250 LIMITS RCPTMAX=3"

func TestLHLO(t *testing.T) {
	e := newEnv(t, "", nil)
	c := e.dial()
	c.send("LHLO mta.test\n")
	if got := c.reply(); got != lhloReply {
		t.Errorf("LHLO reply:\n%s\nwant:\n%s", got, lhloReply)
	}
	for _, tc := range []struct{ send, want string }{
		{"EHLO mta.test\n", "500 5.5.1 This is a LMTP server, use LHLO"},
		{"HELO mta.test\n", "500 5.5.1 This is a LMTP server, use LHLO"},
		{"NOOP\n", "250 2.0.0 I have successfully done nothing"},
		{"QUIT\n", "221 2.0.0 Bye"},
	} {
		c.send(tc.send)
		if got := c.reply(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.send, got, tc.want)
		}
	}
}

// TestTransactions runs whole LMTP transactions, every command pipelined
// in one write (as Postfix does with PIPELINING), and checks every reply,
// each INBOX byte for byte, and the delivery counts.
func TestTransactions(t *testing.T) {
	body := message("one")
	// A line starting with a dot is sent dot-stuffed and stored without.
	dotted := "Subject: dots\n\n..leading dot\n...two\n"
	stored := func(from, rcpt, msg string) string {
		return crlf("Return-Path: <" + from + ">\nDelivered-To: " + rcpt + "\n" + msg)
	}
	big := "Subject: big\n\n" + strings.Repeat("x", 1000) + "\n"
	// Exactly one byte under the limit as received (CRLF counted).
	justUnder := "Subject: s\n\n" + strings.Repeat("y", 999-len(crlf("Subject: s\n\n\n"))) + "\n"
	justAt := "Subject: s\n\n" + strings.Repeat("y", 1000-len(crlf("Subject: s\n\n\n"))) + "\n"
	if len(crlf(justUnder)) != 999 || len(crlf(justAt)) != 1000 {
		t.Fatalf("fixture sizes %d %d", len(crlf(justUnder)), len(crlf(justAt)))
	}
	for _, tc := range []struct {
		name    string
		users   []string
		send    string
		replies []string
		inbox   map[string][]string // user → bodies
		counts  map[string]int
	}{
		{
			name:  "one recipient",
			users: []string{"alice"},
			send:  "MAIL FROM:<sender@remote.example>\nRCPT TO:<alice@test.example>\nDATA\n" + body + ".\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <sender@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
			},
			inbox:  map[string][]string{"alice": {stored("sender@remote.example", "alice@test.example", body)}},
			counts: map[string]int{"delivered": 1},
		},
		{
			name:  "three recipients, one reply each, the unknown one refused at RCPT",
			users: []string{"alice", "bob", "carol@test.example"},
			send:  "MAIL FROM:<sender@remote.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<nobody@test.example>\nRCPT TO:<bob@other.example>\nRCPT TO:<carol@test.example>\nDATA\n" + body + ".\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <sender@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"550 5.1.1 <nobody@test.example> User unknown",
				"250 2.0.0 I'll make sure <bob@other.example> gets this",
				"250 2.0.0 I'll make sure <carol@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
				"250 2.0.0 <bob@other.example> Saved as UID 1",
				"250 2.0.0 <carol@test.example> Saved as UID 1",
			},
			inbox: map[string][]string{
				"alice":              {stored("sender@remote.example", "alice@test.example", body)},
				"bob":                {stored("sender@remote.example", "bob@other.example", body)},
				"carol@test.example": {stored("sender@remote.example", "carol@test.example", body)},
			},
			counts: map[string]int{"delivered": 3, "unknown_recipient": 1},
		},
		{
			name:  "the same recipient twice: stored once, answered twice",
			users: []string{"alice"},
			send:  "MAIL FROM:<sender@remote.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<alice@test.example>\nDATA\n" + body + ".\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <sender@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
			},
			inbox:  map[string][]string{"alice": {stored("sender@remote.example", "alice@test.example", body)}},
			counts: map[string]int{"delivered": 1},
		},
		{
			name:  "null sender, dot-stuffing, two transactions",
			users: []string{"alice"},
			send:  "MAIL FROM:<>\nRCPT TO:<alice@test.example>\nDATA\n" + dotted + ".\nMAIL FROM:<s2@remote.example>\nRCPT TO:<alice@test.example>\nDATA\n" + body + ".\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
				"250 2.0.0 Roger, accepting mail from <s2@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 2",
			},
			inbox: map[string][]string{"alice": {
				stored("", "alice@test.example", "Subject: dots\n\n.leading dot\n..two\n"),
				stored("s2@remote.example", "alice@test.example", body),
			}},
			counts: map[string]int{"delivered": 2},
		},
		{
			name:  "declared too large at MAIL",
			users: []string{"alice"},
			send:  "MAIL FROM:<sender@remote.example> SIZE=1001\nMAIL FROM:<sender@remote.example> SIZE=1000\n",
			replies: []string{
				"552 5.3.4 Max message size exceeded",
				"250 2.0.0 Roger, accepting mail from <sender@remote.example>",
			},
			inbox: map[string][]string{"alice": nil},
		},
		{
			name:  "too large in DATA: every recipient is told",
			users: []string{"alice", "bob"},
			send:  "MAIL FROM:<sender@remote.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<bob@test.example>\nDATA\n" + big + ".\nNOOP\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <sender@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"250 2.0.0 I'll make sure <bob@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"552 5.3.4 <alice@test.example> Message too large",
				"552 5.3.4 <bob@test.example> Message too large",
				"250 2.0.0 I have successfully done nothing",
			},
			inbox:  map[string][]string{"alice": nil, "bob": nil},
			counts: map[string]int{"too_large": 2},
		},
		{
			// go-smtp v0.25.1 refuses a message of exactly SIZE bytes
			// (see Options.MaxMessageSize); one byte less is taken.
			name:  "the size limit's edge",
			users: []string{"alice"},
			send:  "MAIL FROM:<a@remote.example>\nRCPT TO:<alice@test.example>\nDATA\n" + justUnder + ".\nMAIL FROM:<a@remote.example>\nRCPT TO:<alice@test.example>\nDATA\n" + justAt + ".\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <a@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
				"250 2.0.0 Roger, accepting mail from <a@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"552 5.3.4 <alice@test.example> Message too large",
			},
			inbox:  map[string][]string{"alice": {stored("a@remote.example", "alice@test.example", justUnder)}},
			counts: map[string]int{"delivered": 1, "too_large": 1},
		},
		{
			name:  "too many recipients",
			users: []string{"alice", "bob", "carol", "dave"},
			send:  "MAIL FROM:<s@remote.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<bob@test.example>\nRCPT TO:<carol@test.example>\nRCPT TO:<dave@test.example>\nDATA\n" + body + ".\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <s@remote.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"250 2.0.0 I'll make sure <bob@test.example> gets this",
				"250 2.0.0 I'll make sure <carol@test.example> gets this",
				"452 4.5.3 Maximum limit of 3 recipients reached",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
				"250 2.0.0 <bob@test.example> Saved as UID 1",
				"250 2.0.0 <carol@test.example> Saved as UID 1",
			},
			inbox:  map[string][]string{"dave": nil},
			counts: map[string]int{"delivered": 3},
		},
		{
			name:  "no recipient accepted: DATA refused, nothing read as commands",
			users: []string{"alice"},
			send:  "MAIL FROM:<s@remote.example>\nRCPT TO:<nobody@test.example>\nDATA\nRSET\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <s@remote.example>",
				"550 5.1.1 <nobody@test.example> User unknown",
				"502 5.5.1 Missing RCPT TO command.",
				"250 2.0.0 Session reset",
			},
			inbox:  map[string][]string{"alice": nil},
			counts: map[string]int{"unknown_recipient": 1},
		},
		{
			name:    "RCPT before MAIL",
			users:   []string{"alice"},
			send:    "RCPT TO:<alice@test.example>\n",
			replies: []string{"502 5.5.1 Missing MAIL FROM command."},
			inbox:   map[string][]string{"alice": nil},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "", nil, tc.users...)
			c := e.dial()
			c.send("LHLO mta.test\n" + tc.send)
			if got := c.reply(); got != lhloReply {
				t.Fatalf("LHLO: %q", got)
			}
			if got := c.replies(len(tc.replies)); !reflect.DeepEqual(got, tc.replies) {
				t.Errorf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.replies, "\n"))
			}
			for user, want := range tc.inbox {
				_, got := e.inbox(user)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s's INBOX:\n%q\nwant:\n%q", user, got, want)
				}
			}
			if tc.counts == nil {
				tc.counts = map[string]int{}
			}
			if got := e.counts(); !reflect.DeepEqual(got, tc.counts) {
				t.Errorf("delivery counts %v, want %v", got, tc.counts)
			}
		})
	}
}

// TestLookupOrder: the whole address is asked for first, then its local
// part, and nothing else.
func TestLookupOrder(t *testing.T) {
	e := newEnv(t, "", nil, "alice")
	c := e.dial()
	c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<x@test.example>\n")
	c.replies(4)
	want := []string{"alice@test.example", "alice", "x@test.example", "x"}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !reflect.DeepEqual(e.lookups, want) {
		t.Errorf("lookups %q, want %q", e.lookups, want)
	}
}

// TestStoreFailures: a store that fails is 451 4.3.0 for that recipient
// (the MTA keeps the message and retries); over quota is 552 5.2.2. The
// store is really closed for the first; the second is the store's own
// per-user quota (bridge.Options.Quota) refusing the copy.
func TestStoreFailures(t *testing.T) {
	t.Run("store closed", func(t *testing.T) {
		e := newEnv(t, "", nil, "alice")
		c := e.dial()
		c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\n")
		c.replies(4)
		if err := e.b.Close(); err != nil {
			t.Fatal(err)
		}
		c.send(message("x") + ".\n")
		if got, want := c.reply(), "451 4.3.0 <alice@test.example> Temporary failure storing the message, try again later"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if got := e.counts(); got["temp_failure"] != 1 || len(got) != 1 {
			t.Errorf("counts %v", got)
		}
	})
	t.Run("one recipient over quota, the other stored", func(t *testing.T) {
		// alice may hold one message and already does.
		quota := func(o *bridge.Options) {
			o.Quota = func(user string) bridge.Quota {
				if user == "alice" {
					return bridge.Quota{Messages: 1}
				}
				return bridge.Quota{}
			}
		}
		e := newEnvStore(t, quota, "", nil, "alice", "bob")
		if _, _, err := e.users["alice"].Append(context.Background(), "INBOX", strings.NewReader("Subject: old\r\n\r\nold\r\n"), nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		c := e.dial()
		c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<bob@test.example>\nDATA\n" + message("q") + ".\n")
		got := c.replies(7)[5:]
		want := []string{"552 5.2.2 <alice@test.example> Mailbox full (over quota)", "250 2.0.0 <bob@test.example> Saved as UID 1"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if _, a := e.inbox("alice"); len(a) != 1 {
			t.Errorf("alice has %d messages, want the 1 she had", len(a))
		}
		if _, b := e.inbox("bob"); len(b) != 1 {
			t.Errorf("bob has %d messages", len(b))
		}
		if got, want := e.counts(), map[string]int{"over_quota": 1, "delivered": 1}; !reflect.DeepEqual(got, want) {
			t.Errorf("counts %v, want %v", got, want)
		}
	})
}

// TestUnixSocket delivers over a Unix socket, and a second Listen on the
// same path while the first server runs is refused; after it is gone its
// stale socket file is replaced.
func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lmtp.sock")
	e := newEnv(t, "unix:"+path, nil, "alice")
	c := e.dial()
	c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\n" + message("unix") + ".\n")
	if got := c.replies(5)[4]; got != "250 2.0.0 <alice@test.example> Saved as UID 1" {
		t.Errorf("got %q", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}
	if _, err := lmtpfront.Listen("unix:"+path, 0); err == nil || !strings.Contains(err.Error(), "another server is listening there") {
		t.Errorf("second Listen: %v", err)
	}

	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := lmtpfront.Listen("unix:"+stale, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Close without removing the file, as a killed process leaves it.
	if ul, ok := l.(interface{ SetUnlinkOnClose(bool) }); ok {
		ul.SetUnlinkOnClose(false)
	}
	l.Close()
	if _, err := os.Lstat(stale); err != nil {
		t.Fatal(err)
	}
	l, err = lmtpfront.Listen("unix:"+stale, 0)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()

	plain := filepath.Join(t.TempDir(), "file")
	os.WriteFile(plain, []byte("x"), 0o600)
	if _, err := lmtpfront.Listen("unix:"+plain, 0); err == nil || !strings.Contains(err.Error(), "a file that is not a socket is in the way") {
		t.Errorf("over a plain file: %v", err)
	}
}

// TestMaxConnections: one connection over MaxConnections is refused with
// 421 and counted; once one closes, the next is served.
func TestMaxConnections(t *testing.T) {
	e := newEnv(t, "", func(o *lmtpfront.Options) { o.MaxConnections = 2 }, "alice")
	c1 := e.dial()
	e.dial()
	if got := e.dialRaw().reply(); got != "421 4.3.2 Too many connections, try again later" {
		t.Errorf("third connection: %q", got)
	}
	c1.send("QUIT\n")
	if got := c1.reply(); got != "221 2.0.0 Bye" {
		t.Errorf("QUIT: %q", got)
	}
	// The server counts c1 closed once its goroutine ends: wait for the
	// count to drop rather than for a time.
	for i := 0; ; i++ {
		e.mu.Lock()
		n := e.conns
		e.mu.Unlock()
		if n == 1 {
			break
		}
		if i == 5000 {
			t.Fatalf("%d connections still counted", n)
		}
		time.Sleep(time.Millisecond)
	}
	e.dial() // greeted with 220
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.limits["max_connections"] != 1 {
		t.Errorf("limits %v", e.limits)
	}
}

// TestCommandTimeout: a client that goes silent, in the middle of DATA or
// between commands, is cut after CommandTimeout (its message is not
// stored, the MTA keeps it), while another client delivers meanwhile.
func TestCommandTimeout(t *testing.T) {
	e := newEnv(t, "", func(o *lmtpfront.Options) { o.CommandTimeout = time.Second }, "alice")
	stalled := e.dial()
	stalled.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\nSubject: half\n")
	stalled.replies(4)

	// The whole transaction is written at once, before even the
	// greeting is read, so a loaded machine cannot make this client look
	// silent.
	c1 := e.dialRaw()
	c1.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\n" + message("meanwhile") + ".\n")
	if got := c1.replies(6)[5]; got != "250 2.0.0 <alice@test.example> Saved as UID 1" {
		t.Errorf("c1: %q", got)
	}
	if got := stalled.reply(); got != "451 4.3.0 <alice@test.example> Temporary failure storing the message, try again later" {
		t.Errorf("stalled in DATA: %q", got)
	}
	if got := stalled.reply(); got != "421 4.4.2 Idle timeout, bye bye" {
		t.Errorf("stalled after DATA: %q", got)
	}
	if got := c1.reply(); got != "421 4.4.2 Idle timeout, bye bye" {
		t.Errorf("c1 silent: %q", got)
	}
	if _, bodies := e.inbox("alice"); len(bodies) != 1 || !strings.Contains(bodies[0], "Subject: meanwhile") {
		t.Errorf("INBOX %q", bodies)
	}
	if got := e.counts(); got["delivered"] != 1 || got["temp_failure"] != 1 {
		t.Errorf("counts %v", got)
	}
}

// TestPushToIdle: a delivery reaches a session watching INBOX through the
// bridge's observers, as an IMAP IDLE session hears of it.
func TestPushToIdle(t *testing.T) {
	e := newEnv(t, "", nil, "alice")
	inbox, err := e.users["alice"].Mailbox(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []bridge.MessageFlags, 1)
	e.b.AddObserver(appendedFunc(func(mb *bridge.Mailbox, msgs []bridge.MessageFlags) {
		if mb.ID() == inbox.ID() { // (mb's lock is held: Name would deadlock)
			got <- msgs
		}
	}))
	c := e.dial()
	c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\n" + message("push") + ".\n")
	select {
	case msgs := <-got:
		if len(msgs) != 1 || msgs[0].UID != 1 || len(msgs[0].Flags) != 0 {
			t.Errorf("appended %v", msgs)
		}
	case <-time.After(time.Minute):
		t.Fatal("no Appended event")
	}
	if r := c.replies(5)[4]; r != "250 2.0.0 <alice@test.example> Saved as UID 1" {
		t.Errorf("reply %q", r)
	}
}

type appendedFunc func(mb *bridge.Mailbox, msgs []bridge.MessageFlags)

func (f appendedFunc) Appended(mb *bridge.Mailbox, msgs []bridge.MessageFlags, _ *bridge.Watch) {
	f(mb, msgs)
}
func (appendedFunc) Expunged(*bridge.Mailbox, []bridge.UID)                  {}
func (appendedFunc) FlagsChanged(*bridge.Mailbox, bridge.UID, []string, any) {}

func TestOptionsRequired(t *testing.T) {
	for _, tc := range []struct {
		opts lmtpfront.Options
		want string
	}{
		{lmtpfront.Options{}, "lmtp: no recipient lookup configured"},
		{lmtpfront.Options{Lookup: func(context.Context, string) (*bridge.User, bool, error) { return nil, false, nil }}, "lmtp: no bridge configured"},
	} {
		if _, err := lmtpfront.New(tc.opts); err == nil || err.Error() != tc.want {
			t.Errorf("New: %v, want %q", err, tc.want)
		}
	}
	if _, err := lmtpfront.Listen("unix:", 0); err == nil || err.Error() != "lmtp: listen: unix: with no path" {
		t.Errorf("Listen(unix:): %v", err)
	}
}

// TestOddInput: what the wire can carry that a header line cannot, long
// lines, BDAT (go-smtp offers CHUNKING too).
func TestOddInput(t *testing.T) {
	long := "Subject: long\n\n" + strings.Repeat("z", 5000) + "\n"
	for _, tc := range []struct {
		name    string
		send    string
		replies []string
		inbox   []string
	}{
		{
			name:    "a control character in a quoted local part",
			send:    crlf("MAIL FROM:<\"a\rb\"@remote.example>\nMAIL FROM:<s@r.example>\nRCPT TO:<\"al\x01ice\"@test.example>\n"),
			replies: []string{"501 5.1.3 Bad address syntax", "250 2.0.0 Roger, accepting mail from <s@r.example>", "501 5.1.3 Bad address syntax"},
		},
		{
			name: "a 5000-byte line",
			send: crlf("MAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\n" + long + ".\n"),
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <s@r.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
			},
			inbox: []string{crlf("Return-Path: <s@r.example>\nDelivered-To: alice@test.example\n" + long)},
		},
		{
			name: "BDAT in two chunks",
			send: crlf("MAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<nobody@test.example>\nBDAT 10\n") + "Subject: b" + "BDAT 8 LAST\r\n" + "\r\n\r\nhi\r\n",
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <s@r.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"550 5.1.1 <nobody@test.example> User unknown",
				"250 2.0.0 Continue",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
			},
			inbox: []string{"Return-Path: <s@r.example>\r\nDelivered-To: alice@test.example\r\nSubject: b\r\n\r\nhi\r\n"},
		},
		{
			// The message being received on go-smtp's goroutine is
			// dropped while the connection goes on (run with -race).
			name: "BDAT, then RSET and a new transaction",
			send: crlf("MAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nBDAT 4\n") + "abcd" + crlf("RSET\nMAIL FROM:<t@r.example>\nRCPT TO:<alice@test.example>\nDATA\nSubject: after\n\n.\n"),
			replies: []string{
				"250 2.0.0 Roger, accepting mail from <s@r.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"250 2.0.0 Continue",
				"250 2.0.0 Session reset",
				"250 2.0.0 Roger, accepting mail from <t@r.example>",
				"250 2.0.0 I'll make sure <alice@test.example> gets this",
				"354 Go ahead. End your data with <CR><LF>.<CR><LF>",
				"250 2.0.0 <alice@test.example> Saved as UID 1",
			},
			inbox: []string{"Return-Path: <t@r.example>\r\nDelivered-To: alice@test.example\r\nSubject: after\r\n\r\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "", func(o *lmtpfront.Options) { o.MaxMessageSize = 1 << 20 }, "alice")
			c := e.dial()
			c.send("LHLO mta.test\n")
			c.reply()
			// Sent as is: the BDAT chunk's bytes are counted exactly.
			if _, err := io.WriteString(c.c, tc.send); err != nil {
				t.Fatal(err)
			}
			if got := c.replies(len(tc.replies)); !reflect.DeepEqual(got, tc.replies) {
				t.Errorf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.replies, "\n"))
			}
			if _, got := e.inbox("alice"); !reflect.DeepEqual(got, tc.inbox) {
				t.Errorf("INBOX %q, want %q", got, tc.inbox)
			}
		})
	}
}

// TestShutdown: Shutdown waits for a connection to end; when its context
// ends first, it closes the connection (the MTA sees it drop and keeps
// its mail) and says so. A transaction finished before is durable.
func TestShutdown(t *testing.T) {
	e := newEnv(t, "", nil, "alice")
	c := e.dial()
	c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\n" + message("before shutdown") + ".\n")
	if got := c.replies(5)[4]; got != "250 2.0.0 <alice@test.example> Saved as UID 1" {
		t.Fatalf("reply %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err == nil || err.Error() != "lmtp: shutdown: context deadline exceeded" {
		t.Errorf("Shutdown: %v", err)
	}
	c.c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := c.r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after Shutdown the connection reads %d, %v", n, err)
	}
	if _, err := net.Dial(e.netw, e.addr); err == nil {
		t.Error("still accepting")
	}
	if _, bodies := e.inbox("alice"); len(bodies) != 1 {
		t.Errorf("INBOX has %d", len(bodies))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns != 0 {
		t.Errorf("%d connections counted open", e.conns)
	}
}

// TestPanicInDelivery: a panic while storing is caught by go-smtp, the
// recipients get 421 4.0.0 (the MTA retries), the connection is closed and
// the panic is counted.
func TestPanicInDelivery(t *testing.T) {
	var recovered atomic.Int32
	e := newEnv(t, "", func(o *lmtpfront.Options) {
		o.Metrics.Recovered = func() { recovered.Add(1) }
	}, "alice")
	lmtpfront.SetDeliver(e.srv, func(context.Context, *bridge.Spool, *bridge.User, []byte, time.Time) (bridge.UIDValidity, bridge.UID, error) {
		panic("boom")
	})
	c := e.dial()
	c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nDATA\n" + message("p") + ".\n")
	if got := c.replies(5)[4]; got != "421 4.0.0 <alice@test.example> Internal server error" {
		t.Errorf("reply %q", got)
	}
	if n, err := c.r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the panic the connection reads %d, %v", n, err)
	}
	if n := recovered.Load(); n != 1 {
		t.Errorf("recovered %d", n)
	}
}

// TestInternalDate: a delivered message's INTERNALDATE is the time its
// DATA ended (between the DATA command and the 250), the same for every
// recipient, and it carries no flags.
func TestInternalDate(t *testing.T) {
	e := newEnv(t, "", nil, "alice", "bob")
	c := e.dial()
	c.send("LHLO mta.test\nMAIL FROM:<s@r.example>\nRCPT TO:<alice@test.example>\nRCPT TO:<bob@test.example>\nDATA\n")
	c.replies(5)
	before := time.Now()
	c.send(message("date") + ".\n")
	c.replies(2)
	after := time.Now()
	var dates []time.Time
	for _, name := range []string{"alice", "bob"} {
		mb, err := e.users[name].Mailbox(context.Background(), "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := mb.Messages(context.Background(), mb.UIDs(), false)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: %v %v", name, msgs, err)
		}
		if len(msgs[0].Flags) != 0 {
			t.Errorf("%s: flags %q", name, msgs[0].Flags)
		}
		dates = append(dates, msgs[0].InternalDate)
	}
	if d := dates[0]; d.Before(before.Truncate(time.Second)) || d.After(after) || !d.Equal(dates[1]) {
		t.Errorf("INTERNALDATEs %v, want one time in [%v, %v]", dates, before, after)
	}
}
