package bridge_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// TestPlan is the sync diff over every policy × mode × listing shape.
// The source-id map is the same for every shape: a (stored 40 days ago),
// b (an hour ago, expunged by the user), c (40 days ago), x (deleted at
// the host by the bridge, confirmed), y (deleted by the bridge, the
// commit not yet confirmed). Sizes: a 10, b 20, c 30, x 5, y 6.
func TestPlan(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	old, recent := now.Add(-40*24*time.Hour), now.Add(-time.Hour)
	known := func() map[bridge.SourceID]bridge.KnownMessage {
		return map[bridge.SourceID]bridge.KnownMessage{
			"a": {Size: 10, StoredAt: old},
			"b": {Size: 20, StoredAt: recent, State: 1},
			"c": {Size: 30, StoredAt: old},
			"x": {Size: 5, StoredAt: old, State: 2},
			"y": {Size: 6, StoredAt: old, State: 3},
		}
	}
	policies := []struct {
		name   string
		policy bridge.DeletePolicy
	}{
		{"keep", bridge.DeletePolicy{Mode: bridge.DeleteKeep}},
		{"after_days", bridge.DeletePolicy{Mode: bridge.DeleteAfterDays, After: 30 * 24 * time.Hour}},
		{"on_expunge", bridge.DeletePolicy{Mode: bridge.DeleteOnExpunge}},
		{"after_sync", bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}},
	}
	type want struct {
		fetch, gone, forget string
		// del by policy name (serve mode); in shadow mode Delete is
		// empty and WouldDelete counts these.
		del map[string]string
	}
	for _, tc := range []struct {
		shape   string
		listing string // id:size, space separated
		partial bool
		want    want
	}{
		{"nothing new", "a:10 b:20 c:30", false, want{forget: "y",
			del: map[string]string{"after_days": "a c", "on_expunge": "b", "after_sync": "a b c"}}},
		{"new mail", "a:10 b:20 c:30 d:40", false, want{fetch: "d", forget: "y",
			del: map[string]string{"after_days": "a c", "on_expunge": "b", "after_sync": "a b c"}}},
		{"mail gone at the host", "a:10 c:30", false, want{gone: "b", forget: "y",
			del: map[string]string{"after_days": "a c", "after_sync": "a c"}}},
		{"renumbered", "c:30 a:10 b:20", false, want{forget: "y",
			del: map[string]string{"after_days": "c a", "on_expunge": "b", "after_sync": "c a b"}}},
		// Listed twice: fetched once, never deleted (which one is ours
		// is unknown). The second a makes up for the missing y in the
		// count, so y's deletion is confirmed only at a later poll
		// (Sources give unique ids: pop3 makes duplicate UIDLs unique).
		{"duplicate ids", "a:10 a:10 b:20 c:30 d:40 d:40", false, want{fetch: "d",
			del: map[string]string{"after_days": "c", "on_expunge": "b", "after_sync": "b c"}}},
		// Found by FuzzPlan: the copy with the stored size came second.
		{"duplicate id, one with another size", "a:11 a:10 b:20 c:30", false, want{
			del: map[string]string{"after_days": "c", "on_expunge": "b", "after_sync": "b c"}}},
		{"duplicate ids and one gone", "a:10 a:10 c:30", false, want{gone: "b", forget: "y",
			del: map[string]string{"after_days": "c", "after_sync": "c"}}},
		// The listing stopped at an error: fetch what it holds; delete
		// nothing, nothing gone, nothing confirmed.
		{"partial listing after an error", "a:10 d:40", true, want{fetch: "d", del: map[string]string{}}},
		// Another message under a known id: never deleted, not fetched.
		{"known id with another size", "a:11 b:20 c:30", false, want{forget: "y",
			del: map[string]string{"on_expunge": "b", "after_days": "c", "after_sync": "b c"}}},
		// Our deletion of y did not commit: the policy deletes it again
		// where it still says so.
		{"our deletion not committed", "a:10 b:20 c:30 y:6", false, want{
			del: map[string]string{"after_days": "a c y", "on_expunge": "b y", "after_sync": "a b c y"}}},
		{"empty maildrop", "", false, want{gone: "a b c", forget: "y", del: map[string]string{}}},
	} {
		var listing []bridge.SourceMessage
		for _, f := range strings.Fields(tc.listing) {
			var id string
			var size int64
			id, s, _ := strings.Cut(f, ":")
			fmt.Sscan(s, &size)
			listing = append(listing, bridge.SourceMessage{ID: bridge.SourceID(id), Size: size})
		}
		for _, pol := range policies {
			for _, mode := range []bridge.FeedMode{bridge.ModeServe, bridge.ModeShadow} {
				for _, expected := range []int{-1, 4} { // counted by Plan, or as the cache gives it
					name := fmt.Sprintf("%s/%s/%s/expected=%d", tc.shape, pol.name, mode, expected)
					p := bridge.Plan(bridge.PlanInput{Listing: listing, Partial: tc.partial, Known: known(), Expected: expected, Policy: pol.policy, Mode: mode, Now: now})
					var fetch []string
					for _, m := range p.Fetch {
						fetch = append(fetch, string(m.ID))
					}
					del := tc.want.del[pol.name]
					wantDel, wantWould := del, 0
					if mode == bridge.ModeShadow {
						wantDel, wantWould = "", len(strings.Fields(del))
					}
					wantFetched := pol.name == "after_sync" && tc.want.fetch != "" && !tc.partial
					checks := []struct{ what, got, want string }{
						{"fetch", strings.Join(fetch, " "), tc.want.fetch},
						{"delete", ids(p.Delete), wantDel},
						{"would delete", fmt.Sprint(p.WouldDelete), fmt.Sprint(wantWould)},
						{"delete fetched", fmt.Sprint(p.DeleteFetched), fmt.Sprint(wantFetched)},
						{"shadow", fmt.Sprint(p.Shadow), fmt.Sprint(mode == bridge.ModeShadow)},
						{"gone", ids(p.Gone), tc.want.gone},
						{"forget", ids(p.Forget), tc.want.forget},
						{"host messages", fmt.Sprint(p.HostMessages), fmt.Sprint(len(listing))},
						{"keep quiet", fmt.Sprint(p.KeepQuiet), fmt.Sprint(pol.name == "keep" && !tc.partial && tc.want.gone == "" && tc.want.forget == "")},
					}
					for _, c := range checks {
						if c.got != c.want {
							t.Errorf("%s: %s = %q, want %q", name, c.what, c.got, c.want)
						}
					}
				}
			}
		}
	}
}

