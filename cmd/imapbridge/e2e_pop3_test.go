package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/pop3"
)

// End-to-end tests of the POP3 source: the built binary polls a real
// Dovecot POP3 server (internal/dovecottest) and is read over IMAP with
// go-imap v2's client. Every test starts its own Dovecot and its own
// bridge on free loopback ports, so they run in parallel.

// ---------------------------------------------------------------------------
// Configuration writer.

type p3Source struct {
	Name         string
	Address      string
	TLS          string // none | starttls | implicit
	SkipVerify   bool
	Auth         string // static | passthrough
	Poll         time.Duration
	IdlePoll     time.Duration
	Timeout      time.Duration
	DeletePolicy string
	DeleteAfter  time.Duration
}

type p3User struct {
	Name           string
	PasswordHash   string // bcrypt; "" for a passthrough-only user
	Sources        []string
	SourceUser     string
	SourcePassword string
}

type p3Config struct {
	Dir      string // holds data/ and the config file
	IMAP     string
	Admin    string
	KeyFile  string
	LogLevel string
	Sources  []p3Source
	Users    []p3User
}

// write writes the config as YAML (mode 0600) and returns its path.
func (c p3Config) write(t *testing.T) string {
	t.Helper()
	level := c.LogLevel
	if level == "" {
		level = "debug"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(c.Dir, "data"))
	fmt.Fprintf(&b, "log: {level: %s, format: text}\n", level)
	fmt.Fprintf(&b, "imap:\n  listen: %q\n  allow_insecure_auth: true\n", c.IMAP)
	fmt.Fprintf(&b, "admin:\n  listen: %q\n", c.Admin)
	if c.KeyFile != "" {
		fmt.Fprintf(&b, "secrets:\n  key_file: %q\n", c.KeyFile)
	}
	b.WriteString("sources:\n")
	for _, s := range c.Sources {
		fmt.Fprintf(&b, "  - name: %s\n    type: pop3\n    address: %q\n", s.Name, s.Address)
		fmt.Fprintf(&b, "    tls: %s\n", p3OrDefault(s.TLS, "none"))
		if s.SkipVerify {
			b.WriteString("    tls_skip_verify: true\n")
		}
		fmt.Fprintf(&b, "    auth: %s\n", p3OrDefault(s.Auth, "static"))
		fmt.Fprintf(&b, "    poll_interval: %s\n", p3DurOr(s.Poll, 300*time.Millisecond))
		fmt.Fprintf(&b, "    idle_poll_interval: %s\n", p3DurOr(s.IdlePoll, p3DurOr(s.Poll, 300*time.Millisecond)))
		fmt.Fprintf(&b, "    timeout: %s\n", p3DurOr(s.Timeout, 5*time.Second))
		fmt.Fprintf(&b, "    delete_policy: %s\n", p3OrDefault(s.DeletePolicy, "keep"))
		if s.DeleteAfter > 0 {
			fmt.Fprintf(&b, "    delete_after: %s\n", s.DeleteAfter)
		}
	}
	b.WriteString("users:\n")
	for _, u := range c.Users {
		fmt.Fprintf(&b, "  - name: %s\n    sources: [%s]\n", u.Name, strings.Join(u.Sources, ", "))
		if u.PasswordHash != "" {
			fmt.Fprintf(&b, "    password_hash: %q\n", u.PasswordHash)
		}
		if u.SourceUser != "" {
			fmt.Fprintf(&b, "    source_user: %q\n", u.SourceUser)
		}
		if u.SourcePassword != "" {
			fmt.Fprintf(&b, "    source_password: %q\n", u.SourcePassword)
		}
	}
	path := filepath.Join(c.Dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func p3OrDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func p3DurOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

var (
	p3HashOnce   sync.Once
	p3IMAPPWHash string
)

// p3IMAPPassword is every static user's IMAP password in these tests.
const p3IMAPPassword = "imap-Pw-7f3e"

func p3IMAPHash(t *testing.T) string {
	t.Helper()
	p3HashOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(p3IMAPPassword), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		p3IMAPPWHash = string(h)
	})
	return p3IMAPPWHash
}

// ---------------------------------------------------------------------------
// Running the bridge.

// p3LaunchBridge starts the binary and waits until /readyz answers 200. It
// does not wait for polls (a passthrough user has none before its first
// login). env is added to the environment, from which every IMAPBRIDGE_*
// variable of the test runner is removed.
func p3LaunchBridge(t *testing.T, config, imapAddr, adminAddr string, logs *syncBuffer, env ...string) *bridgeProc {
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "-config", config)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IMAPBRIDGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &bridgeProc{t: t, cmd: cmd, imap: imapAddr, admin: adminAddr, logBuf: logs}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("bridge not ready within 30s; log:\n%s", logs.String())
	return nil
}

