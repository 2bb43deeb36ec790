package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/internal/admin"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// The retirement path end to end, against a real Dovecot POP3 with three
// users: a shadow pilot, a foreign deletion, readiness, a per-user switch
// to serve by override and SIGHUP, a broken config on SIGHUP, and the
// status page in a real browser agreeing with /status.json and
// "imapbridge status -json".

// retireConfig writes the config of the test: source legacy in shadow
// with delete_policy after_sync; overrides[user] is the YAML of that
// user's overrides ("" for none); extra is appended.
func retireConfig(t *testing.T, e *p3Env, users []string, overrides map[string]string, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\nlog: {level: debug, format: text}\n", filepath.Join(e.dir, "data"))
	fmt.Fprintf(&b, "imap:\n  listen: %q\n  allow_insecure_auth: true\n", e.imap)
	fmt.Fprintf(&b, "admin:\n  listen: %q\n", e.admin)
	fmt.Fprintf(&b, "sources:\n  - name: legacy\n    type: pop3\n    address: %q\n    tls: none\n    auth: static\n", e.srv.Addr())
	b.WriteString("    mode: shadow\n    delete_policy: after_sync\n    poll_interval: 300ms\n    idle_poll_interval: 300ms\n    timeout: 5s\n")
	b.WriteString("users:\n")
	for _, u := range users {
		fmt.Fprintf(&b, "  - name: %s\n    sources: [legacy]\n    password_hash: %q\n    source_password: %q\n", u, p3IMAPHash(t), "pop-"+u)
		if o := overrides[u]; o != "" {
			fmt.Fprintf(&b, "    overrides:\n      legacy: %s\n", o)
		}
	}
	b.WriteString(extra)
	path := filepath.Join(e.dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fetchReport(t *testing.T, adminAddr string) admin.Report {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/status.json")
	if err != nil {
		t.Fatalf("GET /status.json: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /status.json: %s: %s", resp.Status, body)
	}
	var rep admin.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("/status.json: %v\n%s", err, body)
	}
	return rep
}

// verdicts is "name=ready|reason; reason" per user, sorted by name.
func verdicts(rep admin.Report) []string {
	var out []string
	for _, u := range rep.Users {
		v := "ready"
		if !u.Ready {
			v = "not ready: " + strings.Join(u.Reasons, "; ")
		}
		out = append(out, u.Name+"="+v)
	}
	return out
}

func sourceOf(rep admin.Report, user string) (map[string]any, bool) {
	for _, u := range rep.Users {
		if u.Name == user && len(u.Sources) == 1 {
			s := u.Sources[0]
			return map[string]any{"mode": string(s.Mode), "policy": string(s.DeletePolicy), "host": s.HostMessages, "stored": s.StoredMessages,
				"pending": s.Pending, "would_delete": s.WouldDelete, "foreign": s.ForeignDeletions}, true
		}
	}
	return nil, false
}

// countLines counts the log lines holding every one of parts.
func countLines(logs *syncBuffer, parts ...string) int {
	n := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// sighup sends SIGHUP and waits for the reload's last log line.
func sighup(t *testing.T, p *bridgeProc, logs *syncBuffer, done string) {
	t.Helper()
	before := countLines(logs, done)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p3WaitFor(t, 20*time.Second, "reload: "+done, func() (bool, string) {
		return countLines(logs, done) > before, p3Tail(logs.String(), 5)
	})
}

// popDelete takes message 1 off user's maildrop with a raw POP3 session
// (another client, as an old desktop client would), retrying while the
// bridge's own poll holds the maildrop ([IN-USE]).
func popDelete(t *testing.T, addr, user, password string) {
	t.Helper()
	p3WaitFor(t, 60*time.Second, "a POP3 DELE by another client", func() (bool, string) {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(conn)
		var transcript []string
		step := func(cmd string) bool {
			if cmd != "" {
				fmt.Fprintf(conn, "%s\r\n", cmd)
			}
			line, err := r.ReadString('\n')
			transcript = append(transcript, strings.TrimSpace(cmd)+" → "+strings.TrimSpace(line))
			return err == nil && strings.HasPrefix(line, "+OK")
		}
		ok := step("") && step("USER "+user) && step("PASS "+password) && step("DELE 1") && step("QUIT")
		return ok, strings.Join(transcript, " | ")
	})
}

func chromium(t *testing.T) string {
	t.Helper()
	return testtool.Need(t, "chromium", "chromium")
}

// browse runs headless chromium on url with args (--dump-dom or
// --screenshot=...) and returns its standard output.
func browse(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	profile := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
		"--disable-component-update", "--disable-sync", "--user-data-dir=" + profile}, args...)
	all = append(all, url)
	cmd := exec.Command(bin, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Dir = profile
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("chromium %v did not finish within 90s\n%s", args, errb.String())
	}
	return out.String()
}

