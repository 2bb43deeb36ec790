package imapfront

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzExtractSearchText: whatever a stored message holds, building its
// search text does not panic and gives valid, already lower-cased UTF-8
// (SEARCH compares it with lower-cased keys), and decodeWords leaves text
// without encoded words alone.
func FuzzExtractSearchText(f *testing.F) {
	for _, raw := range readTestdata(f) {
		f.Add(raw)
	}
	f.Add([]byte("Subject: =?utf-8?q?=C3=A9t=C3=A9?= =?iso-8859-1?b?5Q==?= =?x?q?y?=\r\n\r\nbody"))
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: base64\r\n\r\nk5SA\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\n----\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st := extractSearchText(raw)
		for what, s := range map[string]string{"fields": st.fields, "body": st.body} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s not valid UTF-8: %q", what, s)
			}
			if strings.ToLower(s) != s {
				t.Fatalf("%s not lower-cased: %q", what, s)
			}
		}
		if s := string(raw); !strings.Contains(s, "=?") && decodeWords(s) != s {
			t.Fatalf("decodeWords changed %q into %q", s, decodeWords(s))
		}
	})
}

// FuzzSearchTextRoundTrip: a subject sent as RFC 2047 encoded words (B or
// Q) and a body sent quoted-printable, in UTF-8 or Latin-1, come out of
// the search text as the text that was encoded.
func FuzzSearchTextRoundTrip(f *testing.F) {
	f.Add("Grüße aus München", "Schöne Grüße, the figures are attached", false, false)
	f.Add("plain ascii", "x", true, true)
	f.Add("€ and ¤", "= sign and =3D", false, true)
	f.Add("", "", true, false)
	f.Fuzz(func(t *testing.T, subject, body string, qEncoding, latin1 bool) {
		if !printable(subject) || !printable(body) || strings.TrimSpace(subject) != subject {
			return
		}
		charset := "utf-8"
		subjectBytes, bodyBytes := subject, body
		if latin1 {
			s, ok1 := toLatin1(subject)
			b, ok2 := toLatin1(body)
			if !ok1 || !ok2 {
				return
			}
			charset, subjectBytes, bodyBytes = "iso-8859-1", s, b
		}
		enc := mime.BEncoding
		if qEncoding {
			enc = mime.QEncoding
		}
		var msg bytes.Buffer
		msg.WriteString("Subject: " + encodeWords(enc, charset, subject, subjectBytes) + "\r\n")
		msg.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=" + charset + "\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		qw := quotedprintable.NewWriter(&msg)
		qw.Write([]byte(bodyBytes))
		qw.Close()
		st := extractSearchText(msg.Bytes())
		if want := "subject: " + strings.ToLower(subject) + "\n"; !strings.Contains(st.fields, want) {
			t.Fatalf("fields %q do not hold %q\nmessage %q", st.fields, want, msg.Bytes())
		}
		if want := strings.ToLower(body); !strings.Contains(st.body, want) {
			t.Fatalf("body %q does not hold %q\nmessage %q", st.body, want, msg.Bytes())
		}
	})
}

// encodeWords encodes text (UTF-8) as encoded words in charset; raw is the
// text in that charset. mime's encoder only speaks UTF-8, so Latin-1 is
// encoded here, one word per 20 bytes.
func encodeWords(enc mime.WordEncoder, charset, text, raw string) string {
	if charset == "utf-8" {
		return enc.Encode(charset, text)
	}
	var words []string
	for len(raw) > 0 {
		n := min(20, len(raw))
		chunk := raw[:n]
		raw = raw[n:]
		if enc == mime.QEncoding {
			var b strings.Builder
			for i := 0; i < len(chunk); i++ {
				c := chunk[i]
				if c > ' ' && c < 0x7f && c != '=' && c != '?' && c != '_' {
					b.WriteByte(c)
				} else {
					fmt.Fprintf(&b, "=%02X", c)
				}
			}
			words = append(words, "=?"+charset+"?q?"+b.String()+"?=")
		} else {
			words = append(words, "=?"+charset+"?b?"+base64.StdEncoding.EncodeToString([]byte(chunk))+"?=")
		}
	}
	if len(words) == 0 {
		return ""
	}
	return strings.Join(words, " ")
}

// printable: valid UTF-8 without control characters (a header cannot hold
// line breaks; a body's line endings are not compared).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func toLatin1(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return "", false
		}
		out = append(out, byte(r))
	}
	return string(out), true
}