// kill ends the bridge with SIGKILL: no shutdown code runs.
func p3KillBridge(p *bridgeProc) {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// p3MetricSum sums the samples of the metric family name whose label set
// contains every one of labels (`source="legacy"`). -1: /metrics failed.
func p3MetricSum(admin, name string, labels ...string) float64 {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// p3WaitFor calls cond every 50ms until it is true or timeout passes, then
// fails the test with what cond said last.
func p3WaitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for i := 0; ; i++ {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) || i > 100000 {
			t.Fatalf("%s: not within %v; last state: %s", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// p3WaitPolls waits until n more successful polls than before have been
// counted (n whole poll cycles after a change at the host).
func p3WaitPolls(t *testing.T, admin string, n int) {
	t.Helper()
	start := successfulPolls(admin)
	p3WaitFor(t, 20*time.Second, fmt.Sprintf("%d more successful polls", n), func() (bool, string) {
		got := successfulPolls(admin)
		return got >= start+n, fmt.Sprintf("%d successful polls, started at %d", got, start)
	})
}

// ---------------------------------------------------------------------------
// Messages.

var p3ReMessageID = regexp.MustCompile(`(?mi)^Message-ID:[ \t]*(<[^>\r\n]+>)`)

func p3MessageID(data []byte) string {
	// Only the header: a body may quote a Message-ID line.
	if i := bytes.Index(data, []byte("\n\n")); i >= 0 {
		data = data[:i+1]
	}
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		data = data[:i+2]
	}
	m := p3ReMessageID.FindSubmatch(data)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// p3GenMessage builds a message (LF line endings, as an MDA stores it) of
// roughly size bytes, with lines a POP3 client must dot-unstuff. The body
// is a block of 50 lines, varied by i, repeated.
func p3GenMessage(tag string, i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender <sender@example.org>\nTo: %s@example.org\nSubject: %s message %d\n", tag, tag, i)
	fmt.Fprintf(&b, "Date: Mon, 02 Jan 2006 15:04:05 +0000\nMessage-ID: <%s-%d@imapbridge.test>\n\n", tag, i)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	var block bytes.Buffer
	for n := 0; n < 50; n++ {
		switch n {
		case 7:
			block.WriteString(".\n")
		case 19:
			block.WriteString("..leading dots\n")
		default:
			for k := 0; k < 72; k++ {
				block.WriteByte(alphabet[(i*31+n*7+k)%len(alphabet)])
			}
			block.WriteByte('\n')
		}
	}
	b.Grow(size + block.Len() + 64)
	for b.Len() < size {
		b.Write(block.Bytes())
	}
	fmt.Fprintf(&b, "end of %s message %d\n", tag, i)
	return b.Bytes()
}

// ---------------------------------------------------------------------------
// IMAP.

type p3IMAPMsg struct {
	UID   imap.UID
	Size  int64
	Body  []byte
	MsgID string
}

type p3IMAPSession struct {
	c       *imapclient.Client
	exists  chan uint32 // unilateral EXISTS counts (buffered; dropped when full)
	expunge chan uint32
}

func p3DialIMAP(addr string) (*p3IMAPSession, error) {
	s := &p3IMAPSession{exists: make(chan uint32, 64), expunge: make(chan uint32, 64)}
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case s.exists <- *d.NumMessages:
					default:
					}
				}
			},
			Expunge: func(seq uint32) {
				select {
				case s.expunge <- seq:
				default:
				}
			},
		},
	})
	if err != nil {
		return nil, err
	}
	s.c = c
	return s, nil
}

// p3LoginIMAP dials and logs in, failing the test on any error.
func p3LoginIMAP(t *testing.T, addr, user, pass string) *p3IMAPSession {
	t.Helper()
	s, err := p3DialIMAP(addr)
	if err != nil {
		t.Fatalf("imap dial %s: %v", addr, err)
	}
	if err := s.c.Login(user, pass).Wait(); err != nil {
		s.c.Close()
		t.Fatalf("imap login %s: %v", user, err)
	}
	t.Cleanup(func() { s.c.Close() })
	return s
}

// p3LoginError returns the error of LOGIN user pass (nil: logged in).
func p3LoginError(addr, user, pass string) error {
	s, err := p3DialIMAP(addr)
	if err != nil {
		return err
	}
	defer s.c.Close()
	err = s.c.Login(user, pass).Wait()
	if err == nil {
		s.c.Logout().Wait()
	}
	return err
}

