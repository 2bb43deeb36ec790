package imapfront_test

// The conformance suite: transcripts written from the RFCs (RFC 9051
// IMAP4rev2, RFC 3501 IMAP4rev1 where clients still use it, RFC 6154
// SPECIAL-USE, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 4315
// UIDPLUS, RFC 6851 MOVE, RFC 7889 APPENDLIMIT, RFC 4731 ESEARCH, RFC 5182
// SEARCHRES, RFC 5530 response codes), run over a socket against the
// server, command by command, with the exact untagged responses each
// command must produce and its error paths; then several sessions at
// once. Where an RFC leaves the text of a response to the server, the
// text is this server's; the codes and the responses are the RFC's.
//
// Known deviations, each from go-imap v2 beta.8 parsing a command before
// the session sees it, are written down where they show (a mailbox name
// that is not modified UTF-7, a bad date or search key: "NO [SERVERBUG]"
// where a BAD is due).

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// selected is what SELECT answers an IMAP4rev1 client (RFC 3501 section
// 6.3.1): EXISTS, RECENT, [UNSEEN n] if a message is unseen, UIDVALIDITY,
// UIDNEXT, FLAGS, PERMANENTFLAGS, then the tagged OK. keywords are added to
// the system flags; uv names the UIDVALIDITY variable.
func selected(s int, tag string, exists, recent, unseen, uidNext int, uv, keywords string) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, "S%d: "+format+"\n", append([]any{s}, args...)...) }
	flags := `\Answered \Flagged \Deleted \Seen \Draft` + keywords
	line("* %d EXISTS", exists)
	line("* %d RECENT", recent)
	if unseen > 0 {
		line("* OK [UNSEEN %d] First unseen message", unseen)
	}
	line("* OK [UIDVALIDITY ${%s}] UIDs valid", uv)
	line("* OK [UIDNEXT %d] Predicted next UID", uidNext)
	line("* FLAGS (%s)", flags)
	line(`* OK [PERMANENTFLAGS (%s \*)] Permanent flags`, flags)
	line("%s OK [READ-WRITE] SELECT completed", tag)
	return b.String()
}

// appendScript sends msg to mailbox with a synchronizing literal (RFC 9051
// section 6.3.12): the server asks for the literal with a continuation.
func appendScript(s int, tag, mailbox, args, msg string) string {
	if args != "" {
		args += " "
	}
	return fmt.Sprintf("C%d: %s APPEND %s %s%s\nS%d: + Ready for literal data\nC%d: %s\n", s, tag, mailbox, args, literal(msg), s, s, scriptText(msg))
}

func cfMsg(n int, subject string) string {
	return fmt.Sprintf("From: Ann <ann@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: %s\r\n"+
		"Date: Mon, 02 Mar 2026 09:%02d:00 +0100\r\nMessage-ID: <cf-%d@example.org>\r\n\r\nMessage %d.\r\n", subject, n, n, n)
}

// TestConformanceCreate: RFC 9051 section 6.3.4 (CREATE), RFC 6154
// section 3 (CREATE-SPECIAL-USE), RFC 5530 (CANNOT, ALREADYEXISTS).
func TestConformanceCreate(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice").set("long", strings.Repeat("x", 513))
	tr.run(`
		# "the server SHOULD create any superior hierarchical names that are
		# needed for the CREATE command to be successfully completed"
		C: a1 CREATE Projects/2026/Q1
		S: a1 OK CREATE completed
		C: a1a SUBSCRIBE Projects/2026/Q1
		S: a1a OK SUBSCRIBE completed
		C: a2 LIST "" "Projects*"
		S: * LIST (\HasChildren) "/" "Projects"
		S: * LIST (\HasChildren) "/" "Projects/2026"
		S: * LIST (\HasNoChildren) "/" "Projects/2026/Q1"
		S: a2 OK LIST completed
		# A trailing delimiter says the client means to create names under it.
		C: a3 CREATE Lists/
		S: a3 OK CREATE completed
		C: a4 LIST "" Lists
		S: * LIST (\HasNoChildren) "/" "Lists"
		S: a4 OK LIST completed
		# "It is an error to attempt to create INBOX or a mailbox with a name
		# that refers to an extant mailbox."
		C: a5 CREATE inbox
		S: a5 NO [ALREADYEXISTS] Mailbox already exists
		C: a6 CREATE Projects/2026
		S: a6 NO [ALREADYEXISTS] Mailbox already exists
		# Names that are not mailbox names: NO [CANNOT], nothing created.
		C: b1 CREATE ""
		S: b1 NO [CANNOT] Invalid mailbox name: empty
		C: b2 CREATE a//b
		S: b2 NO [CANNOT] Invalid mailbox name: empty level in "a//b"
		C: b3 CREATE /etc/passwd
		S: b3 NO [CANNOT] Invalid mailbox name: empty level in "/etc/passwd"
		C: b4 CREATE Projects/../../etc
		S: b4 NO [CANNOT] Invalid mailbox name: level ".." not allowed
		C: b5 CREATE ./x
		S: b5 NO [CANNOT] Invalid mailbox name: level "." not allowed
		C: b6 CREATE "a*b"
		S: b6 NO [CANNOT] Invalid mailbox name: contains wildcard '*'
		C: b7 CREATE "50%"
		S: b7 NO [CANNOT] Invalid mailbox name: contains wildcard '%'
		C: b8 CREATE ${long}
		S: b8 NO [CANNOT] Invalid mailbox name: longer than 512 bytes
		# Modified UTF-7 that does not decode. go-imap would refuse it while
		# parsing with NO [SERVERBUG]; the guard answers first and says
		# why (nothing created).
		C: b9 CREATE "&Jjo"
		S: b9 NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): write "&" as "&-"
		C: b10 LIST "" "*"
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Archive) "/" "Archive"
		S: * LIST (\HasNoChildren \Drafts) "/" "Drafts"
		S: * LIST (\HasNoChildren \Junk) "/" "Junk"
		S: * LIST (\HasNoChildren) "/" "Lists"
		S: * LIST (\HasChildren) "/" "Projects"
		S: * LIST (\HasChildren) "/" "Projects/2026"
		S: * LIST (\HasNoChildren) "/" "Projects/2026/Q1"
		S: * LIST (\HasNoChildren \Sent) "/" "Sent"
		S: * LIST (\HasNoChildren \Trash) "/" "Trash"
		S: b10 OK LIST completed
		# RFC 6154 section 3: CREATE with USE; "If the server cannot create a
		# mailbox with the designated special use defined ... it MUST NOT
		# create the mailbox" and the NO carries USEATTR.
		C: c1 CREATE "Old Mail" (USE (\Archive))
		S: c1 OK CREATE completed
		C: c2 LIST "" "Old Mail" RETURN (SPECIAL-USE)
		S: * LIST (\HasNoChildren \Archive) "/" "Old Mail"
		S: c2 OK LIST completed
		C: c3 CREATE Important (USE (\Important))
		S: c3 NO [USEATTR] Unsupported special-use attribute \Important
		C: c4 CREATE Both (USE (\Sent \Drafts))
		S: c4 NO [USEATTR] Only one special-use attribute per mailbox
		C: c5 LIST "" (Important Both)
		S: c5 OK LIST completed
	`)
}

