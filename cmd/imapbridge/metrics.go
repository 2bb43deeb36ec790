package main

import (
	"context"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
)

// metrics are the Prometheus families of one bridge, on an injected
// registry (never the global one). Labels are bounded: listener, command,
// result, source name; never a user, mailbox or error text.
type metrics struct {
	reg *prometheus.Registry

	connections     *prometheus.GaugeVec
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	authAttempts    *prometheus.CounterVec
	idleSessions    prometheus.Gauge
	limits          *prometheus.CounterVec

	polls          *prometheus.CounterVec
	pollDuration   *prometheus.HistogramVec
	fetched        *prometheus.CounterVec
	fetchedBytes   *prometheus.CounterVec
	deleted        *prometheus.CounterVec
	lastSuccess    *prometheus.GaugeVec
	storeWriteErrs prometheus.Counter
	rollbacks      prometheus.Counter
	uvResets       prometheus.Counter
	recovered      prometheus.Counter

	retirement *retirementCollector // retirement_metrics.go
}

var pollResults = []string{"success", "error", "busy", "auth"}

func newMetrics(reg *prometheus.Registry) *metrics {
	const ns = "imapbridge"
	m := &metrics{
		reg: reg,
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "imap_connections",
			Help: "IMAP connections open now, by listener (imap: plain/STARTTLS, imaps: implicit TLS).",
		}, []string{"listener"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "imap_commands_total",
			Help: "IMAP commands handled, by command and result (ok, no, bad).",
		}, []string{"command", "result"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "imap_command_duration_seconds",
			Help:    "Time to handle an IMAP command, by command. IDLE is excluded (it lasts as long as the client wants).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"command"}),
		authAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "auth_attempts_total",
			Help: "IMAP login attempts, by result: success, failure (bad credentials), ratelimited (refused after too many failures), error (the POP3 host could not check a passthrough login).",
		}, []string{"result"}),
		idleSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "idle_sessions",
			Help: "IMAP sessions in IDLE now, waiting for pushed changes.",
		}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "imap_limits_total",
			Help: "IMAP connections, logins and sessions refused or ended by a limit, by limit: max_connections, max_connections_per_address, max_connections_per_user, login_timeout, idle_timeout, idle_duration (one IDLE over 30 minutes), command_length, literal_size, bad_commands, search_depth (SEARCH nesting after a literal), starttls_injection.",
		}, []string{"limit"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "source_polls_total",
			Help: "Polls of legacy sources, by source and result (success, error, busy: maildrop locked elsewhere, auth: credentials refused).",
		}, []string{"source", "result"}),
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "source_poll_duration_seconds",
			Help:    "Time one poll of a source took for one account, including fetching new mail.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"source"}),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "source_messages_fetched_total",
			Help: "Messages fetched from a source and durably stored, by source.",
		}, []string{"source"}),
		fetchedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "source_bytes_fetched_total",
			Help: "Bytes of messages fetched from a source and stored, by source.",
		}, []string{"source"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "source_messages_deleted_total",
			Help: "Messages deleted at a source by its delete policy (only ever after they were stored), by source.",
		}, []string{"source"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "source_last_success_timestamp_seconds",
			Help: "Unix time of the last successful poll of a source (any account), by source. 0: none yet.",
		}, []string{"source"}),
		storeWriteErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "store_write_errors_total",
			Help: "Writes to the state store or blob directory that failed (disk full, read-only, I/O error).",
		}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "store_rollbacks_detected_total",
			Help: "Times the state store was found older than this data directory had seen (restored from a backup).",
		}),
		uvResets: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "store_uidvalidity_resets_total",
			Help: "Mailboxes given a new UIDVALIDITY by the store (clients must resynchronise them). Should stay 0.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "panics_recovered_total",
			Help: "Panics caught at a goroutine root (a bug: please report it with the log line).",
		}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Name: "build_info",
		Help: "Always 1; labels give the version of imapbridge and of Go it was built with.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(buildInfo, m.connections, m.commands, m.commandDuration, m.authAttempts, m.idleSessions, m.limits,
		m.polls, m.pollDuration, m.fetched, m.fetchedBytes, m.deleted, m.lastSuccess,
		m.storeWriteErrs, m.rollbacks, m.uvResets, m.recovered,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, l := range []string{"imap", "imaps"} {
		m.connections.WithLabelValues(l)
	}
	for _, r := range []string{"success", "failure", "ratelimited", "error"} {
		m.authAttempts.WithLabelValues(r)
	}
	for _, l := range imapfront.Limits {
		m.limits.WithLabelValues(l)
	}
	return m
}

// knownSource pre-sets a source's series to 0 so dashboards and alerts see
// them before the first poll.
func (m *metrics) knownSource(name string) {
	for _, r := range pollResults {
		m.polls.WithLabelValues(name, r)
	}
	m.pollDuration.WithLabelValues(name)
	m.fetched.WithLabelValues(name)
	m.fetchedBytes.WithLabelValues(name)
	m.deleted.WithLabelValues(name)
	m.lastSuccess.WithLabelValues(name)
	if m.retirement != nil {
		m.retirement.knownSource(name)
	}
}

func (m *metrics) authAttempt(result string) { m.authAttempts.WithLabelValues(result).Inc() }

func (m *metrics) bridgeHooks() *bridge.Metrics {
	return &bridge.Metrics{
		StoreWriteErrors:  m.storeWriteErrs,
		RollbacksDetected: m.rollbacks,
		UIDValidityResets: m.uvResets,
		Recovered:         m.recovered,
		PollDone: func(source, result string, took time.Duration, fetched int, fetchedBytes int64, deleted int) {
			m.polls.WithLabelValues(source, result).Inc()
			m.pollDuration.WithLabelValues(source).Observe(took.Seconds())
			m.fetched.WithLabelValues(source).Add(float64(fetched))
			m.fetchedBytes.WithLabelValues(source).Add(float64(fetchedBytes))
			m.deleted.WithLabelValues(source).Add(float64(deleted))
			if result == "success" {
				m.lastSuccess.WithLabelValues(source).SetToCurrentTime()
			}
		},
	}
}

// watchStore registers the store size gauges, read at scrape time.
func (m *metrics) watchStore(b *bridge.Bridge) {
	m.reg.MustRegister(&storeCollector{b: b,
		messages: prometheus.NewDesc("imapbridge_store_messages", "Messages held in the state store, over all users and mailboxes.", nil, nil),
		bytes:    prometheus.NewDesc("imapbridge_store_bytes", "Bytes of message blobs held in the state store (each distinct body counted once).", nil, nil),
	})
}

type storeCollector struct {
	b               *bridge.Bridge
	messages, bytes *prometheus.Desc
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.messages; ch <- c.bytes }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.b.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.messages, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
}

func (m *metrics) frontHooks() *imapfront.Metrics {
	return &imapfront.Metrics{
		CommandDone: func(command, result string, d time.Duration) {
			m.commands.WithLabelValues(command, result).Inc()
			if command != "IDLE" {
				m.commandDuration.WithLabelValues(command).Observe(d.Seconds())
			}
		},
		Connections:  func(listener string, delta int) { m.connections.WithLabelValues(listener).Add(float64(delta)) },
		IdleSessions: func(delta int) { m.idleSessions.Add(float64(delta)) },
		Recovered:    func() { m.recovered.Inc() },
		Limit:        func(limit string) { m.limits.WithLabelValues(limit).Inc() },
	}
}
