//go:build ignore

// Command gen writes demo/sample.mbox, the sample spool that "imapbridge
// demo" serves: a few dozen realistic messages in mboxrd format (plain
// text, multipart/alternative, attachments, a forwarded message, a calendar
// invitation, a bounce, non-ASCII headers and bodies in several languages,
// quoted-printable, a long thread, newsletters, and a body line starting
// with "From " that mboxrd quoting turns into ">From ").
//
// Run it from cmd/imapbridge:
//
//	go run ./demo/gen/main.go -o demo/sample.mbox
//
// The output is deterministic: no clock, no randomness, no map iteration.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"hash/fnv"
	"log"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"time"
)

func main() {
	out := flag.String("o", "demo/sample.mbox", "output file")
	flag.Parse()
	var buf bytes.Buffer
	for _, m := range messages() {
		m.writeMboxrd(&buf)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// The demo user.
var demo = addr("Demo User", "demo@example.com")

// Time zones of the senders.
var (
	utc      = time.UTC
	berlin   = time.FixedZone("", 1*3600)
	berlinS  = time.FixedZone("", 2*3600)
	newYork  = time.FixedZone("", -5*3600)
	newYorkS = time.FixedZone("", -4*3600)
	tokyo    = time.FixedZone("", 9*3600)
	moscow   = time.FixedZone("", 3*3600)
	paris    = time.FixedZone("", 2*3600)
	madrid   = time.FixedZone("", 1*3600)
	athens   = time.FixedZone("", 3*3600)
	shanghai = time.FixedZone("", 8*3600)
	cairo    = time.FixedZone("", 3*3600)
	saoPaulo = time.FixedZone("", -3*3600)
)

func date(zone *time.Location, y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, zone)
}

func addr(name, address string) *mail.Address { return &mail.Address{Name: name, Address: address} }

// People.
var (
	helpdesk = addr("IT Helpdesk", "helpdesk@example.com")
	priya    = addr("Priya Raman", "priya.raman@example.com")
	marcus   = addr("Marcus Webb", "marcus.webb@example.com")
	lena     = addr("Lena Müller", "lena.mueller@example.de")
	tomas    = addr("Tomás Ortega", "tomas@example.es")
	kenji    = addr("田中 健二", "kenji.tanaka@example.jp")
	olga     = addr("Ольга Смирнова", "olga@example.ru")
	claire   = addr("Claire Dubois", "claire.dubois@example.fr")
	nikos    = addr("Νίκος Παπαδόπουλος", "nikos@example.gr")
	wei      = addr("王伟", "wei.wang@example.cn")
	amira    = addr("أميرة حسن", "amira@example.eg")
	sam      = addr("Sam Okafor", "sam.okafor@example.org")
	ana      = addr("Ana Costa", "ana.costa@example.com.br")
	weekly   = addr("The Example Weekly", "newsletter@news.example.net")
	shop     = addr("Example Shop", "orders@shop.example.net")
	billing  = addr("Example Hosting Billing", "billing@hosting.example.org")
	calendar = addr("Priya Raman", "priya.raman@example.com")
	ci       = addr("Build Bot", "ci@builds.example.org")
	security = addr("Example Account Security", "no-reply@accounts.example.com")
	books    = addr("Harbour Street Book Club", "bookclub@lists.example.org")
)

// message is one mail. Header order is kept as written.
type message struct {
	envFrom   string    // envelope sender for the From_ line
	delivered time.Time // delivery time for the From_ line
	headers   []header
	body      string // everything after the blank line, LF line endings
}

type header struct{ name, value string }

func (m *message) add(name, value string) { m.headers = append(m.headers, header{name, value}) }

// writeMboxrd appends the message in mboxrd format: the From_ line, the
// message with every line matching ^>*From  given one more ">", and a
// blank line.
func (m *message) writeMboxrd(w *bytes.Buffer) {
	fmt.Fprintf(w, "From %s %s\n", m.envFrom, m.delivered.UTC().Format(time.ANSIC))
	var raw bytes.Buffer
	for _, h := range m.headers {
		raw.WriteString(fold(h.name + ": " + h.value))
		raw.WriteString("\n")
	}
	raw.WriteString("\n")
	raw.WriteString(m.body)
	text := raw.String()
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	w.WriteString(fromQuote.ReplaceAllString(text, ">$0"))
	w.WriteString("\n")
}

var fromQuote = regexp.MustCompile(`(?m)^>*From `)

// fold folds a header line at spaces so that lines stay under 78
// characters where possible. A line that is already folded is kept.
func fold(line string) string {
	const width = 78
	if len(line) <= width || strings.Contains(line, "\n") {
		return line
	}
	var out strings.Builder
	cur := ""
	for i, word := range strings.Split(line, " ") {
		switch {
		case i <= 1:
			if i == 1 {
				cur += " "
			}
			cur += word // never fold right after the field name
		case len(cur)+1+len(word) > width && strings.TrimSpace(cur) != "":
			out.WriteString(cur)
			out.WriteString("\n")
			cur = " " + word
		default:
			cur += " " + word
		}
	}
	out.WriteString(cur)
	return out.String()
}

// subject encodes a subject as RFC 2047 encoded words when it is not
// ASCII: Q encoding for mostly-Latin text, B for the rest.
func subject(s string) string {
	if isASCII(s) {
		return s
	}
	latin := 0
	for _, r := range s {
		if r < 0x250 {
			latin++
		}
	}
	if latin*10 >= len([]rune(s))*8 {
		return mime.QEncoding.Encode("utf-8", s)
	}
	return mime.BEncoding.Encode("utf-8", s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func addrList(as ...*mail.Address) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, ", ")
}

// msgID makes a stable Message-ID from the date, the subject and the
// sender's domain.
func msgID(d time.Time, subj string, from *mail.Address) string {
	h := fnv.New32a()
	h.Write([]byte(subj))
	h.Write([]byte(from.Address))
	domain := from.Address[strings.LastIndex(from.Address, "@")+1:]
	return fmt.Sprintf("<%s.%08x@%s>", d.UTC().Format("20060102150405"), h.Sum32(), domain)
}

// spec describes a message; build turns it into headers and a body.
type spec struct {
	from      *mail.Address
	to        []*mail.Address
	cc        []*mail.Address
	replyTo   *mail.Address
	date      time.Time
	delay     time.Duration // from Date to delivery; 0 means a few seconds
	subject   string
	inReplyTo string   // Message-ID
	refs      []string // References
	extra     []header // before MIME-Version
	part      part     // the body
	envFrom   string   // envelope sender; defaults to from
	id        string   // Message-ID; computed when empty
}

// part is a MIME entity: a leaf (contentType, cte, body) or a multipart.
type part struct {
	contentType string // full value, e.g. `text/plain; charset=utf-8`
	cte         string // Content-Transfer-Encoding, "" for none
	disposition string
	id          string // Content-ID
	extra       []header
	body        string
	parts       []part // for multipart/*: contentType without boundary
	boundary    string
}

func (s spec) build() (*message, string) {
	id := s.id
	if id == "" {
		id = msgID(s.date, s.subject, s.from)
	}
	delay := s.delay
	if delay == 0 {
		delay = time.Duration(3+len(s.subject)%9) * time.Second
	}
	env := s.envFrom
	if env == "" {
		env = s.from.Address
	}
	m := &message{envFrom: env, delivered: s.date.Add(delay)}
	m.add("Return-Path", "<"+strings.TrimPrefix(env, "MAILER-DAEMON")+">")
	m.add("Received", fmt.Sprintf("from mx.example.com (mx.example.com [192.0.2.25])\n\tby mail.example.com with ESMTPS id %s\n\tfor <%s>; %s",
		strings.ToUpper(id[strings.Index(id, ".")+1:strings.Index(id, "@")]), demo.Address, m.delivered.Format(time.RFC1123Z)))
	m.add("From", s.from.String())
	m.add("To", addrList(s.to...))
	if len(s.cc) > 0 {
		m.add("Cc", addrList(s.cc...))
	}
	if s.replyTo != nil {
		m.add("Reply-To", s.replyTo.String())
	}
	m.add("Subject", subject(s.subject))
	m.add("Date", s.date.Format(time.RFC1123Z))
	m.add("Message-ID", id)
	if s.inReplyTo != "" {
		m.add("In-Reply-To", s.inReplyTo)
	}
	if len(s.refs) > 0 {
		m.add("References", strings.Join(s.refs, " "))
	}
	m.headers = append(m.headers, s.extra...)
	m.add("MIME-Version", "1.0")
	var body strings.Builder
	s.part.writeEntity(m.add, &body)
	m.body = body.String()
	return m, id
}

// writeEntity writes the part's headers through add and its body to w.
func (p part) writeEntity(add func(name, value string), w *strings.Builder) {
	if len(p.parts) > 0 {
		add("Content-Type", fmt.Sprintf("%s; boundary=%q", p.contentType, p.boundary))
	} else {
		add("Content-Type", p.contentType)
	}
	if p.cte != "" {
		add("Content-Transfer-Encoding", p.cte)
	}
	if p.disposition != "" {
		add("Content-Disposition", p.disposition)
	}
	if p.id != "" {
		add("Content-ID", p.id)
	}
	for _, h := range p.extra {
		add(h.name, h.value)
	}
	if len(p.parts) == 0 {
		w.WriteString(p.body)
		return
	}
	if p.body != "" {
		w.WriteString(p.body) // preamble
	}
	for _, c := range p.parts {
		fmt.Fprintf(w, "--%s\n", p.boundary)
		var headers []header
		var body strings.Builder
		c.writeEntity(func(n, v string) { headers = append(headers, header{n, v}) }, &body)
		for _, h := range headers {
			w.WriteString(fold(h.name + ": " + h.value))
			w.WriteString("\n")
		}
		w.WriteString("\n")
		b := body.String()
		w.WriteString(b)
		if !strings.HasSuffix(b, "\n") {
			w.WriteString("\n")
		}
	}
	fmt.Fprintf(w, "--%s--\n", p.boundary)
}

func text(body string) part {
	cte := "7bit"
	if !isASCII(body) {
		cte = "8bit"
	}
	return part{contentType: "text/plain; charset=utf-8", cte: cte, body: body}
}

func html(body string) part {
	cte := "7bit"
	if !isASCII(body) {
		cte = "8bit"
	}
	return part{contentType: "text/html; charset=utf-8", cte: cte, body: body}
}

func qp(contentType, body string) part {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(body))
	w.Close()
	return part{contentType: contentType, cte: "quoted-printable", body: strings.ReplaceAll(b.String(), "\r\n", "\n")}
}

