package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// Every config snippet of the README and deploy/ is loaded, as
// "imapbridge check" loads it, and every complete one is run: served, then
// one IMAP LOGIN and SELECT. A snippet that does not load fails the test
// naming its file and line.

// snippet is one config found in a document.
type snippet struct {
	file string // relative to the repository root
	line int    // of its first line
	text string
}

func (s snippet) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../.."

// examplePassword is the password whose bcrypt hash the README and
// deploy/imapbridge.example.yaml give users (their comments say so).
const examplePassword = "changeme"

// yamlBlocks returns the ```yaml blocks of a Markdown file, their
// indentation (inside a list item) removed.
func yamlBlocks(t *testing.T, file string) []snippet {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []snippet
	var cur *snippet
	indent := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			indent = line[:strings.Index(line, "`")]
			cur = &snippet{file: file, line: n + 1}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: ```yaml block never closed", file, cur.line)
	}
	return out
}

// configSnippets is every config of the README and deploy/: the ```yaml
// blocks of README.md and deploy/*.md, and deploy/*.yaml.
func configSnippets(t *testing.T) []snippet {
	t.Helper()
	out := yamlBlocks(t, "README.md")
	mds, _ := filepath.Glob(filepath.Join(repoRoot, "deploy", "*.md"))
	yamls, _ := filepath.Glob(filepath.Join(repoRoot, "deploy", "*.yaml"))
	for _, p := range mds {
		rel, _ := filepath.Rel(repoRoot, p)
		out = append(out, yamlBlocks(t, rel)...)
	}
	for _, p := range yamls {
		rel, _ := filepath.Rel(repoRoot, p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, snippet{file: rel, line: 1, text: string(data)})
	}
	return out
}

// baseConfig is what a partial snippet (one without sources:, such as the
// TLS fragment of deploy/README.md) is merged into: the smallest config
// that runs, with a user whose password is examplePassword.
func baseConfig(t *testing.T) map[string]any {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(examplePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"data_dir": "./data",
		"sources":  []any{map[string]any{"name": "spool", "type": "mbox", "path": "/var/mail/{user}"}},
		"users":    []any{map[string]any{"name": "alice", "password_hash": string(h), "sources": []any{"spool"}}},
	}
}

// merge copies src over dst, mapping by mapping.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func mapAt(m map[string]any, key string) map[string]any {
	sub, _ := m[key].(map[string]any)
	return sub
}

