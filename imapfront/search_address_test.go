package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// searchAddressQueries are SEARCH FROM (TO, CC, BCC) strings and the
// messages of searchAddressForms they find. dovecot marks the ones whose
// answer is Dovecot's too (TestSearchAddressFormsAsDovecot checks them
// against a real Dovecot).
var searchAddressQueries = []struct {
	query, want string
	dovecot     bool
}{
	{`user-from@domain.org`, "1 2 3 4 5 6 7 8 9 10 11 12 13 14", true},
	{`USER-FROM@domain.ORG`, "1 2 3 4 5 6 7 8 9 10 11 12 13 14", true},
	{`"@domain.org"`, "1 2 3 4 5 6 7 8 9 10 11 12 13 14", true},
	{`from@dom`, "1 2 3 4 5 6 7 8 9 10 11 12 13 14", true},
	{`"Real Name"`, "2 3 12", true},
	{`real`, "2 3 12 13", true},
	{`"Real, Name"`, "13", true},
	{`group`, "10", true},
	{`route.org`, "5", true},
	{`R=C3`, "", true},
	{`"Joe Q. Public"`, "15", true},
	{`john.q.public@example.com`, "15", true},
	// Dovecot misses 5 and 11 here (a route, an address in an encoded
	// word); a user sees <user-from@domain.org> in both.
	{`"<user-from@domain.org>"`, "1 2 3 4 5 6 7 8 9 10 11 12 13 14", false},
	{`nobody@domain.org`, "", true},
}

// searchAddressForms are the ways one address is written in a header; each
// is one message, UID i+1.
var searchAddressForms = []string{
	`user-from@domain.org`,                              // 1
	`user-from@domain.org (Real Name)`,                  // 2
	`"Real Name" <user-from@domain.org>`,                // 3
	`=?utf-8?q?R=C3=A9al_Name?= <user-from@domain.org>`, // 4
	`<@route.org,@r2.org:user-from@domain.org>`,         // 5
	`"user-from"@domain.org`,                            // 6
	`User-From@DOMAIN.ORG`,                              // 7
	`user-from @ domain.org`,                            // 8
	`user-from(c)@(d)domain.org`,                        // 9
	`group: user-from@domain.org;`,                      // 10
	`=?utf-8?q?user-from=40domain.org?=`,                // 11
	`Real Name <user-from@domain.org>`,                  // 12
	`"Real, Name" <user-from@domain.org>`,               // 13
	"other@domain.org,\r\n user-from@domain.org",        // 14
	`"Joe Q. Public" <john.q.public@example.com>`,       // 15
}

// TestSearchAddressForms: SEARCH FROM, TO, CC and BCC find an address
// however the header writes it. The expected sets are what Dovecot answers
// for the same messages (TestSearchAddressFormsAsDovecot), except where
// noted: today's code missed "user-from@domain.org" in 6, 8
// and 9 (a quoted local part, spaces or comments around "@").
func TestSearchAddressForms(t *testing.T) {
	queries := searchAddressQueries
	for _, withIndex := range []bool{true, false} {
		var e *testEnv
		if withIndex {
			e = newEnv(t)
		} else {
			e = newEnv(t, withoutIndex())
		}
		for _, field := range []string{"From", "To", "Cc", "Bcc"} {
			t.Run(fmt.Sprintf("%s/index=%v", field, withIndex), func(t *testing.T) {
				mb := "Box" + field
				c := e.raw()
				c.login("alice")
				c.ok("CREATE " + mb)
				for i, form := range searchAddressForms {
					other := "From"
					if field == "From" {
						other = "To"
					}
					e.appendMsg("alice", mb, fmt.Sprintf("%s: %s\r\n%s: x@y.org\r\nSubject: m%d\r\n\r\nbody\r\n", field, form, other, i+1), nil, time.Now())
				}
				c.ok("SELECT " + mb)
				for _, q := range queries {
					lines := c.ok("UID SEARCH " + strings.ToUpper(field) + " " + q.query)
					got := strings.TrimSpace(strings.TrimPrefix(strings.Join(lines, ""), "* SEARCH"))
					if got != q.want {
						t.Errorf("SEARCH %s %s = %q, want %q", strings.ToUpper(field), q.query, got, q.want)
					}
				}
			})
		}
	}
}