// TestConformanceDelete: RFC 9051 section 6.3.5. A mailbox with children is
// refused with HASCHILDREN (the section allows that instead of turning it
// into a \Noselect name); a session that has the mailbox selected sees its
// messages go; a mailbox re-created by the same name gets a new
// UIDVALIDITY.
func TestConformanceDelete(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	msg := cfMsg(1, "to be deleted")
	tr.run(`
		C: a1 CREATE Work/Clients
		S: a1 OK CREATE completed
	` + appendScript(1, "a2", "Work/Clients", "", msg) + `
		S: a2 OK [APPENDUID ${uv1} 1] APPEND completed
		C2: b1 SELECT Work/Clients
	` + selected(2, "b1", 1, 1, 1, 2, "uv1", "") + `
		C: a3 DELETE Work
		S: a3 NO [HASCHILDREN] Mailbox has child mailboxes; delete them first
		C: a4 DELETE INBOX
		S: a4 NO [CANNOT] INBOX cannot be deleted
		C: a5 DELETE Nope
		S: a5 NO [NONEXISTENT] Mailbox does not exist
		C: a6 DELETE Work/Clients
		S: a6 OK DELETE completed
		# The session that had it selected: its messages are gone.
		C2: b2 NOOP
		S2: * 1 EXPUNGE
		S2: b2 OK NOOP completed
		C: a7 SELECT Work/Clients
		S: a7 NO [NONEXISTENT] Mailbox does not exist
		C: a8 DELETE Work
		S: a8 OK DELETE completed
		C: a9 LIST "" "Work*"
		S: a9 OK LIST completed
		# "The value of the highest-used unique identifier of the deleted
		# mailbox MUST be preserved so that a new mailbox created with the
		# same name will not reuse the identifiers of the former
		# incarnation, unless the new incarnation has a different unique
		# identifier validity value."
		C: a10 CREATE Work/Clients
		S: a10 OK CREATE completed
		C: a11 STATUS Work/Clients (MESSAGES UIDNEXT UIDVALIDITY)
		S: * STATUS "Work/Clients" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ${uv2})
		S: a11 OK STATUS completed
	`)
	if tr.num("uv2") == tr.num("uv1") {
		t.Errorf("re-created mailbox has the old UIDVALIDITY %d", tr.num("uv1"))
	}
}

// TestConformanceRename: RFC 9051 section 6.3.6: children are renamed with
// their parent, superior names of the new name are created, errors for a
// missing source or an existing target, and INBOX's special behaviour.
func TestConformanceRename(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.run(`
		C: a1 CREATE Work/Clients/Acme
		S: a1 OK CREATE completed
	` + appendScript(1, "a2", "Work/Clients/Acme", `(\Seen)`, cfMsg(1, "acme")) + `
		S: a2 OK [APPENDUID ${uvAcme} 1] APPEND completed
		# "If the name has inferior hierarchical names, then the inferior
		# hierarchical names MUST also be renamed."
		C: a3 RENAME Work Jobs
		S: a3 OK RENAME completed
		C: a4 LIST "" (Jobs* Work*)
		S: * LIST (\HasChildren) "/" "Jobs"
		S: * LIST (\HasChildren) "/" "Jobs/Clients"
		S: * LIST (\HasNoChildren) "/" "Jobs/Clients/Acme"
		S: a4 OK LIST completed
		# The same mailbox under its new name: same UIDVALIDITY, same message.
		C: a5 STATUS Jobs/Clients/Acme (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)
		S: * STATUS "Jobs/Clients/Acme" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ${uvAcme} UNSEEN 0)
		S: a5 OK STATUS completed
		# "the server SHOULD create any superior hierarchical names that are
		# needed for the RENAME command to complete successfully"
		C: a6 RENAME Jobs/Clients/Acme Archive/2026/Acme
		S: a6 OK RENAME completed
		C: a7 LIST "" "Archive*"
		S: * LIST (\HasChildren \Archive) "/" "Archive"
		S: * LIST (\HasChildren) "/" "Archive/2026"
		S: * LIST (\HasNoChildren) "/" "Archive/2026/Acme"
		S: a7 OK LIST completed
		# "It is an error to attempt to rename from a mailbox name that does
		# not exist or to a mailbox name that already exists."
		C: a8 RENAME Nope Other
		S: a8 NO [NONEXISTENT] Mailbox does not exist
		C: a9 RENAME Jobs Sent
		S: a9 NO [ALREADYEXISTS] Mailbox already exists
		C: a10 RENAME Jobs inbox
		S: a10 NO [ALREADYEXISTS] Mailbox already exists
		C: a11 RENAME Jobs Jobs/Sub
		S: a11 NO [CANNOT] Invalid mailbox name: cannot rename "Jobs" into itself
		C: a12 RENAME Jobs "a//b"
		S: a12 NO [CANNOT] Invalid mailbox name: empty level in "a//b"
		# The old name's UIDs are not reused: a new incarnation.
		C: a13 CREATE Jobs/Clients/Acme
		S: a13 OK CREATE completed
		C: a14 STATUS Jobs/Clients/Acme (MESSAGES UIDNEXT UIDVALIDITY)
		S: * STATUS "Jobs/Clients/Acme" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ${uvNew})
		S: a14 OK STATUS completed
	`)
	if tr.num("uvNew") == tr.num("uvAcme") {
		t.Errorf("a mailbox created by a renamed mailbox's old name reuses its UIDVALIDITY")
	}

	// "Renaming INBOX is permitted ... It moves all messages in INBOX to a
	// new mailbox with the given name, leaving INBOX empty. If the server
	// implementation supports inferior hierarchical names of INBOX, these
	// are unaffected by a rename of INBOX."
	e.deliver("alice", simpleMsg(1), simpleMsg(2))
	tr.run(`
		C: i1 CREATE INBOX/Lists
		S: i1 OK CREATE completed
		C: i2 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)
		S: * STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY ${uvInbox})
		S: i2 OK STATUS completed
		C2: j1 SELECT INBOX
	` + selected(2, "j1", 2, 2, 1, 3, "uvInbox", "") + `
		C: i3 RENAME INBOX "Old Inbox"
		S: i3 OK RENAME completed
		C: i4 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)
		S: * STATUS INBOX (MESSAGES 0 UIDNEXT 3 UIDVALIDITY ${uvInbox})
		S: i4 OK STATUS completed
		C: i5 STATUS "Old Inbox" (MESSAGES UIDNEXT)
		S: * STATUS "Old Inbox" (MESSAGES 2 UIDNEXT 3)
		S: i5 OK STATUS completed
		C: i6 LIST "" "INBOX*"
		S: * LIST (\HasChildren) "/" INBOX
		S: * LIST (\HasNoChildren) "/" "INBOX/Lists"
		S: i6 OK LIST completed
		# The session with INBOX selected sees the messages leave.
		C2: j2 NOOP
		S2: * 1 EXPUNGE
		S2: * 1 EXPUNGE
		S2: j2 OK NOOP completed
	`)
}

