package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
)

// TestPassthroughOnlyREADME (issue 12 C): the README's passthrough-only
// config, with no users: list, starts and serves a user the config does
// not name, who logs in with their POP3 password at a real Dovecot, gets
// their mail byte for byte, whose wrong password is refused, and whose
// mail is still served and whose polls resume after a restart.
//
// The snippet is used as written except for these values, replaced in its
// text by string replacement of exactly them:
//   - data_dir /var/lib/imapbridge -> a temp dir (the test cannot write
//     there);
//   - the POP3 address pop.example.com:995 -> the test Dovecot's pop3s
//     port (implicit TLS, as on port 995; its self-signed certificate is
//     trusted through SSL_CERT_FILE, so the source verifies it as it
//     would a real one);
//   - imap.listen 127.0.0.1:1143 -> a free port, and an admin.listen on a
//     free port is added (the default 127.0.0.1:9154 is fixed; tests run
//     in parallel).
//
// IMAPBRIDGE_SECRET_KEY is set, as the snippet's comment says.
func TestPassthroughOnlyREADME(t *testing.T) {
	t.Parallel()
	var sn snippet
	for _, s := range yamlBlocks(t, "README.md") {
		if strings.HasPrefix(s.text, "# Passthrough only:") {
			sn = s
		}
	}
	if sn.text == "" {
		t.Fatal(`README.md has no yaml block starting "# Passthrough only:"`)
	}
	const carolPOP = "pop-Carol-Only-8"
	e := newP3Env(t, dovecottest.Options{TLS: true, Users: []dovecottest.User{{Name: "carol", Password: carolPOP}}})
	text := sn.text
	for _, r := range [][2]string{
		{"/var/lib/imapbridge", filepath.Join(e.dir, "data")},
		{"pop.example.com:995", e.srv.TLSAddr()},
		{"127.0.0.1:1143", e.imap},
	} {
		if strings.Count(text, r[0]) != 1 {
			t.Fatalf("%s: %q appears %d times in the snippet, want once", sn, r[0], strings.Count(text, r[0]))
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	if strings.Contains(text, "admin:") || strings.Contains(text, "users:") {
		t.Fatalf("%s: the snippet has admin: or users:; this test adds the one and expects no other", sn)
	}
	text += "admin:\n  listen: " + e.admin + "\n"
	cfg := filepath.Join(e.dir, "imapbridge.yaml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"SSL_CERT_FILE=" + filepath.Join(e.srv.Dir(), "cert.pem"),
		"IMAPBRIDGE_SECRET_KEY=k-" + strconv.FormatUint(rand.Uint64(), 36),
	}

	// imapbridge check accepts it.
	var out, errb bytes.Buffer
	if code := runCheck([]string{"-config", cfg}, &out, &errb); code != 0 || out.String() != "config OK: 1 sources, 0 users\n" {
		t.Fatalf("check %s = %d: %q %q", sn, code, out.String(), errb.String())
	}

	expected := map[string][]byte{}
	deliver := func(from, to int) {
		for i := from; i <= to; i++ {
			m := p3GenMessage("carol", i, 1000*i)
			e.srv.Deliver("carol", m)
			expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
		}
	}
	deliver(1, 3)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs, env...)

	var ie *imap.Error
	if err := p3LoginError(e.imap, "carol", "not-"+carolPOP); !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("wrong password: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	if err := p3LoginError(e.imap, "mallory", carolPOP); !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("a name the host does not know: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	_, first := p3WaitCount(t, e.imap, "carol", carolPOP, "INBOX", 3, 20*time.Second)
	p3CheckMessages(t, "carol's INBOX", first, expected)
	p.stop()

	// Down: a message arrives. Up again: carol's polls resume without a
	// login, and what was stored is served with the same UIDs.
	deliver(4, 4)
	p = p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs, env...)
	defer p.stop()
	// (p3WaitFetched would wait for a second poll: 60 s away here.)
	p3WaitFor(t, 20*time.Second, "the poll after a restart, before any login", func() (bool, string) {
		n := p3MetricSum(e.admin, "imapbridge_source_messages_fetched_total", `source="legacy"`)
		return n == 1, fmt.Sprintf("fetched_total %v", n)
	})
	if n := p3MetricSum(e.admin, "imapbridge_auth_attempts_total", `result="success"`); n != 0 {
		t.Errorf("%v logins before the poll after the restart; want 0", n)
	}
	_, msgs := p3WaitCount(t, e.imap, "carol", carolPOP, "INBOX", 4, 20*time.Second)
	p3CheckMessages(t, "carol's INBOX after a restart", msgs, expected)
	uids := p3UIDsByID(msgs)
	for _, m := range first {
		if uids[m.MsgID] != m.UID {
			t.Errorf("%s: UID %d after the restart, was %d", m.MsgID, uids[m.MsgID], m.UID)
		}
	}
	p3CheckNoSecrets(t, e.logs, carolPOP)
}
