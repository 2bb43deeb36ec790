package mboxstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"

	"github.com/imapbridge/imapbridge/bridge"
)

// Key is the content key of a message: the first 128 bits of SHA-256 over
// the message with LF line endings and without its volatile header fields
// (see the package documentation).
type Key [16]byte

// String returns the key in lower-case hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether k is the zero key (not computed).
func (k Key) IsZero() bool { return k == Key{} }

// SourceID returns the source id of the n-th (1-based) message with key k
// in a spool: "<hex>" for the first, "<hex>.<n>" for later ones.
func (k Key) SourceID(n int) bridge.SourceID {
	if n <= 1 {
		return bridge.SourceID(k.String())
	}
	return bridge.SourceID(k.String() + "." + strconv.Itoa(n))
}

// volatileFields are the header fields left out of the key: mail programs
// add, change or drop them when they rewrite a spool.
var volatileFields = []string{
	"status",            // mutt, pine, Dovecot: read/old
	"x-status",          // mutt, Dovecot: answered/flagged/deleted/draft
	"x-uid",             // Dovecot, UW-IMAP
	"x-keywords",        // Dovecot (padded in place)
	"x-imap",            // UW-IMAP/Dovecot pseudo message
	"x-imapbase",        // Dovecot, UW-IMAP
	"content-length",    // mutt, Dovecot, Solaris mail
	"lines",             // mutt writes it with Content-Length on every sync
	"x-mozilla-status",  // Thunderbird
	"x-mozilla-status2", // Thunderbird
}

func isVolatile(name []byte) bool {
	for _, f := range volatileFields {
		if len(name) == len(f) && bytes.EqualFold(name, []byte(f)) {
			return true
		}
	}
	return false
}

// header parser states of keyHasher
const (
	hLineStart = iota // at the start of a header line
	hName             // collecting a field name
	hKeep             // inside a line that is part of the key
	hSkip             // inside a volatile field
)

// keyHasher computes a Key from the unescaped message, fed in chunks cut
// anywhere. It leaves out volatile header fields (with their continuation
// lines) and hashes CRLF as LF.
type keyHasher struct {
	h        hash.Hash
	inHeader bool
	state    int
	skip     bool // the current field is volatile
	name     [32]byte
	nameLen  int
	heldCR   bool // the last byte hashed-to-be was a CR, held back
	xIMAP    bool // an X-IMAP field was seen (mail store pseudo message)
}

func newKeyHasher() *keyHasher {
	return &keyHasher{h: sha256.New()}
}

func (k *keyHasher) reset() {
	k.h.Reset()
	k.inHeader = true
	k.state = hLineStart
	k.skip = false
	k.nameLen = 0
	k.heldCR = false
	k.xIMAP = false
}

// hash writes p with CRLF turned into LF.
func (k *keyHasher) hash(p []byte) {
	if len(p) == 0 {
		return
	}
	if k.heldCR {
		k.heldCR = false
		if p[0] != '\n' {
			k.h.Write([]byte{'\r'})
		}
	}
	for {
		r := bytes.IndexByte(p, '\r')
		if r < 0 {
			k.h.Write(p)
			return
		}
		if r == len(p)-1 {
			k.h.Write(p[:r])
			k.heldCR = true
			return
		}
		if p[r+1] == '\n' {
			k.h.Write(p[:r])
		} else {
			k.h.Write(p[:r+1])
		}
		p = p[r+1:]
	}
}

func (k *keyHasher) write(p []byte) {
	for len(p) > 0 && k.inHeader {
		switch k.state {
		case hLineStart:
			switch p[0] {
			case '\n': // the empty line that ends the header
				k.hash(p[:1])
				p = p[1:]
				k.inHeader = false
				continue
			case ' ', '\t': // continuation of the previous field
				if k.skip {
					k.state = hSkip
				} else {
					k.state = hKeep
				}
				continue
			}
			k.skip = false
			k.nameLen = 0
			k.state = hName
		case hName:
			for len(p) > 0 && k.state == hName {
				c := p[0]
				switch {
				case c == '\n' && k.nameLen == 1 && k.name[0] == '\r':
					// CRLF empty line: end of the header
					k.hash(k.name[:1])
					k.hash(p[:1])
					p = p[1:]
					k.nameLen = 0
					k.state = hLineStart
					k.inHeader = false
				case c == '\n' || k.nameLen == len(k.name):
					// a line without a colon, or a name longer than any
					// volatile one: part of the key
					k.hash(k.name[:k.nameLen])
					k.state = hKeep
				case c == ':':
					name := bytes.TrimRight(k.name[:k.nameLen], " \t")
					if isVolatile(name) {
						if bytes.EqualFold(name, []byte("x-imap")) {
							k.xIMAP = true
						}
						k.skip = true
						k.state = hSkip
					} else {
						k.hash(k.name[:k.nameLen])
						k.state = hKeep
					}
				default:
					k.name[k.nameLen] = c
					k.nameLen++
					p = p[1:]
				}
			}
		case hKeep, hSkip:
			keep := k.state == hKeep
			line := p
			if n := bytes.IndexByte(p, '\n'); n >= 0 {
				line = p[:n+1]
				k.state = hLineStart
			}
			if keep {
				k.hash(line)
			}
			p = p[len(line):]
		}
	}
	if len(p) > 0 {
		k.hash(p)
	}
}

// sum ends the message and returns its key.
func (k *keyHasher) sum() Key {
	if k.inHeader && k.state == hName {
		k.hash(k.name[:k.nameLen]) // a last line without a colon or LF
	}
	if k.heldCR {
		k.heldCR = false
		k.h.Write([]byte{'\r'})
	}
	var key Key
	var buf [sha256.Size]byte
	copy(key[:], k.h.Sum(buf[:0]))
	return key
}
