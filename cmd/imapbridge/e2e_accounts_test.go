package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
)

// End-to-end test of users[].accounts: the built binary polls two real
// Dovecot POP3 hosts for one user with three logins (one at oldisp, two at
// campus), each into its own folder.

// writeAccountsConfig writes the config of TestPOP3AccountsTwoHosts. The
// campus asmith password comes from the environment
// (IMAPBRIDGE_ACCOUNT_PASSWORD_ALICE_1), the others from a file and the
// config itself.
func writeAccountsConfig(t *testing.T, e *p3Env, oldisp, campus, oldispPW, alumniPW string) string {
	t.Helper()
	pwFile := filepath.Join(e.dir, "alice-oldisp")
	if err := os.WriteFile(pwFile, []byte(oldispPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`data_dir: %q
log: {level: debug, format: text}
imap:
  listen: %q
  allow_insecure_auth: true
admin:
  listen: %q
sources:
  - name: oldisp
    type: pop3
    address: %q
    tls: none
    auth: static
    poll_interval: 300ms
    timeout: 5s
    delete_policy: after_sync
  - name: campus
    type: pop3
    address: %q
    tls: none
    auth: static
    poll_interval: 20s
    idle_poll_interval: 300ms
    timeout: 5s
    delete_policy: keep
users:
  - name: alice
    password_hash: %q
    accounts:
      - source: oldisp
        user: alice.smith
        password_file: %q
      - source: campus
        user: asmith
        folder: Campus
      - source: campus
        user: alumni
        password: %q
        folder: Campus/Alumni
`, filepath.Join(e.dir, "data"), e.imap, e.admin, oldisp, campus, p3IMAPHash(t), pwFile, alumniPW)
	path := filepath.Join(e.dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Two real Dovecot POP3 hosts with different logins and passwords feed
// one user: oldisp (after_sync) into INBOX, two accounts at campus (keep)
// into Campus and Campus/Alumni. Every message arrives byte-exact in its
// folder (one sent to both campus logins is stored in both folders);
// oldisp is drained, campus untouched; an IDLE session on Campus is told
// EXISTS when campus mail arrives; a restart keeps UIDVALIDITY and every
// UID and fetches only what is new; metrics name sources, never logins.
func TestPOP3AccountsTwoHosts(t *testing.T) {
	t.Parallel()
	const oldispPW, asmithPW, alumniPW = "pop-Old-91", "pop-Campus-12", "pop-Alumni-58"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice.smith", Password: oldispPW}}})
	campus := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "asmith", Password: asmithPW}, {Name: "alumni", Password: alumniPW}}})
	want := map[string]map[string][]byte{"INBOX": {}, "Campus": {}, "Campus/Alumni": {}}
	deliver := func(srv *dovecottest.Server, login, folder, tag string, i int) []byte {
		m := p3GenMessage(tag, i, 2500)
		srv.Deliver(login, m)
		want[folder][p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
		return m
	}
	for i := 1; i <= 3; i++ {
		deliver(e.srv, "alice.smith", "INBOX", "oldisp", i)
	}
	deliver(campus, "asmith", "Campus", "campus", 1)
	shared := deliver(campus, "asmith", "Campus", "campus", 2)
	campus.Deliver("alumni", shared)
	want["Campus/Alumni"][p3MessageID(shared)] = dovecottest.ExpectedPOP3(shared)
	deliver(campus, "alumni", "Campus/Alumni", "alumni", 1)

	cfg := writeAccountsConfig(t, e, e.srv.Addr(), campus.Addr(), oldispPW, alumniPW)
	env := "IMAPBRIDGE_ACCOUNT_PASSWORD_ALICE_1=" + asmithPW
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs, env)
	snap := map[string][]p3IMAPMsg{}
	uv := map[string]uint32{}
	for _, folder := range []string{"INBOX", "Campus", "Campus/Alumni"} {
		uv[folder], snap[folder] = p3WaitCount(t, e.imap, "alice", p3IMAPPassword, folder, len(want[folder]), 15*time.Second)
		p3CheckMessages(t, folder, snap[folder], want[folder])
	}
	// after_sync drains oldisp; campus (keep) keeps all it had.
	p3WaitFor(t, 15*time.Second, "oldisp drained", func() (bool, string) {
		ids := p3HostIDs(e.srv, "alice.smith")
		return len(ids) == 0, fmt.Sprintf("oldisp holds %v", ids)
	})
	p3WaitPolls(t, e.admin, 3)
	if got := len(campus.Messages("asmith")) + len(campus.Messages("alumni")); got != 4 {
		t.Errorf("campus holds %d messages, want the 4 delivered (delete_policy keep)", got)
	}

	// Push on a folder other than INBOX.
	s := p3LoginIMAP(t, e.imap, "alice", p3IMAPPassword)
	if _, err := s.c.Select("Campus", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := s.c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	deliver(campus, "asmith", "Campus", "campus", 3)
	timer := time.NewTimer(15 * time.Second) // < poll_interval 20s: only IDLE's interval brings it
	for got := false; !got; {
		select {
		case n := <-s.exists:
			got = n >= 3
		case <-timer.C:
			t.Fatalf("campus mail not pushed to the IDLE session on Campus")
		}
	}
	timer.Stop()
	idle.Close()
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE end: %v", err)
	}
	s.c.Logout().Wait()
	_, snap["Campus"] = p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "Campus")
	p3CheckMessages(t, "Campus after push", snap["Campus"], want["Campus"])

	// Metrics carry the source label, never a login.
	resp, err := http.Get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, login := range []string{"alice.smith", "asmith", "alumni", `user="`} {
		if strings.Contains(string(metrics), login) {
			t.Errorf("/metrics mentions %q", login)
		}
	}
	p.stop()

	// Restart: same UIDVALIDITY and UIDs; only new mail is fetched.
	deliver(campus, "alumni", "Campus/Alumni", "alumni", 2)
	deliver(e.srv, "alice.smith", "INBOX", "oldisp", 4)
	p = p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs, env)
	defer p.stop()
	for _, folder := range []string{"INBOX", "Campus", "Campus/Alumni"} {
		uv2, after := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, folder, len(want[folder]), 15*time.Second)
		p3CheckMessages(t, folder+" after restart", after, want[folder])
		if uv2 != uv[folder] {
			t.Errorf("%s: UIDVALIDITY %d after restart, was %d", folder, uv2, uv[folder])
		}
		ids := p3UIDsByID(after)
		for _, m := range snap[folder] {
			if ids[m.MsgID] != m.UID {
				t.Errorf("%s %s: UID %d after restart, was %d", folder, m.MsgID, ids[m.MsgID], m.UID)
			}
		}
	}
	p3WaitPolls(t, e.admin, 2)
	for src, n := range map[string]float64{"oldisp": 1, "campus": 1} {
		if got := p3MetricSum(e.admin, "imapbridge_source_messages_fetched_total", `source="`+src+`"`); got != n {
			t.Errorf("after restart %s fetched %v, want %v (only the new)", src, got, n)
		}
	}
	p3CheckNoSecrets(t, e.logs, oldispPW, asmithPW, alumniPW)
}