// fetchAll selects mailbox and fetches every message with UID, size and
// BODY.PEEK[].
func (s *p3IMAPSession) fetchAll(mailbox string) (uint32, []p3IMAPMsg, error) {
	sel, err := s.c.Select(mailbox, nil).Wait()
	if err != nil {
		return 0, nil, fmt.Errorf("select %s: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return sel.UIDValidity, nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	section := &imap.FetchItemBodySection{Peek: true}
	bufs, err := s.c.Fetch(all, &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return 0, nil, fmt.Errorf("fetch %s: %w", mailbox, err)
	}
	out := make([]p3IMAPMsg, 0, len(bufs))
	for _, b := range bufs {
		body := b.FindBodySection(section)
		out = append(out, p3IMAPMsg{UID: b.UID, Size: b.RFC822Size, Body: body, MsgID: p3MessageID(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return sel.UIDValidity, out, nil
}

// p3Snapshot logs in, fetches mailbox whole and logs out.
func p3Snapshot(t *testing.T, addr, user, pass, mailbox string) (uint32, []p3IMAPMsg) {
	t.Helper()
	s := p3LoginIMAP(t, addr, user, pass)
	defer func() {
		s.c.Logout().Wait()
		s.c.Close()
	}()
	uv, msgs, err := s.fetchAll(mailbox)
	if err != nil {
		t.Fatalf("%s %s: %v", user, mailbox, err)
	}
	return uv, msgs
}

// p3WaitCount waits until mailbox of user holds want messages (checked with
// one session and NOOP) and returns a snapshot.
func p3WaitCount(t *testing.T, addr, user, pass, mailbox string, want int, timeout time.Duration) (uint32, []p3IMAPMsg) {
	t.Helper()
	s := p3LoginIMAP(t, addr, user, pass)
	if _, err := s.c.Select(mailbox, nil).Wait(); err != nil {
		t.Fatalf("select %s: %v", mailbox, err)
	}
	p3WaitFor(t, timeout, fmt.Sprintf("%s's %s holds %d messages", user, mailbox, want), func() (bool, string) {
		if err := s.c.Noop().Wait(); err != nil {
			return false, "noop: " + err.Error()
		}
		n := s.c.Mailbox().NumMessages
		return int(n) == want, fmt.Sprintf("%d messages", n)
	})
	s.c.Logout().Wait()
	s.c.Close()
	return p3Snapshot(t, addr, user, pass, mailbox)
}

// p3CheckMessages compares a mailbox with what it must hold, keyed by
// Message-ID: every expected message exactly once, byte-exact (expected
// holds what POP3 RETR returns), RFC822.SIZE equal to its length, UIDs
// strictly ascending, nothing else.
func p3CheckMessages(t *testing.T, what string, got []p3IMAPMsg, expected map[string][]byte) {
	t.Helper()
	seen := map[string]int{}
	var prev imap.UID
	for _, m := range got {
		if m.UID <= prev {
			t.Errorf("%s: UID %d after UID %d: not ascending", what, m.UID, prev)
		}
		prev = m.UID
		seen[m.MsgID]++
		want, ok := expected[m.MsgID]
		switch {
		case !ok:
			t.Errorf("%s: UID %d (%s, %d bytes) is not a message of the host", what, m.UID, m.MsgID, len(m.Body))
		case !bytes.Equal(m.Body, want):
			t.Errorf("%s: UID %d %s: BODY[] differs from what the host delivered (%d bytes, want %d; first difference at byte %d)",
				what, m.UID, m.MsgID, len(m.Body), len(want), p3FirstDifference(m.Body, want))
		case m.Size != int64(len(want)):
			t.Errorf("%s: UID %d %s: RFC822.SIZE %d, want %d", what, m.UID, m.MsgID, m.Size, len(want))
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s: %s is there %d times (duplicated)", what, id, n)
		}
	}
	for id := range expected {
		if seen[id] == 0 {
			t.Errorf("%s: %s missing (lost)", what, id)
		}
	}
}

func p3FirstDifference(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// p3HostIDs returns the Message-IDs the user's maildrop holds now.
func p3HostIDs(srv *dovecottest.Server, user string) []string {
	var ids []string
	for _, m := range srv.Messages(user) {
		ids = append(ids, p3MessageID(m.Data))
	}
	return ids
}

func p3UIDsByID(msgs []p3IMAPMsg) map[string]imap.UID {
	out := map[string]imap.UID{}
	for _, m := range msgs {
		out[m.MsgID] = m.UID
	}
	return out
}

// p3CheckNoSecrets fails if any of secrets appears in the bridge's log.
func p3CheckNoSecrets(t *testing.T, logs *syncBuffer, secrets ...string) {
	t.Helper()
	out := logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("a password (%d chars) appears in the bridge's log", len(s))
		}
	}
}

// p3Env is one Dovecot and the addresses of one bridge.
type p3Env struct {
	srv         *dovecottest.Server
	dir         string
	imap, admin string
	logs        *syncBuffer
}

func newP3Env(t *testing.T, opts dovecottest.Options) *p3Env {
	t.Helper()
	srv := dovecottest.Start(t, opts)
	e := &p3Env{srv: srv, dir: t.TempDir(), imap: freePort(t), admin: freePort(t), logs: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log (tail):\n%s", p3Tail(e.logs.String(), 60))
		}
	})
	return e
}

func p3Tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func (e *p3Env) config(sources []p3Source, users []p3User) p3Config {
	return p3Config{Dir: e.dir, IMAP: e.imap, Admin: e.admin, Sources: sources, Users: users}
}

// p3StaticUser is a user with static POP3 credentials on source.
func p3StaticUser(t *testing.T, name, popPassword string, sources ...string) p3User {
	return p3User{Name: name, PasswordHash: p3IMAPHash(t), Sources: sources, SourceUser: name, SourcePassword: popPassword}
}

// ---------------------------------------------------------------------------
// 1. Byte exactness.

// Every message of the hard-case corpus, delivered at the host, arrives
// over IMAP byte for byte as Dovecot's RETR returns it, with the right
// RFC822.SIZE and UIDs in delivery order. The source talks STARTTLS to the
// host.
func TestPOP3CorpusByteExact(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Corpus-91"
	e := newP3Env(t, dovecottest.Options{TLS: true, Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	corpus := dovecottest.Corpus()
	expected := map[string][]byte{}
	var order []string
	for _, f := range corpus {
		e.srv.Deliver("alice", f.Data)
		id := p3MessageID(f.Data)
		if id == "" || expected[id] != nil {
			t.Fatalf("corpus message %s has no unique Message-ID", f.Name)
		}
		expected[id] = dovecottest.ExpectedPOP3(f.Data)
		order = append(order, id)
	}
	cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr(), TLS: "starttls", SkipVerify: true}},
		[]p3User{p3StaticUser(t, "alice", popPW, "legacy")}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()

	_, msgs := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", len(corpus), 30*time.Second)
	p3CheckMessages(t, "INBOX", msgs, expected)
	for i, m := range msgs {
		if i < len(order) && m.MsgID != order[i] {
			t.Errorf("message %d in UID order is %s, want %s (delivery order)", i+1, m.MsgID, order[i])
		}
	}
	if t.Failed() {
		for _, f := range corpus {
			t.Logf("corpus %s: %s", f.Name, f.Why)
		}
	}
	if n := len(e.srv.Messages("alice")); n != len(corpus) {
		t.Errorf("delete_policy keep: host holds %d messages, want %d", n, len(corpus))
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_messages_fetched_total", `source="legacy"`); got != float64(len(corpus)) {
		t.Errorf("imapbridge_source_messages_fetched_total = %v, want %d", got, len(corpus))
	}
	if !strings.Contains(e.logs.String(), "tls=true") {
		t.Errorf("no POP3 session logged tls=true with tls: starttls")
	}
	p3CheckNoSecrets(t, e.logs, popPW, p3IMAPPassword)
}

// ---------------------------------------------------------------------------
// 2. Authentication.

// A wrong password is refused with NO [AUTHENTICATIONFAILED]: for a static
// user (checked against the bcrypt hash) and for a passthrough user (the
// POP3 host refuses it), with the same answer; the right passthrough
// password logs in and the INBOX fills from the host.
func TestPOP3WrongPasswordRefused(t *testing.T) {
	t.Parallel()
	const alicePOP, bobPOP = "pop-Alice-13", "pop-Bob-77"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: alicePOP}, {Name: "bob", Password: bobPOP}}})
	bobMsgs := map[string][]byte{}
	for i := 1; i <= 3; i++ {
		m := p3GenMessage("bob", i, 2000)
		e.srv.Deliver("bob", m)
		bobMsgs[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
	}
	// alice is a configured static user; bob has no users entry: any user
	// the passthrough host accepts may log in.
	cfg := e.config([]p3Source{
		{Name: "static-src", Address: e.srv.Addr()},
		{Name: "pass-src", Address: e.srv.Addr(), Auth: "passthrough"},
	}, []p3User{p3StaticUser(t, "alice", alicePOP, "static-src")}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()

	var staticErr, passErr *imap.Error
	if err := p3LoginError(e.imap, "alice", "wrong-imap-pw"); !errors.As(err, &staticErr) {
		t.Fatalf("static user, wrong password: %v, want a NO response", err)
	}
	if err := p3LoginError(e.imap, "bob", "wrong-pop-pw"); !errors.As(err, &passErr) {
		t.Fatalf("passthrough user, wrong password: %v, want a NO response", err)
	}
	for _, c := range []struct {
		who string
		err *imap.Error
	}{{"static", staticErr}, {"passthrough", passErr}} {
		if c.err.Type != imap.StatusResponseTypeNo || c.err.Code != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("%s user, wrong password: %s %s %q, want NO [AUTHENTICATIONFAILED]", c.who, c.err.Type, c.err.Code, c.err.Text)
		}
	}
	if staticErr.Text != passErr.Text {
		t.Errorf("answers differ: static %q, passthrough %q (must not tell the cases apart)", staticErr.Text, passErr.Text)
	}
	if got := p3MetricSum(e.admin, "imapbridge_auth_attempts_total", `result="failure"`); got != 2 {
		t.Errorf("imapbridge_auth_attempts_total{result=failure} = %v, want 2", got)
	}
	if n := p3MetricSum(e.admin, "imapbridge_source_messages_fetched_total", `source="pass-src"`); n != 0 {
		t.Errorf("a refused passthrough login fetched %v messages", n)
	}

	// The right POP3 password: logged in, and the INBOX fills.
	_, msgs := p3WaitCount(t, e.imap, "bob", bobPOP, "INBOX", 3, 15*time.Second)
	p3CheckMessages(t, "bob's INBOX", msgs, bobMsgs)
	p3CheckNoSecrets(t, e.logs, alicePOP, bobPOP, p3IMAPPassword, "wrong-imap-pw", "wrong-pop-pw")
}

