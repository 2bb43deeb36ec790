package maildirexport

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEncodeMUTF7(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Sent", "Sent"},
		{"Überblick & Co", "&ANw-berblick &- Co"},
		{"&", "&-"},
		{"日本語", "&ZeVnLIqe-"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"a~b", "a~b"},
		{"😀", "&2D3eAA-"},
		{"ÄÖ", "&AMQA1g-"},
	} {
		if got := encodeMUTF7(tc.in); got != tc.want {
			t.Errorf("encodeMUTF7(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMaildirFolder(t *testing.T) {
	// The escapes are what Dovecot 2.3 with listescape wrote when these
	// folders were created over IMAP.
	for in, want := range map[string]string{
		"INBOX":              "",
		"Sent":               ".Sent",
		"Archive/2024":       ".Archive.2024",
		"INBOX/Sub":          ".INBOX.Sub",
		"Projekte/Überblick": ".Projekte.&ANw-berblick",
		"v1.2":               `.v1\2e2`,
		"Mr. Smith/Ü.x":      `.Mr\2e Smith.&ANw-\2ex`,
		`back\slash`:         `.back\5cslash`,
		"~tilde":             `.\7etilde`,
		"a~b":                ".a~b",
		"a/~b":               `.a.\7eb`,
		"Ä.b":                `.&AMQ-\2eb`,
		"INBOX/p.q":          `.INBOX.p\2eq`,
	} {
		if got := maildirFolder(in); got != want {
			t.Errorf("maildirFolder(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInfoLetters(t *testing.T) {
	letters := map[string]byte{"$Forwarded": 'a', "Junk": 'b', "Project-X": 'c'}
	for _, tc := range []struct {
		flags   []string
		want    string
		dropped string
	}{
		{nil, "", ""},
		{[]string{`\Seen`}, "S", ""},
		{[]string{`\Seen`, `\Draft`, `\Answered`, `\Flagged`, `\Deleted`}, "DFRST", ""},
		{[]string{"Project-X", `\Seen`, "$Forwarded"}, "Sac", ""},
		{[]string{`\Unknown`, "Junk"}, "b", `\Unknown`},
	} {
		got, dropped := infoLetters(tc.flags, letters)
		if got != tc.want || strings.Join(dropped, " ") != tc.dropped {
			t.Errorf("infoLetters(%q) = %q, dropped %q; want %q, %q", tc.flags, got, dropped, tc.want, tc.dropped)
		}
	}
}

func TestSubscriptionsFile(t *testing.T) {
	// As Dovecot 2.3 (with listescape) wrote them.
	got := string(subscriptionsFile([]string{"INBOX", "Archive/2024", "Über", "v1.2", "Mr. Smith/Ü.x", "~/k"}))
	if want := "V\t2\n\nINBOX\nArchive\t2024\n&ANw-ber\nv1\\2e2\nMr\\2e Smith\t&ANw-\\2ex\n\\7e\tk\n"; got != want {
		t.Errorf("subscriptionsFile = %q, want %q", got, want)
	}
	if got := tabEscape("a\tb\x01c"); got != "a\x01tb\x011c" {
		t.Errorf("tabEscape = %q", got)
	}
}

func TestMboxFile(t *testing.T) {
	for in, want := range map[string]string{"INBOX": "INBOX.mbox", "Archive/2024": "Archive/2024.mbox", "a.mbox": "a.mbox.mbox"} {
		if got := mboxFile(in); got != want {
			t.Errorf("mboxFile(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteMboxMessage(t *testing.T) {
	date := time.Date(2024, 2, 3, 4, 5, 6, 0, time.Local)
	long := strings.Repeat("y", 70000)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"crlf", "Subject: a\r\n\r\nbody\r\n", "From MAILER-DAEMON Sat Feb  3 04:05:06 2024\nSubject: a\n\nbody\n\n"},
		{"return-path", "Return-Path: <bob@example.org>\r\nSubject: a\r\n\r\nx\r\n", "From bob@example.org Sat Feb  3 04:05:06 2024\nReturn-Path: <bob@example.org>\nSubject: a\n\nx\n\n"},
		{"from-quoting", "S: a\r\n\r\nFrom here\r\n>From there\r\n>>From x\r\nFromage\r\n", "From MAILER-DAEMON Sat Feb  3 04:05:06 2024\nS: a\n\n>From here\n>>From there\n>>>From x\nFromage\n\n"},
		{"no-final-newline", "S: a\r\n\r\nend", "From MAILER-DAEMON Sat Feb  3 04:05:06 2024\nS: a\n\nend\n\n"},
		{"cr-before-crlf", "S: a\r\n\r\nx\r\r\n", "From MAILER-DAEMON Sat Feb  3 04:05:06 2024\nS: a\n\nx\r\r\n\n"},
		{"long-line", "S: a\r\n\r\n" + long + "\r\nFrom " + long + "\r\n", "From MAILER-DAEMON Sat Feb  3 04:05:06 2024\nS: a\n\n" + long + "\n>From " + long + "\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := writeMboxMessage(w, strings.NewReader(tc.in), date); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if got := buf.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", shorten(got), shorten(tc.want))
			}
		})
	}
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:150] + "…" + s[len(s)-150:]
	}
	return s
}

func TestCrlfCounter(t *testing.T) {
	for in, want := range map[string]int64{"a\r\nb\r\n": 0, "a\nb\n": 2, "a\r\nb\nc": 1, "\n": 1, "\r\r\n": 0} {
		c := &crlfCounter{}
		// Byte by byte: a CR at the end of one write, its LF in the next.
		for i := 0; i < len(in); i++ {
			c.Write([]byte{in[i]})
		}
		if c.bareLF != want {
			t.Errorf("bare LFs in %q = %d, want %d", in, c.bareLF, want)
		}
	}
}