// TestConformanceSubscriptions: RFC 9051 sections 6.3.7 and 6.3.8, RFC 3501
// section 6.3.9 (LSUB), RFC 5258 (LIST (SUBSCRIBED), \NonExistent).
func TestConformanceSubscriptions(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice")
	tr.run(`
		C: a1 CREATE Lists/Go
		S: a1 OK CREATE completed
		# CREATE subscribes nothing, not even the parent it makes: the
		# client subscribes (RFC 3501 section 6.3.6).
		C: a1a LSUB "" "Lists*"
		S: a1a OK LSUB completed
		C: a1b SUBSCRIBE Lists
		S: a1b OK SUBSCRIBE completed
		C: a1c SUBSCRIBE Lists/Go
		S: a1c OK SUBSCRIBE completed
		C: a2 UNSUBSCRIBE Lists/Go
		S: a2 OK UNSUBSCRIBE completed
		# "This command returns a tagged OK response if the unsubscription
		# is successful or if the mailbox is not subscribed."
		C: a3 UNSUBSCRIBE Lists/Go
		S: a3 OK UNSUBSCRIBE completed
		C: a4 UNSUBSCRIBE Never/Was
		S: a4 OK UNSUBSCRIBE completed
		# "A server MAY validate the mailbox argument to SUBSCRIBE to verify
		# that it exists."
		C: a5 SUBSCRIBE Never/Was
		S: a5 NO [NONEXISTENT] Mailbox does not exist
		C: a6 LSUB "" "Lists*"
		S: * LSUB (\HasChildren \Subscribed) "/" "Lists"
		S: a6 OK LSUB completed
		C: a7 LIST "" "Lists*" RETURN (SUBSCRIBED)
		S: * LIST (\HasChildren \Subscribed) "/" "Lists"
		S: * LIST (\HasNoChildren) "/" "Lists/Go"
		S: a7 OK LIST completed
		C: a8 SUBSCRIBE Lists/Go
		S: a8 OK SUBSCRIBE completed
		# "it SHOULD NOT unilaterally remove an existing mailbox name from
		# the subscription list even if a mailbox by that name no longer
		# exists": LIST (SUBSCRIBED) shows it \NonExistent (RFC 5258
		# section 3, example 2).
		C: a9 DELETE Lists/Go
		S: a9 OK DELETE completed
		C: a10 LIST (SUBSCRIBED) "" "Lists*"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Lists"
		S: * LIST (\NonExistent \Subscribed) "/" "Lists/Go"
		S: a10 OK LIST completed
		# Without the SUBSCRIBED selection option, names that do not exist
		# are not listed (RFC 5258 example 6).
		C: a11 LIST "" "Lists*" RETURN (SUBSCRIBED)
		S: * LIST (\HasNoChildren \Subscribed) "/" "Lists"
		S: a11 OK LIST completed
		# RFC 5819: no STATUS for a name that does not exist.
		C: a12 LIST (SUBSCRIBED) "" "Lists/*" RETURN (STATUS (MESSAGES))
		S: * LIST (\NonExistent \Subscribed) "/" "Lists/Go"
		S: a12 OK LIST completed
		C: a13 UNSUBSCRIBE Lists/Go
		S: a13 OK UNSUBSCRIBE completed
		C: a14 LIST (SUBSCRIBED) "" "Lists*"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Lists"
		S: a14 OK LIST completed
		# RFC 5258 example 8 A2: a parent that does not exist, with a
		# subscribed child the pattern does not match.
		C: b1 CREATE Old/Box
		S: b1 OK CREATE completed
		C: b1a SUBSCRIBE Old/Box
		S: b1a OK SUBSCRIBE completed
		C: b2 DELETE Old/Box
		S: b2 OK DELETE completed
		C: b3 DELETE Old
		S: b3 OK DELETE completed
		C: b4 UNSUBSCRIBE Old
		S: b4 OK UNSUBSCRIBE completed
		C: b5 LIST (SUBSCRIBED RECURSIVEMATCH) "" "O%"
		S: * LIST (\NonExistent) "/" "Old" ("CHILDINFO" ("SUBSCRIBED"))
		S: b5 OK LIST completed
		C: b6 LIST (SUBSCRIBED) "" "O%"
		S: b6 OK LIST completed
		C: b7 LIST (SUBSCRIBED) "" "O*"
		S: * LIST (\NonExistent \Subscribed) "/" "Old/Box"
		S: b7 OK LIST completed
		# Subscriptions follow a renamed mailbox.
		C: a15 RENAME Lists Groups
		S: a15 OK RENAME completed
		C: a16 LSUB "" "*s"
		S: * LSUB (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"
		S: * LSUB (\HasNoChildren \Subscribed) "/" "Groups"
		S: a16 OK LSUB completed
	`)
}

// TestConformanceList: RFC 9051 section 6.3.9, RFC 5258 (selection and
// return options, multiple patterns, RECURSIVEMATCH and CHILDINFO), RFC
// 6154 (SPECIAL-USE) and RFC 5819 (RETURN (STATUS)).
func TestConformanceList(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2))
	tr := newTranscript(t, e).login(1, "alice").set("size", len(simpleMsg(1))+len(simpleMsg(2)))
	tr.run(`
		C: a1 CREATE Projects/2026/Q1
		S: a1 OK CREATE completed
		C: a1a SUBSCRIBE Projects/2026/Q1
		S: a1a OK SUBSCRIBE completed
		C: a2 UNSUBSCRIBE Junk
		S: a2 OK UNSUBSCRIBE completed
		C: a3 UNSUBSCRIBE Projects
		S: a3 OK UNSUBSCRIBE completed
		C: a4 UNSUBSCRIBE Projects/2026
		S: a4 OK UNSUBSCRIBE completed
		# "%" does not match the hierarchy delimiter, "*" does.
		C: b1 LIST "" %
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Archive) "/" "Archive"
		S: * LIST (\HasNoChildren \Drafts) "/" "Drafts"
		S: * LIST (\HasNoChildren \Junk) "/" "Junk"
		S: * LIST (\HasChildren) "/" "Projects"
		S: * LIST (\HasNoChildren \Sent) "/" "Sent"
		S: * LIST (\HasNoChildren \Trash) "/" "Trash"
		S: b1 OK LIST completed
		C: b2 LIST "" Projects/%
		S: * LIST (\HasChildren) "/" "Projects/2026"
		S: b2 OK LIST completed
		C: b3 LIST Projects %
		S: * LIST (\HasChildren) "/" "Projects/2026"
		S: b3 OK LIST completed
		# An empty pattern: the delimiter and the root name.
		C: b4 LIST "" ""
		S: * LIST (\Noselect) "/" ""
		S: b4 OK LIST completed
		# INBOX in any case.
		C: b5 LIST "" inbox
		S: * LIST (\HasNoChildren) "/" INBOX
		S: b5 OK LIST completed
		# RFC 5258 example 7: several patterns.
		C: b6 LIST "" ("INBOX" "Drafts" "Projects/%")
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Drafts) "/" "Drafts"
		S: * LIST (\HasChildren) "/" "Projects/2026"
		S: b6 OK LIST completed
		# RFC 6154 section 5.1: the SPECIAL-USE selection option.
		C: c1 LIST (SPECIAL-USE) "" *
		S: * LIST (\HasNoChildren \Archive) "/" "Archive"
		S: * LIST (\HasNoChildren \Drafts) "/" "Drafts"
		S: * LIST (\HasNoChildren \Junk) "/" "Junk"
		S: * LIST (\HasNoChildren \Sent) "/" "Sent"
		S: * LIST (\HasNoChildren \Trash) "/" "Trash"
		S: c1 OK LIST completed
		# RFC 5258 section 3.1: SUBSCRIBED lists subscribed names, with
		# \Subscribed (the selection option implies the return option).
		C: c2 LIST (SUBSCRIBED) "" *
		S: * LIST (\HasNoChildren \Subscribed) "/" INBOX
		S: * LIST (\HasNoChildren \Subscribed \Archive) "/" "Archive"
		S: * LIST (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Projects/2026/Q1"
		S: * LIST (\HasNoChildren \Subscribed \Sent) "/" "Sent"
		S: * LIST (\HasNoChildren \Subscribed \Trash) "/" "Trash"
		S: c2 OK LIST completed
		# RECURSIVEMATCH: a parent that is not subscribed but has a
		# subscribed child the pattern does not match comes with CHILDINFO.
		C: c3 LIST (SUBSCRIBED RECURSIVEMATCH) "" %
		S: * LIST (\HasNoChildren \Subscribed) "/" INBOX
		S: * LIST (\HasNoChildren \Subscribed \Archive) "/" "Archive"
		S: * LIST (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"
		S: * LIST (\HasChildren) "/" "Projects" ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\HasNoChildren \Subscribed \Sent) "/" "Sent"
		S: * LIST (\HasNoChildren \Subscribed \Trash) "/" "Trash"
		S: c3 OK LIST completed
		# "The RECURSIVEMATCH option MUST NOT occur as the only selection
		# option ... The server MUST return BAD tagged response in such case."
		C: c4 LIST (RECURSIVEMATCH) "" %
		S: c4 BAD [CLIENTBUG] The LIST RECURSIVEMATCH select option requires SUBSCRIBED
		# "A server MUST respond to options it does not recognize with a BAD
		# response."
		C: c5 LIST (FANCY) "" %
		S: c5 BAD [CLIENTBUG] Unknown LIST select option
		C: c6 LIST "" % RETURN (FANCY)
		S: c6 BAD [CLIENTBUG] Unknown LIST RETURN options
		# Return options: SUBSCRIBED, CHILDREN, SPECIAL-USE.
		C: d1 LIST "" "Projects*" RETURN (SUBSCRIBED CHILDREN)
		S: * LIST (\HasChildren) "/" "Projects"
		S: * LIST (\HasChildren) "/" "Projects/2026"
		S: * LIST (\HasNoChildren \Subscribed) "/" "Projects/2026/Q1"
		S: d1 OK LIST completed
		C: d2 LIST "" Junk RETURN (SPECIAL-USE SUBSCRIBED)
		S: * LIST (\HasNoChildren \Junk) "/" "Junk"
		S: d2 OK LIST completed
		# RFC 5819: a STATUS response follows each LIST response.
		C: d3 LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE))
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 2 SIZE ${size})
		S: * LIST (\HasNoChildren \Sent) "/" "Sent"
		S: * STATUS "Sent" (MESSAGES 0 UIDNEXT 1 UNSEEN 0 SIZE 0)
		S: d3 OK LIST completed
	`)
}

