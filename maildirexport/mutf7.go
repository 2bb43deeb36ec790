package maildirexport

import (
	"encoding/base64"
	"unicode/utf16"
)

// mutf7 is the base64 alphabet of modified UTF-7 (RFC 3501 section 5.1.3):
// "," instead of "/", no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeMUTF7 encodes one level of a mailbox name (UTF-8) in modified
// UTF-7, as Dovecot names Maildir++ folders on disk: printable ASCII
// stands for itself, "&" is "&-", anything else is "&" + the modified
// base64 of its UTF-16BE form + "-".
func encodeMUTF7(s string) string {
	out := make([]byte, 0, len(s))
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		b := make([]byte, 0, 2*len(u))
		for _, c := range u {
			b = append(b, byte(c>>8), byte(c))
		}
		out = append(out, '&')
		out = append(out, mutf7.EncodeToString(b)...)
		out = append(out, '-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			out = append(out, '&', '-')
		case r >= 0x20 && r <= 0x7e:
			flush()
			out = append(out, byte(r))
		default:
			run = append(run, r)
		}
	}
	flush()
	return string(out)
}
