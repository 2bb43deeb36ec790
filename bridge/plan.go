package bridge

import (
	"slices"
	"time"
)

// FeedMode says whether the bridge may change a feed's source.
type FeedMode string

const (
	// ModeServe: the bridge serves the mail and applies the delete
	// policy at the source (the default).
	ModeServe FeedMode = "serve"
	// ModeShadow: the bridge polls and serves as usual but never changes
	// the source (no DELE, no mbox rewrite), whatever the delete policy
	// says; what the policy would delete is counted instead (a pilot).
	ModeShadow FeedMode = "shadow"
)

// Shadow tells whether the source must be left unchanged: anything but
// serve ("" is serve) is, so that a mode the config layer let through by
// mistake never deletes.
func (m FeedMode) Shadow() bool { return m != "" && m != ModeServe }

// origin states in the source-id map (origins.state).
const (
	originLive     = 0 // stored, still wanted at the source as far as we know
	originExpunged = 1 // the user expunged every copy in IMAP
	originDeleted  = 2 // deleted at the source by us, and the source no longer lists it (or we have not looked since)
	// originDeleting: DELE sent and the session's commit (QUIT, mbox
	// rewrite) begun, not yet confirmed. A later listing without it
	// confirms our own deletion (never a foreign one); one with it
	// means the commit did not happen.
	originDeleting = 3
	// originGone: another client took it off the source (counted once
	// as a foreign deletion).
	originGone = 4
)

// expectedAtHost tells whether a message in this state should still be
// listed by its source: one that is not was taken by someone else.
func expectedAtHost(state int) bool {
	return state == originLive || state == originExpunged || state == originDeleting
}

// KnownMessage is what the source-id map holds about one source message.
type KnownMessage struct {
	Size     int64
	StoredAt time.Time
	State    int
}

// PlanInput is everything the sync diff looks at.
type PlanInput struct {
	// Listing is what the source lists now, in source order.
	Listing []SourceMessage
	// Partial: the listing stopped at an error (a corrupt mbox): what it
	// holds is fetched, nothing is deleted and nothing counts as gone.
	Partial bool
	// IDsOnly: the listing came from SourceIDLister, without sizes. A
	// plan that would delete or count would_delete needs sizes: it comes
	// back with NeedSizes set instead.
	IDsOnly bool
	// Known is the source-id map of (user, source); Expected how many of
	// its entries should still be listed (expectedAtHost), or -1 to count
	// them.
	Known    map[SourceID]KnownMessage
	Expected int
	// Quiet leading entries of Listing are known to plan to nothing (the
	// listing of the last complete keep poll, every entry stored and
	// expected at the host: see knownCache.quietPrefix). Used only under
	// the keep policy.
	Quiet  int
	Policy DeletePolicy
	Mode   FeedMode
	Now    time.Time
}

// PollPlan is what one poll will do.
type PollPlan struct {
	// Fetch: listed and not yet stored (each id once).
	Fetch []SourceMessage
	// Delete: stored, still listed with the size recorded when stored,
	// and the policy says so (serve mode only).
	Delete []SourceID
	// DeleteFetched: the policy deletes each fetched message once it is
	// durably stored, in the same session (after_sync): in serve mode
	// Poll adds them to Delete, in shadow mode to WouldDelete.
	DeleteFetched bool
	// Shadow: the plan is for a shadow feed (Delete stays empty).
	Shadow bool
	// WouldDelete counts what Delete and DeleteFetched would take in
	// serve mode (shadow mode; the fetched ones are added by Poll as
	// they are stored).
	WouldDelete int
	// Gone: stored, not deleted by the bridge, and no longer listed by a
	// complete listing: taken off the source by another client (foreign
	// deletions).
	Gone []SourceID
	// Forget: deletions of ours (originDeleting) the listing confirms.
	Forget []SourceID
	// HostMessages and HostBytes sum up the listing (bytes are 0 for an
	// IDsOnly listing).
	HostMessages int
	HostBytes    int64
	// NeedSizes: an IDsOnly listing was not enough; list with sizes.
	NeedSizes bool
	// KeepQuiet: once every Fetch is stored, this listing plans to
	// nothing under the policy, so the next poll may skip it as its
	// quiet prefix (keep policy, a complete listing, nothing gone).
	KeepQuiet bool
}

// Idle tells whether the plan does nothing at the source nor in the store.
func (p PollPlan) Idle() bool {
	return len(p.Fetch) == 0 && len(p.Delete) == 0 && p.WouldDelete == 0 && len(p.Gone) == 0 && len(p.Forget) == 0 && !p.NeedSizes
}

// keepsAll tells whether the policy never deletes at the source: keep, or
// no policy given (which policyDeletes treats as keep).
func (p DeletePolicy) keepsAll() bool {
	return p.Mode == DeleteKeep || p.Mode == ""
}

