package imapfront_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/imapfront"
)

// seenHooks records Options.LoggedIn and Options.ClientSeen.
type seenHooks struct {
	mu      sync.Mutex
	logins  []string // "user remote-ip"
	clients []string // "user name version"
	fields  []map[string]string
}

func (h *seenHooks) options(o *imapfront.Options) {
	o.Version = "1.2.3-test"
	o.LoggedIn = func(user string, remote net.Addr, at time.Time) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if at.IsZero() {
			panic("LoggedIn without a time")
		}
		host, _, _ := net.SplitHostPort(remote.String())
		h.logins = append(h.logins, user+" "+host)
	}
	o.ClientSeen = func(user string, id imapfront.ClientID, at time.Time) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if at.IsZero() {
			panic("ClientSeen without a time")
		}
		h.clients = append(h.clients, user+" "+id.String())
		h.fields = append(h.fields, id.Fields)
	}
}

func (h *seenHooks) get() ([]string, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.logins...), append([]string(nil), h.clients...)
}

// TestID: RFC 2971. The server names itself and its version, before and
// after login, and keeps the connection; the client's ID reaches
// Options.ClientSeen once the session is logged in, whichever came first.
func TestID(t *testing.T) {
	var hooks seenHooks
	e := newEnv(t, withServer(hooks.options))
	const answer = `* ID ("name" "imapbridge" "version" "1.2.3-test")`

	// ID before LOGIN (go-imap alone answers "BAD Unknown command" and BYE).
	c := e.raw()
	untagged, status := c.cmd(`ID ("name" "Thunderbird" "version" "128.3.0" "os" "Linux")`)
	if status != "OK ID completed" || len(untagged) != 1 || untagged[0] != answer {
		t.Fatalf("ID before login: %q %q", untagged, status)
	}
	if _, clients := hooks.get(); len(clients) != 0 {
		t.Fatalf("ClientSeen before login: %q", clients)
	}
	c.login("alice")
	logins, clients := hooks.get()
	if len(logins) != 1 || logins[0] != "alice 127.0.0.1" {
		t.Errorf("LoggedIn: %q", logins)
	}
	if len(clients) != 1 || clients[0] != "alice Thunderbird 128.3.0" {
		t.Errorf("ClientSeen after login: %q", clients)
	}
	if f := hooks.fields[0]; f["os"] != "Linux" || len(f) != 3 {
		t.Errorf("fields: %v", f)
	}

	// ID after LOGIN, with the longest values and the most pairs RFC 2971
	// allows, a NIL value, quoted specials and a literal of each kind.
	c2 := e.raw()
	c2.login("bob")
	var pairs []string
	pairs = append(pairs, `"name" "K-9 \"Mail\""`, `"version" {5}`)
	for i := len(pairs); i < 29; i++ {
		pairs = append(pairs, fmt.Sprintf(`"%s" "%s"`, strings.Repeat(string(rune('a'+i%26)), 28)+fmt.Sprint(i%10)+"x", strings.Repeat("v", 1024)))
	}
	pairs[28] = `"support-url" NIL` // and "x-nonsync" below: 30 pairs
	c2.tag++
	tag := fmt.Sprintf("a%d", c2.tag)
	c2.send(tag + " ID (" + strings.Join(pairs[:2], " "))
	if got := c2.line(); got != "+ Ready for literal data" {
		t.Fatalf("synchronizing literal in ID: %q", got)
	}
	c2.send("6.712 " + strings.Join(pairs[2:5], " ") + " \"x-nonsync\" {3+}")
	c2.send("abc " + strings.Join(pairs[5:], " ") + ")")
	if got := c2.line(); got != answer {
		t.Fatalf("long ID: %q", got)
	}
	if got := c2.line(); got != tag+" OK ID completed" {
		t.Fatalf("long ID: %q", got)
	}
	_, clients = hooks.get()
	if len(clients) != 2 || clients[1] != `bob K-9 "Mail" 6.712` {
		t.Fatalf("ClientSeen after ID: %q", clients)
	}
	f := hooks.fields[1]
	if len(f) != 30 || f["support-url"] != "" || f["x-nonsync"] != "abc" || len(f[pairs[2][1:31]]) != 1024 {
		t.Errorf("fields: %d, support-url %q, x-nonsync %q", len(f), f["support-url"], f["x-nonsync"])
	}

	// ID NIL is an ID without fields: answered, nothing reported.
	if untagged, status := c2.cmd("ID NIL"); status != "OK ID completed" || len(untagged) != 1 {
		t.Errorf("ID NIL: %q %q", untagged, status)
	}
	if _, clients := hooks.get(); len(clients) != 2 {
		t.Errorf("ClientSeen after ID NIL: %q", clients)
	}
	c2.ok("NOOP")
}

