package pop3

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
)

// idListing builds a LIST and UIDL reply from fuzz bytes, three per
// message: its number (repeats skipped, as List refuses them), its UIDL
// (none, or one of a few, so that UIDLs repeat) and which of a few
// fingerprints its header has (so that ties happen).
func idListing(data []byte) ([]MsgInfo, []UIDLInfo, map[MsgNum]string) {
	var list []MsgInfo
	var uidls []UIDLInfo
	fps := map[MsgNum]string{}
	seen := map[MsgNum]bool{}
	for i := 0; i+2 < len(data); i += 3 {
		n := MsgNum(data[i]%64 + 1)
		if seen[n] {
			continue
		}
		seen[n] = true
		list = append(list, MsgInfo{Num: n, Size: int64(data[i+2])})
		if u := data[i+1] % 8; u != 0 {
			uidls = append(uidls, UIDLInfo{Num: n, UIDL: UIDL(fmt.Sprintf("u%d", u))})
		}
		sum := sha256.Sum256([]byte{data[i+2] % 3})
		fps[n] = hex.EncodeToString(sum[:])
	}
	return list, uidls, fps
}

func assignIDs(t *testing.T, list []MsgInfo, uidls []UIDLInfo, fps map[MsgNum]string) map[MsgNum]bridge.SourceID {
	t.Helper()
	plan := planIDs(list, uidls)
	ids, err := plan.assign(fps)
	if err != nil {
		t.Fatalf("assign: %v", err)
	}
	if len(ids) != len(list) {
		t.Fatalf("%d ids for %d messages", len(ids), len(list))
	}
	out := map[MsgNum]bridge.SourceID{}
	for i, m := range plan.msgs {
		out[m.Num] = ids[i]
	}
	return out
}

// FuzzSourceIDs: every message of a listing gets a distinct, non-empty id;
// a UIDL held by one message is its id verbatim, and of several messages
// sharing one the lowest-numbered keeps it; the ids do not depend on the
// order the lines came in; and the newest message leaving the listing
// changes no other message's id (so nothing is fetched twice).
func FuzzSourceIDs(f *testing.F) {
	f.Add([]byte{1, 1, 0, 2, 1, 0, 3, 0, 0, 4, 0, 0, 5, 2, 1})
	f.Add([]byte{9, 0, 7, 8, 0, 7, 7, 0, 7})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		list, uidls, fps := idListing(data)
		ids := assignIDs(t, list, uidls, fps)
		byID := map[bridge.SourceID]MsgNum{}
		for n, id := range ids {
			if id == "" {
				t.Fatalf("message %d has no id", n)
			}
			if o, dup := byID[id]; dup {
				t.Fatalf("messages %d and %d share id %q", o, n, id)
			}
			byID[id] = n
		}
		holders := map[UIDL][]MsgNum{}
		for _, u := range uidls {
			holders[u.UIDL] = append(holders[u.UIDL], u.Num)
		}
		for u, ns := range holders {
			if first := slices.Min(ns); ids[first] != bridge.SourceID(u) {
				t.Fatalf("UIDL %q: first holder %d has id %q", u, first, ids[first])
			}
			for _, n := range ns {
				if !strings.HasPrefix(string(ids[n]), string(u)) {
					t.Fatalf("message %d with UIDL %q has id %q", n, u, ids[n])
				}
			}
		}
		// The lines in another order: the same ids.
		rl, ru := slices.Clone(list), slices.Clone(uidls)
		slices.Reverse(rl)
		slices.Reverse(ru)
		if again := assignIDs(t, rl, ru, fps); !maps(again, ids) {
			t.Fatalf("ids depend on line order: %v then %v", ids, again)
		}
		// The newest message gone: the others keep their ids.
		if len(list) < 2 {
			return
		}
		last := slices.MaxFunc(list, func(a, b MsgInfo) int { return int(a.Num) - int(b.Num) }).Num
		var l2 []MsgInfo
		for _, m := range list {
			if m.Num != last {
				l2 = append(l2, m)
			}
		}
		var u2 []UIDLInfo
		for _, u := range uidls {
			if u.Num != last {
				u2 = append(u2, u)
			}
		}
		after := assignIDs(t, l2, u2, fps)
		for n, id := range after {
			if ids[n] != id {
				t.Fatalf("message %d had id %q, has %q once message %d is gone", n, ids[n], id, last)
			}
		}
	})
}

func maps(a, b map[MsgNum]bridge.SourceID) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