// ---------------------------------------------------------------------------
// 3. Passthrough polling survives a restart.

// With secrets.key_file (and, after a second restart, IMAPBRIDGE_SECRET_KEY
// instead), a passthrough user's mail delivered at the host while the
// bridge was down is fetched after the restart before the user logs in
// again, and is there the moment the user selects INBOX.
func TestPOP3PassthroughResumesAfterRestart(t *testing.T) {
	t.Parallel()
	const bobPOP = "pop-Resume-55"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "bob", Password: bobPOP}}})
	key := "k3y-" + strconv.FormatUint(rand.Uint64(), 36)
	keyFile := filepath.Join(e.dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	expected := map[string][]byte{}
	deliver := func(from, to int) {
		for i := from; i <= to; i++ {
			m := p3GenMessage("resume", i, 1500)
			e.srv.Deliver("bob", m)
			expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
		}
	}
	conf := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr(), Auth: "passthrough"}},
		[]p3User{{Name: "bob", Sources: []string{"legacy"}}})
	conf.KeyFile = keyFile
	cfg := conf.write(t)

	deliver(1, 2)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	_, first := p3WaitCount(t, e.imap, "bob", bobPOP, "INBOX", 2, 15*time.Second)
	p.stop()

	// Down: two messages arrive. Up again with the key file: no login.
	deliver(3, 4)
	p = p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	p3WaitFetched(t, e.admin, "legacy", 2, "fetch without a login after a restart (key_file)")
	if got := p3MetricSum(e.admin, "imapbridge_auth_attempts_total", `result="success"`); got != 0 {
		t.Fatalf("auth successes = %v before any login", got)
	}
	checkAtLogin := func(want int) []p3IMAPMsg {
		t.Helper()
		s := p3LoginIMAP(t, e.imap, "bob", bobPOP)
		defer s.c.Close()
		sel, err := s.c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if int(sel.NumMessages) != want {
			t.Errorf("right after login: %d EXISTS, want %d (mail fetched while nobody was logged in)", sel.NumMessages, want)
		}
		_, msgs, err := s.fetchAll("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	msgs := checkAtLogin(4)
	p3CheckMessages(t, "after restart with key_file", msgs, expected)
	for _, m := range first {
		if p3UIDsByID(msgs)[m.MsgID] != m.UID {
			t.Errorf("%s: UID %d after restart, was %d", m.MsgID, p3UIDsByID(msgs)[m.MsgID], m.UID)
		}
	}
	p.stop()

	// Down again; up with the key in the environment instead of a file.
	deliver(5, 5)
	conf.KeyFile = ""
	cfg = conf.write(t)
	p = p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs, "IMAPBRIDGE_SECRET_KEY="+key)
	p3WaitFetched(t, e.admin, "legacy", 1, "fetch without a login after a restart (IMAPBRIDGE_SECRET_KEY)")
	msgs = checkAtLogin(5)
	p3CheckMessages(t, "after restart with IMAPBRIDGE_SECRET_KEY", msgs, expected)
	p.stop()
	if strings.Contains(e.logs.String(), "stored credentials unusable") {
		t.Errorf("the sealed password did not open:\n%s", e.logs.String())
	}
	p3CheckNoSecrets(t, e.logs, bobPOP, key)
}

// p3WaitFetched waits until imapbridge_source_messages_fetched_total of
// source reaches want, then checks that it is want exactly.
func p3WaitFetched(t *testing.T, admin, source string, want float64, what string) {
	t.Helper()
	label := `source="` + source + `"`
	p3WaitFor(t, 15*time.Second, what, func() (bool, string) {
		n := p3MetricSum(admin, "imapbridge_source_messages_fetched_total", label)
		return n >= want, fmt.Sprintf("fetched_total %v", n)
	})
	p3WaitPolls(t, admin, 1)
	if n := p3MetricSum(admin, "imapbridge_source_messages_fetched_total", label); n != want {
		t.Errorf("%s: fetched_total %v, want %v", what, n, want)
	}
}

// ---------------------------------------------------------------------------
// 4. IDLE push.

