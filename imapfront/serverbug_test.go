package imapfront_test

import (
	"strings"
	"testing"
)

// TestNoServerBugForClientErrors: what go-imap v2 beta.8 alone answers "NO
// [SERVERBUG] Internal server error" (or not at all) is the client's
// mistake; it gets BAD or NO saying what was wrong, and the connection
// stays, over a real listener.
func TestNoServerBugForClientErrors(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1))
	for _, tc := range []struct {
		name  string
		state string   // "", "auth" or "selected"
		send  []string // lines; continuation requests ("+ ...") in between are read
		want  string
	}{
		{"SASL PLAIN initial response not base64", "", []string{"x AUTHENTICATE PLAIN !!!!"},
			"x BAD Malformed SASL initial response: not base64"},
		{"SASL PLAIN without NULs", "", []string{"x AUTHENTICATE PLAIN Zm9v"},
			"x BAD [CLIENTBUG] Malformed SASL PLAIN message: expected authzid NUL authcid NUL password"},
		{"SASL PLAIN with three NULs", "", []string{"x AUTHENTICATE PLAIN AAAA"},
			"x BAD [CLIENTBUG] Malformed SASL PLAIN message: expected authzid NUL authcid NUL password"},
		{"SASL PLAIN empty user", "", []string{"x AUTHENTICATE PLAIN AAB4"},
			"x BAD [CLIENTBUG] Malformed SASL PLAIN message: empty user name"},
		{"SASL PLAIN malformed response", "", []string{"x AUTHENTICATE PLAIN", "Zm9v"},
			"x BAD [CLIENTBUG] Malformed SASL PLAIN message: expected authzid NUL authcid NUL password"},
		{"SASL response not base64", "", []string{"x AUTHENTICATE PLAIN", "!!!!"},
			"x BAD Malformed SASL response"},
		{"SASL XOAUTH2", "", []string{"x AUTHENTICATE XOAUTH2"},
			"x NO [CANNOT] Unsupported SASL mechanism XOAUTH2; this server offers PLAIN"},
		{"SASL XOAUTH2 with initial response", "", []string{"x AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4AQE="},
			"x NO [CANNOT] Unsupported SASL mechanism XOAUTH2; this server offers PLAIN"},
		{"LOGIN literal over the limit", "", []string{"x LOGIN {4294967295}"},
			"x NO [TOOBIG] Literal of 4294967295 bytes refused (limit 4096 bytes outside APPEND)"},
		{"LOGIN password literal over the limit", "", []string{"x LOGIN alice {5000}"},
			"x NO [TOOBIG] Literal of 5000 bytes refused (limit 4096 bytes outside APPEND)"},
		{"CREATE bad modified UTF-7", "auth", []string{`x CREATE "a&Jjo"`},
			`x NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write "&" as "&-"`},
		{"CREATE unterminated shift", "auth", []string{`x CREATE R&D`},
			`x NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write "&" as "&-"`},
		{"CREATE control character", "auth", []string{"x CREATE \"a\x01b\""},
			"x NO [CANNOT] Mailbox name contains a control character"},
		{"CREATE DEL", "auth", []string{"x CREATE \"a\x7fb\""},
			"x NO [CANNOT] Mailbox name contains a control character"},
		{"CREATE invalid UTF-8", "auth", []string{"x CREATE \"a\xffb\""},
			"x NO [CANNOT] Mailbox name is not valid UTF-8"},
		{"SELECT bad modified UTF-7", "auth", []string{`x SELECT "&Jjo"`},
			`x NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write "&" as "&-"`},
		{"RENAME to a bad name", "auth", []string{`x RENAME Sent "&&"`},
			`x NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write "&" as "&-"`},
		{"STATUS bad name", "auth", []string{`x STATUS "&-&" (MESSAGES)`},
			`x NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write "&" as "&-"`},
		{"COPY to a bad name", "selected", []string{`x UID COPY 1 "a&b"`},
			`x NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write "&" as "&-"`},
		{"SEARCH unknown key", "selected", []string{"x SEARCH FOOBAR"},
			`x BAD Unknown SEARCH key "FOOBAR"`},
		{"SEARCH unknown key inside", "selected", []string{"x UID SEARCH OR SEEN (NOT YOUNGER 5)"},
			`x BAD Unknown SEARCH key "YOUNGER"`},
		{"SEARCH bad date", "selected", []string{"x SEARCH SINCE 31-Foo-2020"},
			`x BAD Invalid date "31-Foo-2020" for SEARCH SINCE (expected the form 5-Mar-2024)`},
		{"APPEND bad date-time", "auth", []string{`x APPEND INBOX "31-Foo-2020 10:00:00 +0000" {1}`},
			`x BAD Invalid date-time "31-Foo-2020 10:00:00 +0000" in APPEND (expected the form "05-Mar-2024 10:00:00 +0100")`},
		{"APPEND bad date-time, LITERAL-", "auth", []string{"x APPEND INBOX (\\Seen) \"yesterday\" {3+}\r\nabc"},
			`x BAD Invalid date-time "yesterday" in APPEND (expected the form "05-Mar-2024 10:00:00 +0100")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			if tc.state != "" {
				c.login("alice")
			}
			if tc.state == "selected" {
				c.ok("SELECT INBOX")
			}
			for i, l := range tc.send {
				c.send(l)
				if i < len(tc.send)-1 {
					if got := c.line(); !strings.HasPrefix(got, "+") {
						t.Fatalf("after %q: %q, want a continuation request", l, got)
					}
				}
			}
			if got := c.line(); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			// The connection stays and works.
			if untagged, status := c.cmd("NOOP"); status != "OK NOOP completed" {
				t.Fatalf("NOOP after it: %q %q", untagged, status)
			}
		})
	}

	// A literal over the limit later in a command go-imap is already
	// reading cannot be answered in order: BYE naming the limit, not
	// silence until the timeout.
	c := e.raw()
	c.send("x LOGIN {5}")
	if got := c.line(); got != "+ Ready for literal data" {
		t.Fatalf("LOGIN literal: %q", got)
	}
	c.send("alice {5000}")
	if got := c.line(); got != "* BYE Literal of 5000 bytes refused (limit 4096 bytes outside APPEND)" {
		t.Fatalf("second literal: %q", got)
	}
	c.closed()
}

// TestListAtomCharPatterns: a LIST or LSUB pattern may hold any ATOM-CHAR
// (RFC 3501 list-char); one that is not valid modified UTF-7 ("&" on its
// own) matches those characters literally and the answer is OK.
func TestListAtomCharPatterns(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice")
	tr.run(`
		C: a1 LIST "" !#$$&'+,-.0123456789:;<=>?@^_` + "`" + `|}%*
		S: a1 OK LIST completed
		C: a2 LSUB "" !#$$&'+,-.0123456789:;<=>?@^_` + "`" + `|}%*
		S: a2 OK LSUB completed
		C: a3 LIST "" "!#$$&'+,-.0123456789:;<=>?@^_` + "`" + `|}%*"
		S: a3 OK LIST completed
		C: a4 LIST (SUBSCRIBED) "&" ("a&" "&b" "&Jjo-&Jjo-")
		S: a4 OK LIST completed
		# "R&D" (R&-D in modified UTF-7) is found by a pattern that writes
		# the "&" bare, and by one that encodes it.
		C: b1 CREATE R&-D
		S: b1 OK CREATE completed
		C: b2 LIST "" R&D
		S: * LIST (\HasNoChildren) "/" "R&-D"
		S: b2 OK LIST completed
		C: b3 LIST "" R&-%
		S: * LIST (\HasNoChildren) "/" "R&-D"
		S: b3 OK LIST completed
		C: b4 LIST "" "*&*"
		S: * LIST (\HasNoChildren) "/" "R&-D"
		S: b4 OK LIST completed
		# Valid modified UTF-7 stays what it means.
		C: c1 CREATE "Entw&APw-rfe"
		S: c1 OK CREATE completed
		C: c2 LIST "" Entw&APw-*
		S: * LIST (\HasNoChildren) "/" "Entw&APw-rfe"
		S: c2 OK LIST completed
		# A control character cannot be meant as a name.
		C: d1 LIST "" "a` + "\x01" + `"
		S: d1 BAD Mailbox pattern contains a control character
		C: d2 NOOP
		S: d2 OK NOOP completed
	`)
}
