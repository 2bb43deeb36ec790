package mboxstore

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseFromLine(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		line, sender string
		date         time.Time
	}{
		{"alice@example.org Tue Mar  5 10:00:00 2024", "alice@example.org", time.Date(2024, 3, 5, 10, 0, 0, 0, utc)},
		{"MAILER-DAEMON Fri Dec 31 23:59:59 1999 remote from uucp", "MAILER-DAEMON", time.Date(1999, 12, 31, 23, 59, 59, 0, utc)},
		{"bob Wed, 6 Mar 2024 08:30:00 +0100", "bob", time.Date(2024, 3, 6, 7, 30, 0, 0, utc)},
		{"Mon Mon Jan  2 15:04:05 2006", "Mon", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"carol no date here", "carol", time.Time{}},
		{"", "", time.Time{}},
	}
	for _, tt := range tests {
		s, d := parseFromLine([]byte(tt.line), utc)
		if s != tt.sender || !d.Equal(tt.date) {
			t.Errorf("parseFromLine(%q) = %q, %v; want %q, %v", tt.line, s, d, tt.sender, tt.date)
		}
	}
}

// TestMaxDateFields: the bound on how many fields a date is tried with
// must cover every layout, or some dates would stop parsing.
func TestMaxDateFields(t *testing.T) {
	most := 0
	for _, l := range fromDateLayouts {
		most = max(most, len(strings.Fields(l)))
	}
	if most != maxDateFields {
		t.Errorf("the longest layout has %d fields, maxDateFields is %d", most, maxDateFields)
	}
}

// TestFromLineManyWeekdays: a From_ line of thousands of weekday-like words
// (a broken or hostile spool) parses in linear time. It used to try every
// run of words from each weekday to the end of the line against every
// layout: cubic, a 3 KB line took 18 s and a 64 KB one would stall the
// account for good.
func TestFromLineManyWeekdays(t *testing.T) {
	line := "x " + strings.Repeat("Mon ", maxFromLine/4-1)
	sender, date := parseFromLine([]byte(line), time.UTC)
	if sender != "x" || !date.IsZero() {
		t.Errorf("got %q, %v; want \"x\" and no date", sender, date)
	}
	// The same words with a real date at the end still find it.
	line += "Tue Mar  5 10:00:00 2024"
	_, date = parseFromLine([]byte(line), time.UTC)
	if want := time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC); !date.Equal(want) {
		t.Errorf("date %v, want %v", date, want)
	}
}

// FuzzFromLine: parsing never panics; a date found survives formatting
// and parsing again (to the second, as an instant), and so does a sender
// without blanks.
func FuzzFromLine(f *testing.F) {
	for _, s := range []string{
		"alice@example.org Tue Mar  5 10:00:00 2024",
		"MAILER-DAEMON Fri Dec 31 23:59:59 1999 remote from uucp",
		"bob Wed, 6 Mar 2024 08:30:00 +0100 (CET)",
		"x Mon Jan 2 15:04:05 MST -0700 2006",
		"x Sat Feb 29 12:00 2020",
		"Mon Mon Mon Jan 2 15:04:05 2006",
		"\"quoted sender\"@example.org Sun Jun  1 00:00:00 2025\r",
	} {
		f.Add([]byte(s))
	}
	loc := time.FixedZone("", 3600)
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) > maxFromLine {
			line = line[:maxFromLine]
		}
		sender, date := parseFromLine(line, loc)
		if date.IsZero() || date.Year() < 1 || date.Year() > 9999 {
			return
		}
		out := formatFromLine(nil, sender, date, loc)
		if !bytes.HasPrefix(out, []byte("From ")) || !bytes.HasSuffix(out, []byte("\n")) || bytes.Count(out, []byte("\n")) != 1 {
			t.Fatalf("formatFromLine(%q, %v) = %q: not one From_ line", sender, date, out)
		}
		s2, d2 := parseFromLine(bytes.TrimSuffix(out[len("From "):], []byte("\n")), loc)
		if !d2.Equal(date.Truncate(time.Second)) {
			t.Fatalf("date %v written as %q reads back as %v", date, out, d2)
		}
		if sender != "" && !strings.ContainsAny(sender, " \t") && isPrintable(sender) && s2 != sender {
			t.Fatalf("sender %q written as %q reads back as %q", sender, out, s2)
		}
	})
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}