func b64(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\n")
	return b.String()
}

func attachment(contentType, filename string, data []byte) part {
	return part{
		contentType: fmt.Sprintf("%s; name=%q", contentType, filename),
		cte:         "base64",
		disposition: fmt.Sprintf("attachment; filename=%q", filename),
		body:        b64(data),
	}
}

func multipart(kind, boundary string, parts ...part) part {
	return part{contentType: "multipart/" + kind, boundary: boundary, parts: parts}
}

// quote prefixes every line of s with "> ".
func quote(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		if l == "" {
			lines[i] = ">"
		} else {
			lines[i] = "> " + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// tinyPNG draws a 16x16 picture (a sunset over the sea) as a PNG, with
// stored (uncompressed) deflate blocks so that the bytes do not depend on
// the compressor.
func tinyPNG() []byte {
	const w, h = 16, 16
	var raw bytes.Buffer
	for y := 0; y < h; y++ {
		raw.WriteByte(0) // filter: none
		for x := 0; x < w; x++ {
			var r, g, b byte
			switch dx, dy := x-8, y-9; {
			case dx*dx+dy*dy <= 12 && y <= 9:
				r, g, b = 0xff, 0xc1, 0x3b // sun
			case y > 9:
				r, g, b = 0x1e, 0x5a, byte(0x9c+(y-10)*8) // sea
			default:
				r, g, b = 0xff, byte(0x70+y*8), byte(0x60+y*4) // sky
			}
			raw.Write([]byte{r, g, b})
		}
	}
	data := raw.Bytes()
	var z bytes.Buffer
	z.Write([]byte{0x78, 0x01})
	z.WriteByte(1) // final stored block
	binary.Write(&z, binary.LittleEndian, uint16(len(data)))
	binary.Write(&z, binary.LittleEndian, ^uint16(len(data)))
	z.Write(data)
	binary.Write(&z, binary.BigEndian, adler32.Checksum(data))

	var png bytes.Buffer
	png.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, body []byte) {
		binary.Write(&png, binary.BigEndian, uint32(len(body)))
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(body)
		png.WriteString(typ)
		png.Write(body)
		binary.Write(&png, binary.BigEndian, c.Sum32())
	}
	var ihdr bytes.Buffer
	binary.Write(&ihdr, binary.BigEndian, uint32(w))
	binary.Write(&ihdr, binary.BigEndian, uint32(h))
	ihdr.Write([]byte{8, 2, 0, 0, 0}) // 8-bit RGB
	chunk("IHDR", ihdr.Bytes())
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return png.Bytes()
}

// tinyPDF writes a one-page PDF invoice with a correct cross-reference
// table.
func tinyPDF() []byte {
	content := "BT /F1 18 Tf 72 760 Td (Example Hosting - Invoice INV-2025-0412) Tj ET\n" +
		"BT /F1 12 Tf 72 730 Td (Virtual server, April 2025 ........ EUR 12.00) Tj ET\n" +
		"BT /F1 12 Tf 72 712 Td (VAT 19% ............................ EUR  2.28) Tj ET\n" +
		"BT /F1 12 Tf 72 694 Td (Total .............................. EUR 14.28) Tj ET\n"
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}

func messages() []*message {
	var all []*message
	add := func(s spec) string {
		m, id := s.build()
		all = append(all, m)
		return id
	}
	team := []*mail.Address{priya, marcus, lena, tomas, demo}

	// Welcome.
	add(spec{
		from: helpdesk, to: []*mail.Address{demo},
		date:    date(berlin, 2025, time.January, 6, 8, 30, 0),
		subject: "Welcome to your new mailbox",
		extra:   []header{{"X-Mailer", "Helpdesk Notifier 2.1"}},
		part: text(`Hello,

your mailbox is ready. You can read it with any IMAP client:

  Server:   imap.example.com
  Port:     993 (TLS) or 143 (STARTTLS)
  User:     demo
  Password: the one you chose at sign-up

Folders you create, flags you set and messages you move follow you to
every device. If anything looks wrong, reply to this message.

Kind regards,
IT Helpdesk
`),
	})

	// A short one.
	lunch := add(spec{
		from: sam, to: []*mail.Address{demo},
		date:    date(newYork, 2025, time.January, 9, 11, 2, 44),
		subject: "Lunch on Thursday?",
		part: text(`Hi,

the new ramen place on 5th opened this week. Thursday at 12:30?

Sam
`),
	})

	// A long thread.
	agendaBody := `Hi all,

here is a first draft of the agenda for the Q1 planning day on the 24th:

  1. Review of Q4: what shipped, what slipped (30 min)
  2. Customer feedback themes (45 min)
  3. Q1 goals, at most three (60 min)
  4. Staffing and on-call (30 min)
  5. Anything else

Please reply with additions by Friday.

Priya
`
	t1 := add(spec{
		from: priya, to: team,
		date:    date(newYork, 2025, time.January, 14, 9, 15, 0),
		subject: "Q1 planning: draft agenda",
		part:    text(agendaBody),
	})
	r1body := `Looks good. Can we add 15 minutes on the migration off the old mail
server? Several teams still depend on it.

Marcus

On Tue, 14 Jan 2025 at 09:15, Priya Raman wrote:
` + quote(agendaBody)
	t2 := add(spec{
		from: marcus, to: []*mail.Address{priya}, cc: []*mail.Address{lena, tomas, demo},
		date:      date(newYork, 2025, time.January, 14, 10, 2, 31),
		subject:   "Re: Q1 planning: draft agenda",
		inReplyTo: t1, refs: []string{t1},
		part: text(r1body),
	})
	r2body := `+1 to the migration slot. I can present the plan: we put an IMAP
bridge in front of it first, then retire it mailbox by mailbox.

Grüße,
Lena

Am 14.01.2025 um 16:02 schrieb Marcus Webb:
` + quote(r1body)
	t3 := add(spec{
		from: lena, to: []*mail.Address{marcus}, cc: []*mail.Address{priya, tomas, demo},
		date:      date(berlin, 2025, time.January, 14, 16, 40, 12),
		subject:   "Re: Q1 planning: draft agenda",
		inReplyTo: t2, refs: []string{t1, t2},
		extra: []header{{"User-Agent", "Mozilla Thunderbird"}},
		part:  text(r2body),
	})
	t4 := add(spec{
		from: priya, to: []*mail.Address{lena}, cc: []*mail.Address{marcus, tomas, demo},
		date:      date(newYork, 2025, time.January, 15, 8, 5, 0),
		subject:   "Re: Q1 planning: draft agenda",
		inReplyTo: t3, refs: []string{t1, t2, t3},
		part: text(`Great, Lena, the slot is yours: 15 minutes after the feedback themes.

Tomás, could you bring the on-call numbers for December?

Priya
`),
	})
	t5 := add(spec{
		from: tomas, to: []*mail.Address{priya}, cc: []*mail.Address{marcus, lena, demo},
		date:      date(madrid, 2025, time.January, 15, 18, 22, 9),
		subject:   "Re: Q1 planning: draft agenda",
		inReplyTo: t4, refs: []string{t1, t2, t3, t4},
		part: text(`Sí, claro. December: 14 pages, 3 of them at night, median time to
acknowledge 4 minutes. I will have a slide.

Tomás
`),
	})
	t6 := add(spec{
		from: marcus, to: []*mail.Address{tomas}, cc: []*mail.Address{priya, lena, demo},
		date:      date(newYork, 2025, time.January, 16, 13, 47, 55),
		subject:   "Re: Q1 planning: draft agenda",
		inReplyTo: t5, refs: []string{t1, t2, t3, t4, t5},
		part: text(`Three at night is three too many. Let's talk about alert thresholds
in item 4 as well.
`),
	})
	add(spec{
		from: priya, to: team,
		date:      date(newYork, 2025, time.January, 20, 17, 30, 0),
		subject:   "Re: Q1 planning: draft agenda",
		inReplyTo: t6, refs: []string{t1, t2, t3, t4, t5, t6},
		part: text(`Final agenda:

  1. Review of Q4 (30 min)
  2. Customer feedback themes (45 min)
  3. Mail server migration (15 min, Lena)
  4. Q1 goals (60 min)
  5. Staffing, on-call and alert thresholds (45 min, Tomás)

Room 4.12, 9:30. Coffee from 9:00.

Priya
`),
	})

	// A newsletter: multipart/alternative.
	add(spec{
		from: weekly, to: []*mail.Address{demo},
		date:    date(utc, 2025, time.February, 3, 6, 0, 0),
		subject: "The Example Weekly #42: Winter releases, a new IMAP RFC, and more",
		extra: []header{
			{"List-Id", "The Example Weekly <weekly.news.example.net>"},
			{"List-Unsubscribe", "<https://news.example.net/unsubscribe?u=demo>, <mailto:unsubscribe@news.example.net?subject=unsubscribe>"},
			{"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
			{"Precedence", "bulk"},
		},
		part: multipart("alternative", "=_weekly42_alt",
			text(`THE EXAMPLE WEEKLY - Issue 42

* Winter releases: what is new in your favourite tools
* IMAP4rev2 (RFC 9051) one year on
* Ask the postmaster: why does my mail client see two Inboxes?

Read online: https://news.example.net/42

You get this because you subscribed at news.example.net.
Unsubscribe: https://news.example.net/unsubscribe?u=demo
`),
			html(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>The Example Weekly #42</title></head>
<body style="font-family: Georgia, serif; max-width: 600px; margin: auto">
<h1 style="color: #1e5a9c">The Example Weekly <small>#42</small></h1>
<ul>
<li><a href="https://news.example.net/42/winter">Winter releases</a>: what is new in your favourite tools</li>
<li><a href="https://news.example.net/42/imap">IMAP4rev2 (RFC 9051) one year on</a></li>
<li><a href="https://news.example.net/42/ask">Ask the postmaster</a>: why does my mail client see two Inboxes?</li>
</ul>
<p style="font-size: small; color: #666">You get this because you subscribed at news.example.net.
<a href="https://news.example.net/unsubscribe?u=demo">Unsubscribe</a>.</p>
</body></html>
`)),
	})

	// A photo attachment.
	add(spec{
		from: ana, to: []*mail.Address{demo},
		date:    date(saoPaulo, 2025, time.February, 11, 19, 44, 3),
		subject: "Photo from the offsite",
		part: multipart("mixed", "=_photo_mixed",
			text(`Oi!

Here is the (very small) picture of the sunset from the last evening.
The full-size one is on the shared drive.

Ana
`),
			attachment("image/png", "sunset.png", tinyPNG())),
	})

	// German, quoted-printable.
	add(spec{
		from: lena, to: []*mail.Address{demo},
		date:    date(berlin, 2025, time.February, 20, 7, 58, 40),
		subject: "Grüße aus München",
		part: qp("text/plain; charset=utf-8", `Hallo!

Schöne Grüße aus München. Das Wetter ist großartig, der Schnee liegt
hoch, und die Weißwürste schmecken wie immer. Nächste Woche bin ich
wieder im Büro – dann erzähle ich mehr über die Migration der alten
Postfächer.

Eine sehr lange Zeile, damit die Kodierung einen weichen Zeilenumbruch einfügen muss: Übergrößenträger, Fußgängerübergänge, Größenänderungen und Äußerungen.

Bis bald,
Lena
`),
	})

	// Japanese, base64 body.
	jp := `デモさん

お疲れ様です。田中です。

本日の会議の議事録を送ります。

1. 旧メールサーバーの移行は三月末までに完了する予定です。
2. IMAP ブリッジの試験運用を来週から始めます。
3. 次回の会議は三月十一日です。

よろしくお願いします。
田中
`
	add(spec{
		from: kenji, to: []*mail.Address{demo},
		date:    date(tokyo, 2025, time.March, 4, 18, 10, 0),
		subject: "会議の議事録（三月四日）",
		part:    part{contentType: "text/plain; charset=utf-8", cte: "base64", body: b64([]byte(jp))},
	})

	// Russian, 8bit body.
	add(spec{
		from: olga, to: []*mail.Address{demo},
		date:    date(moscow, 2025, time.March, 18, 12, 34, 56),
		subject: "Привет из Новосибирска",
		part: text(`Привет!

Пишу из Новосибирска: здесь минус двадцать, но солнечно.
Доклад про миграцию почты прошёл хорошо, слайды пришлю завтра.

Ольга
`),
	})

	// An invoice with a PDF.
	add(spec{
		from: billing, to: []*mail.Address{demo},
		date:    date(utc, 2025, time.April, 2, 3, 12, 0),
		subject: "Invoice INV-2025-0412 for April 2025",
		extra:   []header{{"X-Auto-Response-Suppress", "All"}},
		part: multipart("mixed", "=_inv0412_mixed",
			text(`Dear customer,

please find attached invoice INV-2025-0412 for April 2025.

  Virtual server, April 2025      EUR 12.00
  VAT 19%                         EUR  2.28
  Total                           EUR 14.28

The amount will be charged to your card on file on 9 April 2025.

Example Hosting
`),
			attachment("application/pdf", "INV-2025-0412.pdf", tinyPDF())),
	})

	// A forwarded message (message/rfc822).
	inner := `From: "Example Air" <booking@air.example.com>
To: Marcus Webb <marcus.webb@example.com>
Subject: Your flight confirmation XK7Q2P
Date: Mon, 14 Apr 2025 09:01:00 +0000
Message-ID: <20250414090100.XK7Q2P@air.example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Booking reference: XK7Q2P

  Outbound  Tue 29 Apr 2025  NYC 08:05 -> LIS 19:40
  Return    Sun 4 May 2025   LIS 11:15 -> NYC 14:05

Passenger: WEBB/MARCUS MR
`
	add(spec{
		from: marcus, to: []*mail.Address{demo},
		date:    date(newYorkS, 2025, time.April, 15, 8, 12, 19),
		subject: "Fwd: Your flight confirmation XK7Q2P",
		part: multipart("mixed", "=_fwd_mixed",
			text(`FYI, here are my flight details for the Lisbon trip, in case you need
to book the same flights.

Marcus
`),
			part{contentType: "message/rfc822", disposition: `inline; filename="Your flight confirmation XK7Q2P.eml"`, body: inner}),
	})

	// A calendar invitation.
	ics := `BEGIN:VCALENDAR
PRODID:-//Example Corp//Calendar 3.2//EN
VERSION:2.0
CALSCALE:GREGORIAN
METHOD:REQUEST
BEGIN:VEVENT
DTSTART:20250513T120000Z
DTEND:20250513T130000Z
DTSTAMP:20250506T091500Z
ORGANIZER;CN=Priya Raman:mailto:priya.raman@example.com
UID:design-review-20250513@example.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=
 TRUE;CN=Demo User:mailto:demo@example.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Marcus
  Webb:mailto:marcus.webb@example.com
SUMMARY:Design review: IMAP bridge
DESCRIPTION:Walk through the bridge design before the pilot.
LOCATION:Room 4.12
SEQUENCE:0
STATUS:CONFIRMED
END:VEVENT
END:VCALENDAR
`
	add(spec{
		from: calendar, to: []*mail.Address{demo, marcus},
		date:    date(newYorkS, 2025, time.May, 6, 5, 15, 0),
		subject: "Invitation: Design review: IMAP bridge @ Tue 13 May 2025 14:00 - 15:00 (CEST)",
		part: multipart("alternative", "=_invite_alt",
			text(`Priya Raman has invited you to:

Design review: IMAP bridge
When: Tue 13 May 2025 14:00 - 15:00 (CEST)
Where: Room 4.12

Walk through the bridge design before the pilot.

Going? Yes - Maybe - No
`),
			part{contentType: `text/calendar; charset=utf-8; method=REQUEST`, cte: "7bit", body: ics}),
	})

	// A body line starting with "From ": mboxrd quotes it.
	add(spec{
		from: books, to: []*mail.Address{demo},
		date:    date(utc, 2025, time.May, 20, 17, 0, 0),
		subject: "Book club: next month's pick",
		extra:   []header{{"List-Id", "Harbour Street Book Club <bookclub.lists.example.org>"}},
		part: text(`Hello readers,

next month we read "The Lighthouse Keeper's Ledger".

From the author of last year's favourite comes a quiet novel about a
keeper who writes down every ship that passes, and the one that doesn't.

>From the archives: we first met in this very bookshop in 2009.

We meet on the 17th at 19:00.
`),
	})

	// French, ISO-8859-1 quoted-printable (a legacy charset).
	fr := "Bonjour à tous,\n\nVoici le compte rendu de la réunion de lundi :\n\n" +
		"- la migration des boîtes aux lettres commence en juillet ;\n" +
		"- les équipes gardent leurs dossiers et leurs étiquettes ;\n" +
		"- l'ancien serveur reste en lecture seule jusqu'à la fin de l'été.\n\n" +
		"Bonne journée,\nClaire\n"
	var latin1 bytes.Buffer
	for _, r := range fr {
		latin1.WriteByte(byte(r))
	}
	var qpLatin1 bytes.Buffer
	qw := quotedprintable.NewWriter(&qpLatin1)
	qw.Write(latin1.Bytes())
	qw.Close()
	add(spec{
		from: claire, to: []*mail.Address{demo},
		date:    date(paris, 2025, time.June, 3, 9, 20, 0),
		subject: "Réunion de l'équipe — compte rendu",
		part: part{contentType: "text/plain; charset=iso-8859-1", cte: "quoted-printable",
			body: strings.ReplaceAll(qpLatin1.String(), "\r\n", "\n")},
	})

	// More languages.
	add(spec{
		from: nikos, to: []*mail.Address{demo},
		date:    date(athens, 2025, time.June, 17, 10, 5, 0),
		subject: "Καλημέρα από την Αθήνα",
		part: text(`Καλημέρα!

Η μετάβαση στον νέο διακομιστή πήγε καλά. Όλα τα μηνύματα είναι εκεί.

Νίκος
`),
	})
	add(spec{
		from: wei, to: []*mail.Address{demo},
		date:    date(shanghai, 2025, time.June, 24, 15, 30, 0),
		subject: "你好，邮件迁移进展顺利",
		part: text(`你好！

旧邮件服务器的迁移进展顺利。所有的邮件和文件夹都已保留。
下周我们开始第二批用户。

王伟
`),
	})
	add(spec{
		from: amira, to: []*mail.Address{demo},
		date:    date(cairo, 2025, time.July, 1, 11, 11, 11),
		subject: "مرحبا، هل وصلتك الرسالة؟",
		part: text(`مرحبا،

أردت فقط التأكد من أن رسائلي تصل إلى صندوقك الجديد.

مع التحية،
أميرة
`),
	})
	add(spec{
		from: tomas, to: []*mail.Address{demo},
		date:    date(madrid, 2025, time.July, 8, 20, 45, 0),
		subject: "¿Nos vemos mañana en la terraza?",
		part: text(`¡Hola!

¿Nos vemos mañana a las ocho en la terraza? Traigo las fotos del viaje.

Un abrazo,
Tomás
`),
	})

	// HTML only.
	add(spec{
		from: shop, to: []*mail.Address{demo},
		date:    date(utc, 2025, time.July, 22, 14, 3, 27),
		subject: "Your order #A-10442 has shipped",
		part: html(`<html><body>
<p>Good news! Your order <b>#A-10442</b> is on its way.</p>
<table border="1" cellpadding="4">
<tr><th>Item</th><th>Qty</th></tr>
<tr><td>USB-C cable, 2 m</td><td>2</td></tr>
<tr><td>Laptop stand</td><td>1</td></tr>
</table>
<p>Track it at <a href="https://shop.example.net/track/A-10442">shop.example.net/track/A-10442</a>.</p>
</body></html>
`),
	})

	// A bounce.
	add(spec{
		from: addr("Mail Delivery System", "MAILER-DAEMON@mail.example.com"), to: []*mail.Address{demo},
		envFrom: "MAILER-DAEMON",
		date:    date(utc, 2025, time.August, 5, 9, 0, 12),
		subject: "Undelivered Mail Returned to Sender",
		extra:   []header{{"Auto-Submitted", "auto-replied"}},
		part: part{
			contentType: `multipart/report; report-type=delivery-status`, boundary: "=_dsn_report",
			parts: []part{
				{contentType: "text/plain; charset=us-ascii", body: `This is the mail system at host mail.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<old.colleague@example.com>: host mx.example.com[192.0.2.25] said:
    550 5.1.1 <old.colleague@example.com>: Recipient address rejected:
    User unknown in local recipient table
`},
				{contentType: "message/delivery-status", body: `Reporting-MTA: dns; mail.example.com
Arrival-Date: Tue, 5 Aug 2025 09:00:09 +0000

Final-Recipient: rfc822; old.colleague@example.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <old.colleague@example.com>: Recipient
    address rejected: User unknown in local recipient table
`},
				{contentType: "text/rfc822-headers", body: `From: Demo User <demo@example.com>
To: old.colleague@example.com
Subject: Are you still at this address?
Date: Tue, 5 Aug 2025 09:00:05 +0000
Message-ID: <20250805090005.1a2b3c4d@example.com>
`},
			},
		},
	})

	// A long line (kept intact, under 998 octets).
	logLine := "2025-08-19T10:41:07.512Z level=error msg=\"poll failed\" source=legacy"
	for i := 0; len(logLine) < 700; i++ {
		logLine += fmt.Sprintf(" attempt=%d backoff=%ds", i+1, 1<<min(i, 8))
	}
	add(spec{
		from: marcus, to: []*mail.Address{demo},
		date:    date(newYorkS, 2025, time.August, 19, 6, 50, 0),
		subject: "Log excerpt from last night",
		part: text("This is the line the pager sent me at 3am. Note how long it is:\n\n" +
			logLine + "\n\nAny idea why the backoff keeps doubling?\n"),
	})

	// HTML with an inline image (multipart/related).
	add(spec{
		from: ana, to: []*mail.Address{demo},
		date:    date(saoPaulo, 2025, time.September, 9, 9, 9, 9),
		subject: "Our new team logo",
		part: multipart("related", "=_logo_related",
			multipart("alternative", "=_logo_alt",
				text("What do you think of the new logo? (Your mail client shows it in the HTML version.)\n\nAna\n"),
				html(`<html><body><p>What do you think of the new logo?</p>
<p><img src="cid:logo@example.com.br" alt="logo" width="64" height="64"></p>
<p>Ana</p></body></html>
`)),
			part{contentType: "image/png", cte: "base64", disposition: `inline; filename="logo.png"`,
				id: "<logo@example.com.br>", body: b64(tinyPNG())}),
	})

	// The second newsletter.
	add(spec{
		from: weekly, to: []*mail.Address{demo},
		date:    date(utc, 2025, time.September, 30, 6, 0, 0),
		subject: "The Example Weekly #43: Keeping UIDs stable",
		extra: []header{
			{"List-Id", "The Example Weekly <weekly.news.example.net>"},
			{"List-Unsubscribe", "<https://news.example.net/unsubscribe?u=demo>"},
			{"Precedence", "bulk"},
		},
		part: multipart("alternative", "=_weekly43_alt",
			text("THE EXAMPLE WEEKLY - Issue 43\n\n* Keeping UIDs stable across restarts\n* mbox locking, explained\n\nRead online: https://news.example.net/43\n"),
			html("<html><body><h1>The Example Weekly #43</h1><ul><li>Keeping UIDs stable across restarts</li><li>mbox locking, explained</li></ul></body></html>\n")),
	})

	// The lunch thread, months later.
	add(spec{
		from: sam, to: []*mail.Address{demo},
		date:      date(newYorkS, 2025, time.October, 14, 12, 1, 0),
		subject:   "Re: Lunch on Thursday?",
		inReplyTo: lunch, refs: []string{lunch},
		part: text(`Found this in my drafts from January. Ramen again this Thursday?

> the new ramen place on 5th opened this week. Thursday at 12:30?
`),
	})

	// No body at all.
	add(spec{
		from: priya, to: []*mail.Address{demo},
		date:    date(newYork, 2025, time.November, 3, 16, 0, 0),
		subject: "Slides are on the shared drive (EOM)",
		part:    part{contentType: "text/plain; charset=us-ascii"},
	})

	// Many recipients, Reply-To, and a subject long enough to fold.
	add(spec{
		from: helpdesk, to: []*mail.Address{demo, priya, marcus, lena, tomas, sam},
		cc:      []*mail.Address{addr("", "it-announce@example.com")},
		replyTo: addr("IT Operations", "it-ops@example.com"),
		date:    date(berlin, 2025, time.November, 25, 18, 0, 0),
		subject: "Planned maintenance window on Saturday 29 November 2025 from 22:00 to 02:00 CET: the old mail server will be read-only",
		extra:   []header{{"Importance", "high"}, {"X-Priority", "2"}},
		part: text(`Hello,

on Saturday 29 November from 22:00 to 02:00 CET the old mail server will
be read-only while we move the last mailboxes behind the IMAP bridge.
Your clients keep working; new mail arrives after the window.

IT Operations
`),
	})

	// Emoji subject, HTML newsletter-ish.
	add(spec{
		from: shop, to: []*mail.Address{demo},
		date:    date(utc, 2025, time.December, 15, 8, 0, 0),
		subject: "🎄 Holiday opening hours 🎁",
		extra:   []header{{"Precedence", "bulk"}},
		part: multipart("alternative", "=_holiday_alt",
			text("Our holiday hours: 24-26 December closed, 27-31 December 10:00-16:00. 🎅\n"),
			html("<html><body><p>Our holiday hours: 24&ndash;26 December closed, 27&ndash;31 December 10:00&ndash;16:00. 🎅</p></body></html>\n")),
	})

	// New year.
	add(spec{
		from: olga, to: []*mail.Address{demo},
		date:    date(moscow, 2026, time.January, 2, 0, 0, 5),
		subject: "С Новым годом! Happy New Year!",
		part: text(`С Новым годом! Happy New Year!

Ольга
`),
	})

	// A second thread, in 2026.
	m1 := add(spec{
		from: lena, to: []*mail.Address{demo}, cc: []*mail.Address{marcus},
		date:    date(berlin, 2026, time.January, 12, 9, 0, 0),
		subject: "Server migration: cut-over plan",
		part: text(`Hi,

cut-over plan for the old POP3 host:

  Mon: switch delete_policy from keep to after_days (30 days)
  Wed: check that every mailbox has synced
  Fri: switch to after_sync and watch the metrics

Objections?

Lena
`),
	})
	m2 := add(spec{
		from: marcus, to: []*mail.Address{lena}, cc: []*mail.Address{demo},
		date:      date(newYork, 2026, time.January, 12, 8, 30, 0),
		subject:   "Re: Server migration: cut-over plan",
		inReplyTo: m1, refs: []string{m1},
		part: text(`No objections. Let's keep an eye on the sync error rate on Wednesday.

> Fri: switch to after_sync and watch the metrics
`),
	})
	add(spec{
		from: lena, to: []*mail.Address{marcus}, cc: []*mail.Address{demo},
		date:      date(berlin, 2026, time.January, 16, 17, 45, 0),
		subject:   "Re: Server migration: cut-over plan",
		inReplyTo: m2, refs: []string{m1, m2},
		part: text(`Done. All mailboxes synced, after_sync is on, no errors. 🎉

Lena
`),
	})

	// A CSV attachment.
	csv := "date,mailbox,messages,bytes\n2026-01-30,demo,36,184320\n2026-01-30,priya,10412,912384000\n2026-01-30,marcus,8821,734003200\n"
	add(spec{
		from: ci, to: []*mail.Address{demo},
		date:    date(utc, 2026, time.February, 2, 4, 0, 0),
		subject: "[report] Mailbox sizes, January 2026",
		extra:   []header{{"Auto-Submitted", "auto-generated"}},
		part: multipart("mixed", "=_report_mixed",
			text("The monthly mailbox size report is attached.\n"),
			attachment("text/csv", "mailbox-sizes-2026-01.csv", []byte(csv))),
	})

	// A security notice.
	add(spec{
		from: security, to: []*mail.Address{demo},
		date:    date(utc, 2026, time.February, 10, 22, 14, 0),
		subject: "New sign-in to your account",
		extra:   []header{{"Auto-Submitted", "auto-generated"}},
		part: text(`We noticed a new sign-in to your account.

  When:    10 February 2026, 22:13 UTC
  Device:  Thunderbird on Linux
  Where:   192.0.2.77

If this was you, there is nothing to do. If not, change your password.
`),
	})

	// A cancelled meeting.
	add(spec{
		from: calendar, to: []*mail.Address{demo},
		date:    date(newYork, 2026, time.February, 18, 11, 0, 0),
		subject: "Cancelled: Retro @ Thu 19 Feb 2026 15:00 - 16:00 (EST)",
		part: multipart("alternative", "=_cancel_alt",
			text("This event has been cancelled: Retro, Thu 19 Feb 2026 15:00 - 16:00 (EST).\n"),
			part{contentType: "text/calendar; charset=utf-8; method=CANCEL", cte: "7bit", body: `BEGIN:VCALENDAR
PRODID:-//Example Corp//Calendar 3.2//EN
VERSION:2.0
METHOD:CANCEL
BEGIN:VEVENT
DTSTART:20260219T200000Z
DTEND:20260219T210000Z
DTSTAMP:20260218T160000Z
ORGANIZER;CN=Priya Raman:mailto:priya.raman@example.com
UID:retro-20260219@example.com
ATTENDEE;CN=Demo User:mailto:demo@example.com
SUMMARY:Retro
SEQUENCE:1
STATUS:CANCELLED
END:VEVENT
END:VCALENDAR
`}),
	})

	// format=flowed.
	add(spec{
		from: sam, to: []*mail.Address{demo},
		date:    date(newYork, 2026, time.March, 2, 9, 30, 0),
		subject: "Notes from the mail client test day",
		part: part{contentType: "text/plain; charset=utf-8; format=flowed", cte: "7bit", body: `We tried six IMAP clients against the bridge today. Flags, folders and 
moves showed up on every device within a few seconds, and IDLE pushed new 
mail to the phones straight away.

Only one client needed a restart after the certificate changed.

Sam
`},
	})

	// A build notification.
	add(spec{
		from: ci, to: []*mail.Address{demo},
		date:    date(utc, 2026, time.March, 9, 13, 37, 0),
		subject: "[imapbridge] Build #512 passed (main)",
		extra: []header{
			{"X-CI-Build", "512"},
			{"List-Id", "builds <builds.example.org>"},
		},
		part: text(`Build #512 of imapbridge (main) passed in 4m12s.

  lint   ok
  test   ok   (race)
  fuzz   ok   (20s per target)

https://builds.example.org/imapbridge/512
`),
	})

	// The last one: a reply quoting a line that starts with "From ".
	add(spec{
		from: priya, to: []*mail.Address{demo},
		date:    date(newYork, 2026, time.March, 16, 10, 0, 0),
		subject: "Quote for the newsletter",
		part: text(`For the next issue, the quote of the month:

From now on, every mailbox is everywhere.

-- an anonymous user, on the day the old server was switched off
`),
	})

	return all
}
