package pop3front_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/pop3front"
)

// The maildrop every transcript starts from: one message from the POP3
// host (its UIDL is the host's), one from an mbox-like spool with dot
// lines, one APPENDed with bare LFs and no final line ending.
const (
	msg1 = "Subject: one\r\n\r\nbody one\r\n"
	msg2 = "Subject: two\r\nX: y\r\n\r\n.dot line\r\n..\r\n.\r\nend\r\n"
	msg3 = "Subject: three\nbare\nlast"
)

// wire3 is msg3 as POP3 sends it.
const wire3 = "Subject: three\r\nbare\r\nlast\r\n"

type step struct {
	send string   // a line to send ("" sends nothing: just read)
	want []string // the exact lines that come back; "<EOF>" for a close
}

// fill sets up alice's maildrop and returns the placeholders of the
// transcripts: {U1} the host UIDL of message 1, {G2}/{G3} the generated
// UIDLs, {S1}..{S3} sizes, {T} the total, {N} the count.
func fill(e *testEnv) *strings.Replacer {
	ids := e.deliver(e.src, "alice", msg1)
	e.deliver(e.spool, "alice", msg2)
	e.appendMsg("alice", msg3)
	uv := e.inbox("alice").Info().UIDValidity
	s1, s2, s3 := len(msg1), len(msg2), len(wire3)
	return strings.NewReplacer(
		"{U1}", string(ids[0]),
		"{G2}", bridge.GeneratedUIDL(uv, 2), "{G3}", bridge.GeneratedUIDL(uv, 3),
		"{S1}", fmt.Sprint(s1), "{S2}", fmt.Sprint(s2), "{S3}", fmt.Sprint(s3),
		"{T}", fmt.Sprint(s1+s2+s3), "{T13}", fmt.Sprint(s1+s3), "{T23}", fmt.Sprint(s2+s3),
	)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var (
	greeting = step{"", []string{"+OK imapbridge POP3 server ready"}}
	login    = []step{greeting, {"USER alice", []string{"+OK Send PASS"}}, {"PASS " + password, []string{"+OK Logged in, 3 messages ({T} octets)"}}}
	capaAuth = []string{"+OK Capability list follows", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN", "STLS", "IMPLEMENTATION imapbridge", "."}
)

func steps(groups ...[]step) []step {
	var out []step
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func TestTranscripts(t *testing.T) {
	t.Parallel()
	secure := func(o *pop3front.Options) { o.AllowInsecureAuth = false }
	for _, tc := range []struct {
		name  string
		opts  func(*pop3front.Options)
		steps []step
	}{
		{"capa before login", nil, []step{greeting, {"CAPA", capaAuth}, {"capa", capaAuth}}},
		{"capa after login", nil, steps(login, []step{{"CAPA", []string{"+OK Capability list follows", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION imapbridge", "."}}})},
		{"capa without insecure auth", secure, []step{greeting, {"CAPA", []string{"+OK Capability list follows", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS", "IMPLEMENTATION imapbridge", "."}}}},
		{"insecure USER refused", secure, []step{greeting,
			{"USER alice", []string{"-ERR [AUTH] Plaintext authentication disallowed without TLS; use STLS first"}},
			{"PASS " + password, []string{"-ERR [AUTH] Plaintext authentication disallowed without TLS; use STLS first"}},
			{"AUTH PLAIN " + b64("\x00alice\x00"+password), []string{"-ERR [AUTH] Plaintext authentication disallowed without TLS; use STLS first"}},
			{"AUTH", []string{"+OK Mechanisms follow", "."}},
			{"STAT", []string{"-ERR Not logged in"}},
		}},
		{"insecure refused without STLS to offer", func(o *pop3front.Options) { o.AllowInsecureAuth, o.TLSConfig = false, nil }, []step{greeting,
			{"USER alice", []string{"-ERR [AUTH] Plaintext authentication disallowed without TLS; use the POP3S port"}},
			{"STLS", []string{"-ERR STLS not available"}},
		}},
		{"stat list uidl", nil, steps(login, []step{
			{"STAT", []string{"+OK 3 {T}"}},
			{"LIST", []string{"+OK 3 messages ({T} octets)", "1 {S1}", "2 {S2}", "3 {S3}", "."}},
			{"LIST 2", []string{"+OK 2 {S2}"}},
			{"list 03", []string{"+OK 3 {S3}"}},
			{"LIST 4", []string{"-ERR No such message (maildrop has 3)"}},
			{"LIST 0", []string{"-ERR No such message (maildrop has 3)"}},
			{"LIST x", []string{"-ERR Invalid message number"}},
			{"LIST -1", []string{"-ERR Invalid message number"}},
			{"LIST 1 2", []string{"-ERR LIST takes at most one argument: a message number"}},
			{"UIDL", []string{"+OK", "1 {U1}", "2 {G2}", "3 {G3}", "."}},
			{"UIDL 1", []string{"+OK 1 {U1}"}},
			{"UIDL 99999999999", []string{"-ERR No such message (maildrop has 3)"}},
			{"NOOP", []string{"+OK"}},
			{"NOOP x", []string{"-ERR NOOP takes no argument"}},
			{"STAT x", []string{"-ERR STAT takes no argument"}},
			{"QUIT", []string{"+OK imapbridge POP3 server signing off (3 messages left)", "<EOF>"}},
		})},
		{"retr is dot-stuffed", nil, steps(login, []step{
			{"RETR 2", []string{"+OK {S2} octets", "Subject: two", "X: y", "", "..dot line", "...", "..", "end", "."}},
			{"RETR 3", []string{"+OK {S3} octets", "Subject: three", "bare", "last", "."}},
			{"RETR 4", []string{"-ERR No such message (maildrop has 3)"}},
			{"RETR", []string{"-ERR RETR takes one argument: a message number"}},
		})},
		{"top", nil, steps(login, []step{
			{"TOP 2 0", []string{"+OK", "Subject: two", "X: y", "", "."}},
			{"TOP 2 2", []string{"+OK", "Subject: two", "X: y", "", "..dot line", "...", "."}},
			{"TOP 2 99999999999999999999", []string{"+OK", "Subject: two", "X: y", "", "..dot line", "...", "..", "end", "."}},
			{"TOP 3 0", []string{"+OK", "Subject: three", "bare", "last", "."}},
			{"TOP 2", []string{"-ERR TOP takes two arguments: a message number and a line count"}},
			{"TOP 2 -1", []string{"-ERR Invalid line count"}},
		})},
		{"dele and rset", nil, steps(login, []step{
			{"DELE 1", []string{"+OK Message 1 deleted"}},
			{"DELE 1", []string{"-ERR Message 1 already deleted"}},
			{"RETR 1", []string{"-ERR Message 1 already deleted"}},
			{"TOP 1 0", []string{"-ERR Message 1 already deleted"}},
			{"LIST 1", []string{"-ERR Message 1 already deleted"}},
			{"STAT", []string{"+OK 2 {T23}"}},
			{"LIST", []string{"+OK 2 messages ({T23} octets)", "2 {S2}", "3 {S3}", "."}},
			{"UIDL", []string{"+OK", "2 {G2}", "3 {G3}", "."}},
			{"RSET", []string{"+OK Maildrop has 3 messages ({T} octets)"}},
			{"STAT", []string{"+OK 3 {T}"}},
			{"DELE 2", []string{"+OK Message 2 deleted"}},
			{"QUIT", []string{"+OK imapbridge POP3 server signing off (2 messages left)", "<EOF>"}},
		})},
		{"wrong state and unknown", nil, []step{greeting,
			{"STAT", []string{"-ERR Not logged in"}},
			{"RETR 1", []string{"-ERR Not logged in"}},
			{"PASS x", []string{"-ERR USER first"}},
			{"APOP alice 0123456789abcdef0123456789abcdef", []string{"-ERR Unknown command"}},
			{"XYZZY", []string{"-ERR Invalid command line: command keyword is not 3 or 4 letters"}},
			{"", []string{"-ERR Invalid command line: empty command line"}},
			{"USER", []string{"-ERR USER takes one argument: the user name"}},
			{"USER alice", []string{"+OK Send PASS"}},
			{"PASS " + password, []string{"+OK Logged in, 3 messages ({T} octets)"}},
			{"USER alice", []string{"-ERR Already logged in"}},
			{"STLS", []string{"-ERR Already logged in"}},
			{"QUIT", []string{"+OK imapbridge POP3 server signing off (3 messages left)", "<EOF>"}},
		}},
		{"quit before login", nil, []step{greeting, {"QUIT", []string{"+OK imapbridge POP3 server signing off", "<EOF>"}}}},
		{"wrong password", nil, []step{greeting,
			{"USER alice", []string{"+OK Send PASS"}},
			{"PASS wrong", []string{"-ERR [AUTH] Authentication failed"}},
			{"USER mallory", []string{"+OK Send PASS"}},
			{"PASS " + password, []string{"-ERR [AUTH] Authentication failed"}},
			{"AUTH PLAIN " + b64("\x00alice\x00nope"), []string{"-ERR [AUTH] Authentication failed", "-ERR [AUTH] Too many authentication failures", "<EOF>"}},
		}},
		{"password with spaces kept whole", nil, []step{greeting,
			{"USER alice", []string{"+OK Send PASS"}},
			{"PASS s3cret  pass", []string{"-ERR [AUTH] Authentication failed"}},
			{"USER alice", []string{"+OK Send PASS"}},
			{"PASS " + password, []string{"+OK Logged in, 3 messages ({T} octets)"}},
		}},
		{"auth plain initial response", nil, []step{greeting,
			{"AUTH", []string{"+OK Mechanisms follow", "PLAIN", "."}},
			{"AUTH PLAIN " + b64("\x00alice\x00"+password), []string{"+OK Logged in, 3 messages ({T} octets)"}},
			{"STAT", []string{"+OK 3 {T}"}},
		}},
		{"auth plain continuation", nil, []step{greeting,
			{"AUTH PLAIN", []string{"+ "}},
			{b64("alice\x00alice\x00" + password), []string{"+OK Logged in, 3 messages ({T} octets)"}},
		}},
		{"auth plain errors", nil, []step{greeting,
			{"AUTH PLAIN", []string{"+ "}},
			{"*", []string{"-ERR Authentication cancelled"}},
			{"AUTH PLAIN", []string{"+ "}},
			{"!!!", []string{"-ERR Invalid base64 in the AUTH response"}},
			{"AUTH PLAIN =", []string{"-ERR Malformed PLAIN response (want authzid NUL authcid NUL password)"}},
			{"AUTH PLAIN " + b64("alice\x00"+password), []string{"-ERR Malformed PLAIN response (want authzid NUL authcid NUL password)"}},
			{"AUTH CRAM-MD5", []string{"-ERR Unsupported authentication mechanism"}},
			{"AUTH PLAIN a b c", []string{"-ERR AUTH takes a mechanism and an optional initial response"}},
			{"AUTH PLAIN " + b64("bob\x00alice\x00"+password), []string{"-ERR [AUTH] Authorization identity refused"}},
			{"auth plain " + b64("\x00alice\x00"+password), []string{"+OK Logged in, 3 messages ({T} octets)"}},
		}},
		{"pipelined", nil, []step{greeting,
			{"USER alice\r\nPASS " + password + "\r\nSTAT\r\nUIDL 1\r\nLIST 3", []string{"+OK Send PASS", "+OK Logged in, 3 messages ({T} octets)", "+OK 3 {T}", "+OK 1 {U1}", "+OK 3 {S3}"}},
		}},
		{"bare LF line endings accepted", nil, []step{greeting,
			{"USER alice\nPASS " + password + "\nSTAT", []string{"+OK Send PASS", "+OK Logged in, 3 messages ({T} octets)", "+OK 3 {T}"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var edits []func(*pop3front.Options)
			if tc.opts != nil {
				edits = append(edits, tc.opts)
			}
			e := newEnv(t, edits...)
			r := fill(e)
			c := e.dial()
			for i, st := range tc.steps {
				if st.send != "" || i > 0 {
					c.send(st.send)
				}
				for _, w := range st.want {
					w = r.Replace(w)
					if w == "<EOF>" {
						c.eof()
						continue
					}
					got, err := c.line()
					if err != nil || got != w {
						t.Fatalf("step %d (%q): got %q (%v), want %q", i, st.send, got, err, w)
					}
				}
			}
		})
	}
}
