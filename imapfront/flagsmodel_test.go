package imapfront_test

import (
	"fmt"
	"strings"
)

// flagsModel is what a client has been told a mailbox's flags are: FLAGS
// sets them, and a FETCH may show no keyword outside them (RFC 3501
// section 7.2.6). The stress client and the transcript tests share it.
type flagsModel struct {
	known       map[string]bool
	wantPerm    bool // a FLAGS line was just seen: PERMANENTFLAGS must follow
	lastFlagsLn string
}

func newFlagsModel(initial []string) *flagsModel {
	m := &flagsModel{known: map[string]bool{}}
	for _, f := range initial {
		m.known[f] = true
	}
	return m
}

// apply takes one untagged response line.
func (m *flagsModel) apply(l string) error {
	if m.wantPerm {
		m.wantPerm = false
		if !strings.HasPrefix(l, "* OK [PERMANENTFLAGS (") {
			return fmt.Errorf("%q not followed by PERMANENTFLAGS but by %q", m.lastFlagsLn, l)
		}
	}
	if rest, ok := strings.CutPrefix(l, "* FLAGS ("); ok {
		m.known = map[string]bool{}
		for _, f := range strings.Fields(strings.TrimSuffix(rest, ")")) {
			m.known[f] = true
		}
		m.wantPerm, m.lastFlagsLn = true, l
		return nil
	}
	if !strings.HasPrefix(l, "* ") || !strings.Contains(l, " FETCH (") {
		return nil
	}
	i := strings.Index(l, "FLAGS (")
	if i < 0 {
		return nil
	}
	j := strings.IndexByte(l[i:], ')')
	if j < 0 {
		return fmt.Errorf("unterminated FLAGS in %q", l)
	}
	for _, f := range strings.Fields(l[i+len("FLAGS (") : i+j]) {
		if strings.HasPrefix(f, `\`) {
			continue
		}
		if !m.known[f] {
			return fmt.Errorf("FETCH shows keyword %s that no FLAGS named: %q", f, l)
		}
	}
	return nil
}

func (m *flagsModel) check(lines []string) error {
	for _, l := range lines {
		if err := m.apply(l); err != nil {
			return err
		}
	}
	return nil
}
