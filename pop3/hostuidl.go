package pop3

import "github.com/imapbridge/imapbridge/bridge"

// HostUIDL returns the UIDL the POP3 host gave the message this source
// knows as id (see sourceids.go): the id itself, unless it is one the
// source made up — a fingerprint ("fp:" + 64 hex digits, for a message
// the host listed no UIDL for) or a repeated UIDL told apart ("#" + 16 hex
// digits), each perhaps with a "-k" suffix. The bridge's POP3 face lists
// it, so a POP3 client moved from the host to the bridge downloads nothing
// again.
func HostUIDL(id bridge.SourceID) (string, bool) {
	s := string(id)
	if s == "" {
		return "", false
	}
	base := trimTieSuffix(s)
	if len(base) == 3+64 && base[:3] == "fp:" && isHex(base[3:]) {
		return "", false
	}
	if n := len(base); n > 17 && base[n-17] == '#' && isHex(base[n-16:]) {
		return "", false
	}
	return s, true
}

// trimTieSuffix removes a "-k" suffix (k ≥ 2) from a made-up id.
func trimTieSuffix(s string) string {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i < len(s) && i > 0 && s[i-1] == '-' && (len(s[:i-1]) == 3+64 || (len(s[:i-1]) > 17 && s[len(s[:i-1])-17] == '#')) {
		return s[:i-1]
	}
	return s
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