// TestIDViolations: what RFC 2971 forbids gets BAD saying what, and the
// connection stays, before and after login.
func TestIDViolations(t *testing.T) {
	var hooks seenHooks
	e := newEnv(t, withServer(hooks.options))
	long := func(n int) string { return strings.Repeat("x", n) }
	var pairs31 []string
	for i := range 31 {
		pairs31 = append(pairs31, fmt.Sprintf(`"f%d" "v"`, i))
	}
	for _, tc := range []struct{ name, cmd, status string }{
		{"31 pairs", "ID (" + strings.Join(pairs31, " ") + ")", "BAD ID has 31 field-value pairs (RFC 2971 allows 30)"},
		{"field of 31 bytes", `ID ("` + long(31) + `" "v")`, "BAD ID field name of 31 bytes (RFC 2971 allows 30)"},
		{"value of 1025 bytes", `ID ("name" "` + long(1025) + `")`, "BAD ID value of 1025 bytes (RFC 2971 allows 1024)"},
		{"odd list", `ID ("name")`, `BAD Syntax error in ID: expected ("field" "value" ...) or NIL`},
		{"no argument", `ID`, `BAD Syntax error in ID: expected ("field" "value" ...) or NIL`},
		{"atom field", `ID (name "x")`, `BAD Syntax error in ID: expected ("field" "value" ...) or NIL`},
		{"literal over 1024", `ID ("name" {1025}`, "BAD Literal of 1025 bytes too long for ID (limit 1024 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, login := range []bool{false, true} {
				c := dialRaw(t, e.addr)
				if login {
					c.login("alice")
				}
				untagged, status := c.cmd(tc.cmd)
				if status != tc.status || len(untagged) != 0 {
					t.Fatalf("login %v: %q %q, want %q", login, untagged, status, tc.status)
				}
				if untagged, status := c.cmd("CAPABILITY"); status != "OK CAPABILITY completed" || !strings.Contains(untagged[0], " ID") {
					t.Fatalf("after it: %q %q", untagged, status)
				}
			}
		})
	}
	if _, clients := hooks.get(); len(clients) != 0 {
		t.Errorf("ClientSeen for refused IDs: %q", clients)
	}
}

// TestUnknownCommandsKeepConnection: an unknown command, a line without a
// tag or command name, an empty line, each get BAD and the connection
// stays, before login too (go-imap alone says BYE to the first unknown
// command before login and closes the connection on a line without a
// command name). The limit of 20 BADs in a row still holds.
func TestUnknownCommandsKeepConnection(t *testing.T) {
	e := newEnv(t)
	junk := []struct{ line, want string }{
		{"a1 XYZZY", "a1 BAD Unknown command"},
		{"a2 SORT (DATE) UTF-8 ALL", "a2 BAD Unknown command"},
		{"a3 UID XYZZY 1", "a3 BAD Unknown command"},
		{"a4 GETQUOTAROOT INBOX", "a4 BAD Unknown command"},
		{"a5 X-JUNK {3+}\r\nabc", "a5 BAD Unknown command"},
		{"a6", "a6 BAD Missing or invalid command name"},
		{"a7 ", "a7 BAD Missing or invalid command name"},
		{"", "* BAD Empty command line"},
		{"\x00\x01\x02 garbage", "* BAD Invalid command line: a command starts with a tag and a command name"},
		{"(((", "* BAD Invalid command line: a command starts with a tag and a command name"},
		{"GET / HTTP/1.1", "GET BAD Unknown command"},
		{"a8 X-LONG {5000}", "a8 BAD Unknown command"},
	}
	for _, login := range []bool{false, true} {
		c := e.raw()
		if login {
			c.login("alice")
		}
		for round := range 3 {
			for _, j := range junk {
				c.send(j.line)
				if got := c.line(); got != j.want {
					t.Fatalf("login %v, round %d: %q got %q, want %q", login, round, j.line, got, j.want)
				}
			}
			// A good command ends the run of BADs.
			if _, status := c.cmd("NOOP"); status != "OK NOOP completed" {
				t.Fatalf("NOOP: %q", status)
			}
		}
		// 20 in a row: BYE, as before.
		for i := range imapfront.MaxBadCommands {
			c.send(fmt.Sprintf("b%d XYZZY", i))
			if got := c.line(); got != fmt.Sprintf("b%d BAD Unknown command", i) {
				t.Fatalf("BAD %d: %q", i, got)
			}
		}
		if got := c.line(); got != "* BYE Too many invalid commands" {
			t.Fatalf("after %d BADs: %q", imapfront.MaxBadCommands, got)
		}
		c.closed()
	}
}
