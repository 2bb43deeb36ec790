package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/imapfront"
)

// envelopeTo returns the To address list of an ENVELOPE line as written on
// the wire (the fifth list after the subject: from, sender, reply-to, to).
func envelopeTo(t *testing.T, line string) string {
	t.Helper()
	i := strings.Index(line, "ENVELOPE (")
	if i < 0 {
		t.Fatalf("no ENVELOPE in %q", line)
	}
	// Skip the date and subject (quoted, no quotes inside in these
	// fixtures), then four lists or NILs, keeping the fourth.
	s := line[i+len("ENVELOPE ("):]
	for k := 0; k < 2; k++ {
		s = strings.TrimPrefix(s, " ")
		if strings.HasPrefix(s, "NIL") {
			s = s[3:]
			continue
		}
		j := strings.Index(s[1:], `"`)
		s = s[j+2:]
	}
	var lists []string
	for len(lists) < 4 {
		s = strings.TrimPrefix(s, " ")
		if strings.HasPrefix(s, "NIL") {
			lists = append(lists, "NIL")
			s = s[3:]
			continue
		}
		depth, inQ := 0, false
		for j := 0; j < len(s); j++ {
			switch c := s[j]; {
			case inQ && c == '\\':
				j++
			case c == '"':
				inQ = !inQ
			case !inQ && c == '(':
				depth++
			case !inQ && c == ')':
				depth--
				if depth == 0 {
					lists = append(lists, s[:j+1])
					s = s[j+1:]
					j = len(s)
				}
			}
		}
	}
	return lists[3]
}

// TestEnvelopeAddressForms: FETCH ENVELOPE of each form of RFC 5322's
// address lists, groups with their start and end markers (RFC 3501
// section 7.4.2) among them, from the ingest index and, for a store
// without one, from the message itself.
func TestEnvelopeAddressForms(t *testing.T) {
	for _, withIndex := range []bool{true, false} {
		t.Run(fmt.Sprintf("index=%v", withIndex), func(t *testing.T) {
			var e *testEnv
			if withIndex {
				e = newEnv(t)
			} else {
				e = newEnv(t, withoutIndex())
			}
			for i, c := range imapfront.AddressCases {
				e.appendMsg("alice", "INBOX", fmt.Sprintf("From: x@y.org\r\nTo: %s\r\nSubject: m%d\r\n\r\nbody\r\n", c.Header, i), nil, time.Now())
			}
			c := e.raw()
			c.login("alice")
			c.ok("SELECT INBOX")
			lines := c.ok("FETCH 1:* (ENVELOPE)")
			if len(lines) != len(imapfront.AddressCases) {
				t.Fatalf("%d FETCH lines for %d messages: %q", len(lines), len(imapfront.AddressCases), lines)
			}
			for i, tc := range imapfront.AddressCases {
				if got := envelopeTo(t, lines[i]); got != tc.Want {
					t.Errorf("%s: To: %s\n got %s\nwant %s", tc.Name, tc.Header, got, tc.Want)
				}
			}
		})
	}
}

// TestEnvelopeGroupsAfterUpgrade: a store whose ingest index was written
// before groups were kept (version 2) gives the right ENVELOPE at once
// after the upgrade (FETCH parses the message), and Bridge.Reindex
// rewrites the old records so the index serves it again.
func TestEnvelopeGroupsAfterUpgrade(t *testing.T) {
	dir := t.TempDir()
	const to = `group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;`
	const want = `((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL "g2" "d2.org") (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") (NIL NIL NIL NIL))`
	msg := "From: x@y.org\r\nTo: " + to + "\r\nSubject: old\r\n\r\nbody\r\n"

	old := newEnv(t, withDataDir(dir), withIndexer(imapfront.IndexVersion2, nil))
	old.appendMsg("alice", "INBOX", msg, nil, time.Now())
	if idx := storedIndex(t, old); imapfront.IndexCurrent(idx) || idx[0] != 2 {
		t.Fatalf("the old store's index is version %d", idx[0])
	}
	old.close()

	e := newEnv(t, withDataDir(dir), withIndexer(imapfront.Index, imapfront.IndexCurrent))
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	if got := envelopeTo(t, c.ok("FETCH 1 (ENVELOPE)")[0]); got != want {
		t.Errorf("after the upgrade, before Reindex:\n got %s\nwant %s", got, want)
	}
	n, err := e.b.Reindex(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("Reindex = %d, %v; want 1 record rewritten", n, err)
	}
	if !imapfront.IndexCurrent(storedIndex(t, e)) {
		t.Fatal("after Reindex the stored index is not current")
	}
	if got := envelopeTo(t, c.ok("FETCH 1 (ENVELOPE)")[0]); got != want {
		t.Errorf("after Reindex:\n got %s\nwant %s", got, want)
	}
	if n, err := e.b.Reindex(e.ctx); err != nil || n != 0 {
		t.Errorf("second Reindex = %d, %v; want nothing to do", n, err)
	}
}

// storedIndex is the ingest index of alice's only INBOX message.
func storedIndex(t *testing.T, e *testEnv) []byte {
	t.Helper()
	mb, err := e.user("alice").Mailbox(e.ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := mb.Messages(e.ctx, mb.UIDs(), true)
	if err != nil || len(msgs) != 1 || len(msgs[0].Index) == 0 {
		t.Fatalf("Messages: %d, %v", len(msgs), err)
	}
	return msgs[0].Index
}