// substitute rewrites, in the parsed config m, exactly the values a test
// cannot use as written, and returns what it changed (for the log). For
// loading (run false) that is only the files the config names, which
// must exist for "check" to pass: secrets.key_file, imap.tls.cert_file
// and key_file, users[].password_hash_file, source_password_file and
// accounts[].password_file; the
// test writes them in dir. For running (run true) also:
//   - data_dir, when absolute (/data, /var/lib/imapbridge): dir/data;
//   - imap.listen, imap.tls_listen and admin.listen, when set:
//     127.0.0.1:0 (tests run in parallel and must not take fixed ports;
//     the plain listener is set even when the snippet has only
//     tls_listen, for the test's client);
//   - imap.allow_insecure_auth: true, since the test's client logs in on
//     the plain listener without STARTTLS;
//   - sources[].path of mbox sources: dir/spool/ + the file name
//     (/var/mail/{user} becomes dir/spool/{user});
//   - lmtp.listen: 127.0.0.1:0, or a socket in dir for unix:;
//     pop3.listen and pop3.tls_listen, when set: 127.0.0.1:0, with
//     pop3.allow_insecure_auth (as for IMAP);
//   - sources[].address of pop3 sources: 127.0.0.1:1, a closed port
//     (tests dial nothing beyond loopback; no user that the test logs in
//     is fed by a pop3 source).
func substitute(t *testing.T, m map[string]any, dir string, run bool) []string {
	t.Helper()
	var notes []string
	set := func(mm map[string]any, key, path, value string) {
		notes = append(notes, fmt.Sprintf("%s: %v -> %s", path, mm[key], value))
		mm[key] = value
	}
	file := func(mm map[string]any, key, path, name, content string) {
		if v, _ := mm[key].(string); v != "" {
			f := filepath.Join(dir, name)
			if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			set(mm, key, path, f)
		}
	}
	if s := mapAt(m, "secrets"); s != nil {
		file(s, "key_file", "secrets.key_file", "secret.key", "snippet-test-key\n")
	}
	if a := mapAt(m, "admin"); a != nil {
		file(a, "token_file", "admin.token_file", "admin-token", "snippet-test-admin-token-0123456789\n")
	}
	imapM := mapAt(m, "imap")
	if tlsM := mapAt(imapM, "tls"); tlsM != nil {
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if c, _ := tlsM["cert_file"].(string); c != "" {
			writeCert(t, cert, key, "127.0.0.1")
			set(tlsM, "cert_file", "imap.tls.cert_file", cert)
			set(tlsM, "key_file", "imap.tls.key_file", key)
		}
	}
	h, err := bcrypt.GenerateFromPassword([]byte(examplePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, _ := m["users"].([]any)
	for i, u := range users {
		um, _ := u.(map[string]any)
		file(um, "password_hash_file", fmt.Sprintf("users[%d].password_hash_file", i), fmt.Sprintf("hash%d", i), string(h)+"\n")
		file(um, "source_password_file", fmt.Sprintf("users[%d].source_password_file", i), fmt.Sprintf("pop3pw%d", i), "pop3-password\n")
		accounts, _ := um["accounts"].([]any)
		for j, a := range accounts {
			am, _ := a.(map[string]any)
			file(am, "password_file", fmt.Sprintf("users[%d].accounts[%d].password_file", i, j), fmt.Sprintf("account%d-%d", i, j), "account-password\n")
		}
	}
	if !run {
		return notes
	}
	if d, _ := m["data_dir"].(string); filepath.IsAbs(d) {
		set(m, "data_dir", "data_dir", filepath.Join(dir, "data"))
	}
	if imapM == nil {
		imapM = map[string]any{}
		m["imap"] = imapM
	}
	set(imapM, "listen", "imap.listen", "127.0.0.1:0")
	if v, _ := imapM["tls_listen"].(string); v != "" {
		set(imapM, "tls_listen", "imap.tls_listen", "127.0.0.1:0")
	}
	notes = append(notes, fmt.Sprintf("imap.allow_insecure_auth: %v -> true", imapM["allow_insecure_auth"]))
	imapM["allow_insecure_auth"] = true
	if a := mapAt(m, "admin"); a == nil {
		m["admin"] = map[string]any{"listen": "127.0.0.1:0"}
		notes = append(notes, "admin.listen: (default 127.0.0.1:9154) -> 127.0.0.1:0")
	} else if v, ok := a["listen"].(string); !ok || v != "" {
		set(a, "listen", "admin.listen", "127.0.0.1:0")
	}
	if l := mapAt(m, "lmtp"); l != nil {
		if v, _ := l["listen"].(string); strings.HasPrefix(v, "unix:") {
			set(l, "listen", "lmtp.listen", "unix:"+filepath.Join(dir, "lmtp.sock"))
		} else if v != "" {
			set(l, "listen", "lmtp.listen", "127.0.0.1:0")
		}
	}
	if p := mapAt(m, "pop3"); p != nil {
		for _, k := range []string{"listen", "tls_listen"} {
			if v, _ := p[k].(string); v != "" {
				set(p, k, "pop3."+k, "127.0.0.1:0")
			}
		}
		if v, _ := p["listen"].(string); v != "" {
			notes = append(notes, fmt.Sprintf("pop3.allow_insecure_auth: %v -> true", p["allow_insecure_auth"]))
			p["allow_insecure_auth"] = true
		}
	}
	sources, _ := m["sources"].([]any)
	if err := os.MkdirAll(filepath.Join(dir, "spool"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i, s := range sources {
		sm, _ := s.(map[string]any)
		switch sm["type"] {
		case "mbox":
			p, _ := sm["path"].(string)
			set(sm, "path", fmt.Sprintf("sources[%d].path", i), filepath.Join(dir, "spool", filepath.Base(p)))
		case "pop3":
			set(sm, "address", fmt.Sprintf("sources[%d].address", i), "127.0.0.1:1")
		}
	}
	return notes
}

// writeSnippet parses sn, merges a partial one into baseConfig, applies
// substitute and writes the result to dir/imapbridge.yaml.
func writeSnippet(t *testing.T, sn snippet, dir string, run bool) (path string, notes []string) {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(sn.text), &m); err != nil {
		t.Fatalf("%s: not YAML: %v", sn, err)
	}
	if _, complete := m["sources"]; !complete {
		base := baseConfig(t)
		merge(base, m)
		m = base
		notes = append(notes, "partial: merged into a base config (data_dir ./data, an mbox source, user alice)")
	}
	notes = append(notes, substitute(t, m, dir, run)...)
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "imapbridge.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, notes
}

// TestConfigSnippets: every config snippet of README.md, deploy/*.md and
// deploy/*.yaml passes "imapbridge check" with only the files it names
// provided, and runs: served on free loopback ports with its paths in a
// temp dir, a user with the example password logs in and selects INBOX.
func TestConfigSnippets(t *testing.T) {
	t.Setenv("IMAPBRIDGE_SECRET_KEY", "") // the runner's environment must not decide
	snippets := configSnippets(t)
	if len(snippets) < 4 {
		t.Fatalf("found %d config snippets, want at least 4 (README: 2, deploy/README.md: 1, deploy/imapbridge.example.yaml)", len(snippets))
	}
	for _, sn := range snippets {
		t.Run(strings.ReplaceAll(sn.String(), "/", "_"), func(t *testing.T) {
			// 1. As "imapbridge check" loads it.
			dir := t.TempDir()
			path, notes := writeSnippet(t, sn, dir, false)
			var out, errb bytes.Buffer
			if code := runCheck([]string{"-config", path}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "config OK: ") {
				t.Fatalf("%s: the config snippet does not load (check exit %d):\n%s%s\nsubstituted: %s\nsnippet:\n%s",
					sn, code, out.String(), errb.String(), strings.Join(notes, "; "), sn.text)
			}
			t.Logf("%s: %s", sn, strings.TrimSpace(out.String()))

			// 2. Served, with one LOGIN and SELECT.
			dir = t.TempDir()
			path, notes = writeSnippet(t, sn, dir, true)
			t.Logf("%s: substituted: %s", sn, strings.Join(notes, "; "))
			cfg, _, err := config.Load(path)
			if err != nil {
				t.Fatalf("%s: with the substitutions: %v", sn, err)
			}
			var logs syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := startApp(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("%s: serve: %v\n%s", sn, err, logs.String())
			}
			defer func() {
				if err := a.shutdown(quickShutdown); err != nil {
					t.Errorf("%s: shutdown: %v", sn, err)
				}
			}()
			user := ""
			for _, u := range cfg.Users {
				if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(examplePassword)) == nil {
					user = u.Name
					break
				}
			}
			c, err := imapclient.DialInsecure(a.imapAddr.String(), nil)
			if err != nil {
				t.Fatalf("%s: dial: %v", sn, err)
			}
			defer c.Close()
			if user == "" {
				// A passthrough-only config: its users are the POP3
				// host's. TestPassthroughOnlyREADME logs in with it
				// against a real Dovecot; here the greeting must come.
				if err := c.Noop().Wait(); err != nil {
					t.Errorf("%s: NOOP: %v", sn, err)
				}
				return
			}
			if err := c.Login(user, examplePassword).Wait(); err != nil {
				t.Fatalf("%s: LOGIN %s: %v\n%s", sn, user, err, logs.String())
			}
			sel, err := c.Select("INBOX", nil).Wait()
			if err != nil || sel.UIDValidity == 0 {
				t.Fatalf("%s: SELECT INBOX: %+v, %v", sn, sel, err)
			}
			c.Logout().Wait()
		})
	}
}

// TestRetiringPostfixSnippets: each ```postfix-main.cf block of
// deploy/RETIRING.md is a main.cf that Postfix's own postconf reads
// without a warning (an unknown or misspelt parameter is "unused
// parameter"), with Debian's stock master.cf, whose lmtp service the
// snippets rely on.
func TestRetiringPostfixSnippets(t *testing.T) {
	postconf := testtool.Need(t, "postconf", "postfix")
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "RETIRING.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```postfix-main\\.cf\n(.*?)```").FindAllSubmatch(data, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d postfix-main.cf blocks in deploy/RETIRING.md, want 3", len(blocks))
	}
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		t.Fatalf("Debian's master.cf: %v", err)
	}
	for i, b := range blocks {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.cf"), b[1], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "master.cf"), master, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(postconf, "-c", dir, "-n").CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("warning")) {
			t.Errorf("block %d: postconf -n: %v\n%s\nblock:\n%s", i+1, err, out, b[1])
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b[1])), "\n") {
			if !bytes.Contains(out, []byte(line)) {
				t.Errorf("block %d: postconf does not show %q:\n%s", i+1, line, out)
			}
		}
		if out, err := exec.Command(postconf, "-c", dir, "-M", "lmtp/unix").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("lmtp")) {
			t.Errorf("block %d: master.cf has no lmtp service: %v\n%s", i+1, err, out)
		}
	}
}
