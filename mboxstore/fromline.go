package mboxstore

import (
	"bytes"
	"strings"
	"time"
)

// maxFromLine bounds the part of a From_ line that is parsed; the rest of an
// absurdly long From_ line is skipped.
const maxFromLine = 64 << 10

// asctime is the date layout of a From_ line (C asctime(3)).
const asctime = "Mon Jan _2 15:04:05 2006"

// fromDateLayouts are the From_ line date forms seen in the wild, tried in
// order against the date text with runs of blanks squeezed to one space.
var fromDateLayouts = []string{
	"Mon Jan 2 15:04:05 2006",              // asctime, the standard
	"Mon Jan 2 15:04:05 MST 2006",          // date(1), UnixDate
	"Mon Jan 2 15:04:05 -0700 2006",        // numeric zone before the year
	"Mon Jan 2 15:04:05 2006 -0700",        // numeric zone after the year
	"Mon Jan 2 15:04:05 2006 MST",          // zone name after the year
	"Mon Jan 2 15:04:05 MST -0700 2006",    // both
	"Mon Jan 2 15:04 2006",                 // no seconds (old UUCP)
	"Mon Jan 2 15:04 MST 2006",             // no seconds, zone
	"Mon, 2 Jan 2006 15:04:05 -0700",       // RFC 5322 date
	"Mon, 2 Jan 2006 15:04:05 -0700 (MST)", // RFC 5322 date with comment
	"Mon, 2 Jan 2006 15:04:05 MST",         // RFC 5322 obsolete zone
	"Mon 2 Jan 2006 15:04:05 -0700",        // RFC 5322 without the comma
}

// maxDateFields is the most blank-separated fields a layout above has.
const maxDateFields = 7

var weekdays = [...]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

func isWeekday(tok string) bool {
	tok = strings.TrimSuffix(tok, ",")
	if len(tok) != 3 {
		return false
	}
	for _, d := range weekdays {
		if strings.EqualFold(tok, d) {
			return true
		}
	}
	return false
}

// parseFromLine parses the text of a From_ line after "From " (without the
// line ending): the envelope sender and the delivery date. A date that
// cannot be parsed gives the zero time; a date without a zone is taken in
// loc. A trailing "remote from host" (UUCP) or other words after the date
// are ignored.
func parseFromLine(line []byte, loc *time.Location) (sender string, date time.Time) {
	line = bytes.TrimRight(line, "\r")
	// Tokenise, remembering where each token starts so the sender keeps its
	// own spelling (it may contain quoted blanks).
	type tok struct {
		s     string
		start int
	}
	var toks []tok
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		toks = append(toks, tok{string(line[i:j]), i})
		i = j
	}
	if len(toks) == 0 {
		return "", time.Time{}
	}
	for i := range toks {
		// The date has at least four fields: weekday, month/day, day/month, time.
		if !isWeekday(toks[i].s) || len(toks)-i < 4 {
			continue
		}
		// No layout has more than maxDateFields fields, so longer runs
		// cannot match: trying them made a line of many weekday-like
		// words cost cubic time (a 3 KB From_ line took 18 s).
		for j := min(len(toks), i+maxDateFields); j >= i+4; j-- {
			parts := make([]string, 0, j-i)
			for _, t := range toks[i:j] {
				parts = append(parts, t.s)
			}
			text := strings.Join(parts, " ")
			for _, layout := range fromDateLayouts {
				d, err := time.ParseInLocation(layout, text, loc)
				if err == nil {
					sender = strings.TrimSpace(string(line[:toks[i].start]))
					return sender, d
				}
			}
		}
	}
	return toks[0].s, time.Time{}
}

// formatFromLine returns a From_ line (with its LF) for sender and date, the
// date in asctime form in loc. Blanks and control bytes in the sender become
// '_' so that the line parses back; an empty sender is MAILER-DAEMON.
func formatFromLine(dst []byte, sender string, date time.Time, loc *time.Location) []byte {
	dst = append(dst, "From "...)
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	for i := 0; i < len(sender); i++ {
		c := sender[i]
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		dst = append(dst, c)
	}
	dst = append(dst, ' ')
	if date.IsZero() {
		date = time.Unix(0, 0)
	}
	dst = date.In(loc).AppendFormat(dst, asctime)
	return append(dst, '\n')
}
