package pop3

import (
	"fmt"
	"sort"

	"github.com/imapbridge/imapbridge/bridge"
)

// Message ids (bridge.SourceID) of the POP3 source.
//
// A message whose UIDL is unique in the listing has its UIDL as id, verbatim.
//
// A server without UIDL (or a message the UIDL listing left out) gets a
// fingerprint id: "fp:" + hex SHA-256 of "size <LIST size>\n" followed by
// the TOP n 0 reply (the header and the blank line after it). Two messages
// with identical header and size get "-2", "-3", ... by their order in the
// listing.
//
// A broken server may give several messages one UIDL. They must neither be
// merged (one of them would never be fetched) nor lose their ids when
// another one goes. The first of them in listing order (the oldest) keeps
// the plain UIDL, so a message known before the duplicate arrived keeps its
// id; every later one gets UIDL + "#" + the first 16 hex digits of its
// fingerprint, which does not depend on its position. Ties (same header and
// size) again get "-2", "-3", ... in listing order. Known limit: when the
// first of a group is deleted, the next one inherits the plain UIDL, which
// the bridge already knows; if that next one was seen before, under its
// fingerprint id, it was already fetched then, and nothing is lost.
//
// Synthetic ids never take an id that a message's own UIDL holds in the same
// listing: a collision gets the next free "-k" suffix.

// idPlan says which messages need a fingerprint.
type idPlan struct {
	msgs  []MsgInfo           // listing order (ascending message number)
	uidl  map[MsgNum]UIDL     // from UIDL; missing entries have none
	first map[UIDL]MsgNum     // the first message of each UIDL
	need  []MsgNum            // messages whose id needs a fingerprint
	dups  map[UIDL][]MsgNum   // UIDLs given to more than one message
	extra map[MsgNum]struct{} // messages UIDL listed that LIST did not
}

func planIDs(list []MsgInfo, uidls []UIDLInfo) *idPlan {
	p := &idPlan{
		msgs:  append([]MsgInfo(nil), list...),
		uidl:  map[MsgNum]UIDL{},
		first: map[UIDL]MsgNum{},
		dups:  map[UIDL][]MsgNum{},
		extra: map[MsgNum]struct{}{},
	}
	sort.Slice(p.msgs, func(i, j int) bool { return p.msgs[i].Num < p.msgs[j].Num })
	listed := map[MsgNum]bool{}
	for _, m := range p.msgs {
		listed[m.Num] = true
	}
	for _, u := range uidls {
		if listed[u.Num] {
			p.uidl[u.Num] = u.UIDL
		} else {
			p.extra[u.Num] = struct{}{}
		}
	}
	for _, m := range p.msgs {
		u, ok := p.uidl[m.Num]
		if !ok {
			p.need = append(p.need, m.Num)
			continue
		}
		if f, seen := p.first[u]; seen {
			if len(p.dups[u]) == 0 {
				p.dups[u] = []MsgNum{f}
			}
			p.dups[u] = append(p.dups[u], m.Num)
			p.need = append(p.need, m.Num)
			continue
		}
		p.first[u] = m.Num
	}
	return p
}

// assign returns the id of every message in listing order. fp holds the
// fingerprint (hex SHA-256) of every message in p.need.
func (p *idPlan) assign(fp map[MsgNum]string) ([]bridge.SourceID, error) {
	ids := make([]bridge.SourceID, len(p.msgs))
	used := map[bridge.SourceID]bool{}
	// Plain UIDLs first: they own their ids.
	for i, m := range p.msgs {
		if u, ok := p.uidl[m.Num]; ok && p.first[u] == m.Num {
			ids[i] = bridge.SourceID(u)
			used[ids[i]] = true
		}
	}
	for i, m := range p.msgs {
		if ids[i] != "" {
			continue
		}
		f, ok := fp[m.Num]
		if !ok || len(f) < 16 {
			return nil, fmt.Errorf("no fingerprint for message %d", m.Num)
		}
		var base bridge.SourceID
		if u, ok := p.uidl[m.Num]; ok {
			base = bridge.SourceID(string(u) + "#" + f[:16])
		} else {
			base = bridge.SourceID("fp:" + f)
		}
		id := base
		for k := 2; used[id]; k++ {
			id = bridge.SourceID(fmt.Sprintf("%s-%d", base, k))
		}
		ids[i] = id
		used[id] = true
	}
	return ids, nil
}