// TestFeedModeFailsSafe: only serve changes the source.
func TestFeedModeFailsSafe(t *testing.T) {
	for m, shadow := range map[bridge.FeedMode]bool{"": false, "serve": false, "shadow": true, "Serve": true, "pilot": true} {
		if m.Shadow() != shadow {
			t.Errorf("FeedMode(%q).Shadow() = %v, want %v", m, m.Shadow(), shadow)
		}
	}
}

func ids(l []bridge.SourceID) string {
	s := make([]string, len(l))
	for i, id := range l {
		s[i] = string(id)
	}
	return strings.Join(s, " ")
}

// TestPlanIDsOnly: a listing of ids alone (POP3 UIDL) ends the poll when
// nothing is new, nothing is to delete and nothing is gone; otherwise the
// poll lists with sizes.
func TestPlanIDsOnly(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	known := map[bridge.SourceID]bridge.KnownMessage{
		"a": {Size: 10, StoredAt: now.Add(-time.Hour)},
		"b": {Size: 20, StoredAt: now.Add(-time.Hour), State: 1},
		"x": {Size: 5, StoredAt: now, State: 2},
	}
	for _, tc := range []struct {
		ids    string
		policy bridge.DeleteMode
		mode   bridge.FeedMode
		idle   bool
	}{
		{"a b", bridge.DeleteKeep, "", true},
		{"b a", bridge.DeleteKeep, bridge.ModeShadow, true},
		{"a b c", bridge.DeleteKeep, "", false},          // new mail
		{"a", bridge.DeleteKeep, "", false},              // b gone
		{"a b", bridge.DeleteOnExpunge, "", false},       // b to delete
		{"a b", bridge.DeleteOnExpunge, "shadow", false}, // b would be deleted
		{"a b", bridge.DeleteAfterDays, "", true},        // not due yet
	} {
		var listing []bridge.SourceMessage
		for _, id := range strings.Fields(tc.ids) {
			listing = append(listing, bridge.SourceMessage{ID: bridge.SourceID(id)})
		}
		p := bridge.Plan(bridge.PlanInput{Listing: listing, IDsOnly: true, Known: known, Expected: -1, Policy: bridge.DeletePolicy{Mode: tc.policy, After: 24 * time.Hour}, Mode: tc.mode, Now: now})
		if p.Idle() != tc.idle {
			t.Errorf("%q %s %s: idle = %v, want %v (%+v)", tc.ids, tc.policy, tc.mode, p.Idle(), tc.idle, p)
		}
		if len(p.Delete) > 0 || len(p.Gone) > 0 {
			t.Errorf("%q %s: an ids-only plan deletes %v and finds gone %v; it must ask for sizes", tc.ids, tc.policy, p.Delete, p.Gone)
		}
	}
}

