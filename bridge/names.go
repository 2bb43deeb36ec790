package bridge

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Delimiter separates the levels of a mailbox name.
const Delimiter = "/"

// InboxName is the one mailbox name that is case-insensitive.
const InboxName = "INBOX"

// Special-use attributes (RFC 6154) the bridge knows.
const (
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialArchive = `\Archive`
	SpecialJunk    = `\Junk`
	SpecialAll     = `\All`
	SpecialFlagged = `\Flagged`
)

var specialUses = map[string]string{}

func init() {
	for _, s := range []string{SpecialSent, SpecialDrafts, SpecialTrash, SpecialArchive, SpecialJunk, SpecialAll, SpecialFlagged} {
		specialUses[strings.ToLower(s)] = s
	}
}

// defaultMailboxes every user has.
var defaultMailboxes = []struct{ name, use string }{
	{InboxName, ""},
	{"Sent", SpecialSent},
	{"Drafts", SpecialDrafts},
	{"Trash", SpecialTrash},
	{"Archive", SpecialArchive},
	{"Junk", SpecialJunk},
}

const maxNameLen = 512

// CanonicalName checks a mailbox name (UTF-8, levels separated by "/") and
// returns it in the form it is stored: "INBOX" in any case, alone or as the
// first level, becomes "INBOX". It refuses names that are empty, not UTF-8,
// hold control characters, have empty levels, or use "." or ".." as a
// level — a name is never used as a path, but nothing like one gets in.
func CanonicalName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > maxNameLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, maxNameLen)
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "", fmt.Errorf("%w: contains control character %U", ErrInvalidName, r)
		}
		if r == '*' || r == '%' {
			return "", fmt.Errorf("%w: contains wildcard %q", ErrInvalidName, r)
		}
	}
	levels := strings.Split(name, Delimiter)
	for i, l := range levels {
		switch {
		case l == "":
			return "", fmt.Errorf("%w: empty level in %q", ErrInvalidName, name)
		case l == "." || l == "..":
			return "", fmt.Errorf("%w: level %q not allowed", ErrInvalidName, l)
		case i == 0 && strings.EqualFold(l, InboxName):
			levels[0] = InboxName
		}
	}
	return strings.Join(levels, Delimiter), nil
}

// CanonicalSpecialUse returns the canonical spelling of a special-use
// attribute, or an error for one the bridge does not know.
func CanonicalSpecialUse(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if c, ok := specialUses[strings.ToLower(s)]; ok {
		return c, nil
	}
	return "", fmt.Errorf("%w %q", ErrInvalidSpecialUse, s)
}

// Flag names with a fixed spelling.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

var systemFlags = map[string]string{}

func init() {
	for _, f := range []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft} {
		systemFlags[strings.ToLower(f)] = f
	}
}

// NormalizeFlags returns flags with system flags in their canonical case
// (`\Seen`, never `\seen`: some clients reject anything else), keywords as
// first written, duplicates (compared case-insensitively) removed, sorted.
// \Recent is not a stored flag and is dropped.
func NormalizeFlags(flags []string) []string {
	seen := make(map[string]bool, len(flags))
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if f == "" {
			continue
		}
		key := strings.ToLower(f)
		if key == `\recent` {
			continue
		}
		if c, ok := systemFlags[key]; ok {
			f = c
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func hasFlag(flags []string, flag string) bool {
	for _, f := range flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

func joinFlags(flags []string) string { return strings.Join(flags, " ") }

func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}