// TestConformanceStatus: RFC 9051 section 6.3.11 (STATUS=SIZE from RFC
// 8438, DELETED), RFC 3501 (RECENT), RFC 7889 section 3 (APPENDLIMIT).
func TestConformanceStatus(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3))
	inbox, _ := e.user("alice").Mailbox(e.ctx, "INBOX")
	if _, err := inbox.Store(e.ctx, []bridge.UID{1}, bridge.FlagsAdd, []string{`\Seen`}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.Store(e.ctx, []bridge.UID{2}, bridge.FlagsAdd, []string{`\Deleted`}, nil); err != nil {
		t.Fatal(err)
	}
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.set("size", len(simpleMsg(1))+len(simpleMsg(2))+len(simpleMsg(3)))
	tr.run(`
		C: a1 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT APPENDLIMIT)
		S: * STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY ${uv} UNSEEN 2 DELETED 1 SIZE ${size} APPENDLIMIT 67108864 RECENT 3)
		S: a1 OK STATUS completed
		C: a2 STATUS "Trash" (MESSAGES UNSEEN)
		S: * STATUS "Trash" (MESSAGES 0 UNSEEN 0)
		S: a2 OK STATUS completed
		C: a3 STATUS Nope (MESSAGES)
		S: a3 NO [NONEXISTENT] Mailbox does not exist
		C: a4 STATUS INBOX (DELETED-STORAGE)
		S: a4 BAD Unsupported STATUS data item
		C: a5 STATUS INBOX (HIGHESTMODSEQ)
		S: a5 BAD Unknown STATUS data item
		# Once a session has taken the recent messages, none is recent.
		C2: b1 SELECT INBOX
	` + selected(2, "b1", 3, 3, 2, 4, "uv", "") + `
		C: a6 STATUS INBOX (RECENT MESSAGES)
		S: * STATUS INBOX (MESSAGES 3 RECENT 0)
		S: a6 OK STATUS completed
	`)
}

// TestConformanceAppend: RFC 9051 section 6.3.12, RFC 3501 section 6.3.11
// ("In either case, the Recent flag is also set"), RFC 4315 (APPENDUID),
// RFC 7889 (APPENDLIMIT, TOOBIG).
func TestConformanceAppend(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	msg := cfMsg(1, "appended")
	tr.set("n", len(msg))
	tr.run(`
		C: a1 SELECT INBOX
	` + selected(1, "a1", 0, 0, 0, 1, "uv", "") +
		appendScript(2, "b1", "INBOX", `(\Seen $Label) "24-Dec-2023 18:30:00 +0100"`, msg) + `
		S2: b1 OK [APPENDUID ${uv} 1] APPEND completed
		# "If the mailbox is currently selected, the normal new message
		# actions SHOULD occur": the keyword is new to the mailbox, so FLAGS
		# first, then EXISTS; the message is recent in the session that has
		# INBOX selected.
		C: a2 NOOP
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Label)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Label \*)] Permanent flags
		S: * 1 EXISTS
		S: * 1 RECENT
		S: a2 OK NOOP completed
		# The flags and the internal date are the ones given, in the zone
		# given.
		C: a3 FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)
		S: * 1 FETCH (FLAGS ($Label \Seen \Recent) INTERNALDATE "24-Dec-2023 18:30:00 +0100" RFC822.SIZE ${n})
		S: a3 OK FETCH completed
		C: a4 UID FETCH 1 (BODY.PEEK[])
		S: * 1 FETCH (UID 1 BODY[] {${n}}\r\n` + scriptText(msg) + `)
		S: a4 OK UID FETCH completed
		# "If the destination mailbox does not exist, a server MUST return an
		# error, and MUST NOT automatically create the mailbox. Unless it is
		# certain that the destination mailbox can not be created, the server
		# MUST send the response code "[TRYCREATE]"".
	` + appendScript(2, "b2", "Nope", "", msg) + `
		S2: b2 NO [TRYCREATE] Mailbox does not exist
		# A name that cannot be created: no TRYCREATE.
	` + appendScript(2, "b3", `"a//b"`, "", msg) + `
		S2: b3 NO [CANNOT] Invalid mailbox name: empty level in "a//b"
		# RFC 7889: over the limit, refused before the message is sent.
		C2: b4 APPEND INBOX {67108865}
		S2: b4 NO [TOOBIG] Literals are limited to 67108864 bytes for this command
		# RFC 7888 section 5: no LITERAL+, LITERAL- allows a
		# non-synchronizing literal of up to 4096 bytes.
		C2: b5 APPEND Drafts (\Draft) {${n}+}\r\n` + scriptText(msg) + `
		S2: b5 OK [APPENDUID ${uvDrafts} 1] APPEND completed
		C2: b6 APPEND INBOX (\Bogus) {1}
		S2: + Ready for literal data
		C2: x
		S2: b6 BAD [CLIENTBUG] Invalid system flag \Bogus
		C: a5 NOOP
		S: a5 OK NOOP completed
	`)
}

// TestConformanceCopy: RFC 9051 section 6.4.7 and RFC 4315 (COPYUID); RFC
// 3501: "The flags and internal date of the message SHOULD be preserved,
// and the Recent flag SHOULD be set, in the copy."
func TestConformanceCopy(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3))
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.run(`
		C2: b1 SELECT Archive
	` + selected(2, "b1", 0, 0, 0, 1, "uvArch", "") + `
		C: a1 SELECT INBOX
	` + selected(1, "a1", 3, 3, 1, 4, "uvInbox", "") + `
		C: a2 STORE 2 +FLAGS.SILENT (\Flagged $Keep)
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Keep)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Keep \*)] Permanent flags
		S: a2 OK STORE completed
		C: a3 COPY 2:3 Archive
		S: a3 OK [COPYUID ${uvArch} 2:3 1:2] COPY completed
		C: a4 UID COPY 1 Archive
		S: a4 OK [COPYUID ${uvArch} 1 3] COPY completed
		C2: b2 NOOP
		S2: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Keep)
		S2: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Keep \*)] Permanent flags
		S2: * 2 EXISTS
		S2: * 2 RECENT
		S2: * 3 EXISTS
		S2: * 3 RECENT
		S2: b2 OK NOOP completed
		C2: b3 FETCH 1:3 (UID FLAGS INTERNALDATE)
		S2: * 1 FETCH (UID 1 FLAGS ($Keep \Flagged \Recent) INTERNALDATE " 5-Mar-2024 10:00:00 +0000")
		S2: * 2 FETCH (UID 2 FLAGS (\Recent) INTERNALDATE " 5-Mar-2024 10:00:00 +0000")
		S2: * 3 FETCH (UID 3 FLAGS (\Recent) INTERNALDATE " 5-Mar-2024 10:00:00 +0000")
		S2: b3 OK FETCH completed
		# The source is unchanged.
		C: a5 FETCH 1:* (UID)
		S: * 1 FETCH (UID 1)
		S: * 2 FETCH (UID 2)
		S: * 3 FETCH (UID 3)
		S: a5 OK FETCH completed
		C: a6 COPY 1 Nope
		S: a6 NO [TRYCREATE] Mailbox does not exist
		C: a7 COPY 1 "a//b"
		S: a7 NO [CANNOT] Invalid mailbox name: empty level in "a//b"
		C: a8 COPY 4 Archive
		S: a8 BAD [CLIENTBUG] No such message: the last message is 3
		# "A non-existent unique identifier is ignored" (section 6.4.9).
		C: a9 UID COPY 7:9 Archive
		S: a9 OK COPY completed
	`)
}