// New mail at the host reaches a session in IDLE within about one
// idle_poll_interval. poll_interval is long (20s), so a push within the
// deadline shows that IDLE switched the user to the idle interval.
func TestPOP3IdlePush(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Idle-31"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	first := p3GenMessage("idle", 0, 1000)
	e.srv.Deliver("alice", first)
	const idleInterval = 300 * time.Millisecond
	cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr(), Poll: 20 * time.Second, IdlePoll: idleInterval}},
		[]p3User{p3StaticUser(t, "alice", popPW, "legacy")}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()
	p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 1, 15*time.Second)

	s := p3LoginIMAP(t, e.imap, "alice", p3IMAPPassword)
	if _, err := s.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := s.c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	// Let the poll that IDLE itself triggers pass.
	time.Sleep(time.Second)
	const deadline = 10 * time.Second // < poll_interval minus jitter
	var lat []time.Duration
	for i := 1; i <= 3; i++ {
		m := p3GenMessage("idle", i, 1000)
		start := time.Now()
		e.srv.Deliver("alice", m)
		want := uint32(1 + i)
		got := false
		timer := time.NewTimer(deadline)
		for !got {
			select {
			case n := <-s.exists:
				if n >= want {
					got = true
				}
			case <-timer.C:
				t.Fatalf("message %d delivered at the host not pushed to the IDLE session within %v", i, deadline)
			}
		}
		timer.Stop()
		lat = append(lat, time.Since(start))
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE end: %v", err)
	}
	t.Logf("IDLE push latency (delivery at the host → * EXISTS), idle_poll_interval %v: %v", idleInterval, lat)
	_, msgs, err := s.fetchAll("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Errorf("INBOX holds %d messages after IDLE, want 4", len(msgs))
	}
}

// ---------------------------------------------------------------------------
// 5. Deleted at the host by someone else.

// A message deleted at the host by another POP3 client stays in INBOX with
// its UID and bytes (delete_policy keep mirrors nothing).
func TestPOP3DeletedAtHostStays(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Other-29"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	expected := map[string][]byte{}
	var ids []string
	for i := 1; i <= 3; i++ {
		m := p3GenMessage("other", i, 3000)
		e.srv.Deliver("alice", m)
		expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
		ids = append(ids, p3MessageID(m))
	}
	cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr()}}, []p3User{p3StaticUser(t, "alice", popPW, "legacy")}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()
	uv, before := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 3, 15*time.Second)

	// Another POP3 client deletes message 2 (waiting out the bridge's
	// session lock if it holds one).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pop3.Dial(ctx, e.srv.Addr(), pop3.Options{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, "alice", popPW); err != nil {
		t.Fatalf("other POP3 client: %v", err)
	}
	if err := c.Dele(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p3HostIDs(e.srv, "alice"); fmt.Sprint(got) != fmt.Sprint([]string{ids[0], ids[2]}) {
		t.Fatalf("host after the other client's DELE 2: %v", got)
	}

	p3WaitPolls(t, e.admin, 3)
	uv2, after := p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
	if uv2 != uv {
		t.Errorf("UIDVALIDITY changed: %d → %d", uv, uv2)
	}
	p3CheckMessages(t, "INBOX after the host deleted one", after, expected)
	if fmt.Sprint(p3UIDsByID(after)) != fmt.Sprint(p3UIDsByID(before)) {
		t.Errorf("UIDs changed: before %v, after %v", p3UIDsByID(before), p3UIDsByID(after))
	}
	// New mail still gets the next UID.
	m := p3GenMessage("other", 4, 3000)
	e.srv.Deliver("alice", m)
	expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
	_, final := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 4, 15*time.Second)
	p3CheckMessages(t, "INBOX after new mail", final, expected)
	if u := p3UIDsByID(final)[p3MessageID(m)]; u != before[2].UID+1 {
		t.Errorf("new message got UID %d, want %d", u, before[2].UID+1)
	}
}

// ---------------------------------------------------------------------------
// 6. Restart.

// A restart keeps UIDVALIDITY and every UID, mail that arrived while the
// bridge was stopped gets new, higher UIDs, and nothing is fetched twice.
// The source uses implicit TLS.
func TestPOP3RestartKeepsUIDs(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Restart-64"
	e := newP3Env(t, dovecottest.Options{TLS: true, Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	expected := map[string][]byte{}
	deliver := func(from, to int) {
		for i := from; i <= to; i++ {
			m := p3GenMessage("restart", i, 4000)
			e.srv.Deliver("alice", m)
			expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
		}
	}
	deliver(1, 3)
	cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.TLSAddr(), TLS: "implicit", SkipVerify: true}},
		[]p3User{p3StaticUser(t, "alice", popPW, "legacy")}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	uv1, snap1 := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 3, 15*time.Second)
	p3CheckMessages(t, "first run", snap1, expected)
	p.stop()

	deliver(4, 5)
	p = p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	uv2, snap2 := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 5, 15*time.Second)
	p3CheckMessages(t, "second run", snap2, expected)
	if uv2 != uv1 {
		t.Errorf("UIDVALIDITY %d after restart, was %d", uv2, uv1)
	}
	ids2 := p3UIDsByID(snap2)
	maxOld := imap.UID(0)
	for _, m := range snap1 {
		if ids2[m.MsgID] != m.UID {
			t.Errorf("%s: UID %d after restart, was %d", m.MsgID, ids2[m.MsgID], m.UID)
		}
		maxOld = max(maxOld, m.UID)
	}
	for _, m := range snap2[3:] {
		if m.UID <= maxOld {
			t.Errorf("new message %s got UID %d, not above the old %d", m.MsgID, m.UID, maxOld)
		}
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_messages_fetched_total", `source="legacy"`); got != 2 {
		t.Errorf("after restart fetched_total = %v, want 2 (only the new ones)", got)
	}
	p.stop()

	// A third start with nothing new changes nothing.
	p = p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()
	p3WaitPolls(t, e.admin, 2)
	uv3, snap3 := p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
	if uv3 != uv1 || fmt.Sprint(p3UIDsByID(snap3)) != fmt.Sprint(ids2) {
		t.Errorf("third run: UIDVALIDITY %d UIDs %v, want %d %v", uv3, p3UIDsByID(snap3), uv1, ids2)
	}
	if got := p3MetricSum(e.admin, "imapbridge_source_messages_fetched_total", `source="legacy"`); got != 0 {
		t.Errorf("third run fetched %v messages, want 0", got)
	}
	if got := p3MetricSum(e.admin, "imapbridge_store_uidvalidity_resets_total"); got != 0 {
		t.Errorf("imapbridge_store_uidvalidity_resets_total = %v", got)
	}
}

// ---------------------------------------------------------------------------
// 7. Delete policies.

