package imapfront

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// extractEnvelope is imapserver.ExtractEnvelope with the address lists
// parsed here: go-imap's parser (net/mail underneath) flattens groups and
// drops what it cannot parse, where RFC 3501 section 7.4.2 wants a group
// as a start marker (NIL NIL "name" NIL), its members, and an end marker
// (NIL NIL NIL NIL).
func extractEnvelope(h textproto.Header) *imap.Envelope {
	env := imapserver.ExtractEnvelope(h)
	env.From = parseAddressList(h.Get("From"))
	env.Sender = parseAddressList(h.Get("Sender"))
	env.ReplyTo = parseAddressList(h.Get("Reply-To"))
	env.To = parseAddressList(h.Get("To"))
	env.Cc = parseAddressList(h.Get("Cc"))
	env.Bcc = parseAddressList(h.Get("Bcc"))
	return env
}

// The placeholders Dovecot gives a mailbox without a domain ("To: alice")
// or without a local part: an address with an empty host would read as a
// group marker.
const (
	missingDomain  = "MISSING_DOMAIN"
	missingMailbox = "MISSING_MAILBOX"
)

// maxAddresses bounds the addresses kept from one header field, so a
// hostile header cannot make an ENVELOPE of unbounded size.
const maxAddresses = 1000

// addrToken is one lexical unit of an address list (RFC 5322 section 3.2):
// a word (atom, or quoted string with its quotes removed), a special
// character, or a comment.
type addrToken struct {
	kind  byte // 'w' word, 'q' quoted word, 'c' comment, or the special itself
	text  string
	space bool // whitespace (or a comment) came before it
}

// lexAddresses splits an unfolded header value into tokens. It never fails:
// an unterminated quoted string or comment runs to the end of the value.
func lexAddresses(s string) []addrToken {
	var toks []addrToken
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
			i++
		case c == '"':
			var b strings.Builder
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
			i++ // the closing quote, if any
			toks = append(toks, addrToken{kind: 'q', text: b.String(), space: space})
			space = false
		case c == '(':
			var b strings.Builder
			depth := 1
			i++
			for i < len(s) && depth > 0 {
				switch s[i] {
				case '\\':
					if i+1 < len(s) {
						i++
					}
				case '(':
					depth++
				case ')':
					depth--
					if depth == 0 {
						i++
						continue
					}
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, addrToken{kind: 'c', text: b.String(), space: space})
			space = true
		case strings.IndexByte("<>@:;,.[]", c) >= 0:
			if c == '[' { // a domain literal, kept whole
				j := strings.IndexByte(s[i:], ']')
				if j < 0 {
					j = len(s) - i - 1
				}
				toks = append(toks, addrToken{kind: 'w', text: s[i : i+j+1], space: space})
				i += j + 1
				space = false
				continue
			}
			toks = append(toks, addrToken{kind: c, space: space})
			space = false
			i++
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\r\n\"()<>@:;,.[]", s[j]) < 0 {
				j++
			}
			if j == i { // a stray ')': dropped
				i++
				continue
			}
			toks = append(toks, addrToken{kind: 'w', text: s[i:j], space: space})
			space = false
			i = j
		}
	}
	return toks
}

// addrParser walks the tokens of one header field.
type addrParser struct {
	toks []addrToken
	pos  int
	out  []imap.Address
}

func (p *addrParser) peek() byte {
	for p.pos < len(p.toks) && p.toks[p.pos].kind == 'c' {
		p.pos++
	}
	if p.pos == len(p.toks) {
		return 0
	}
	return p.toks[p.pos].kind
}

// parseAddressList parses an address list (RFC 5322 section 3.4, with the
// obsolete forms of section 4.4: routes, empty members, CFWS around "@")
// into ENVELOPE addresses. Display names are decoded (RFC 2047); a comment
// stands for the name of an address that has none, as in Dovecot.
// Anything unparseable is skipped up to the next comma, never the whole
// list.
func parseAddressList(value string) []imap.Address {
	if strings.TrimSpace(value) == "" {
		return nil
	}
	p := &addrParser{toks: lexAddresses(value)}
	inGroup := false
	for p.peek() != 0 && len(p.out) < maxAddresses {
		switch p.peek() {
		case ',':
			p.pos++
			continue
		case ';':
			p.pos++
			if inGroup {
				p.out = append(p.out, imap.Address{})
				inGroup = false
			}
			continue
		}
		phrase, comment := p.phrase()
		switch p.peek() {
		case ':':
			p.pos++
			if inGroup { // a group inside a group: close the first
				p.out = append(p.out, imap.Address{})
			}
			name := decodeWords(phrase)
			if name == "" {
				name = missingMailbox
			}
			p.out = append(p.out, imap.Address{Mailbox: name})
			inGroup = true
		case '<':
			p.pos++
			a := p.angleAddr()
			a.Name = decodeWords(phrase)
			if a.Name == "" {
				a.Name = decodeWords(comment)
			}
			p.out = append(p.out, a)
		case '@':
			p.pos++
			host, c := p.domain()
			if c != "" {
				comment = c
			}
			p.out = append(p.out, addrOf(phrase, host, decodeWords(comment)))
		default: // ',', ';', the end, or junk: a local part alone
			if phrase != "" {
				p.out = append(p.out, addrOf(phrase, "", decodeWords(comment)))
			}
			if k := p.peek(); k != 0 && k != ',' && k != ';' {
				p.pos++ // junk ('>', a stray '.'): skip it
			}
		}
	}
	if inGroup {
		p.out = append(p.out, imap.Address{})
	}
	return p.out
}