// TestConformanceMove: RFC 6851. The COPYUID goes out first as an untagged
// OK, then the EXPUNGEs, then the tagged OK; every session watching the
// source sees the EXPUNGEs and every session watching the destination
// the EXISTS.
func TestConformanceMove(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3), simpleMsg(4))
	inbox, _ := e.user("alice").Mailbox(e.ctx, "INBOX")
	if _, err := inbox.Store(e.ctx, []bridge.UID{2}, bridge.FlagsAdd, []string{`\Seen`, "$Todo"}, nil); err != nil {
		t.Fatal(err)
	}
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice").login(3, "alice")
	tr.run(`
		C: a1 SELECT INBOX
	` + selected(1, "a1", 4, 4, 1, 5, "uvInbox", " $Todo") + `
		C2: b1 SELECT INBOX
	` + selected(2, "b1", 4, 0, 1, 5, "uvInbox", " $Todo") + `
		C2: b2 IDLE
		S2: + idling
		C3: c1 SELECT Archive
	` + selected(3, "c1", 0, 0, 0, 1, "uvArch", "") + `
		C: a2 MOVE 2:3 Archive
		S: * OK [COPYUID ${uvArch} 2:3 1:2] COPY completed
		S: * 2 EXPUNGE
		S: * 2 EXPUNGE
		S: a2 OK MOVE completed
		S2: * 2 EXPUNGE
		S2: * 2 EXPUNGE
		C3: c2 NOOP
		S3: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Todo)
		S3: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Todo \*)] Permanent flags
		S3: * 2 EXISTS
		S3: * 2 RECENT
		S3: c2 OK NOOP completed
		C: a3 UID MOVE 4 Archive
		S: * OK [COPYUID ${uvArch} 4 3] COPY completed
		S: * 2 EXPUNGE
		S: a3 OK UID MOVE completed
		S2: * 2 EXPUNGE
		C2: DONE
		S2: b2 OK IDLE completed
		# The moved messages keep their flags; UID FETCH may report the new
		# arrival after its results.
		C3: c3 UID FETCH 1:* (UID FLAGS)
		S3: * 1 FETCH (UID 1 FLAGS ($Todo \Seen \Recent))
		S3: * 2 FETCH (UID 2 FLAGS (\Recent))
		S3: * 3 EXISTS
		S3: * 3 RECENT
		S3: c3 OK UID FETCH completed
		C2: b3 FETCH 1:* (UID)
		S2: * 1 FETCH (UID 1)
		S2: b3 OK FETCH completed
		# Errors change nothing.
		C: a4 MOVE 1 Nowhere
		S: a4 NO [TRYCREATE] Mailbox does not exist
		C: a5 MOVE 2 Archive
		S: a5 BAD [CLIENTBUG] No such message: the last message is 1
		C: a6 EXAMINE INBOX
		S: * OK [CLOSED] Previous mailbox is now closed
		S: * 1 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen message
		S: * OK [UIDVALIDITY ${uvInbox}] UIDs valid
		S: * OK [UIDNEXT 5] Predicted next UID
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Todo)
		S: * OK [PERMANENTFLAGS ()] Permanent flags
		S: a6 OK [READ-ONLY] EXAMINE completed
		C: a7 MOVE 1 Archive
		S: a7 NO [READ-ONLY] Mailbox is open read-only
		C: a8 FETCH 1 (UID)
		S: * 1 FETCH (UID 1)
		S: a8 OK FETCH completed
	`)
}

// TestConformanceStore: RFC 9051 section 6.4.6 and RFC 3501 (\Recent
// "can not be altered by the client"); RFC 9051 section 7.5.2: responses to
// UID commands carry the UID; RFC 7162: UNCHANGEDSINCE needs CONDSTORE,
// which is not offered.
func TestConformanceStore(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3))
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.run(`
		C: a1 SELECT INBOX
	` + selected(1, "a1", 3, 3, 1, 4, "uv", "") + `
		C2: b1 SELECT INBOX
	` + selected(2, "b1", 3, 0, 1, 4, "uv", "") + `
		C: a2 STORE 1 +FLAGS (\Seen $Important)
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important \*)] Permanent flags
		S: * 1 FETCH (FLAGS ($Important \Seen \Recent))
		S: a2 OK STORE completed
		C: a3 STORE 1:2 -FLAGS.SILENT ($Important)
		S: a3 OK STORE completed
		C: a4 UID STORE 2:3 FLAGS (\Flagged)
		S: * 2 FETCH (UID 2 FLAGS (\Flagged \Recent))
		S: * 3 FETCH (UID 3 FLAGS (\Flagged \Recent))
		S: a4 OK UID STORE completed
		C: a5 STORE 1 FLAGS (\Recent)
		S: * 1 FETCH (FLAGS (\Recent))
		S: a5 OK STORE completed
		# The other session hears of every change, in order.
		C2: b2 NOOP
		S2: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important)
		S2: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Important \*)] Permanent flags
		S2: * 1 FETCH (UID 1 FLAGS ($Important \Seen))
		S2: * 1 FETCH (UID 1 FLAGS (\Seen))
		S2: * 2 FETCH (UID 2 FLAGS (\Flagged))
		S2: * 3 FETCH (UID 3 FLAGS (\Flagged))
		S2: * 1 FETCH (UID 1 FLAGS ())
		S2: b2 OK NOOP completed
		C: a6 STORE 1 +FLAGS (\Bogus)
		S: a6 BAD [CLIENTBUG] Invalid system flag \Bogus
		C: a7 STORE 4 +FLAGS (\Seen)
		S: a7 BAD [CLIENTBUG] No such message: the last message is 3
		C: a8 UID STORE 4 +FLAGS (\Seen)
		S: a8 OK UID STORE completed
		# CONDSTORE is not offered: UNCHANGEDSINCE is a syntax error.
		C: a9 STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\Seen)
		S: a9 BAD [CLIENTBUG] Syntax error: expected atom, got "("
		C: a10 FETCH 1:* (FLAGS) (CHANGEDSINCE 5)
		S: a10 BAD [CLIENTBUG] Syntax error: expected CRLF, got "("
		C: a11 FETCH 1 (MODSEQ)
		S: a11 BAD [CLIENTBUG] Unknown FETCH data item
		C2: b3 NOOP
		S2: b3 OK NOOP completed
	`)
}

