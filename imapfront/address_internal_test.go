package imapfront

import (
	"bufio"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// TestGoIMAPDropsGroups is why this package parses address lists itself:
// go-imap's ExtractEnvelope (net/mail underneath) gives the members of a
// group and no start or end marker, and nothing at all for an empty group.
// If go-imap learns groups, this fails and extractEnvelope can go.
func TestGoIMAPDropsGroups(t *testing.T) {
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(
		"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\nCc: undisclosed-recipients:;\r\n\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	env := imapserver.ExtractEnvelope(h)
	for _, a := range env.To {
		if a.IsGroupStart() || a.IsGroupEnd() {
			t.Fatalf("go-imap now keeps group markers (%+v): use imapserver.ExtractEnvelope again", env.To)
		}
	}
	if len(env.To) != 3 || len(env.Cc) != 0 {
		t.Fatalf("go-imap gives To %+v Cc %+v", env.To, env.Cc)
	}
}

// FuzzParseAddressList: any header value parses without panicking, into at
// most maxAddresses addresses (plus a closing marker), with every group
// start closed by an end marker and no address that reads as a marker by
// accident.
func FuzzParseAddressList(f *testing.F) {
	for _, c := range addressCases {
		f.Add(c.Header)
	}
	f.Add(`"unterminated <a@b`)
	f.Add(`(nested (comment) a@b`)
	f.Add(`g: h: a@b;;;`)
	f.Add(`<@a,@b:c@d> [1.2.3.4] x@[5.6.7.8]`)
	f.Fuzz(func(t *testing.T, s string) {
		l := parseAddressList(s)
		if len(l) > maxAddresses+1 {
			t.Fatalf("%d addresses", len(l))
		}
		open := false
		for _, a := range l {
			switch {
			case a.IsGroupStart():
				if open {
					t.Fatalf("group inside a group: %+v", l)
				}
				open = true
			case a.IsGroupEnd():
				if !open || a.Name != "" {
					t.Fatalf("end marker without a start: %+v", l)
				}
				open = false
			case a.Mailbox == "":
				t.Fatalf("address without a mailbox: %+v", l)
			}
		}
		if open {
			t.Fatalf("group not closed: %+v", l)
		}
		_ = addressText(s)
	})
}

// addressCases are the header forms of RFC 5322 sections 3.4 and 4.4 and
// what Dovecot's ENVELOPE gives for each (TestEnvelopeAddressFormsAsDovecot
// checks it against dovecot-imapd; Dovecot says where it differs).
var addressCases = addressCasesList

var addressCasesList = []struct {
	Name, Header, Want string
	// Dovecot is what Dovecot's ENVELOPE gives where it differs from Want
	// (TestEnvelopeAddressFormsAsDovecot).
	Dovecot string
}{
	{"two groups", `group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;`,
		`((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL "g2" "d2.org") (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") (NIL NIL NIL NIL))`, ""},
	{"empty group", `undisclosed-recipients:;`, `((NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL))`, ""},
	{"group among mailboxes", `a@b.org, team: "C D" <c@d.org>; , e@f.org`,
		`((NIL NIL "a" "b.org") (NIL NIL "team" NIL) ("C D" NIL "c" "d.org") (NIL NIL NIL NIL) (NIL NIL "e" "f.org"))`, ""},
	{"plain", `user-from@domain.org`, `((NIL NIL "user-from" "domain.org"))`, ""},
	{"comment as name", `user-from@domain.org (Real Name)`, `(("Real Name" NIL "user-from" "domain.org"))`, ""},
	{"quoted name", `"Real Name" <user-from@domain.org>`, `(("Real Name" NIL "user-from" "domain.org"))`, ""},
	{"atom name", `Real Name <user-from@domain.org>`, `(("Real Name" NIL "user-from" "domain.org"))`, ""},
	{"name with comma", `"Real, Name" <user-from@domain.org>`, `(("Real, Name" NIL "user-from" "domain.org"))`, ""},
	{"quoted pair", `"Real \"Q\" Name" <q@domain.org>`, `(("Real \"Q\" Name" NIL "q" "domain.org"))`, ""},
	{"encoded word", `=?utf-8?q?R=C3=A9al_Name?= <user-from@domain.org>`, `(("=?utf-8?q?R=C3=A9al_Name?=" NIL "user-from" "domain.org"))`, ""},
	// go-imap's writer has no route (adl) field: always NIL.
	{"route", `<@route.org,@r2.org:user-from@domain.org>`, `((NIL NIL "user-from" "domain.org"))`,
		`((NIL "@route.org,@r2.org" "user-from" "domain.org"))`},
	{"quoted local part", `"user-from"@domain.org`, `((NIL NIL "user-from" "domain.org"))`, ""},
	{"quoted local part with space", `"user from"@domain.org`, `((NIL NIL "user from" "domain.org"))`, ""},
	{"case kept", `User-From@DOMAIN.ORG`, `((NIL NIL "User-From" "DOMAIN.ORG"))`, ""},
	{"spaces around @", `user-from @ domain.org`, `((NIL NIL "user-from" "domain.org"))`, ""},
	{"comments around @", `user-from(c)@(d)domain.org`, `(("d" NIL "user-from" "domain.org"))`, ""},
	{"no domain", `justuser`, `((NIL NIL "justuser" "MISSING_DOMAIN"))`, ""},
	{"no domain in brackets", `Name <nodomain>`, `(("Name" NIL "nodomain" "MISSING_DOMAIN"))`, ""},
	// Empty list members (RFC 5322 section 4.4, obs-addr-list) are not
	// addresses: Dovecot shows the inner one as a placeholder.
	{"empty members", `a@b.org,,c@d.org,`, `((NIL NIL "a" "b.org") (NIL NIL "c" "d.org"))`,
		`((NIL NIL "a" "b.org") (NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN") (NIL NIL "c" "d.org"))`},
	{"folded", "a@b.org,\r\n c@d.org", `((NIL NIL "a" "b.org") (NIL NIL "c" "d.org"))`, ""},
	{"domain literal", `x@[192.0.2.1]`, `((NIL NIL "x" "[192.0.2.1]"))`, ""},
	{"unclosed group", `team: a@b.org`, `((NIL NIL "team" NIL) (NIL NIL "a" "b.org") (NIL NIL NIL NIL))`, ""},
}