func addrOf(local, host, name string) imap.Address {
	if local == "" {
		local = missingMailbox
	}
	if host == "" {
		host = missingDomain
	}
	return imap.Address{Name: name, Mailbox: local, Host: host}
}

// phrase reads words and dots up to the next special, joined as written
// (a single space where the header had white space). It returns the last
// comment seen too.
func (p *addrParser) phrase() (phrase, comment string) { return p.words(false) }

// domain reads a domain after "@": atoms and dots (or a domain literal),
// white space and comments dropped, up to a separator or a word after
// white space ("a@b c@d": a missing comma). It returns the last comment
// seen, which may name the address.
func (p *addrParser) domain() (host, comment string) { return p.words(true) }

func (p *addrParser) words(domain bool) (text, comment string) {
	var b strings.Builder
	for ; p.pos < len(p.toks); p.pos++ {
		t := p.toks[p.pos]
		switch t.kind {
		case 'c':
			comment = t.text
			continue
		case 'w', 'q', '.':
		default:
			return b.String(), comment
		}
		if t.space && b.Len() > 0 {
			if domain && t.kind != '.' {
				return b.String(), comment
			}
			if !domain {
				b.WriteByte(' ')
			}
		}
		if t.kind == '.' {
			b.WriteByte('.')
		} else {
			b.WriteString(t.text)
		}
	}
	return b.String(), comment
}

// localPart reads a local part: words and dots, white space and comments
// between them dropped (obs-local-part).
func (p *addrParser) localPart() string {
	var b strings.Builder
	for {
		switch p.peek() {
		case 'w', 'q':
			b.WriteString(p.toks[p.pos].text)
		case '.':
			b.WriteByte('.')
		default:
			return b.String()
		}
		p.pos++
	}
}

// angleAddr reads what follows "<": an optional route (dropped: go-imap
// writes no route field), the addr-spec, and ">".
func (p *addrParser) angleAddr() imap.Address {
	if p.peek() == '@' { // obs-route: "@a,@b:"
		for k := p.peek(); k != 0 && k != ':' && k != '>'; k = p.peek() {
			p.pos++
		}
		if p.peek() == ':' {
			p.pos++
		}
	}
	local := p.localPart()
	var host string
	if p.peek() == '@' {
		p.pos++
		host, _ = p.domain()
	}
	for k := p.peek(); k != 0 && k != '>' && k != ',' && k != ';'; k = p.peek() {
		p.pos++ // junk inside the brackets
	}
	if p.peek() == '>' {
		p.pos++
	}
	if local == "" && host == "" {
		return imap.Address{Mailbox: missingMailbox, Host: missingDomain} // "<>"
	}
	return addrOf(local, host, "")
}

// addressText is what SEARCH FROM/TO/CC/BCC matches besides the decoded
// header: the addresses as a reader's mail client shows them, one per
// line — "Name <local@domain>", a group as "group:" … ";" — so a search
// for an address finds it however the header quoted, commented or spaced
// it.
func addressText(value string) string {
	var b strings.Builder
	for _, a := range parseAddressList(value) {
		switch {
		case a.IsGroupEnd():
			b.WriteString(";\n")
		case a.IsGroupStart():
			b.WriteString(a.Mailbox)
			b.WriteString(":\n")
		default:
			if a.Name != "" {
				b.WriteString(a.Name)
				b.WriteByte(' ')
			}
			b.WriteByte('<')
			b.WriteString(a.Mailbox)
			b.WriteByte('@')
			b.WriteString(a.Host)
			b.WriteString(">\n")
		}
	}
	return b.String()
}