func TestPOP3DeletePolicies(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Policy-48"
	setup := func(t *testing.T, policy string, after time.Duration, n int) (*p3Env, *bridgeProc, map[string][]byte, []string) {
		t.Helper()
		e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
		expected := map[string][]byte{}
		var ids []string
		for i := 1; i <= n; i++ {
			m := p3GenMessage(policy, i, 2500)
			e.srv.Deliver("alice", m)
			expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
			ids = append(ids, p3MessageID(m))
		}
		cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr(), DeletePolicy: policy, DeleteAfter: after}},
			[]p3User{p3StaticUser(t, "alice", popPW, "legacy")}).write(t)
		p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
		t.Cleanup(p.stop)
		return e, p, expected, ids
	}

	t.Run("keep", func(t *testing.T) {
		t.Parallel()
		e, _, expected, ids := setup(t, "keep", 0, 3)
		_, msgs := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 3, 15*time.Second)
		p3CheckMessages(t, "INBOX", msgs, expected)
		p3WaitPolls(t, e.admin, 3)
		if got := p3HostIDs(e.srv, "alice"); fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("keep: host holds %v, want %v", got, ids)
		}
		if got := p3MetricSum(e.admin, "imapbridge_source_messages_deleted_total"); got != 0 {
			t.Errorf("keep: deleted_total = %v", got)
		}
	})

	t.Run("after_sync", func(t *testing.T) {
		t.Parallel()
		e, _, expected, _ := setup(t, "after_sync", 0, 3)
		p3WaitFor(t, 15*time.Second, "host drained", func() (bool, string) {
			ids := p3HostIDs(e.srv, "alice")
			return len(ids) == 0, fmt.Sprint(ids)
		})
		_, msgs := p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
		p3CheckMessages(t, "INBOX", msgs, expected)
		// The host empties at its QUIT; the bridge counts the deletions once
		// it has read the QUIT reply and recorded them, a moment later.
		p3WaitFor(t, 15*time.Second, "deleted_total = 3", func() (bool, string) {
			got := p3MetricSum(e.admin, "imapbridge_source_messages_deleted_total")
			return got == 3, fmt.Sprint(got)
		})
	})

	t.Run("on_expunge", func(t *testing.T) {
		t.Parallel()
		e, _, expected, ids := setup(t, "on_expunge", 0, 3)
		_, msgs := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 3, 15*time.Second)
		p3CheckMessages(t, "INBOX", msgs, expected)
		uids := p3UIDsByID(msgs)
		p3WaitPolls(t, e.admin, 2)
		if got := p3HostIDs(e.srv, "alice"); len(got) != 3 {
			t.Fatalf("on_expunge deleted before any expunge: host holds %v", got)
		}
		s := p3LoginIMAP(t, e.imap, "alice", p3IMAPPassword)
		if _, err := s.c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		// Message 1: \Deleted + EXPUNGE. Message 2: MOVE to Trash.
		if err := s.c.Store(imap.UIDSetNum(uids[ids[0]]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.Expunge().Collect(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.Move(imap.UIDSetNum(uids[ids[1]]), "Trash").Wait(); err != nil {
			t.Fatal(err)
		}
		p3WaitFor(t, 15*time.Second, "the expunged message deleted at the host", func() (bool, string) {
			got := p3HostIDs(e.srv, "alice")
			return len(got) < 3, fmt.Sprint(got)
		})
		p3WaitPolls(t, e.admin, 3)
		if got := p3HostIDs(e.srv, "alice"); fmt.Sprint(got) != fmt.Sprint(ids[1:]) {
			t.Errorf("on_expunge: host holds %v, want %v (only the expunged one gone; the one moved to Trash kept)", got, ids[1:])
		}
		_, inbox, err := s.fetchAll("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		p3CheckMessages(t, "INBOX", inbox, map[string][]byte{ids[2]: expected[ids[2]]})
		_, trash, err := s.fetchAll("Trash")
		if err != nil {
			t.Fatal(err)
		}
		p3CheckMessages(t, "Trash", trash, map[string][]byte{ids[1]: expected[ids[1]]})
		if got := p3MetricSum(e.admin, "imapbridge_source_messages_deleted_total"); got != 1 {
			t.Errorf("on_expunge: deleted_total = %v, want 1", got)
		}
	})

	t.Run("after_days", func(t *testing.T) {
		t.Parallel()
		const after = time.Second
		e, _, expected, _ := setup(t, "after_days", after, 0)
		p3WaitPolls(t, e.admin, 1)
		// Deliver at 0.6s past a wall-clock second. The first poll after
		// that stores the message within about 0.35s, in the same wall-clock
		// second. A deletion at least `after` after storing cannot then be
		// seen earlier than `after` after delivery.
		now := time.Now()
		next := now.Truncate(time.Second).Add(600 * time.Millisecond)
		if next.Before(now) {
			next = next.Add(time.Second)
		}
		time.Sleep(time.Until(next))
		m := p3GenMessage("after_days", 1, 2500)
		delivered := time.Now()
		e.srv.Deliver("alice", m)
		expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)

		// Watch the host and the INBOX until the message is gone at the host.
		s := p3LoginIMAP(t, e.imap, "alice", p3IMAPPassword)
		if _, err := s.c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		var stored, gone time.Time
		p3WaitFor(t, 15*time.Second, "after_days deletes at the host", func() (bool, string) {
			if stored.IsZero() {
				if err := s.c.Noop().Wait(); err == nil && s.c.Mailbox().NumMessages == 1 {
					stored = time.Now()
				}
			}
			if len(p3HostIDs(e.srv, "alice")) == 0 {
				gone = time.Now()
				return true, ""
			}
			return false, fmt.Sprintf("in INBOX: %v", !stored.IsZero())
		})
		if stored.IsZero() {
			t.Errorf("after_days: deleted at the host before the INBOX showed it")
		}
		t.Logf("after_days %v: in INBOX %v after delivery, gone from the host %v after delivery",
			after, stored.Sub(delivered).Round(time.Millisecond), gone.Sub(delivered).Round(time.Millisecond))
		if d := gone.Sub(delivered); d < after {
			t.Errorf("after_days with delete_after %v: deleted at the host %v after delivery, so less than %v after it was stored", after, d.Round(time.Millisecond), after)
		}
		_, msgs, err := s.fetchAll("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		p3CheckMessages(t, "INBOX", msgs, expected)
	})
}

// ---------------------------------------------------------------------------
// 8. Crashes during an after_sync drain.

// The bridge drains a maildrop of 60 messages (a fifth of them 1.5-2.5
// MiB, about 24 MiB in all) with after_sync while it is killed with SIGKILL
// in 6-8 rounds at random moments (0-800ms after it is ready; its first
// poll starts at once) and restarted. The host is reached through a faultProxy that only
// limits the rate (12 MB/s), so that a drain takes seconds on any machine
// and the kills land in the middle of it. Two more kills are placed: while
// the reply to DELE and then the reply to QUIT is held back. At the end
// every message is in INBOX exactly once and byte for byte, and the host
// is empty.
func TestPOP3CrashDuringAfterSyncDrain(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Crash-83"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0x1ab))
	t.Logf("random seed %d", seed)
	expected := map[string][]byte{}
	const total = 60
	for i := 1; i <= total; i++ {
		size := 2000 + rng.IntN(30000)
		if i%5 == 3 {
			size = 3<<19 + rng.IntN(1<<20)
		}
		m := p3GenMessage("crash", i, size)
		e.srv.Deliver("alice", m)
		expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
	}
	proxy := newFaultProxy(t, e.srv.Addr())
	proxy.setRate(12 << 20)
	cfg := e.config([]p3Source{{Name: "legacy", Address: proxy.Addr(), DeletePolicy: "after_sync", Timeout: 5 * time.Second}},
		[]p3User{p3StaticUser(t, "alice", popPW, "legacy")})
	cfg.LogLevel = "info"
	path := cfg.write(t)

	maxRounds := 6 + rng.IntN(3) // and two placed kills after them
	rounds, midSync := 0, 0
	for r := 1; r <= maxRounds; r++ {
		p := p3LaunchBridge(t, path, e.imap, e.admin, e.logs)
		d := time.Duration(rng.IntN(800)) * time.Millisecond
		time.Sleep(d)
		stored := p3MetricSum(e.admin, "imapbridge_store_messages")
		p3KillBridge(p)
		rounds++
		left := len(e.srv.Messages("alice"))
		if stored >= 0 && stored < total && left > 0 {
			midSync++
		}
		t.Logf("round %d: SIGKILL %v after ready; the store held %v messages just before, the host holds %d after", r, d, stored, left)
		if left == 0 {
			t.Logf("host drained before round %d ended; no more rounds", r)
			break
		}
	}
	if midSync == 0 {
		t.Errorf("no SIGKILL landed in the middle of the drain (make the maildrop bigger)")
	}
	proxy.setRate(0)
	// Two kills at the moments random ones rarely hit: everything stored
	// and DELE sent but unanswered (no QUIT yet: the host deletes
	// nothing); then QUIT sent and committed by the host but its reply not
	// yet read (the bridge does not know it was).
	for _, cmd := range []string{"DELE", "QUIT"} {
		rule := &faultRule{Cmd: cmd, Action: faultStall, Dur: time.Minute}
		proxy.addRule(rule)
		p := p3LaunchBridge(t, path, e.imap, e.admin, e.logs)
		select {
		case <-rule.started:
		case <-time.After(30 * time.Second):
			t.Fatalf("the bridge never sent %s", cmd)
		}
		time.Sleep(100 * time.Millisecond)
		stored := p3MetricSum(e.admin, "imapbridge_store_messages")
		p3KillBridge(p)
		rounds++
		left := len(e.srv.Messages("alice"))
		t.Logf("round %d: SIGKILL while the reply to %s was held back; the store held %v messages, the host holds %d after", rounds, cmd, stored, left)
		if want := map[string]int{"DELE": total, "QUIT": 0}[cmd]; left != want {
			t.Errorf("killed before the reply to %s: the host holds %d messages, want %d", cmd, left, want)
		}
	}
	p := p3LaunchBridge(t, path, e.imap, e.admin, e.logs)
	defer p.stop()
	p3WaitFor(t, 60*time.Second, "host drained after the crashes", func() (bool, string) {
		n := len(e.srv.Messages("alice"))
		return n == 0, fmt.Sprintf("host holds %d", n)
	})
	_, msgs := p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
	p3CheckMessages(t, "INBOX after the crashes", msgs, expected)
	t.Logf("%d SIGKILL rounds (%d mid-drain); INBOX holds %d messages (want %d, each once), host holds %d",
		rounds, midSync, len(msgs), total, len(e.srv.Messages("alice")))
}

// ---------------------------------------------------------------------------
// Passthrough logins when the host is in trouble.

// A passthrough login is a credential check at the POP3 host. When the
// host cannot be reached the password was not refused: the answer must be
// NO [UNAVAILABLE], not NO [AUTHENTICATIONFAILED] (which makes clients ask
// the user for a new password and counts towards the lock-out). When the
// host answers PASS with -ERR [IN-USE] (RFC 2449: "the authentication was
// successful, but the user's maildrop is currently in use", here another
// POP3 client, as during a migration) the password is right and the login
// must succeed; mail follows once the maildrop is free. But a "busy" reply
// that comes before the password was checked proves nothing: -ERR [IN-USE]
// to USER (RFC 2449 allows it there), or a PASS refusal without response
// code whose text speaks of a lock ("account locked" after failed
// attempts). A wrong password must not log in on such a reply.
func TestPOP3PassthroughLoginHostTrouble(t *testing.T) {
	t.Parallel()
	const bobPOP = "pop-Trouble-21"
	// carol and dave have no users entry: passthrough lets in whoever the
	// host accepts. Each busy-reply case has its own user, so that a
	// login wrongly let in (which starts polling) does not touch the others.
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "bob", Password: bobPOP},
		{Name: "carol", Password: "pop-Carol-5"}, {Name: "dave", Password: "pop-Dave-8"}}})
	expected := map[string][]byte{}
	for i := 1; i <= 2; i++ {
		m := p3GenMessage("trouble", i, 1500)
		e.srv.Deliver("bob", m)
		expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
	}
	proxy := newFaultProxy(t, e.srv.Addr())
	// timeout above Dovecot's fixed 10s wait for the session lock, so the
	// bridge sees its -ERR [IN-USE].
	cfg := e.config([]p3Source{{Name: "legacy", Address: proxy.Addr(), Auth: "passthrough", Timeout: 15 * time.Second}},
		[]p3User{{Name: "bob", Sources: []string{"legacy"}}}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()

	for _, c := range []struct{ name, user, cmd, reply string }{
		{"IN-USE to USER", "carol", "USER", "-ERR [IN-USE] Mailbox is locked by another POP3 session."},
		{"lock text to PASS", "dave", "PASS", "-ERR Account locked after too many failed logins"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rule := &faultRule{Cmd: c.cmd, User: c.user, Action: faultERR, Reply: c.reply}
			proxy.addRule(rule)
			err := p3LoginError(e.imap, c.user, "wrong-password")
			if proxy.Fired(rule) != 1 {
				t.Fatalf("the host's %q was never sent", c.reply)
			}
			if err == nil {
				t.Errorf("LOGIN with a WRONG password succeeded because the host answered %s with %q: that reply does not say the password is right", c.cmd, c.reply)
			} else {
				t.Logf("wrong password, host answered %s with %q: %v", c.cmd, c.reply, err)
			}
		})
	}

	t.Run("host unreachable", func(t *testing.T) {
		proxy.setDown(time.Hour)
		err := p3LoginError(e.imap, "bob", bobPOP)
		proxy.setDown(0)
		var ierr *imap.Error
		switch {
		case !errors.As(err, &ierr):
			t.Fatalf("LOGIN with the host unreachable: %v, want NO [UNAVAILABLE]", err)
		case ierr.Code != imap.ResponseCodeUnavailable:
			t.Errorf("LOGIN with the right password while the POP3 host is unreachable: %s [%s] %s; want NO [UNAVAILABLE]: the password was not refused",
				ierr.Type, ierr.Code, ierr.Text)
		}
	})

	t.Run("maildrop in use", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		other, err := pop3.Dial(ctx, e.srv.Addr(), pop3.Options{Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Login(ctx, "bob", bobPOP); err != nil {
			t.Fatalf("other POP3 client: %v", err)
		}
		start := time.Now()
		err = p3LoginError(e.imap, "bob", bobPOP)
		took := time.Since(start)
		other.Quit(ctx)
		if err != nil {
			t.Errorf("LOGIN with the right password while another POP3 client holds the maildrop: %v (after %v); want OK: the host's -ERR [IN-USE] to PASS says the password is right",
				err, took.Round(time.Millisecond))
		}
		if !strings.Contains(e.logs.String(), "[IN-USE]") {
			t.Errorf("the bridge never saw -ERR [IN-USE]: the maildrop was not in use as the test meant")
		}
	})

	t.Run("then", func(t *testing.T) {
		_, msgs := p3WaitCount(t, e.imap, "bob", bobPOP, "INBOX", 2, 20*time.Second)
		p3CheckMessages(t, "bob's INBOX", msgs, expected)
	})
	p3CheckNoSecrets(t, e.logs, bobPOP)
}

