package main

//go:generate go run ./demo/gen/main.go -o demo/sample.mbox

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

type spoolMessage struct {
	fromLine string // the From_ line without "From "
	text     string // the message, mboxrd quoting undone
}

// splitMboxrd splits an mboxrd file the simple way: at "\n\nFrom ".
func splitMboxrd(t *testing.T, data []byte) []spoolMessage {
	t.Helper()
	s, ok := strings.CutPrefix(string(data), "From ")
	if !ok {
		t.Fatal("the spool does not start with a From_ line")
	}
	s, ok = strings.CutSuffix(s, "\n\n")
	if !ok {
		t.Fatal("the spool does not end with a blank line")
	}
	unquote := regexp.MustCompile(`(?m)^>(>*From )`)
	var msgs []spoolMessage
	for _, chunk := range strings.Split(s, "\n\nFrom ") {
		fromLine, text, _ := strings.Cut(chunk, "\n")
		msgs = append(msgs, spoolMessage{fromLine, unquote.ReplaceAllString(text+"\n", "$1")})
	}
	return msgs
}

var fromLineRE = regexp.MustCompile(`^\S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}$`)

func TestDemoSpool(t *testing.T) {
	data, err := os.ReadFile("demo/sample.mbox")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(data, '\r') >= 0 {
		t.Error("the spool has CR bytes; it must have LF line endings")
	}
	if !regexp.MustCompile(`(?m)^>From `).Match(data) || !regexp.MustCompile(`(?m)^>>From `).Match(data) {
		t.Error("no body line quoted as >From or >>From")
	}
	msgs := splitMboxrd(t, data)
	if len(msgs) < 30 {
		t.Errorf("%d messages, want at least 30", len(msgs))
	}

	ids := map[string]bool{}
	seen := map[string]bool{} // what the spool must show at least once
	var last time.Time
	for i, m := range msgs {
		if !fromLineRE.MatchString(m.fromLine) {
			t.Errorf("message %d: From_ line %q", i, m.fromLine)
			continue
		}
		delivered, err := time.Parse(time.ANSIC, m.fromLine[strings.Index(m.fromLine, " ")+1:])
		if err != nil {
			t.Errorf("message %d: From_ date: %v", i, err)
		}
		if delivered.Before(last) {
			t.Errorf("message %d: delivered %v, before the message above it", i, delivered)
		}
		last = delivered

		msg, err := mail.ReadMessage(strings.NewReader(m.text))
		if err != nil {
			t.Errorf("message %d: %v", i, err)
			continue
		}
		h := msg.Header
		for _, name := range []string{"From", "To", "Subject", "Date", "Message-ID"} {
			if h.Get(name) == "" {
				t.Errorf("message %d: no %s header", i, name)
			}
		}
		if _, err := mail.ParseAddressList(h.Get("From")); err != nil {
			t.Errorf("message %d: From: %v", i, err)
		}
		if _, err := mail.ParseAddressList(h.Get("To")); err != nil {
			t.Errorf("message %d: To: %v", i, err)
		}
		sent, err := h.Date()
		if err != nil {
			t.Errorf("message %d: Date: %v", i, err)
		} else if sent.Year() < 2025 || sent.Year() > 2026 || delivered.Before(sent.Truncate(time.Second)) {
			t.Errorf("message %d: sent %v, delivered %v", i, sent, delivered)
		}
		seen["year "+sent.Format("2006")] = true
		subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
		if err != nil || subject == "" {
			t.Errorf("message %d: Subject %q: %v", i, h.Get("Subject"), err)
		}
		if strings.Contains(h.Get("Subject"), "=?utf-8?b?") {
			seen["B-encoded subject"] = true
		}
		if strings.Contains(h.Get("Subject"), "=?utf-8?q?") {
			seen["Q-encoded subject"] = true
		}
		id := h.Get("Message-ID")
		if ids[id] {
			t.Errorf("message %d: Message-ID %s twice", i, id)
		}
		ids[id] = true
		if parent := h.Get("In-Reply-To"); parent != "" {
			if !ids[parent] {
				t.Errorf("message %d: In-Reply-To %s, not a message above it", i, parent)
			}
			refs := strings.Fields(h.Get("References"))
			if len(refs) == 0 || refs[len(refs)-1] != parent {
				t.Errorf("message %d: References %q do not end with In-Reply-To", i, refs)
			}
			if len(refs) >= 5 {
				seen["long thread"] = true
			}
		}
		walkMIME(t, i, h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), msg.Body, seen)
	}

	for _, want := range []string{
		"year 2025", "year 2026", "B-encoded subject", "Q-encoded subject", "long thread",
		"text/plain", "text/html", "multipart/alternative", "multipart/mixed", "multipart/related",
		"multipart/report", "message/rfc822", "text/calendar", "image/png", "application/pdf",
		"quoted-printable", "base64", "8bit", "charset iso-8859-1",
	} {
		if !seen[want] {
			t.Errorf("no message shows %s", want)
		}
	}
}

// walkMIME decodes one MIME entity and its parts, noting what it saw.
func walkMIME(t *testing.T, i int, contentType, cte string, body io.Reader, seen map[string]bool) {
	t.Helper()
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Errorf("message %d: Content-Type %q: %v", i, contentType, err)
		return
	}
	seen[mediaType] = true
	if cs := params["charset"]; cs != "" {
		seen["charset "+strings.ToLower(cs)] = true
	}
	if cte != "" {
		seen[strings.ToLower(cte)] = true
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		n := 0
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("message %d: %s: %v", i, mediaType, err)
				return
			}
			walkMIME(t, i, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, seen)
			n++
		}
		if n == 0 {
			t.Errorf("message %d: %s with no parts", i, mediaType)
		}
		return
	}
	switch strings.ToLower(cte) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		t.Errorf("message %d: %s body (%s): %v", i, mediaType, cte, err)
		return
	}
	switch mediaType {
	case "image/png":
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			t.Errorf("message %d: PNG: %v", i, err)
		}
	case "application/pdf":
		if !bytes.HasPrefix(data, []byte("%PDF-")) || !bytes.HasSuffix(data, []byte("%%EOF\n")) {
			t.Errorf("message %d: not a PDF", i)
		}
	case "text/calendar":
		if !bytes.HasPrefix(data, []byte("BEGIN:VCALENDAR\n")) || !bytes.Contains(data, []byte("BEGIN:VEVENT")) {
			t.Errorf("message %d: not an iCalendar object", i)
		}
	case "message/rfc822":
		inner, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Errorf("message %d: message/rfc822: %v", i, err)
			return
		}
		walkMIME(t, i, inner.Header.Get("Content-Type"), inner.Header.Get("Content-Transfer-Encoding"), inner.Body, seen)
	}
}
