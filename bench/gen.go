package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The generated mail. Deterministic for a seed: message i of a data set
// depends only on the seed and i, so the 1,000-message set is the first
// 1,000 messages of the 10,000-message one.
//
// Mix: 60 % text/plain, 32 % multipart/alternative (text + HTML), 8 %
// multipart/mixed with an 80-120 KB base64 attachment, and message 500 of
// every 2,000 a multipart/mixed with a 2-4 MB attachment. Text bodies are
// 2-20 KB (log-uniform). About 1 % of bodies contain searchWord, about 5 %
// of messages come from searchFrom, dates run over 2023-2024 in order, so
// SINCE searchSince matches about half.
const (
	searchWord  = "quokka"
	searchFrom  = "zelda"
	searchSince = "1-Jan-2024"
)

var (
	firstNames = []string{"Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena", "Marek", "Nora", "Olu", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Ute", "Viktor", "Wen", "Yara"}
	lastNames  = []string{"Müller", "Schmidt", "Okafor", "Tanaka", "Novak", "García", "Dubois", "Larsen", "Kowalski", "Haddad", "Rossi", "Nguyen", "Fischer", "Silva", "Brennan"}
	domains    = []string{"example.org", "example.com", "mail.example.net", "corp.example", "lists.example.org"}
	words      = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their can has been if more when will would who so no
		report meeting invoice project deadline budget quarter review schedule contract proposal update team customer order shipment delivery payment account balance
		server network release version build test deploy backup storage ticket issue feature request change plan agenda minutes notes summary draft final approved pending
		office travel hotel flight train conference workshop lunch dinner coffee weekend holiday vacation birthday family garden weather rain sunny winter summer spring
		please thanks regards hello attached below above following previous next week month year today tomorrow yesterday morning afternoon evening soon later already
		price cost estimate total amount tax discount offer quote supplier vendor partner market sales revenue profit growth target forecast analysis data figure chart`)
	subjects = []string{"Quarterly report", "Meeting notes", "Invoice", "Re: project deadline", "Fwd: travel plans", "Weekly update", "Budget review", "Release schedule", "Lunch on Friday?", "Contract draft", "Server maintenance", "Holiday photos"}
)

// genMessage returns message i of n (LF line endings), its date and sender.
func genMessage(seed uint64, i, n int) (msg []byte, date time.Time, sender string) {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	base := time.Date(2023, 1, 1, 8, 0, 0, 0, time.UTC)
	// The n messages of a set are spread evenly over 2023 and 2024, so
	// SINCE 1-Jan-2024 matches about half of every size.
	step := 2 * 365 * 24 * time.Hour / time.Duration(max(n, 1))
	date = base.Add(time.Duration(i)*step + time.Duration(r.IntN(300))*time.Second)

	var name, addr string
	if r.IntN(20) == 0 {
		name, addr = "Zelda Okafor", "zelda.okafor@northwind.example"
	} else {
		fn, ln := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		name = fn + " " + ln
		addr = strings.ToLower(asciiOnly(fn)+"."+asciiOnly(ln)) + "@" + domains[r.IntN(len(domains))]
	}
	from := name + " <" + addr + ">"
	if !isASCII(name) || r.IntN(20) == 0 {
		from = mime.BEncoding.Encode("UTF-8", name) + " <" + addr + ">"
	}
	subject := subjects[r.IntN(len(subjects))] + fmt.Sprintf(" #%d", i)
	if r.IntN(10) == 0 {
		subject = mime.QEncoding.Encode("UTF-8", "Grüße: "+subject)
	}

	var b strings.Builder
	b.Grow(24 << 10)
	fmt.Fprintf(&b, "Return-Path: <%s>\n", addr)
	fmt.Fprintf(&b, "Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])\n\tby mail.example.org with ESMTPS id %x\n\tfor <bench@example.org>; %s\n",
		r.IntN(9), r.IntN(9), r.IntN(250)+1, r.Uint64(), date.Add(3*time.Second).Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: %s\n", from)
	b.WriteString("To: Bench User <bench@example.org>\n")
	if r.IntN(4) == 0 {
		b.WriteString("Cc: team@example.org, Greta Larsen <greta.larsen@example.com>\n")
	}
	fmt.Fprintf(&b, "Subject: %s\n", subject)
	fmt.Fprintf(&b, "Date: %s\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%x@bench.example.org>\n", i, seed)
	b.WriteString("MIME-Version: 1.0\n")

	textSize := int(2048 * math.Pow(10, r.Float64()))
	text := bodyText(r, textSize, r.IntN(100) == 0)
	switch kind := r.IntN(100); {
	case i%2000 == 500:
		attachmentMsg(&b, r, text, 2<<20+r.IntN(2<<20))
	case kind < 60:
		b.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
		b.WriteString(text)
	case kind < 92:
		bd := fmt.Sprintf("alt-%d-%x", i, r.Uint32())
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=\"%s\"\n\nThis is a multi-part message in MIME format.\n\n", bd)
		fmt.Fprintf(&b, "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n%s\n", bd, text[:len(text)/2])
		fmt.Fprintf(&b, "--%s\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n<html><body>\n", bd)
		for _, para := range strings.Split(text[len(text)/2:], "\n\n") {
			fmt.Fprintf(&b, "<p>%s</p>\n", para)
		}
		fmt.Fprintf(&b, "</body></html>\n--%s--\n", bd)
	default:
		attachmentMsg(&b, r, text, 80<<10+r.IntN(40<<10))
	}
	return []byte(b.String()), date, addr
}

func attachmentMsg(b *strings.Builder, r *rand.Rand, text string, size int) {
	bd := fmt.Sprintf("mix-%x", r.Uint64())
	fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=\"%s\"\n\nThis is a multi-part message in MIME format.\n\n", bd)
	fmt.Fprintf(b, "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n%s\n", bd, text)
	raw := make([]byte, size)
	for j := 0; j+8 <= len(raw); j += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			raw[j+k] = byte(v >> (8 * k))
		}
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	fmt.Fprintf(b, "--%s\nContent-Type: application/pdf; name=\"document-%d.pdf\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"document-%d.pdf\"\n\n", bd, size, size)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	b.WriteString(enc)
	fmt.Fprintf(b, "\n--%s--\n", bd)
}

// bodyText returns about size bytes of lower-case prose in paragraphs of
// wrapped lines (no line starts with "From "), with searchWord once when
// withWord.
func bodyText(r *rand.Rand, size int, withWord bool) string {
	var b strings.Builder
	b.Grow(size + 100)
	b.WriteString("Hello,\n\n")
	at := -1
	if withWord {
		at = r.IntN(size)
	}
	line := 0
	for b.Len() < size {
		w := words[r.IntN(len(words))]
		if at >= 0 && b.Len() >= at {
			w, at = searchWord, -1
		}
		b.WriteString(w)
		line += len(w) + 1
		switch {
		case line > 72 && r.IntN(8) == 0:
			b.WriteString(".\n\n")
			line = 0
		case line > 72:
			b.WriteString("\n")
			line = 0
		default:
			b.WriteString(" ")
		}
	}
	b.WriteString("\n\nregards\n")
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func asciiOnly(s string) string {
	return strings.NewReplacer("é", "e", "ü", "u", "í", "i", "ç", "c").Replace(s)
}

// dataSet is one generated size: an mbox spool and a Maildir with the same
// messages.
type dataSet struct {
	n       int
	bytes   int64 // sum of message sizes as stored (LF)
	mbox    string
	maildir string // the Maildir's new/ is filled; cur/ and tmp/ exist
	// sinceHits is how many messages are dated on or after searchSince.
	sinceHits int
}

// generate writes n messages as an mbox spool at mboxPath and into the
// Maildir at maildir (new/), LF line endings as an MDA stores them.
func generate(seed uint64, n int, mboxPath, maildir string) (*dataSet, error) {
	for _, d := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, d), 0o700); err != nil {
			return nil, fmt.Errorf("gen: %w", err)
		}
	}
	f, err := os.Create(mboxPath)
	if err != nil {
		return nil, fmt.Errorf("gen: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	ds := &dataSet{n: n, mbox: mboxPath, maildir: maildir}
	since := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		msg, date, sender := genMessage(seed, i, n)
		ds.bytes += int64(len(msg))
		if !date.Before(since) {
			ds.sinceHits++
		}
		fmt.Fprintf(w, "From %s %s\n", sender, date.Format("Mon Jan _2 15:04:05 2006"))
		w.Write(msg)
		w.WriteString("\n")
		name := fmt.Sprintf("%010d.M%07dP1.bench", 1700000000+i, i)
		if err := os.WriteFile(filepath.Join(maildir, "new", name), msg, 0o600); err != nil {
			return nil, fmt.Errorf("gen: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("gen: %s: %w", mboxPath, err)
	}
	return ds, f.Close()
}

// appendMbox appends msgs to the spool at path in one write.
func appendMbox(path string, msgs [][]byte) error {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "From bench@example.org %s\n", time.Now().UTC().Format("Mon Jan _2 15:04:05 2006"))
		b.Write(m)
		b.WriteString("\n")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("append %s: %w", path, err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("append %s: %w", path, err)
	}
	return f.Close()
}
