package pop3

import (
	"reflect"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
)

func TestAssignIDs(t *testing.T) {
	fp := func(c byte) string { return strings.Repeat(string(c), 64) }
	for _, tc := range []struct {
		name     string
		list     []MsgInfo
		uidls    []UIDLInfo
		fps      map[MsgNum]string
		wantNeed []MsgNum
		want     []bridge.SourceID
	}{
		{
			name:  "unique uidls are the ids",
			list:  []MsgInfo{{1, 10}, {2, 20}},
			uidls: []UIDLInfo{{1, "a"}, {2, "b"}},
			want:  []bridge.SourceID{"a", "b"},
		},
		{
			name:  "listing order is message order",
			list:  []MsgInfo{{2, 20}, {1, 10}},
			uidls: []UIDLInfo{{2, "b"}, {1, "a"}},
			want:  []bridge.SourceID{"a", "b"},
		},
		{
			name:     "no uidl: fingerprints",
			list:     []MsgInfo{{1, 10}, {2, 20}},
			fps:      map[MsgNum]string{1: fp('1'), 2: fp('2')},
			wantNeed: []MsgNum{1, 2},
			want:     []bridge.SourceID{bridge.SourceID("fp:" + fp('1')), bridge.SourceID("fp:" + fp('2'))},
		},
		{
			name:     "identical fingerprints get -2, -3 by order",
			list:     []MsgInfo{{1, 10}, {2, 10}, {3, 10}},
			fps:      map[MsgNum]string{1: fp('a'), 2: fp('a'), 3: fp('a')},
			wantNeed: []MsgNum{1, 2, 3},
			want: []bridge.SourceID{bridge.SourceID("fp:" + fp('a')), bridge.SourceID("fp:" + fp('a') + "-2"),
				bridge.SourceID("fp:" + fp('a') + "-3")},
		},
		{
			name:     "duplicate uidls: first keeps it, the others get uidl#fingerprint",
			list:     []MsgInfo{{1, 10}, {2, 20}, {3, 30}, {4, 40}},
			uidls:    []UIDLInfo{{1, "dup"}, {2, "x"}, {3, "dup"}, {4, "dup"}},
			fps:      map[MsgNum]string{3: fp('3'), 4: fp('4')},
			wantNeed: []MsgNum{3, 4},
			want:     []bridge.SourceID{"dup", "x", bridge.SourceID("dup#" + fp('3')[:16]), bridge.SourceID("dup#" + fp('4')[:16])},
		},
		{
			name:     "duplicate uidls with identical content",
			list:     []MsgInfo{{1, 10}, {2, 10}, {3, 10}},
			uidls:    []UIDLInfo{{1, "u"}, {2, "u"}, {3, "u"}},
			fps:      map[MsgNum]string{2: fp('f'), 3: fp('f')},
			wantNeed: []MsgNum{2, 3},
			want:     []bridge.SourceID{"u", bridge.SourceID("u#" + fp('f')[:16]), bridge.SourceID("u#" + fp('f')[:16] + "-2")},
		},
		{
			name:     "a synthetic id never takes a real uidl",
			list:     []MsgInfo{{1, 10}, {2, 10}, {3, 10}},
			uidls:    []UIDLInfo{{1, "u"}, {2, "u"}, {3, UIDL("u#" + fp('f')[:16])}},
			fps:      map[MsgNum]string{2: fp('f')},
			wantNeed: []MsgNum{2},
			want:     []bridge.SourceID{"u", bridge.SourceID("u#" + fp('f')[:16] + "-2"), bridge.SourceID("u#" + fp('f')[:16])},
		},
		{
			name:     "a message the uidl listing left out gets a fingerprint",
			list:     []MsgInfo{{1, 10}, {2, 20}},
			uidls:    []UIDLInfo{{1, "a"}, {7, "ghost"}},
			fps:      map[MsgNum]string{2: fp('2')},
			wantNeed: []MsgNum{2},
			want:     []bridge.SourceID{"a", bridge.SourceID("fp:" + fp('2'))},
		},
		{
			name: "empty maildrop",
			want: []bridge.SourceID{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planIDs(tc.list, tc.uidls)
			if !reflect.DeepEqual(p.need, tc.wantNeed) {
				t.Fatalf("need = %v, want %v", p.need, tc.wantNeed)
			}
			got, err := p.assign(tc.fps)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ids = %q\nwant  %q", got, tc.want)
			}
		})
	}
}

// The id of a later duplicate does not depend on its position: when an
// earlier duplicate goes, the others keep their ids.
func TestAssignIDsStableWhenADuplicateGoes(t *testing.T) {
	fps := map[MsgNum]string{}
	before := planIDs([]MsgInfo{{1, 1}, {2, 2}, {3, 3}}, []UIDLInfo{{1, "u"}, {2, "u"}, {3, "u"}})
	fps[2], fps[3] = strings.Repeat("b", 64), strings.Repeat("c", 64)
	idsBefore, err := before.assign(fps)
	if err != nil {
		t.Fatal(err)
	}
	// Message 2 (fingerprint b) is deleted; old 3 is now 2.
	after := planIDs([]MsgInfo{{1, 1}, {2, 3}}, []UIDLInfo{{1, "u"}, {2, "u"}})
	idsAfter, err := after.assign(map[MsgNum]string{2: strings.Repeat("c", 64)})
	if err != nil {
		t.Fatal(err)
	}
	if idsAfter[0] != idsBefore[0] || idsAfter[1] != idsBefore[2] {
		t.Fatalf("ids before %q, after %q: the survivors changed ids", idsBefore, idsAfter)
	}
}

func TestAssignIDsMissingFingerprint(t *testing.T) {
	p := planIDs([]MsgInfo{{1, 1}}, nil)
	if _, err := p.assign(nil); err == nil || err.Error() != "no fingerprint for message 1" {
		t.Fatalf("err = %v", err)
	}
}