var (
	reRow     = regexp.MustCompile(`(?s)<tr id="user-([^"]+)" data-user="[^"]+" data-ready="(true|false)">(.*?)</tr>`)
	reReason  = regexp.MustCompile(`<li>(.*?)</li>`)
	reTagText = regexp.MustCompile(`<[^>]+>`)
)

// pageVerdicts reads the verdicts a person sees in the DOM chromium
// rendered, in the form of verdicts.
func pageVerdicts(dom string) []string {
	var out []string
	for _, m := range reRow.FindAllStringSubmatch(dom, -1) {
		v := "ready"
		if m[2] == "false" {
			var reasons []string
			for _, r := range reReason.FindAllStringSubmatch(m[3], -1) {
				reasons = append(reasons, htmlText(r[1]))
			}
			v = "not ready: " + strings.Join(reasons, "; ")
			if !strings.Contains(m[3], ">not ready<") {
				v = "(no 'not ready' shown) " + v
			}
		} else if !strings.Contains(m[3], ">ready<") {
			v = "(no 'ready' shown)"
		}
		out = append(out, htmlText(m[1])+"="+v)
	}
	return out
}

func htmlText(s string) string {
	s = reTagText.ReplaceAllString(s, "")
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`, "&amp;", "&").Replace(s)
}

func TestRetirementPilot(t *testing.T) {
	t.Parallel()
	testtool.Long(t, "a pilot against Dovecot with SIGHUP reloads and chromium")
	users := []string{"alice", "bob", "carol"}
	var dusers []dovecottest.User
	for _, u := range users {
		dusers = append(dusers, dovecottest.User{Name: u, Password: "pop-" + u})
	}
	e := newP3Env(t, dovecottest.Options{Users: dusers})
	for _, u := range users {
		for i := range 3 {
			e.srv.Deliver(u, p3GenMessage(u, i, 800+100*i))
		}
	}
	cfg := retireConfig(t, e, users, nil, "")
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()

	// 1. Shadow with after_sync: every message stored, none deleted, over
	// many polls; what after_sync would delete is reported.
	p3WaitFor(t, 30*time.Second, "3 messages stored per user", func() (bool, string) {
		rep := fetchReport(t, e.admin)
		for _, u := range users {
			s, ok := sourceOf(rep, u)
			if !ok || s["stored"] != 3 || s["would_delete"] != 3 {
				return false, fmt.Sprint(rep.Users)
			}
		}
		return true, ""
	})
	p3WaitPolls(t, e.admin, 3*len(users)*4)
	for _, u := range users {
		if n := len(e.srv.Messages(u)); n != 3 {
			t.Errorf("shadow: %s's maildrop holds %d messages, want all 3", u, n)
		}
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_messages_deleted_total", `source="legacy"`); got != 0 {
		t.Errorf("imapbridge_source_messages_deleted_total = %v in shadow, want 0", got)
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_messages_would_delete", `source="legacy"`); got != 9 {
		t.Errorf("imapbridge_source_messages_would_delete = %v, want 9", got)
	}
	rep := fetchReport(t, e.admin)
	for _, u := range users {
		s, _ := sourceOf(rep, u)
		want := map[string]any{"mode": "shadow", "policy": "after_sync", "host": 3, "stored": 3, "pending": 0, "would_delete": 3, "foreign": int64(0)}
		if fmt.Sprint(s) != fmt.Sprint(want) {
			t.Errorf("%s: source %v, want %v", u, s, want)
		}
	}
	// Nobody has logged in yet.
	want := []string{"alice=not ready: never logged in over IMAP", "bob=not ready: never logged in over IMAP", "carol=not ready: never logged in over IMAP"}
	if got := verdicts(rep); !slices.Equal(got, want) {
		t.Errorf("verdicts before any login:\n got %q\nwant %q", got, want)
	}

	// 2. alice and bob log in over IMAP; carol never does. bob keeps a
	// session open through everything below.
	alice := p3LoginIMAP(t, e.imap, "alice", p3IMAPPassword)
	if _, err := alice.c.ID(&imap.IDData{Name: "pilot-client", Version: "1.2", OS: "Linux"}).Wait(); err != nil {
		t.Fatalf("alice ID: %v", err)
	}
	alice.c.Logout().Wait()
	p3WaitFor(t, 20*time.Second, "alice's client in /status.json", func() (bool, string) {
		for _, u := range fetchReport(t, e.admin).Users {
			if u.Name == "alice" {
				return len(u.Clients) == 1 && u.Clients[0].Name == "pilot-client" && u.Clients[0].Version == "1.2" && u.Clients[0].OS == "Linux" && u.LastLogin != nil,
					fmt.Sprintf("clients %+v, last login %v", u.Clients, u.LastLogin)
			}
		}
		return false, "no alice"
	})
	bob := p3LoginIMAP(t, e.imap, "bob", p3IMAPPassword)
	if _, err := bob.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_foreign_deletions_total", `source="legacy"`); got != 0 {
		t.Errorf("foreign deletions before any: %v", got)
	}

	// 3. bob's old POP3 client takes a message off the host.
	popDelete(t, e.srv.Addr(), "bob", "pop-bob")
	p3WaitFor(t, 30*time.Second, "bob's foreign deletion in /status.json", func() (bool, string) {
		s, _ := sourceOf(fetchReport(t, e.admin), "bob")
		return s["foreign"] == int64(1), fmt.Sprint(s)
	})
	rep = fetchReport(t, e.admin)
	got := verdicts(rep)
	if len(got) != 3 || got[0] != "alice=ready" || got[2] != "carol=not ready: never logged in over IMAP" ||
		!regexp.MustCompile(`^bob=not ready: source legacy: another client took mail off the host at \S+ \(1 message in all\), within the quiet period of 7d$`).MatchString(got[1]) {
		t.Errorf("verdicts after bob's foreign deletion: %q", got)
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_foreign_deletions_total", `source="legacy"`, `mode="shadow"`); got != 1 {
		t.Errorf("imapbridge_source_foreign_deletions_total{mode=shadow} = %v, want 1", got)
	}
	if got := p3MetricSum(e.admin, "imapbridge_users_ready"); got != 1 {
		t.Errorf("imapbridge_users_ready = %v, want 1", got)
	}

	// 4. alice is switched to serve by an override; SIGHUP. Her maildrop
	// drains; bob's and carol's stay; bob's open session works throughout
	// (NOOP before and after, IDLE gets mail delivered after the reload).
	if err := bob.c.Noop().Wait(); err != nil {
		t.Fatalf("bob NOOP before the reload: %v", err)
	}
	idle, err := bob.c.Idle()
	if err != nil {
		t.Fatalf("bob IDLE: %v", err)
	}
	cfg = retireConfig(t, e, users, map[string]string{"alice": "{mode: serve}"}, "")
	sighup(t, p, e.logs, "config reloaded")
	if !e.logs.waitLine("config reload: user's polls changed", "user=alice") || countLines(e.logs, "config reload: user's polls changed", "user=bob") > 0 {
		t.Errorf("reload log: want alice's polls changed and nobody else's:\n%s", p3Tail(e.logs.String(), 20))
	}
	p3WaitFor(t, 30*time.Second, "alice's maildrop drained", func() (bool, string) {
		n := len(e.srv.Messages("alice"))
		return n == 0, fmt.Sprintf("%d messages at the host", n)
	})
	e.srv.Deliver("bob", p3GenMessage("bob-after", 9, 900))
	timer := time.NewTimer(30 * time.Second)
	for pushed := false; !pushed; {
		select {
		case n := <-bob.exists:
			pushed = n >= 4
		case <-timer.C:
			t.Fatal("bob's IDLE got no EXISTS for mail delivered after the reload")
		}
	}
	timer.Stop()
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("bob IDLE end: %v", err)
	}
	if err := bob.c.Noop().Wait(); err != nil {
		t.Fatalf("bob NOOP after the reload: %v", err)
	}
	p3WaitPolls(t, e.admin, 3*len(users)*2)
	if n := len(e.srv.Messages("bob")); n != 3 {
		t.Errorf("bob's maildrop holds %d messages, want 3 (2 left by his old client, 1 new): still shadow", n)
	}
	if n := len(e.srv.Messages("carol")); n != 3 {
		t.Errorf("carol's maildrop holds %d messages, want 3: still shadow", n)
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_messages_deleted_total", `source="legacy"`); got != 3 {
		t.Errorf("imapbridge_source_messages_deleted_total = %v, want alice's 3", got)
	}
	p3WaitFor(t, 20*time.Second, "alice: serve, nothing at the host", func() (bool, string) {
		s, _ := sourceOf(fetchReport(t, e.admin), "alice")
		return s["mode"] == "serve" && s["host"] == 0 && s["foreign"] == int64(0), fmt.Sprint(s)
	})

	// 5. A broken config on SIGHUP changes nothing, and the log names
	// every problem: bob taken out, carol switched, two errors.
	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	retireConfig(t, e, []string{"alice", "carol"}, map[string]string{"alice": "{mode: serve}", "carol": "{mode: serve, delete_policy: sometimes}"},
		"readiness:\n  quiet_period: -1h\n")
	sighup(t, p, e.logs, "config reload failed: the running config stays")
	for _, problem := range []string{
		`users[1].overrides.legacy.delete_policy: invalid value \"sometimes\" (want keep, after_days, on_expunge or after_sync)`,
		`readiness.quiet_period: must be a positive duration`,
	} {
		if !e.logs.waitLine("config reload: problem", problem) {
			t.Errorf("the log does not name the problem %s:\n%s", problem, p3Tail(e.logs.String(), 20))
		}
	}
	if err := bob.c.Noop().Wait(); err != nil {
		t.Fatalf("bob NOOP after the broken reload: %v", err)
	}
	p3WaitPolls(t, e.admin, 3*len(users)*2)
	if n := len(e.srv.Messages("carol")); n != 3 {
		t.Errorf("carol's maildrop holds %d messages after the broken reload, want 3", n)
	}
	if err := os.WriteFile(cfg, good, 0o600); err != nil {
		t.Fatal(err)
	}

	// 6. The status page in a real browser shows the verdicts of
	// /status.json and of "imapbridge status -json".
	bin := chromium(t)
	rep = fetchReport(t, e.admin)
	dom := browse(t, bin, "http://"+e.admin+"/status", "--dump-dom")
	if got, want := pageVerdicts(dom), verdicts(rep); !slices.Equal(got, want) {
		t.Errorf("the page shows\n %q\n/status.json says\n %q", got, want)
	}
	for _, s := range []string{`<meta name="viewport"`, `<b>1 / 3</b>users ready`, `<b>6</b>messages still at the hosts`, `drain of legacy: 3 → 0 left`} {
		if !strings.Contains(dom, s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	shot := filepath.Join(t.ArtifactDir(), "status-page.png")
	browse(t, bin, "http://"+e.admin+"/status", "--screenshot="+shot, "--window-size=412,900", "--hide-scrollbars")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	} else {
		t.Logf("screenshot of the status page at a phone's width: %s", shot)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"status", "-config", cfg, "-json"}, nil, &out, &errb); code != 0 {
		t.Fatalf("imapbridge status -json = %d: %s", code, errb.String())
	}
	var cli admin.Report
	if err := json.Unmarshal(out.Bytes(), &cli); err != nil {
		t.Fatalf("imapbridge status -json: %v\n%s", err, out.String())
	}
	if got, want := verdicts(cli), verdicts(rep); !slices.Equal(got, want) {
		t.Errorf("imapbridge status -json says\n %q\n/status.json says\n %q", got, want)
	}
	out.Reset()
	if code := run([]string{"status", "-config", cfg, "-user", "carol"}, nil, &out, &errb); code != 0 {
		t.Fatalf("imapbridge status -user carol = %d: %s", code, errb.String())
	}
	table := out.String()
	for _, s := range []string{"0 of 1 users ready, 3 messages still at the hosts", "carol  no     legacy  shadow  after_sync  3", "carol is not ready:\n  - never logged in over IMAP\n"} {
		if !strings.Contains(table, s) {
			t.Errorf("imapbridge status -user carol lacks %q:\n%s", s, table)
		}
	}
	p3CheckNoSecrets(t, e.logs, "pop-alice", "pop-bob", "pop-carol", p3IMAPPassword)
}

