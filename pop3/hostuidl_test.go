package pop3

import (
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
)

func TestHostUIDL(t *testing.T) {
	fp := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		id   string
		want string
		ok   bool
	}{
		{"000000014d2f6a11", "000000014d2f6a11", true},
		{"abc-2", "abc-2", true},
		{"a#b", "a#b", true},
		{"fp:" + fp, "", false},
		{"fp:" + fp + "-3", "", false},
		{"fp:short", "fp:short", true},
		{"X#" + fp[:16], "", false},
		{"X#" + fp[:16] + "-2", "", false},
		{"X#" + fp[:15], "X#" + fp[:15], true},
		{"", "", false},
	} {
		got, ok := HostUIDL(bridge.SourceID(tc.id))
		if got != tc.want || ok != tc.ok {
			t.Errorf("HostUIDL(%q) = %q, %v; want %q, %v", tc.id, got, ok, tc.want, tc.ok)
		}
	}
}

// The ids the source makes up are recognised as such, whatever the
// fingerprint.
func TestHostUIDLOfAssignedIDs(t *testing.T) {
	p := planIDs([]MsgInfo{{1, 10}, {2, 10}, {3, 10}, {4, 10}}, []UIDLInfo{{1, "u1"}, {2, "u1"}, {3, "u3"}})
	fp := strings.Repeat("ab", 32)
	ids, err := p.assign(map[MsgNum]string{2: fp, 4: fp})
	if err != nil {
		t.Fatal(err)
	}
	var host []string
	for _, id := range ids {
		if u, ok := HostUIDL(id); ok {
			host = append(host, u)
		}
	}
	if strings.Join(host, " ") != "u1 u3" {
		t.Errorf("host UIDLs of %v: %v, want u1 u3", ids, host)
	}
}
