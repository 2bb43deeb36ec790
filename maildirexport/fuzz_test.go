package maildirexport

import (
	"os"
	"strings"
	"testing"
)

// FuzzLegacyPOP3UIDL: whatever the source id, the UIDL given is one a
// POP3 host can list (1 to 70 bytes of 0x21..0x7E), a prefix of the id,
// the whole id unless it ends in the pop3 package's duplicate suffix, and
// never from a fingerprint id. Seeds: testdata/source-ids.txt.
func FuzzLegacyPOP3UIDL(f *testing.F) {
	seeds, err := os.ReadFile("testdata/source-ids.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range strings.Split(strings.TrimSpace(string(seeds)), "\n") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		u, ok := legacyPOP3UIDL(id)
		if !ok {
			if u != "" {
				t.Fatalf("%q: not ok but %q", id, u)
			}
			return
		}
		if strings.HasPrefix(id, "fp:") {
			t.Fatalf("%q: a fingerprint id gave %q", id, u)
		}
		if len(u) == 0 || len(u) > 70 {
			t.Fatalf("%q: UIDL %q of length %d", id, u, len(u))
		}
		for i := 0; i < len(u); i++ {
			if u[i] < 0x21 || u[i] > 0x7e {
				t.Fatalf("%q: UIDL %q holds byte %#x", id, u, u[i])
			}
		}
		if !strings.HasPrefix(id, u) {
			t.Fatalf("%q: UIDL %q is not its prefix", id, u)
		}
		if u != id && (id[len(u)] != '#' || !isDupSuffix(id[len(u)+1:])) {
			t.Fatalf("%q: UIDL %q cut at something that is not a duplicate suffix", id, u)
		}
	})
}