// A user taken out of the config by SIGHUP: the session gets BYE, polling
// stops, the mail stays; put back, the user logs in to the same mail.
func TestRetirementReloadRemovesUser(t *testing.T) {
	t.Parallel()
	users := []string{"alice", "bob"}
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: "pop-alice"}, {Name: "bob", Password: "pop-bob"}}})
	e.srv.Deliver("alice", p3GenMessage("alice", 0, 500))
	e.srv.Deliver("bob", p3GenMessage("bob", 0, 500))
	cfg := retireConfig(t, e, users, nil, "")
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()
	p3WaitCount(t, e.imap, "bob", p3IMAPPassword, "INBOX", 1, 30*time.Second)
	alice := p3LoginIMAP(t, e.imap, "alice", p3IMAPPassword)
	bob := p3LoginIMAP(t, e.imap, "bob", p3IMAPPassword)
	if _, err := bob.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	retireConfig(t, e, []string{"alice"}, nil, "")
	sighup(t, p, e.logs, "config reloaded")
	if !e.logs.waitLine("config reload: user removed: polling stopped, mail kept", "user=bob", "sessions_ended=1") {
		t.Errorf("no removal logged for bob:\n%s", p3Tail(e.logs.String(), 20))
	}
	if err := bob.c.Noop().Wait(); err == nil {
		t.Errorf("bob's session still answers NOOP after bob was removed")
	}
	if err := alice.c.Noop().Wait(); err != nil {
		t.Errorf("alice's session broke when bob was removed: %v", err)
	}
	if err := p3LoginError(e.imap, "bob", p3IMAPPassword); err == nil {
		t.Errorf("bob can still log in after he was removed")
	}
	rep := fetchReport(t, e.admin)
	if got := verdicts(rep); len(got) != 1 || !strings.HasPrefix(got[0], "alice=") {
		t.Errorf("status after bob was removed lists %q, want alice only", got)
	}
	// Back in: the same message, the same UID.
	retireConfig(t, e, users, nil, "")
	sighup(t, p, e.logs, "config reloaded")
	if !e.logs.waitLine("config reload: user added: polling started", "user=bob") {
		t.Errorf("no addition logged for bob:\n%s", p3Tail(e.logs.String(), 20))
	}
	_, msgs := p3WaitCount(t, e.imap, "bob", p3IMAPPassword, "INBOX", 1, 30*time.Second)
	if msgs[0].UID != 1 {
		t.Errorf("bob's message came back with UID %d, want 1", msgs[0].UID)
	}
}

// The README's pilot snippet loads as written, and means what it says.
func TestReadmePilotSnippet(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const start = "```yaml\n# A pilot:"
	i := bytes.Index(data, []byte(start))
	if i < 0 {
		t.Fatal("README.md has no pilot snippet")
	}
	block := data[i+len("```yaml\n"):]
	block = block[:bytes.Index(block, []byte("```"))]
	cfg, warnings, err := config.ParseEnv(block, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("the README's pilot snippet: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	legacy := cfg.Sources[0]
	if got := (config.User{}).Feed(legacy); got.Mode != "shadow" || got.DeletePolicy != "after_sync" {
		t.Errorf("an unlisted user's feed: %+v", got)
	}
	if got := cfg.Users[0].Feed(legacy); got.Mode != "serve" || got.DeletePolicy != "after_sync" {
		t.Errorf("alice's feed: %+v", got)
	}
	if cfg.Readiness.QuietPeriod != 168*time.Hour || cfg.Admin.Token != "" {
		t.Errorf("readiness %v, token set %v", cfg.Readiness.QuietPeriod, cfg.Admin.Token != "")
	}
}