// TestConformanceExpunge: RFC 9051 section 6.4.3 (its example: messages 3,
// 4, 7 and 11 expunged), RFC 4315 (UID EXPUNGE), CLOSE (section 6.4.1).
func TestConformanceExpunge(t *testing.T) {
	e := newEnv(t)
	var msgs []string
	for i := 1; i <= 11; i++ {
		msgs = append(msgs, simpleMsg(i))
	}
	e.deliver("alice", msgs...)
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.run(`
		C: a1 SELECT INBOX
	` + selected(1, "a1", 11, 11, 1, 12, "uv", "") + `
		C2: b1 SELECT INBOX
	` + selected(2, "b1", 11, 0, 1, 12, "uv", "") + `
		C: a2 STORE 3:4,7,11 +FLAGS.SILENT (\Deleted)
		S: a2 OK STORE completed
		C: a3 EXPUNGE
		S: * 3 EXPUNGE
		S: * 3 EXPUNGE
		S: * 5 EXPUNGE
		S: * 8 EXPUNGE
		S: a3 OK EXPUNGE completed
		C2: b2 NOOP
		S2: * 3 FETCH (UID 3 FLAGS (\Deleted))
		S2: * 4 FETCH (UID 4 FLAGS (\Deleted))
		S2: * 7 FETCH (UID 7 FLAGS (\Deleted))
		S2: * 11 FETCH (UID 11 FLAGS (\Deleted))
		S2: * 3 EXPUNGE
		S2: * 3 EXPUNGE
		S2: * 5 EXPUNGE
		S2: * 8 EXPUNGE
		S2: b2 OK NOOP completed
		# UID EXPUNGE removes only the named messages that are \Deleted.
		C: a4 STORE 1:2 +FLAGS.SILENT (\Deleted)
		S: a4 OK STORE completed
		C: a5 UID EXPUNGE 2:5
		S: * 2 EXPUNGE
		S: a5 OK UID EXPUNGE completed
		C: a6 UID FETCH 1:* (UID)
		S: * 1 FETCH (UID 1)
		S: * 2 FETCH (UID 5)
		S: * 3 FETCH (UID 6)
		S: * 4 FETCH (UID 8)
		S: * 5 FETCH (UID 9)
		S: * 6 FETCH (UID 10)
		S: a6 OK UID FETCH completed
		# CLOSE expunges silently and leaves the selected state.
		C: a7 CLOSE
		S: a7 OK CLOSE completed
		C: a8 FETCH 1 (UID)
		S: a8 BAD [CLIENTBUG] This command is only valid in the selected state
		C2: b3 NOOP
		S2: * 1 FETCH (UID 1 FLAGS (\Deleted))
		S2: * 2 FETCH (UID 2 FLAGS (\Deleted))
		S2: * 2 EXPUNGE
		S2: * 1 EXPUNGE
		S2: b3 OK NOOP completed
		C2: b4 STATUS INBOX (MESSAGES)
		S2: * STATUS INBOX (MESSAGES 5)
		S2: b4 OK STATUS completed
	`)
}

// base64Msg has a base64 body, so SEARCH BODY must decode it.
var base64Msg = "From: Dora <dora@example.net>\r\nTo: Alice <alice@example.org>\r\n" +
	"Subject: recipe\r\nDate: Tue, 19 Mar 2024 08:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	base64.StdEncoding.EncodeToString([]byte("The secret ingredient is K\u00e4sekuchen.\r\n")) + "\r\n"

// TestConformanceSearch: RFC 9051 section 6.4.4 (criteria, CHARSET, text
// matching after decoding MIME parts and encoded words), RFC 4731
// (ESEARCH), RFC 5182 (SEARCHRES).
func TestConformanceSearch(t *testing.T) {
	e := newEnv(t)
	cet := time.FixedZone("", 3600)
	e.appendMsg("alice", "INBOX", simpleMsg(1), []string{`\Seen`}, time.Date(2024, 1, 10, 12, 0, 0, 0, cet))
	e.appendMsg("alice", "INBOX", multipartMsg, []string{`\Flagged`, "$Work"}, time.Date(2024, 2, 15, 12, 0, 0, 0, cet))
	e.appendMsg("alice", "INBOX", latin1Msg, nil, time.Date(2024, 3, 20, 12, 0, 0, 0, cet))
	// 23:30 on the 20th where it was given, the 21st in UTC: "disregarding
	// time and timezone" it is the 20th.
	e.appendMsg("alice", "INBOX", base64Msg, nil, time.Date(2024, 3, 20, 23, 30, 0, 0, time.FixedZone("", -8*3600)))
	e.appendMsg("alice", "INBOX", lateSenderMsg, nil, time.Date(2024, 3, 21, 12, 0, 0, 0, time.UTC))
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.run(`
		C: a1 SELECT INBOX
	` + selected(1, "a1", 5, 5, 2, 6, "uv", " $Work") + `
		C: s1 SEARCH ALL
		S: * SEARCH 1 2 3 4 5
		S: s1 OK SEARCH completed
		C: s2 SEARCH UNSEEN
		S: * SEARCH 2 3 4 5
		S: s2 OK SEARCH completed
		C: s3 SEARCH OR SEEN FLAGGED
		S: * SEARCH 1 2
		S: s3 OK SEARCH completed
		C: s4 SEARCH KEYWORD $Work
		S: * SEARCH 2
		S: s4 OK SEARCH completed
		C: s5 SEARCH NOT KEYWORD $work
		S: * SEARCH 1 3 4 5
		S: s5 OK SEARCH completed
		C: s6 SEARCH DRAFT
		S: * SEARCH
		S: s6 OK SEARCH completed
		# Dates: the internal date's day where it was given.
		C: d1 SEARCH ON 20-Mar-2024
		S: * SEARCH 3 4
		S: d1 OK SEARCH completed
		C: d2 SEARCH SINCE 21-Mar-2024
		S: * SEARCH 5
		S: d2 OK SEARCH completed
		C: d3 SEARCH BEFORE 15-Feb-2024
		S: * SEARCH 1
		S: d3 OK SEARCH completed
		# The Date header, in its own zone (23:30 -0800 on the 8th).
		C: d4 SEARCH SENTON 8-Mar-2024
		S: * SEARCH 5
		S: d4 OK SEARCH completed
		C: d5 SEARCH LARGER 500 SMALLER 2000
		S: * SEARCH 2
		S: d5 OK SEARCH completed
		C: d6 SEARCH 2:4 UNSEEN
		S: * SEARCH 2 3 4
		S: d6 OK SEARCH completed
		C: d7 UID SEARCH UID 4:*
		S: * SEARCH 4 5
		S: d7 OK UID SEARCH completed
		# Text criteria match decoded text: encoded words, quoted-printable,
		# base64, ISO-8859-1, case-insensitively.
		C: t1 SEARCH CHARSET UTF-8 SUBJECT {7}
		S: + Ready for literal data
		C: GRÜßE
		S: * SEARCH 2 3
		S: t1 OK SEARCH completed
		C: t2 SEARCH CHARSET UTF-8 FROM {5}
		S: + Ready for literal data
		C: jörg
		S: * SEARCH 2
		S: t2 OK SEARCH completed
		C: t3 SEARCH CHARSET UTF-8 BODY {8}
		S: + Ready for literal data
		C: münchen
		S: * SEARCH 3
		S: t3 OK SEARCH completed
		C: t4 SEARCH BODY "quarterly figures"
		S: * SEARCH 2
		S: t4 OK SEARCH completed
		C: t5 SEARCH BODY "secret ingredient"
		S: * SEARCH 4
		S: t5 OK SEARCH completed
		C: t6 SEARCH BODY JVBERi0x
		S: * SEARCH
		S: t6 OK SEARCH completed
		C: t7 SEARCH TEXT carol
		S: * SEARCH 2
		S: t7 OK SEARCH completed
		C: t8 SEARCH HEADER Message-ID "<note-1@"
		S: * SEARCH 1
		S: t8 OK SEARCH completed
		C: t9 SEARCH NOT OR SUBJECT note BODY recipe
		S: * SEARCH 2 3 4 5
		S: t9 OK SEARCH completed
		C: t10 SEARCH CHARSET KOI8-R BODY x
		S: t10 NO [BADCHARSET] Only US-ASCII and UTF-8 are supported SEARCH charsets
		# RFC 4731 ESEARCH.
		C: e1 SEARCH RETURN (MIN MAX COUNT) UNSEEN
		S: * ESEARCH (TAG "e1") MIN 2 MAX 5 COUNT 4
		S: e1 OK SEARCH completed
		C: e2 UID SEARCH RETURN (ALL) FLAGGED
		S: * ESEARCH (TAG "e2") UID ALL 2
		S: e2 OK UID SEARCH completed
		C: e3 SEARCH RETURN () UNSEEN
		S: * ESEARCH (TAG "e3") ALL 2:5
		S: e3 OK SEARCH completed
		C: e4 SEARCH RETURN (COUNT MIN) DRAFT
		S: * ESEARCH (TAG "e4") COUNT 0
		S: e4 OK SEARCH completed
		# RFC 5182 SEARCHRES (section 2.4, example 10).
		C: r1 SEARCH RETURN (SAVE MIN) UNSEEN
		S: * ESEARCH (TAG "r1") MIN 2
		S: r1 OK SEARCH completed
		C: r2 FETCH $ (UID)
		S: * 2 FETCH (UID 2)
		S: r2 OK FETCH completed
		C: r3 SEARCH RETURN (MAX SAVE MIN) UNSEEN
		S: * ESEARCH (TAG "r3") MIN 2 MAX 5
		S: r3 OK SEARCH completed
		C: r4 UID FETCH $ (UID)
		S: * 2 FETCH (UID 2)
		S: * 5 FETCH (UID 5)
		S: r4 OK UID FETCH completed
		C: r5 SEARCH RETURN (ALL SAVE) NOT SEEN NOT FLAGGED
		S: * ESEARCH (TAG "r5") ALL 3:5
		S: r5 OK SEARCH completed
		C: r6 STORE $ +FLAGS.SILENT (\Answered)
		S: r6 OK STORE completed
		C: r7 SEARCH ANSWERED
		S: * SEARCH 3 4 5
		S: r7 OK SEARCH completed
		C: r8 SEARCH $ FROM owl
		S: * SEARCH 5
		S: r8 OK SEARCH completed
		# IMAP4rev2 (RFC 9051 section 6.4.4): SEARCH answers with ESEARCH.
		C2: v1 ENABLE IMAP4rev2
		S2: * ENABLED IMAP4rev2
		S2: v1 OK ENABLE completed
		C2: v2 SELECT INBOX
		S2: * 5 EXISTS
		S2: * OK [UIDVALIDITY ${uv}] UIDs valid
		S2: * OK [UIDNEXT 6] Predicted next UID
		S2: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work)
		S2: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Work \*)] Permanent flags
		S2: * LIST () "/" INBOX
		S2: v2 OK [READ-WRITE] SELECT completed
		C2: v3 SEARCH UNSEEN
		S2: * ESEARCH (TAG "v3") ALL 2:5
		S2: v3 OK SEARCH completed
		C2: v4 SEARCH DRAFT
		S2: * ESEARCH (TAG "v4")
		S2: v4 OK SEARCH completed
	`)
}

