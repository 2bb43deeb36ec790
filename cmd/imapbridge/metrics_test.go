package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// startTestApp runs the whole bridge in-process over an mbox spool holding
// msgs, on loopback ports, and stops it at the end of the test.
func startTestApp(t *testing.T, msgs []e2eMessage) (*app, string) {
	t.Helper()
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "mail")
	os.MkdirAll(spoolDir, 0o700)
	spool := filepath.Join(spoolDir, "alice")
	writeSpool(t, spool, msgs, false)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	yaml := fmt.Sprintf(`data_dir: %s
imap:
  listen: 127.0.0.1:0
  allow_insecure_auth: true
admin:
  listen: 127.0.0.1:0
sources:
  - name: spool
    type: mbox
    path: %s
    poll_interval: 100ms
users:
  - name: alice
    password_hash: %q
    sources: [spool]
`, filepath.Join(dir, "data"), filepath.Join(spoolDir, "{user}"), hash)
	cfg, _, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	a, err := startApp(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.shutdown(quickShutdown); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if strings.Contains(logs.String(), "s3cret-pass") {
			t.Errorf("a password appears in the logs")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for successfulPolls(a.adminAddr.String()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return a, spool
}

func scrape(t *testing.T, admin string) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams, body
}

// value returns the value of the series of family name whose labels
// include want (name=value pairs).
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsAfterRealTraffic(t *testing.T) {
	a, _ := startTestApp(t, testSpool())
	admin := a.adminAddr.String()
	before, _ := scrape(t, admin)
	for _, name := range []string{
		"imapbridge_build_info", "imapbridge_imap_connections", "imapbridge_auth_attempts_total",
		"imapbridge_idle_sessions", "imapbridge_imap_limits_total", "imapbridge_source_polls_total", "imapbridge_source_poll_duration_seconds",
		"imapbridge_source_messages_fetched_total", "imapbridge_source_bytes_fetched_total",
		"imapbridge_source_messages_deleted_total", "imapbridge_source_last_success_timestamp_seconds",
		"imapbridge_store_messages", "imapbridge_store_bytes", "go_goroutines", "process_resident_memory_bytes",
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("family %s missing before any IMAP traffic", name)
		}
	}
	if v, _ := value(before, "imapbridge_source_messages_fetched_total", "source", "spool"); v != 5 {
		t.Errorf("messages fetched = %v, want 5", v)
	}
	if v, _ := value(before, "imapbridge_store_messages"); v != 5 {
		t.Errorf("store messages = %v, want 5", v)
	}
	if v, _ := value(before, "imapbridge_source_last_success_timestamp_seconds", "source", "spool"); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last success timestamp %v not recent", v)
	}

	// Traffic: one bad login, one good session with FETCH and IDLE.
	bad, err := imapclient.DialInsecure(a.imapAddr.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Login("alice", "wrong").Wait(); err == nil {
		t.Fatal("wrong password accepted")
	}
	bad.Close()
	c, err := imapclient.DialInsecure(a.imapAddr.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "s3cret-pass").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	var during map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		during, _ = scrape(t, admin)
		if v, _ := value(during, "imapbridge_idle_sessions"); v == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v, _ := value(during, "imapbridge_idle_sessions"); v != 1 {
		t.Errorf("idle sessions during IDLE = %v, want 1", v)
	}
	if v, _ := value(during, "imapbridge_imap_connections", "listener", "imap"); v != 1 {
		t.Errorf("connections = %v, want 1", v)
	}
	idle.Close()
	idle.Wait()

	after, body := scrape(t, admin)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"imapbridge_auth_attempts_total", []string{"result", "failure"}, 1},
		{"imapbridge_auth_attempts_total", []string{"result", "success"}, 1},
		{"imapbridge_imap_commands_total", []string{"command", "FETCH", "result", "ok"}, 1},
		{"imapbridge_imap_commands_total", []string{"command", "SELECT", "result", "ok"}, 1},
		{"imapbridge_imap_command_duration_seconds", []string{"command", "FETCH"}, 1},
		{"imapbridge_idle_sessions", nil, 0},
	} {
		if v, ok := value(after, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if v, _ := value(after, "imapbridge_source_polls_total", "source", "spool", "result", "success"); v < 2 {
		t.Errorf("successful polls = %v, want >= 2", v)
	}
	for _, l := range []string{"error", "busy", "auth"} {
		if _, ok := value(after, "imapbridge_source_polls_total", "source", "spool", "result", l); !ok {
			t.Errorf("polls_total{result=%q} not pre-set to 0", l)
		}
	}
	// No per-user or per-mailbox labels anywhere.
	for name, f := range after {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "user" || l.GetName() == "mailbox" || strings.Contains(l.GetValue(), "alice") {
					t.Errorf("%s has a per-user label %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	problems, err := testutil.GatherAndLint(a.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
	cmd := exec.Command(testtool.Need(t, "promtool", "prometheus"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	a, _ := startTestApp(t, testSpool()[:1])
	admin := a.adminAddr.String()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d %s", path, resp.StatusCode, body)
		}
	}
	var out, errb bytes.Buffer
	if code := runHealth([]string{"-url", "http://" + admin + "/readyz"}, &out, &errb); code != 0 || out.String() != "ready\n" {
		t.Errorf("health = %d %q %q", code, out.String(), errb.String())
	}
	// Not ready: the store refuses writes (simulated by a failed write
	// being recorded) → 503 naming the reason, and health exits 1.
	a.ready.set(fmt.Errorf("imap listener stopped: accept: too many open files"))
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "not ready: imap listener stopped") {
		t.Errorf("/readyz when not ready = %d %q", resp.StatusCode, body)
	}
	out.Reset()
	errb.Reset()
	if code := runHealth([]string{"-url", "http://" + admin + "/readyz"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "503") {
		t.Errorf("health when not ready = %d %q", code, errb.String())
	}
	a.ready.set(nil)
}

// TestMetricsPOP3Poll: a real POP3 poll moves the per-source series, and a
// refused login at the host is counted as result="auth".
func TestMetricsPOP3Poll(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: "pop-pw"}, {Name: "bob", Password: "bob-pw"}}})
	msgs := [][]byte{
		[]byte("From: a@example.org\nSubject: one\nMessage-ID: <m1@example.org>\n\nfirst\n"),
		[]byte("From: a@example.org\nSubject: two\nMessage-ID: <m2@example.org>\n\nsecond\n.leading dot\n"),
	}
	var wantBytes int
	for _, m := range msgs {
		srv.Deliver("alice", m)
		wantBytes += len(dovecottest.ExpectedPOP3(m))
	}
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("imap-pw"), bcrypt.MinCost)
	yaml := fmt.Sprintf(`data_dir: %s
imap: {listen: 127.0.0.1:0, allow_insecure_auth: true}
admin: {listen: 127.0.0.1:0}
sources:
  - {name: legacy, type: pop3, address: %q, tls: none, auth: static, poll_interval: 100ms, timeout: 5s}
users:
  - {name: alice, password_hash: %q, sources: [legacy], source_user: alice, source_password: pop-pw}
  - {name: bob, password_hash: %q, sources: [legacy], source_user: bob, source_password: wrong-pw}
`, filepath.Join(dir, "data"), srv.Addr(), hash, hash)
	cfg, _, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	a, err := startApp(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown(quickShutdown)
	admin := a.adminAddr.String()
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		fams, _ = scrape(t, admin)
		fetched, _ := value(fams, "imapbridge_source_messages_fetched_total", "source", "legacy")
		authFail, _ := value(fams, "imapbridge_source_polls_total", "source", "legacy", "result", "auth")
		if fetched == 2 && authFail >= 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"imapbridge_source_messages_fetched_total", []string{"source", "legacy"}, 2},
		{"imapbridge_source_bytes_fetched_total", []string{"source", "legacy"}, float64(wantBytes)},
		{"imapbridge_source_messages_deleted_total", []string{"source", "legacy"}, 0},
		{"imapbridge_store_messages", nil, 2},
	} {
		if v, ok := value(fams, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, v, tc.want)
		}
	}
	if v, _ := value(fams, "imapbridge_source_polls_total", "source", "legacy", "result", "success"); v < 1 {
		t.Errorf("successful POP3 polls = %v", v)
	}
	if v, _ := value(fams, "imapbridge_source_polls_total", "source", "legacy", "result", "auth"); v < 1 {
		t.Errorf("refused POP3 logins counted as auth = %v, want >= 1", v)
	}
	if v, _ := value(fams, "imapbridge_source_poll_duration_seconds", "source", "legacy"); v < 2 {
		t.Errorf("poll duration observations = %v", v)
	}
	if strings.Contains(logs.String(), "pop-pw") || strings.Contains(logs.String(), "wrong-pw") {
		t.Errorf("a POP3 password appears in the logs")
	}
	if !strings.Contains(logs.String(), "user=bob") || !strings.Contains(logs.String(), "source=legacy") {
		t.Errorf("the failed poll is not logged with user and source:\n%s", logs.String())
	}
}
