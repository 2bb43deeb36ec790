package imapfront

import (
	"strings"
	"testing"
)

func TestClipLogValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{strings.Repeat("a", maxLogField), strings.Repeat("a", maxLogField)},
		{strings.Repeat("a", 45012), strings.Repeat("a", maxLogField) + "…[45012 bytes]"},
		// Cut at a character boundary: "ü" is two bytes.
		{strings.Repeat("a", maxLogField-1) + "üü", strings.Repeat("a", maxLogField-1) + "…[259 bytes]"},
	} {
		if got := Clip(tc.in); got != tc.want {
			t.Errorf("Clip(%d bytes) = %q, want %q", len(tc.in), got, tc.want)
		}
	}
}