// TestConformanceRecent: RFC 3501 section 2.3.2: "\Recent Message is
// "recently" arrived in this mailbox. This session is the first session to
// have been notified about this message; if the session is read-write,
// subsequent sessions will not see \Recent set for this message. This flag
// can not be altered by the client." Section 6.3.2: "EXAMINE MUST NOT
// cause messages to lose the \Recent flag." Section 7.3.2: RECENT comes
// with SELECT and when new messages arrive. IMAP4rev2 has no \Recent.
func TestConformanceRecent(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2))
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice").login(3, "alice")
	tr.run(`
		C3: z1 STATUS INBOX (RECENT)
		S3: * STATUS INBOX (RECENT 2)
		S3: z1 OK STATUS completed
		C: a1 EXAMINE INBOX
		S: * 2 EXISTS
		S: * 2 RECENT
		S: * OK [UNSEEN 1] First unseen message
		S: * OK [UIDVALIDITY ${uv}] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS ()] Permanent flags
		S: a1 OK [READ-ONLY] EXAMINE completed
		C: a2 FETCH 1:* (FLAGS)
		S: * 1 FETCH (FLAGS (\Recent))
		S: * 2 FETCH (FLAGS (\Recent))
		S: a2 OK FETCH completed
		C3: z2 STATUS INBOX (RECENT)
		S3: * STATUS INBOX (RECENT 2)
		S3: z2 OK STATUS completed
		C2: b1 SELECT INBOX
	` + selected(2, "b1", 2, 2, 1, 3, "uv", "") + `
		C3: z3 STATUS INBOX (RECENT)
		S3: * STATUS INBOX (RECENT 0)
		S3: z3 OK STATUS completed
		C3: z4 SELECT INBOX
	` + selected(3, "z4", 2, 0, 1, 3, "uv", "") + `
		C3: z5 FETCH 1 (FLAGS)
		S3: * 1 FETCH (FLAGS ())
		S3: z5 OK FETCH completed
		# \Recent cannot be stored or removed.
		C2: b2 STORE 1 -FLAGS (\Recent)
		S2: * 1 FETCH (FLAGS (\Recent))
		S2: b2 OK STORE completed
		C3: z6 STORE 2 +FLAGS (\Recent)
		S3: * 2 FETCH (FLAGS ())
		S3: z6 OK STORE completed
	`)
	// New mail while three sessions have INBOX open: the oldest read-write
	// one (session 2) gets it as recent, and only that one.
	e.deliver("alice", simpleMsg(3))
	tr.run(`
		C2: b3 NOOP
		S2: * 3 EXISTS
		S2: * 3 RECENT
		S2: b3 OK NOOP completed
		C3: z7 NOOP
		S3: * 3 EXISTS
		S3: z7 OK NOOP completed
		C: a3 NOOP
		S: * 3 EXISTS
		S: a3 OK NOOP completed
		C2: b4 SEARCH RECENT
		S2: * SEARCH 1 2 3
		S2: b4 OK SEARCH completed
		C2: b5 SEARCH NEW
		S2: * SEARCH 1 2 3
		S2: b5 OK SEARCH completed
		C2: b6 SEARCH OLD
		S2: * SEARCH
		S2: b6 OK SEARCH completed
		C3: z8 SEARCH RECENT
		S3: * SEARCH
		S3: z8 OK SEARCH completed
		C: a4 SEARCH RECENT
		S: * SEARCH 1 2
		S: a4 OK SEARCH completed
		# An expunged recent message lowers the count; the next arrival
		# says the new count.
		C2: b7 STORE 3 +FLAGS.SILENT (\Deleted)
		S2: b7 OK STORE completed
		C2: b8 EXPUNGE
		S2: * 3 EXPUNGE
		S2: b8 OK EXPUNGE completed
		C2: b9 LOGOUT
		S2: * BYE Logging out
		S2: b9 OK LOGOUT completed
		E2:
	`)
	// Session 2 is gone: session 3 is now the oldest read-write session.
	e.deliver("alice", simpleMsg(4))
	tr.login(4, "alice")
	tr.run(`
		C3: z9 NOOP
		S3: * 3 FETCH (UID 3 FLAGS (\Deleted))
		S3: * 3 EXPUNGE
		S3: * 3 EXISTS
		S3: * 1 RECENT
		S3: z9 OK NOOP completed
		C3: z10 FETCH 3 (UID FLAGS)
		S3: * 3 FETCH (UID 4 FLAGS (\Recent))
		S3: z10 OK FETCH completed
		# IMAP4rev2: no RECENT, no \Recent (RFC 9051 appendix E).
		C4: v1 ENABLE IMAP4rev2
		S4: * ENABLED IMAP4rev2
		S4: v1 OK ENABLE completed
		C4: v2 SELECT INBOX
		S4: * 3 EXISTS
		S4: * OK [UIDVALIDITY ${uv}] UIDs valid
		S4: * OK [UIDNEXT 5] Predicted next UID
		S4: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S4: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Permanent flags
		S4: * LIST () "/" INBOX
		S4: v2 OK [READ-WRITE] SELECT completed
		C4: v3 FETCH 3 (FLAGS)
		S4: * 3 FETCH (FLAGS ())
		S4: v3 OK FETCH completed
	`)
}