// ---------------------------------------------------------------------------
// Shutdown.

// SIGTERM stops the bridge cleanly (exit 0, "stopped") and a clean stop
// logs nothing at level ERROR: an operator alerting on ERROR lines must not
// be paged for every restart.
func TestPOP3ShutdownLogsNoError(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Stop-12"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	e.srv.Deliver("alice", p3GenMessage("stop", 1, 1000))
	cfg := e.config([]p3Source{{Name: "legacy", Address: e.srv.Addr()}}, []p3User{p3StaticUser(t, "alice", popPW, "legacy")}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 1, 15*time.Second)
	p.stop() // fails the test unless the exit status is 0
	out := e.logs.String()
	if !strings.Contains(out, `msg=stopped`) {
		t.Errorf("no \"stopped\" line after SIGTERM")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("clean shutdown logged an error: %s", line)
		}
	}
}

// ---------------------------------------------------------------------------
// Password change at the host.

// A passthrough user changes the password at the POP3 host (emulated by a
// faultProxy that maps the new password to the real one and refuses the
// old). Polling with the old password now fails; once the user logs in
// with the new one, the bridge must poll with it, and mail delivered since
// arrives. The old password no longer logs in.
func TestPOP3PassthroughPasswordChange(t *testing.T) {
	t.Parallel()
	const oldPW, newPW = "pop-Old-36", "pop-New-94"
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "bob", Password: oldPW}}})
	expected := map[string][]byte{}
	deliver := func(i int) {
		m := p3GenMessage("pwchange", i, 1500)
		e.srv.Deliver("bob", m)
		expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
	}
	deliver(1)
	proxy := newFaultProxy(t, e.srv.Addr())
	cfg := e.config([]p3Source{{Name: "legacy", Address: proxy.Addr(), Auth: "passthrough"}},
		[]p3User{{Name: "bob", Sources: []string{"legacy"}}}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()
	p3WaitCount(t, e.imap, "bob", oldPW, "INBOX", 1, 15*time.Second)

	// The password changes at the host.
	proxy.addRule(&faultRule{Cmd: "PASS", User: "bob", Action: faultEdit, Times: 1 << 30,
		Edit: func(arg string) (string, string) {
			switch arg {
			case newPW:
				return oldPW, ""
			case oldPW:
				return "", "-ERR [AUTH] Authentication failed."
			}
			return arg, ""
		}})
	deliver(2)
	p3WaitFor(t, 15*time.Second, "a poll refused with the old password", func() (bool, string) {
		n := p3MetricSum(e.admin, "imapbridge_source_polls_total", `result="auth"`)
		return n >= 1, fmt.Sprintf("auth-refused polls: %v", n)
	})
	var ierr *imap.Error
	if err := p3LoginError(e.imap, "bob", oldPW); !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("LOGIN with the old password after the change: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	s := p3LoginIMAP(t, e.imap, "bob", newPW)
	if _, err := s.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.c.Mailbox().NumMessages < 2 && time.Now().Before(deadline) {
		if err := s.c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := s.c.Mailbox().NumMessages; n != 2 {
		t.Fatalf("10s after a login with the new password, INBOX holds %d messages, want 2: polling still uses the old password (%v polls refused)",
			n, p3MetricSum(e.admin, "imapbridge_source_polls_total", `result="auth"`))
	}
	_, msgs, err := s.fetchAll("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	p3CheckMessages(t, "bob's INBOX", msgs, expected)
	p3CheckNoSecrets(t, e.logs, oldPW, newPW)
}
