package imapfront_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/imapfront"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// dovecotIMAP is Dovecot's imap binary, run here as a pre-authenticated
// process on stdin/stdout (no listener, no login).
const dovecotIMAP = "/usr/lib/dovecot/imap"

// TestSearchAddressFormsAsDovecot runs the SEARCH FROM table against a real
// Dovecot holding the same messages: every query marked dovecot finds the
// same messages there as TestSearchAddressForms asserts here.
func TestSearchAddressFormsAsDovecot(t *testing.T) {
	var msgs []string
	for i, form := range searchAddressForms {
		msgs = append(msgs, fmt.Sprintf("From: %s\r\nTo: x@y.org\r\nSubject: m%d\r\n\r\nbody\r\n", form, i+1))
	}
	var script strings.Builder
	for i, q := range searchAddressQueries {
		// ESEARCH: Dovecot runs pipelined commands in parallel, and an
		// ESEARCH response names its command's tag.
		fmt.Fprintf(&script, "q%d UID SEARCH RETURN (ALL) FROM %s\r\n", i, q.query)
	}
	out := runDovecotIMAP(t, msgs, script.String())
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := strings.TrimSuffix(sc.Text(), "\r")
		if rest, ok := strings.CutPrefix(l, `* ESEARCH (TAG "`); ok {
			tag, rest, _ := strings.Cut(rest, `")`)
			got[tag] = expandSet(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), "UID ALL")))
			continue
		}
		if tag, status, ok := strings.Cut(l, " "); ok && strings.HasPrefix(tag, "q") && !strings.HasPrefix(status, "OK") {
			t.Errorf("Dovecot answered %s %s", tag, status)
		}
	}
	for i, q := range searchAddressQueries {
		d := got[fmt.Sprintf("q%d", i)]
		switch {
		case q.dovecot && d != q.want:
			t.Errorf("SEARCH FROM %s: Dovecot finds %q, the table says %q", q.query, d, q.want)
		case !q.dovecot && d == q.want:
			t.Errorf("SEARCH FROM %s: Dovecot now agrees (%q): mark it", q.query, d)
		}
	}
}

// runDovecotIMAP runs Dovecot's imap binary pre-authenticated over a
// Maildir holding msgs (UIDs 1, 2, … in order), with INBOX selected, sends
// script and returns everything it wrote, literals included.
func runDovecotIMAP(t *testing.T, msgs []string, script string) []byte {
	t.Helper()
	_, err := os.Stat(dovecotIMAP)
	testtool.Require(t, err, "apt-get install -y dovecot-imapd")

	dir := t.TempDir()
	// Dovecot refuses to run mail processes as root: as root the maildir
	// belongs to nobody, and the test's temp dirs must let it in.
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		uid, gid = 65534, 65534
		for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	maildir := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, msg := range msgs {
		// Names sort in UID order (Dovecot gives new mail UIDs by name).
		if err := os.WriteFile(filepath.Join(maildir, "new", fmt.Sprintf("%04d.test", i+1)), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "dovecot.conf")
	cfg := fmt.Sprintf("mail_location = maildir:%s\nbase_dir = %s\nstate_dir = %s\nlog_path = %s\nfirst_valid_uid = 1\nmail_uid = %d\nmail_gid = %d\n",
		maildir, filepath.Join(dir, "run"), filepath.Join(dir, "state"), filepath.Join(dir, "dovecot.log"), uid, gid)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if uid != os.Geteuid() {
		err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				err = os.Chown(p, uid, gid)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dovecotIMAP, "-c", conf)
	cmd.Env = []string{"USER=alice", "HOME=" + dir, "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader("s SELECT INBOX\r\n" + script + "z LOGOUT\r\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		t.Fatalf("dovecot imap: %v\n%s\n%s\n%s", err, out, stderr.String(), log)
	}
	return out
}

// expandSet turns "1:3,5" into "1 2 3 5".
func expandSet(set string) string {
	var out []string
	for _, r := range strings.Split(set, ",") {
		if r == "" || r == "UID" {
			continue
		}
		a, b, isRange := strings.Cut(r, ":")
		var lo, hi int
		fmt.Sscan(a, &lo)
		hi = lo
		if isRange {
			fmt.Sscan(b, &hi)
		}
		for n := lo; n <= hi; n++ {
			out = append(out, fmt.Sprint(n))
		}
	}
	return strings.Join(out, " ")
}

// TestEnvelopeAddressFormsAsDovecot: the ENVELOPE address lists of the
// address-form table are Dovecot's, except where the table says why not.
func TestEnvelopeAddressFormsAsDovecot(t *testing.T) {
	var msgs []string
	for i, c := range imapfront.AddressCases {
		msgs = append(msgs, fmt.Sprintf("From: x@y.org\r\nTo: %s\r\nSubject: m%d\r\n\r\nbody\r\n", c.Header, i))
	}
	out := runDovecotIMAP(t, msgs, "f FETCH 1:* (ENVELOPE)\r\n")
	lines := inlineLiterals(t, out)
	var fetches []string
	for _, l := range lines {
		if strings.HasPrefix(l, "* ") && strings.Contains(l, " FETCH (") {
			fetches = append(fetches, l)
		}
	}
	if len(fetches) != len(imapfront.AddressCases) {
		t.Fatalf("Dovecot gave %d FETCH lines for %d messages:\n%s", len(fetches), len(imapfront.AddressCases), out)
	}
	for i, c := range imapfront.AddressCases {
		got := strings.ReplaceAll(envelopeTo(t, fetches[i]), ")(", ") (")
		want := c.Want
		if c.Dovecot != "" {
			want = c.Dovecot
		}
		if got != want {
			t.Errorf("%s: To: %s\nDovecot %s\n  table %s", c.Name, c.Header, got, want)
		}
	}
}

// inlineLiterals splits IMAP output into lines, each literal replaced by a
// quoted string of its bytes.
func inlineLiterals(t *testing.T, out []byte) []string {
	t.Helper()
	var lines []string
	var cur strings.Builder
	for len(out) > 0 {
		i := bytes.Index(out, []byte("\r\n"))
		if i < 0 {
			cur.Write(out)
			break
		}
		l := string(out[:i])
		out = out[i+2:]
		if j := strings.LastIndexByte(l, '{'); j >= 0 && strings.HasSuffix(l, "}") {
			var n int
			if _, err := fmt.Sscanf(l[j:], "{%d}", &n); err == nil && n <= len(out) {
				cur.WriteString(l[:j])
				cur.WriteString(strconv.Quote(string(out[:n])))
				out = out[n:]
				continue
			}
		}
		cur.WriteString(l)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}