// TestConformanceMailboxNames: RFC 3501 section 5.1.3 (modified UTF-7 for
// IMAP4rev1 clients), RFC 9051 section 5.1 and RFC 6855/9755 (UTF-8 once
// IMAP4rev2 or UTF8=ACCEPT is enabled): one mailbox, whichever way its
// name arrived, shown to each client in its own form.
func TestConformanceMailboxNames(t *testing.T) {
	e := newEnv(t)
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice").login(3, "alice")
	tr.run(`
		C2: u1 ENABLE IMAP4rev2
		S2: * ENABLED IMAP4rev2
		S2: u1 OK ENABLE completed
		C3: w1 ENABLE UTF8=ACCEPT
		S3: * ENABLED UTF8=ACCEPT
		S3: w1 OK ENABLE completed
		# "Entwürfe" in modified UTF-7, from an IMAP4rev1 client.
		C: a1 CREATE "Entw&APw-rfe/2026"
		S: a1 OK CREATE completed
		# The same name in UTF-8 is the same mailbox.
		C2: u2 CREATE "Entwürfe/2026"
		S2: u2 NO [ALREADYEXISTS] Mailbox already exists
		C2: u3 LIST "" "Entw*"
		S2: * LIST (\HasChildren) "/" "Entwürfe"
		S2: * LIST (\HasNoChildren) "/" "Entwürfe/2026"
		S2: u3 OK LIST completed
		C3: w2 LIST "" "Entw*"
		S3: * LIST (\HasChildren) "/" "Entwürfe"
		S3: * LIST (\HasNoChildren) "/" "Entwürfe/2026"
		S3: w2 OK LIST completed
		# Created in UTF-8, listed in modified UTF-7 to the IMAP4rev1 client.
		C2: u4 CREATE "Référence"
		S2: u4 OK CREATE completed
		C: a2 LIST "" (Entw* R*)
		S: * LIST (\HasChildren) "/" "Entw&APw-rfe"
		S: * LIST (\HasNoChildren) "/" "Entw&APw-rfe/2026"
		S: * LIST (\HasNoChildren) "/" "R&AOk-f&AOk-rence"
		S: a2 OK LIST completed
		C: a3 CREATE "R&AOk-f&AOk-rence"
		S: a3 NO [ALREADYEXISTS] Mailbox already exists
		C: a4 STATUS "R&AOk-f&AOk-rence" (MESSAGES)
		S: * STATUS "R&AOk-f&AOk-rence" (MESSAGES 0)
		S: a4 OK STATUS completed
		C3: w3 STATUS "Référence" (MESSAGES)
		S3: * STATUS "Référence" (MESSAGES 0)
		S3: w3 OK STATUS completed
		# "&" is written "&-" in modified UTF-7 (and go-imap keeps that
		# escape in UTF-8 mode too).
		C: a5 CREATE "Q&-A"
		S: a5 OK CREATE completed
		C2: u5 LIST "" "Q*"
		S2: * LIST (\HasNoChildren) "/" "Q&-A"
		S2: u5 OK LIST completed
		C2: u6 RENAME "Q&-A" "Fragen und Antworten"
		S2: u6 OK RENAME completed
		C: a6 LIST "" "Fragen*"
		S: * LIST (\HasNoChildren) "/" "Fragen und Antworten"
		S: a6 OK LIST completed
	`)
}

// TestConformanceExpungeDuringFetch: RFC 9051 section 7.5.1: "An EXPUNGE
// response MUST NOT be sent when no command is in progress, nor while
// responding to a FETCH, STORE, or SEARCH command ... UID versions of
// these commands" may. RFC 2180 section 4.1: a FETCH of a message another
// session expunged may return no data for it.
func TestConformanceExpungeDuringFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3), simpleMsg(4), simpleMsg(5))
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.run(`
		C: a1 SELECT INBOX
	` + selected(1, "a1", 5, 5, 1, 6, "uv", "") + `
		C2: b1 SELECT INBOX
	` + selected(2, "b1", 5, 0, 1, 6, "uv", "") + `
		C: a2 STORE 2,4 +FLAGS.SILENT (\Deleted)
		S: a2 OK STORE completed
		C: a3 EXPUNGE
		S: * 2 EXPUNGE
		S: * 3 EXPUNGE
		S: a3 OK EXPUNGE completed
		# B's numbers stay as B knows them until a command that may report
		# expunges; the expunged messages return nothing.
		C2: b2 FETCH 1:5 (UID)
		S2: * 1 FETCH (UID 1)
		S2: * 3 FETCH (UID 3)
		S2: * 5 FETCH (UID 5)
		S2: * 2 FETCH (UID 2 FLAGS (\Deleted))
		S2: * 4 FETCH (UID 4 FLAGS (\Deleted))
		S2: b2 OK FETCH completed
		C2: b3 STORE 5 +FLAGS (\Flagged)
		S2: * 5 FETCH (FLAGS (\Flagged))
		S2: b3 OK STORE completed
		C2: b4 SEARCH ALL
		S2: * SEARCH 1 3 5
		S2: b4 OK SEARCH completed
		C2: b5 FETCH * (UID)
		S2: * 5 FETCH (UID 5)
		S2: b5 OK FETCH completed
		# UID FETCH may: its results use the numbers before the expunges.
		C2: b6 UID FETCH 3 (FLAGS)
		S2: * 3 FETCH (UID 3 FLAGS ())
		S2: * 2 EXPUNGE
		S2: * 3 EXPUNGE
		S2: b6 OK UID FETCH completed
		C2: b7 FETCH 1:* (UID)
		S2: * 1 FETCH (UID 1)
		S2: * 2 FETCH (UID 3)
		S2: * 3 FETCH (UID 5)
		S2: b7 OK FETCH completed
		C2: b8 FETCH 4 (UID)
		S2: b8 BAD [CLIENTBUG] No such message: the last message is 3
		# A hears of B's STORE at its own number for that message.
		C: a4 NOOP
		S: * 3 FETCH (UID 5 FLAGS (\Flagged \Recent))
		S: a4 OK NOOP completed
	`)
}

// TestConformancePiledUpUpdates: several changes by other sessions and the
// source reach an idling session, each with the sequence number right at
// its point in the stream (RFC 9051 section 7.4.1: "Because of this
// immediate decrement, message sequence numbers in subsequent EXPUNGE
// responses ... reflect the expunge").
func TestConformancePiledUpUpdates(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), simpleMsg(3), simpleMsg(4))
	tr := newTranscript(t, e).login(1, "alice").login(2, "alice")
	tr.run(`
		C: a1 SELECT INBOX
	` + selected(1, "a1", 4, 4, 1, 5, "uv", "") + `
		C2: b1 SELECT INBOX
	` + selected(2, "b1", 4, 0, 1, 5, "uv", "") + `
		C2: b2 IDLE
		S2: + idling
		C: a2 STORE 1 +FLAGS.SILENT (\Deleted)
		S: a2 OK STORE completed
		S2: * 1 FETCH (UID 1 FLAGS (\Deleted))
		C: a3 UID EXPUNGE 1
		S: * 1 EXPUNGE
		S: a3 OK UID EXPUNGE completed
		S2: * 1 EXPUNGE
		C: a4 UID MOVE 3 Trash
		S: * OK [COPYUID ${uvTrash} 3 1] COPY completed
		S: * 2 EXPUNGE
		S: a4 OK UID MOVE completed
		S2: * 2 EXPUNGE
		C: a5 UID STORE 4 +FLAGS.SILENT ($Later)
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Later)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Later \*)] Permanent flags
		S: a5 OK UID STORE completed
		S2: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft $Later)
		S2: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft $Later \*)] Permanent flags
		S2: * 2 FETCH (UID 4 FLAGS ($Later))
	`)
	e.deliver("alice", simpleMsg(5))
	tr.run(`
		S2: * 3 EXISTS
		C2: DONE
		S2: b2 OK IDLE completed
		C2: b3 FETCH 1:* (UID FLAGS)
		S2: * 1 FETCH (UID 2 FLAGS ())
		S2: * 2 FETCH (UID 4 FLAGS ($Later))
		S2: * 3 FETCH (UID 5 FLAGS ())
		S2: b3 OK FETCH completed
		C: a6 NOOP
		S: * 3 EXISTS
		S: * 3 RECENT
		S: a6 OK NOOP completed
	`)
}
