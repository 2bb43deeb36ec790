package pop3

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    status
		wantErr string
	}{
		{line: "+OK", want: status{ok: true}},
		{line: "+OK ", want: status{ok: true}},
		{line: "+OK Dovecot ready.", want: status{ok: true, text: "Dovecot ready."}},
		{line: "+ok lower case", want: status{ok: true, text: "lower case"}},
		{line: "+OK 2 320", want: status{ok: true, text: "2 320"}},
		{line: "-ERR", want: status{}},
		{line: "-ERR no such message", want: status{text: "no such message"}},
		{line: "-ERR [IN-USE] Mailbox is locked by another POP3 session.", want: status{code: "IN-USE", text: "Mailbox is locked by another POP3 session."}},
		{line: "-ERR [SYS/TEMP] Couldn't sync mailbox.", want: status{code: "SYS/TEMP", text: "Couldn't sync mailbox."}},
		{line: "-ERR [auth] lower-case code", want: status{code: "AUTH", text: "lower-case code"}},
		{line: "-ERR [LOGIN-DELAY]", want: status{code: "LOGIN-DELAY"}},
		{line: "-ERR [] empty code", want: status{text: "[] empty code"}},
		{line: "-ERR [SYS//TEMP] empty level", want: status{text: "[SYS//TEMP] empty level"}},
		{line: "-ERR [NO CLOSE", want: status{text: "[NO CLOSE"}},
		{line: "-ERR [HAS SPACE] x", want: status{text: "[HAS SPACE] x"}},
		{line: "+OK [IN-USE] codes parse on +OK too", want: status{ok: true, code: "IN-USE", text: "codes parse on +OK too"}},
		{line: "+ ", want: status{cont: true}},
		{line: "+", want: status{cont: true}},
		{line: "+ Y2hhbGxlbmdl", want: status{cont: true, text: "Y2hhbGxlbmdl"}},
		{line: "", wantErr: `malformed reply: not a status line: ""`},
		{line: "OK", wantErr: `malformed reply: not a status line: "OK"`},
		{line: "* OK IMAP4rev1", wantErr: `malformed reply: not a status line: "* OK IMAP4rev1"`},
		{line: "220 smtp.example.org ESMTP", wantErr: `malformed reply: not a status line: "220 smtp.example.org ESMTP"`},
		{line: "+NO", wantErr: `malformed reply: not a status line: "+NO"`},
	} {
		t.Run(tc.line, func(t *testing.T) {
			got, err := parseStatus(tc.line)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrMalformed) {
					t.Fatalf("parseStatus(%q) error = %v, want %q wrapping ErrMalformed", tc.line, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStatus(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		text    string
		count   int
		size    int64
		wantErr string
	}{
		{text: "2 320", count: 2, size: 320},
		{text: "0 0", count: 0, size: 0},
		{text: "  3   99  ", count: 3, size: 99},
		{text: "1 10 extra words allowed", count: 1, size: 10},
		{text: "5 9223372036854775807", wantErr: `malformed reply: maildrop size "9223372036854775807"`},
		{text: "", wantErr: `malformed reply: want "count size", got ""`},
		{text: "2", wantErr: `malformed reply: want "count size", got "2"`},
		{text: "two 320", wantErr: `malformed reply: message count "two"`},
		{text: "-1 320", wantErr: `malformed reply: message count "-1"`},
		{text: "+1 320", wantErr: `malformed reply: message count "+1"`},
		{text: "1 -5", wantErr: `malformed reply: maildrop size "-5"`},
		{text: "99999999999 5", wantErr: `malformed reply: message count "99999999999"`},
		{text: "1 0x10", wantErr: `malformed reply: maildrop size "0x10"`},
	} {
		count, size, err := parseStat(tc.text)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrMalformed) {
				t.Errorf("parseStat(%q) error = %v, want %q", tc.text, err, tc.wantErr)
			}
			continue
		}
		if err != nil || count != tc.count || size != tc.size {
			t.Errorf("parseStat(%q) = %d, %d, %v; want %d, %d", tc.text, count, size, err, tc.count, tc.size)
		}
	}
}

func TestParseListLine(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    MsgInfo
		wantErr string
	}{
		{line: "1 120", want: MsgInfo{1, 120}},
		{line: "17 0", want: MsgInfo{17, 0}},
		{line: "3 200 trailing", want: MsgInfo{3, 200}},
		{line: "2147483647 1", want: MsgInfo{2147483647, 1}},
		{line: "0 120", wantErr: `malformed reply: message number "0"`},
		{line: "2147483648 1", wantErr: `malformed reply: message number "2147483648"`},
		{line: "1", wantErr: `malformed reply: want "number size", got "1"`},
		{line: "", wantErr: `malformed reply: want "number size", got ""`},
		{line: "x 12", wantErr: `malformed reply: message number "x"`},
		{line: "1 12k", wantErr: `malformed reply: size "12k" of message 1`},
	} {
		got, err := parseListLine(tc.line)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseListLine(%q) error = %v, want %q", tc.line, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseListLine(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

func TestParseUIDLLine(t *testing.T) {
	long := strings.Repeat("u", maxUIDLLen)
	for _, tc := range []struct {
		line    string
		want    UIDLInfo
		wantErr string
	}{
		{line: "1 whqtswO00WBw418f9t5JxYwZ", want: UIDLInfo{1, "whqtswO00WBw418f9t5JxYwZ"}},
		{line: "2 000000016b02607b", want: UIDLInfo{2, "000000016b02607b"}},
		{line: "3 !~#.\"", want: UIDLInfo{3, "!~#.\""}},
		{line: "4 " + long, want: UIDLInfo{4, UIDL(long)}},
		{line: "4 " + long + "u", wantErr: "malformed reply: uid of message 4 is 513 bytes long"},
		{line: "5", wantErr: `malformed reply: want "number uid", got "5"`},
		{line: "5 a b", wantErr: `malformed reply: want "number uid", got "5 a b"`},
		{line: "6 caf\xe9", wantErr: "malformed reply: uid of message 6 has byte 0xe9"},
		{line: "7 a\x7fb", wantErr: "malformed reply: uid of message 7 has byte 0x7f"},
		{line: "0 abc", wantErr: `malformed reply: message number "0"`},
		{line: "abc 1", wantErr: `malformed reply: message number "abc"`},
	} {
		got, err := parseUIDLLine(tc.line)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseUIDLLine(%.40q) error = %v, want %q", tc.line, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseUIDLLine(%.40q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

func TestParseCapa(t *testing.T) {
	caps := Capabilities{}
	for _, l := range []string{"CAPA", "TOP", "uidl", "RESP-CODES", "PIPELINING", "SASL PLAIN LOGIN", "", "   ", "IMPLEMENTATION Dovecot (Debian)", "EXPIRE NEVER"} {
		parseCapaLine(caps, l)
	}
	want := Capabilities{
		"CAPA": {}, "TOP": {}, "UIDL": {}, "RESP-CODES": {}, "PIPELINING": {},
		"SASL": {"PLAIN", "LOGIN"}, "IMPLEMENTATION": {"Dovecot", "(Debian)"}, "EXPIRE": {"NEVER"},
	}
	if !reflect.DeepEqual(caps, want) {
		t.Fatalf("caps = %#v\nwant %#v", caps, want)
	}
	if !caps.Has("uidl") || !caps.Has("Pipelining") || caps.Has("STLS") {
		t.Error("Has is wrong")
	}
	if !caps.SASL("plain") || !caps.SASL("LOGIN") || caps.SASL("CRAM-MD5") {
		t.Error("SASL is wrong")
	}
	var none Capabilities
	if none.Has("TOP") || none.SASL("PLAIN") || none.Args("SASL") != nil {
		t.Error("nil Capabilities must have nothing")
	}
}

func TestAPOPTimestamp(t *testing.T) {
	for _, tc := range []struct{ greeting, want string }{
		{"Dovecot (Debian) ready. <1d2f.1.6b02605d.iqQ3Y178zXO+i+Wx2vGY7w==@vm>", "<1d2f.1.6b02605d.iqQ3Y178zXO+i+Wx2vGY7w==@vm>"},
		{"POP3 server ready <1896.697170952@dbc.mtview.ca.us>", "<1896.697170952@dbc.mtview.ca.us>"},
		{"Dovecot ready.", ""},
		{"ready <>", ""},
		{"ready <a b@c>", ""},
		{"ready <unterminated", ""},
		{"<<x@y>", ""},
		{"ready <" + strings.Repeat("x", 300) + ">", ""},
	} {
		if got := apopTimestamp(tc.greeting); got != tc.want {
			t.Errorf("apopTimestamp(%.50q) = %q, want %q", tc.greeting, got, tc.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Command: "PASS", Code: "IN-USE", Text: "Mailbox is locked by another POP3 session."}, "server replied -ERR [IN-USE] Mailbox is locked by another POP3 session."},
		{&Error{Command: "RETR 9", Text: "There's no message 9."}, "server replied -ERR There's no message 9."},
		{&Error{Command: "QUIT"}, "server replied -ERR"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	e := &Error{Code: "SYS/TEMP"}
	if !e.HasCode("SYS") || !e.HasCode("sys/temp") || e.HasCode("SYS/PERM") || e.HasCode("SY") || !e.Temporary() {
		t.Error("HasCode/Temporary wrong for SYS/TEMP")
	}
	if (&Error{Code: "AUTH"}).Temporary() || !(&Error{Code: "IN-USE"}).Temporary() {
		t.Error("Temporary wrong")
	}
	if got := ErrorCode(errors.Join(errors.New("x"), &Error{Code: "LOGIN-DELAY"})); got != "LOGIN-DELAY" {
		t.Errorf("ErrorCode = %q", got)
	}
}