// FuzzPlan holds the diff's promises on any listing and map: nothing is
// deleted that is not stored, listed once with its stored size, in a
// complete listing, in serve mode; nothing is fetched that is stored or
// twice; gone and forget are stored, expected at the host and not listed.
func FuzzPlan(f *testing.F) {
	f.Add([]byte("a1b2c3"), []byte("a1b2x9"), uint8(3), false, false)
	f.Add([]byte("aaab"), []byte("a1"), uint8(1), true, false)
	f.Add([]byte(""), []byte("a1b1c1"), uint8(2), false, true)
	f.Fuzz(func(t *testing.T, listed, stored []byte, policy uint8, partial, shadow bool) {
		now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		var listing []bridge.SourceMessage
		count := map[bridge.SourceID]int{}
		for i := 0; i+1 < len(listed); i += 2 {
			id := bridge.SourceID(listed[i : i+1])
			listing = append(listing, bridge.SourceMessage{ID: id, Size: int64(listed[i+1] % 4)})
			count[id]++
		}
		known := map[bridge.SourceID]bridge.KnownMessage{}
		for i := 0; i+1 < len(stored); i += 2 {
			known[bridge.SourceID(stored[i:i+1])] = bridge.KnownMessage{Size: int64(stored[i+1] % 4), StoredAt: now.Add(-time.Duration(stored[i+1]) * time.Hour), State: int(stored[i+1]/4) % 5}
		}
		modes := []bridge.DeleteMode{bridge.DeleteKeep, bridge.DeleteAfterDays, bridge.DeleteOnExpunge, bridge.DeleteAfterSync}
		mode := bridge.ModeServe
		if shadow {
			mode = bridge.ModeShadow
		}
		p := bridge.Plan(bridge.PlanInput{Listing: listing, Partial: partial, Known: known, Expected: -1,
			Policy: bridge.DeletePolicy{Mode: modes[int(policy)%4], After: 24 * time.Hour}, Mode: mode, Now: now})
		size := map[bridge.SourceID]int64{}
		for _, m := range listing {
			size[m.ID] = m.Size
		}
		if (shadow || partial) && len(p.Delete) > 0 {
			t.Fatalf("shadow %v partial %v: deletes %v", shadow, partial, p.Delete)
		}
		for _, id := range p.Delete {
			k, ok := known[id]
			if !ok || count[id] != 1 || k.Size != size[id] {
				t.Fatalf("deletes %q: known %v (%+v), listed %d times, size %d", id, ok, k, count[id], size[id])
			}
		}
		fetched := map[bridge.SourceID]bool{}
		for _, m := range p.Fetch {
			if _, ok := known[m.ID]; ok || fetched[m.ID] {
				t.Fatalf("fetches %q: stored %v, fetched before %v", m.ID, ok, fetched[m.ID])
			}
			fetched[m.ID] = true
		}
		for _, l := range [][]bridge.SourceID{p.Gone, p.Forget} {
			for _, id := range l {
				k, ok := known[id]
				if !ok || count[id] != 0 || partial || k.State == 2 || k.State == 4 {
					t.Fatalf("gone/forget %q: known %v (%+v), listed %d, partial %v", id, ok, k, count[id], partial)
				}
			}
		}
	})
}
