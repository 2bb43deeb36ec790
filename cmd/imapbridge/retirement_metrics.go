package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapbridge/imapbridge/bridge"
)

// The retirement metrics, read from the readiness status at scrape time:
// no user label, only sums by source (and mode, for foreign deletions).
//
// imapbridge_source_foreign_deletions_total{source,mode} counts messages
// another client took off the host, as seen between two scrapes, under
// the mode the user's feed had when it was seen: a user switched to serve
// whose old POP3 client still deletes shows up under mode="serve" (the
// alert), while the deletions counted before the switch stay where they
// were. It counts from the process start.
type retirementCollector struct {
	b     *bridge.Bridge
	quiet func() time.Duration

	usersReady, users, pending, wouldDelete, hostMessages, foreign *prometheus.Desc

	mu      sync.Mutex
	seen    map[[2]string]int64   // (user, source) → foreign deletions at the last scrape
	counted map[[2]string]float64 // (source, mode) → the counter
	sources map[string]bool       // sources to show at 0
}

// watchRetirement registers the retirement metrics; sources are shown at
// 0 before their first poll (later ones: knownSource).
func (m *metrics) watchRetirement(b *bridge.Bridge, quiet func() time.Duration, sources map[string]bridge.Source) {
	c := &retirementCollector{
		b: b, quiet: quiet,
		usersReady:   prometheus.NewDesc("imapbridge_users_ready", "Users whose readiness verdict is ready (see /status), out of imapbridge_users.", nil, nil),
		users:        prometheus.NewDesc("imapbridge_users", "Users with a source being polled.", nil, nil),
		pending:      prometheus.NewDesc("imapbridge_source_messages_pending", "Messages at the host not yet stored, summed over the source's users (last poll of each).", []string{"source"}, nil),
		wouldDelete:  prometheus.NewDesc("imapbridge_source_messages_would_delete", "Messages the delete policy would take off the host but shadow mode keeps, summed over the source's users.", []string{"source"}, nil),
		hostMessages: prometheus.NewDesc("imapbridge_source_host_messages", "Messages still at the host, summed over the source's users (last listing of each): the drain.", []string{"source"}, nil),
		foreign:      prometheus.NewDesc("imapbridge_source_foreign_deletions_total", "Stored messages another client took off the host, by source and the mode (serve, shadow) of the user's feed when it was seen.", []string{"source", "mode"}, nil),
		seen:         map[[2]string]int64{},
		counted:      map[[2]string]float64{},
		sources:      map[string]bool{},
	}
	for name := range sources {
		c.sources[name] = true
	}
	m.retirement = c
	m.reg.MustRegister(c)
}

func (c *retirementCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.usersReady, c.users, c.pending, c.wouldDelete, c.hostMessages, c.foreign} {
		ch <- d
	}
}

func (c *retirementCollector) knownSource(name string) {
	c.mu.Lock()
	c.sources[name] = true
	c.mu.Unlock()
}

func (c *retirementCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.b.Status(ctx, time.Now(), c.quiet())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.usersReady, err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ready := 0
	pending, would, host := map[string]int{}, map[string]int{}, map[string]int{}
	for s := range c.sources {
		pending[s], would[s], host[s] = 0, 0, 0
		for _, mode := range []bridge.FeedMode{bridge.ModeServe, bridge.ModeShadow} {
			k := [2]string{s, string(mode)}
			c.counted[k] += 0
		}
	}
	for _, u := range st {
		if u.Ready {
			ready++
		}
		for _, s := range u.Sources {
			pending[s.Name] += s.Pending
			would[s.Name] += s.WouldDelete
			host[s.Name] += s.HostMessages
			k := [2]string{u.Name, s.Name}
			if last, ok := c.seen[k]; ok && s.ForeignDeletions > last {
				c.counted[[2]string{s.Name, string(s.Mode)}] += float64(s.ForeignDeletions - last)
			}
			c.seen[k] = s.ForeignDeletions
		}
	}
	ch <- prometheus.MustNewConstMetric(c.usersReady, prometheus.GaugeValue, float64(ready))
	ch <- prometheus.MustNewConstMetric(c.users, prometheus.GaugeValue, float64(len(st)))
	for s, n := range pending {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(n), s)
		ch <- prometheus.MustNewConstMetric(c.wouldDelete, prometheus.GaugeValue, float64(would[s]), s)
		ch <- prometheus.MustNewConstMetric(c.hostMessages, prometheus.GaugeValue, float64(host[s]), s)
	}
	for k, v := range c.counted {
		ch <- prometheus.MustNewConstMetric(c.foreign, prometheus.CounterValue, v, k[0], k[1])
	}
}
