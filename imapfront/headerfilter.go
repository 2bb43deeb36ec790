package imapfront

import "github.com/emersion/go-imap/v2"

// headerSection answers a header section (BODY[HEADER], BODY[HEADER.FIELDS
// …], BODY[HEADER.FIELDS.NOT …], RFC822.HEADER) from a stored header block
// without parsing it into a map: the fields kept, each as stored with its
// lines ended in CRLF, then CRLF. It answers only a plain block (lines end
// in CRLF or LF with no other CR, keys of letters, digits and '-', the
// blank line at the end) and no partial
// range; ok is false otherwise, and the caller uses go-imap's
// ExtractBodySection, whose bytes this reproduces exactly (the
// differential test and fuzz check it).
func headerSection(block []byte, item *imap.FetchItemBodySection) (out []byte, ok bool) {
	if item.Partial != nil || len(block) < 2 || block[len(block)-1] != '\n' {
		return nil, false
	}
	for _, names := range [][]string{item.HeaderFields, item.HeaderFieldsNot} {
		for _, n := range names {
			for i := 0; i < len(n); i++ {
				if n[i] >= 0x80 {
					return nil, false // strings.ToLower folds some of these to ASCII
				}
			}
		}
	}
	out = make([]byte, 0, 512)
	keep := false
	for pos := 0; ; {
		end := pos
		for end < len(block) && block[end] != '\n' {
			if block[end] == '\r' && (end+1 >= len(block) || block[end+1] != '\n') {
				return nil, false
			}
			end++
		}
		if end == len(block) {
			return nil, false // no line end: not a block Index kept
		}
		// A line is kept as go-message keeps it: its content, then CRLF
		// whether it ended in CRLF or a bare LF.
		text := block[pos:end]
		if len(text) > 0 && text[len(text)-1] == '\r' {
			text = text[:len(text)-1]
		}
		first := pos == 0
		pos = end + 1
		if len(text) == 0 { // the blank line
			if pos != len(block) {
				return nil, false
			}
			return append(out, "\r\n"...), true
		}
		if text[0] == ' ' || text[0] == '\t' {
			if first { // a first line that is a continuation
				return nil, false
			}
			if keep {
				out = append(append(out, text...), '\r', '\n')
			}
			continue
		}
		colon := 0
		for colon < len(text) && text[colon] != ':' {
			c := text[colon]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return nil, false
			}
			colon++
		}
		if colon == 0 || colon == len(text) {
			return nil, false
		}
		key := text[:colon]
		switch {
		case len(item.HeaderFields) > 0:
			keep = nameIn(key, item.HeaderFields)
		default:
			keep = true
		}
		if keep && nameIn(key, item.HeaderFieldsNot) {
			keep = false
		}
		if keep {
			out = append(append(out, text...), '\r', '\n')
		}
	}
}

// nameIn tells whether key is one of names, ASCII case folded.
func nameIn(key []byte, names []string) bool {
	for _, n := range names {
		if len(n) != len(key) {
			continue
		}
		i := 0
		for i < len(n) && lowerASCII(n[i]) == lowerASCII(key[i]) {
			i++
		}
		if i == len(n) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
