package imapfront_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

const lateSenderMsg = "From: Night Owl <owl@example.com>\r\n" +
	"To: Alice <alice@example.org>\r\n" +
	"Subject: late\r\n" +
	"Date: Fri, 08 Mar 2024 23:30:00 -0800\r\n" +
	"\r\n" +
	"Written just before midnight, Pacific time.\r\n"

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// bigToMsg has a To field larger than the ingest index keeps for SEARCH:
// its header fields are searched from the message.
var bigToMsg = "From: List <list@example.net>\r\n" +
	"To: " + strings.Repeat("member@example.net, ", 1000) + "last-member@example.net\r\n" +
	"Subject: roll call\r\n" +
	"Date: Sat, 23 Mar 2024 09:00:00 +0000\r\n" +
	"\r\n" +
	"Everyone.\r\n"

// TestSearch runs every criterion with the ingest index (header fields
// from the index) and without (every message read), which must agree.
func TestSearch(t *testing.T) {
	t.Run("index", func(t *testing.T) { testSearch(t) })
	t.Run("no index", func(t *testing.T) { testSearch(t, withoutIndex()) })
}

func testSearch(t *testing.T, opts ...envOption) {
	e := newEnv(t, opts...)
	noon := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.Local) }
	e.appendMsg("alice", "INBOX", simpleMsg(1), []string{`\Seen`}, noon(2024, 1, 10))
	e.appendMsg("alice", "INBOX", multipartMsg, []string{`\Flagged`, "$Work"}, noon(2024, 2, 15))
	e.appendMsg("alice", "INBOX", latin1Msg, nil, noon(2024, 3, 20))
	e.appendMsg("alice", "INBOX", simpleMsg(4), []string{`\Answered`, `\Deleted`}, noon(2024, 3, 20))
	e.appendMsg("alice", "INBOX", lateSenderMsg, nil, noon(2024, 3, 21))
	e.appendMsg("alice", "INBOX", bigToMsg, nil, noon(2024, 3, 23))
	c := e.client("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	type C = imap.SearchCriteria
	flag := func(f imap.Flag) C { return C{Flag: []imap.Flag{f}} }
	notFlag := func(f imap.Flag) C { return C{NotFlag: []imap.Flag{f}} }
	hdr := func(k, v string) C { return C{Header: []imap.SearchCriteriaHeaderField{{Key: k, Value: v}}} }
	tests := []struct {
		name string
		c    C
		want []imap.UID
	}{
		{"all", C{}, []imap.UID{1, 2, 3, 4, 5, 6}},
		{"seen", flag(imap.FlagSeen), []imap.UID{1}},
		{"unseen", notFlag(imap.FlagSeen), []imap.UID{2, 3, 4, 5, 6}},
		{"flagged", flag(imap.FlagFlagged), []imap.UID{2}},
		{"keyword", flag("$Work"), []imap.UID{2}},
		{"keyword any case", flag("$work"), []imap.UID{2}},
		{"unkeyword", notFlag("$Work"), []imap.UID{1, 3, 4, 5, 6}},
		{"answered", flag(imap.FlagAnswered), []imap.UID{4}},
		{"deleted", flag(imap.FlagDeleted), []imap.UID{4}},
		{"undeleted", notFlag(imap.FlagDeleted), []imap.UID{1, 2, 3, 5, 6}},
		{"draft", flag(imap.FlagDraft), nil},
		// This session is the first to select INBOX: all are recent here.
		{"recent", flag(`\Recent`), []imap.UID{1, 2, 3, 4, 5, 6}},
		{"old", notFlag(`\Recent`), nil},
		{"new", C{Flag: []imap.Flag{`\Recent`}, NotFlag: []imap.Flag{imap.FlagSeen}}, []imap.UID{2, 3, 4, 5, 6}},
		{"before", C{Before: day(2024, 2, 15)}, []imap.UID{1}},
		{"since", C{Since: day(2024, 2, 15)}, []imap.UID{2, 3, 4, 5, 6}},
		{"on", C{Since: day(2024, 3, 20), Before: day(2024, 3, 21)}, []imap.UID{3, 4}},
		{"sentbefore", C{SentBefore: day(2024, 3, 6)}, []imap.UID{1, 4}},
		{"senton", C{SentSince: day(2024, 3, 6), SentBefore: day(2024, 3, 7)}, []imap.UID{2}},
		{"senton own zone", C{SentSince: day(2024, 3, 8), SentBefore: day(2024, 3, 9)}, []imap.UID{5}},
		{"sentsince", C{SentSince: day(2024, 3, 7)}, []imap.UID{3, 5, 6}},
		{"larger", C{Larger: 500}, []imap.UID{2, 6}},
		{"smaller", C{Smaller: 500}, []imap.UID{1, 3, 4, 5}},
		{"subject encoded words", hdr("Subject", "grüße"), []imap.UID{2, 3}},
		{"subject", hdr("Subject", "NOTE"), []imap.UID{1, 4}},
		{"from decoded name", hdr("From", "jörg"), []imap.UID{2}},
		{"from domain", hdr("From", "example.de"), []imap.UID{2, 3}},
		{"to", hdr("To", "team@example.org"), []imap.UID{2}},
		{"cc", hdr("Cc", "carol"), []imap.UID{2}},
		{"bcc", hdr("Bcc", "x"), nil},
		{"to past the index bound", hdr("To", "LAST-member@"), []imap.UID{6}},
		{"to in a big field", hdr("To", "member@example.net"), []imap.UID{6}},
		{"from beside a big field", hdr("From", "list@example.net"), []imap.UID{6}},
		{"header", hdr("Message-ID", "<note-1@"), []imap.UID{1}},
		{"header exists", hdr("In-Reply-To", ""), []imap.UID{2}},
		{"body quoted-printable utf-8", C{Body: []string{"schöne grüße"}}, []imap.UID{2}},
		{"body latin-1", C{Body: []string{"München"}}, []imap.UID{3}},
		{"body not attachment", C{Body: []string{"JVBERi0x"}}, nil},
		{"body not header", C{Body: []string{"carol"}}, nil},
		{"body", C{Body: []string{"note number"}}, []imap.UID{1, 4}},
		{"text header", C{Text: []string{"carol"}}, []imap.UID{2}},
		{"text", C{Text: []string{"münchen"}}, []imap.UID{2, 3}},
		{"not", C{Not: []C{flag(imap.FlagSeen)}}, []imap.UID{2, 3, 4, 5, 6}},
		{"or", C{Or: [][2]C{{flag(imap.FlagSeen), flag(imap.FlagFlagged)}}}, []imap.UID{1, 2}},
		{"or text", C{Or: [][2]C{{hdr("Subject", "note"), C{Body: []string{"münchen"}}}}}, []imap.UID{1, 3, 4}},
		{"not or", C{Not: []C{{Or: [][2]C{{flag(imap.FlagSeen), flag(imap.FlagDeleted)}}}}}, []imap.UID{2, 3, 5, 6}},
		{"seq", C{SeqNum: []imap.SeqSet{{{Start: 2, Stop: 3}}}}, []imap.UID{2, 3}},
		{"seq star", C{SeqNum: []imap.SeqSet{{{Start: 4, Stop: 0}}}}, []imap.UID{4, 5, 6}},
		{"uid", C{UID: []imap.UIDSet{{{Start: 4, Stop: 0}}}}, []imap.UID{4, 5, 6}},
		{"uid past the end", C{UID: []imap.UIDSet{{{Start: 9, Stop: 0}}}}, []imap.UID{6}},
		{"and", C{SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 3)}, Flag: []imap.Flag{imap.FlagSeen}}, []imap.UID{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := c.UIDSearch(&tt.c, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if got := data.AllUIDs(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			// The same by sequence number (no expunges here: seq == UID).
			sdata, err := c.Search(&tt.c, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			var want []uint32
			for _, u := range tt.want {
				want = append(want, uint32(u))
			}
			if got := sdata.AllSeqNums(); !reflect.DeepEqual(got, want) {
				t.Errorf("SEARCH got %v, want %v", got, want)
			}
		})
	}
}

func TestSearchRaw(t *testing.T) {
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), simpleMsg(2), multipartMsg)
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	c.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
	tests := []struct {
		cmd  string
		want []string
		ok   string
	}{
		{"SEARCH UNSEEN", []string{"* SEARCH 1 2 3"}, ""},
		{"SEARCH FLAGGED", []string{"* SEARCH 2"}, ""},
		{"SEARCH KEYWORD nothing", []string{"* SEARCH"}, ""},
		{"SEARCH RETURN (MIN MAX COUNT) ALL", []string{`* ESEARCH (TAG "a7") MIN 1 MAX 3 COUNT 3`}, ""},
		{"UID SEARCH RETURN () SUBJECT note", []string{`* ESEARCH (TAG "a8") UID ALL 1:2`}, ""},
		{"SEARCH RETURN (COUNT) DRAFT", []string{`* ESEARCH (TAG "a9") COUNT 0`}, ""},
		{"SEARCH CHARSET UTF-8 BODY {7+}\r\nschöne", []string{"* SEARCH 3"}, ""},
		{"SEARCH CHARSET KOI8-R BODY x", nil, "NO [BADCHARSET] Only US-ASCII and UTF-8 are supported SEARCH charsets"},
		// go-imap answers SAVE alone with ALL too (RFC 5182 says not to).
		{"UID SEARCH RETURN (SAVE) FLAGGED", []string{`* ESEARCH (TAG "a12") UID ALL 2`}, ""},
		{"FETCH $ (UID)", []string{"* 2 FETCH (UID 2)"}, ""},
		{"SEARCH $ SUBJECT note", []string{"* SEARCH 2"}, ""},
	}
	for _, tt := range tests {
		got, status := c.cmd(tt.cmd)
		wantStatus := tt.ok
		if wantStatus == "" {
			if !hasPrefix(status, "OK") {
				t.Errorf("%s: %s", tt.cmd, status)
			}
		} else if status != wantStatus {
			t.Errorf("%s: %q, want %q", tt.cmd, status, wantStatus)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.cmd, got, tt.want)
		}
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