// policyDeletes tells whether the policy deletes a stored message at the
// source now, if the source still lists it as stored.
func policyDeletes(k KnownMessage, policy DeletePolicy, now time.Time) bool {
	switch policy.Mode {
	case DeleteAfterSync:
		return true
	case DeleteAfterDays:
		// StoredAt is kept in whole seconds: the message was stored up to
		// a second after it, so count from the second's end.
		return !now.Before(k.StoredAt.Add(time.Second).Add(policy.After))
	case DeleteOnExpunge:
		// A deletion begun and not confirmed was of an expunged message.
		return k.State == originExpunged || k.State == originDeleting
	}
	return false
}

// Plan is the sync diff, a pure function: the source's listing, the
// source-id map, the policy, the mode and the time in; what to fetch,
// delete, count and forget out. A message is deleted only if it is
// durably stored, listed once, with the size recorded when it was stored,
// the listing is complete, the mode is serve and the policy allows it.
//
// Gone (foreign deletions) needs to know which expected entries the
// listing lacks. It counts the expected entries it meets and compares
// with in.Expected; only when they differ does it build the set of listed
// ids, so a poll with nothing gone costs one map lookup per listed id.
func Plan(in PlanInput) PollPlan {
	p := PollPlan{HostMessages: len(in.Listing)}
	shadow := in.Mode.Shadow()
	quiet := 0
	if in.Policy.keepsAll() && in.Quiet <= len(in.Listing) {
		quiet = in.Quiet
	}
	seen := quiet // expected entries met (the quiet ones all are)
	var fetching map[SourceID]bool
	var deleting map[SourceID]int // id → index in p.Delete, -1 if not to delete
	var dups map[SourceID]bool
	for i := range quiet {
		p.HostBytes += in.Listing[i].Size
	}
	for _, m := range in.Listing[quiet:] {
		p.HostBytes += m.Size
		k, ok := in.Known[m.ID]
		if !ok {
			// Listed twice: fetched once. A few new ids are checked by
			// scanning, many through a set.
			if len(p.Fetch) >= 32 && fetching == nil {
				fetching = make(map[SourceID]bool, 2*len(p.Fetch))
				for _, f := range p.Fetch {
					fetching[f.ID] = true
				}
			}
			if fetching != nil {
				if fetching[m.ID] {
					continue
				}
				fetching[m.ID] = true
			} else if slices.ContainsFunc(p.Fetch, func(f SourceMessage) bool { return f.ID == m.ID }) {
				continue
			}
			p.Fetch = append(p.Fetch, m)
			continue
		}
		if expectedAtHost(k.State) {
			seen++
		}
		// An originDeleting entry listed again: the commit of our
		// deletion did not happen; the policy deletes it again if it
		// still says so.
		if in.Partial || !policyDeletes(k, in.Policy, in.Now) {
			continue
		}
		if in.IDsOnly {
			p.NeedSizes = true
			continue
		}
		if j, ok := deleting[m.ID]; ok {
			// Listed twice: which one is ours is unknown; delete neither.
			if j >= 0 {
				if dups == nil {
					dups = make(map[SourceID]bool)
				}
				dups[m.ID] = true
			}
			deleting[m.ID] = -1
			continue
		}
		if deleting == nil {
			deleting = make(map[SourceID]int)
		}
		if k.Size != m.Size {
			deleting[m.ID] = -1 // not the message we stored: never delete it
			continue
		}
		deleting[m.ID] = len(p.Delete)
		p.Delete = append(p.Delete, m.ID)
	}
	if len(dups) > 0 {
		kept := p.Delete[:0]
		for _, id := range p.Delete {
			if !dups[id] {
				kept = append(kept, id)
			}
		}
		p.Delete = kept
	}
	p.Shadow = shadow
	p.DeleteFetched = !in.Partial && len(p.Fetch) > 0 && in.Policy.Mode == DeleteAfterSync
	if shadow {
		p.WouldDelete = len(p.Delete)
		p.Delete = nil
	}
	if in.Partial {
		return p
	}
	expected := in.Expected
	if expected < 0 {
		expected = 0
		for _, k := range in.Known {
			if expectedAtHost(k.State) {
				expected++
			}
		}
	}
	if seen == expected {
		p.KeepQuiet = in.Policy.keepsAll() && !in.IDsOnly
		return p
	}
	// Something expected is not listed (or a known id is listed twice):
	// find out which, from the set of listed ids.
	if in.IDsOnly {
		// Sizes are not needed for this, but one listing decides: take
		// the full one so that Gone and Delete come from the same.
		p.NeedSizes = true
		return p
	}
	listed := make(map[SourceID]struct{}, len(in.Listing))
	for _, m := range in.Listing {
		listed[m.ID] = struct{}{}
	}
	for id, k := range in.Known {
		if _, ok := listed[id]; ok || !expectedAtHost(k.State) {
			continue
		}
		if k.State == originDeleting {
			p.Forget = append(p.Forget, id)
		} else {
			p.Gone = append(p.Gone, id)
		}
	}
	slices.Sort(p.Gone)
	slices.Sort(p.Forget)
	return p
}
