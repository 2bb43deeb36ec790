package maildirexport

import (
	"os"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/pop3"
)

// FuzzExportUIDLs: whatever the source ids of an INBOX, the P fields the
// export writes (bridge.AssignPOP3UIDLs with the wiring's pop3.HostUIDL)
// are UIDLs a POP3 server can list (1 to 70 bytes of 0x21..0x7E), unique,
// and the first message from the host keeps the host's UIDL when the id
// is one. Seeds: testdata/source-ids.txt, each id twice (a host listing
// one UIDL for two messages) and beside a delivered message.
func FuzzExportUIDLs(f *testing.F) {
	seeds, err := os.ReadFile("testdata/source-ids.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(seeds), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			f.Add(line, line)
		}
	}
	hostUIDL := func(source string, id bridge.SourceID) (string, bool) { return pop3.HostUIDL(id) }
	f.Fuzz(func(t *testing.T, id1, id2 string) {
		msgs := []bridge.UIDLMessage{
			{UID: 1, Origin: &bridge.Origin{Source: "host", ID: bridge.SourceID(id1)}},
			{UID: 2},
			{UID: 3, Origin: &bridge.Origin{Source: "host", ID: bridge.SourceID(id2)}},
		}
		got := AssignUIDLsForTest(msgs, hostUIDL)
		seen := map[string]bool{}
		for i, g := range got {
			if !bridge.ValidUIDL(g.UIDL) {
				t.Fatalf("message %d (%q, %q): UIDL %q cannot be listed", i, id1, id2, g.UIDL)
			}
			if seen[g.UIDL] {
				t.Fatalf("(%q, %q): UIDL %q given twice: %+v", id1, id2, g.UIDL, got)
			}
			seen[g.UIDL] = true
		}
		if u, ok := pop3.HostUIDL(bridge.SourceID(id1)); ok && bridge.ValidUIDL(u) && (!got[0].Host || got[0].UIDL != u) {
			t.Fatalf("%q: first message got %+v, want the host's %q", id1, got[0], u)
		}
		if got[1].Host {
			t.Fatalf("the delivered message got a host UIDL %q", got[1].UIDL)
		}
	})
}

// AssignUIDLsForTest is what writeMaildirFolder does for INBOX.
func AssignUIDLsForTest(msgs []bridge.UIDLMessage, h bridge.HostUIDLFunc) []bridge.AssignedUIDL {
	return bridge.AssignPOP3UIDLs(1700000000, msgs, h)
}
