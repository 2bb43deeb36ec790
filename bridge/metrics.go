package bridge

import "time"

// Counter is the one method the bridge needs of a metric counter
// (prometheus.Counter satisfies it). The bridge imports no metrics library.
type Counter interface{ Inc() }

type nopCounter struct{}

func (nopCounter) Inc() {}

// Metrics are the hooks through which the bridge reports what operators
// watch. Every field may be left nil.
type Metrics struct {
	StoreWriteErrors  Counter
	RollbacksDetected Counter
	UIDValidityResets Counter
	// PollDone is called after every poll of a source for one account, with
	// the result ("success", "error", "busy", "auth") and counts.
	PollDone func(source, result string, took time.Duration, fetched int, fetchedBytes int64, deleted int)
	// Recovered counts panics caught at a goroutine root.
	Recovered Counter
	// ForeignDeletions is called when a poll finds n stored messages
	// taken off the source by another client (each counted once).
	ForeignDeletions func(source string, n int)
}

func (m *Metrics) fill() *Metrics {
	out := Metrics{}
	if m != nil {
		out = *m
	}
	for _, c := range []*Counter{&out.StoreWriteErrors, &out.RollbacksDetected, &out.UIDValidityResets, &out.Recovered} {
		if *c == nil {
			*c = nopCounter{}
		}
	}
	if out.ForeignDeletions == nil {
		out.ForeignDeletions = func(string, int) {}
	}
	if out.PollDone == nil {
		out.PollDone = func(string, string, time.Duration, int, int64, int) {}
	}
	return &out
}
