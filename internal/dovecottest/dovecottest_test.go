package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/testtool"
)

// rawSession is a deliberately small POP3 conversation for testing the
// harness itself without the pop3 package.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string, cfg *tls.Config) *rawSession {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		conn = tls.Client(conn, cfg)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { conn.Close() })
	s := &rawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := s.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return s
}

func (s *rawSession) line() string {
	s.t.Helper()
	l, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (s *rawSession) cmd(c string) string {
	s.t.Helper()
	if _, err := s.conn.Write([]byte(c + "\r\n")); err != nil {
		s.t.Fatal(err)
	}
	return s.line()
}

// multi reads a multi-line body up to the terminating "." line and undoes
// dot-stuffing, byte for byte.
func (s *rawSession) multi() []byte {
	s.t.Helper()
	var out bytes.Buffer
	for {
		l, err := s.r.ReadBytes('\n')
		if err != nil {
			s.t.Fatalf("read body: %v", err)
		}
		if string(l) == ".\r\n" {
			return out.Bytes()
		}
		if l[0] == '.' {
			l = l[1:]
		}
		out.Write(l)
	}
}

func (s *rawSession) login(user, pass string) {
	s.t.Helper()
	if r := s.cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		s.t.Fatalf("USER: %q", r)
	}
	if r := s.cmd("PASS " + pass); !strings.HasPrefix(r, "+OK") {
		s.t.Fatalf("PASS: %q", r)
	}
}

func TestStartDeliverRetrieve(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{Users: []User{{Name: "alice", Password: "pw-alice"}}})
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %q, want 127.0.0.1:port", srv.Addr())
	}
	if srv.TLSAddr() != "" || srv.CertPool() != nil {
		t.Fatalf("TLS off but TLSAddr=%q pool=%v", srv.TLSAddr(), srv.CertPool())
	}
	msgs := [][]byte{
		[]byte("Subject: one\n\nfirst\n"),
		[]byte("Subject: two\n\nsecond\n.\n"),
		[]byte("Subject: three\n\nthird\n"),
	}
	for _, m := range msgs {
		srv.Deliver("alice", m)
	}
	got := srv.Messages("alice")
	if len(got) != 3 {
		t.Fatalf("Messages = %d, want 3", len(got))
	}
	for i, m := range got {
		if !bytes.Equal(m.Data, msgs[i]) {
			t.Errorf("Messages[%d] = %q, want %q", i, m.Data, msgs[i])
		}
	}

	s := dialRaw(t, srv.Addr(), nil)
	s.login("alice", "pw-alice")
	total := 0
	for _, m := range msgs {
		total += len(ExpectedPOP3(m))
	}
	if r, want := s.cmd("STAT"), fmt.Sprintf("+OK 3 %d", total); r != want {
		t.Fatalf("STAT = %q, want %q", r, want)
	}
	for i, m := range msgs {
		if r := s.cmd("RETR " + strconv.Itoa(i+1)); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("RETR %d: %q", i+1, r)
		}
		if body, want := s.multi(), ExpectedPOP3(m); !bytes.Equal(body, want) {
			t.Fatalf("RETR %d = %q, want %q (delivery order must be message order)", i+1, body, want)
		}
	}
	if r := s.cmd("DELE 2"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("DELE: %q", r)
	}
	if n := len(srv.Messages("alice")); n != 3 {
		t.Fatalf("before QUIT the maildrop holds %d messages, want 3", n)
	}
	if r := s.cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("QUIT: %q", r)
	}
	got = srv.Messages("alice")
	if len(got) != 2 || !bytes.Equal(got[0].Data, msgs[0]) || !bytes.Equal(got[1].Data, msgs[2]) {
		t.Fatalf("after DELE 2 + QUIT: %d messages %q", len(got), got)
	}
}

func TestAddUserWhileRunning(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	s := dialRaw(t, srv.Addr(), nil)
	s.cmd("USER late")
	if r := s.cmd("PASS pw"); r != "-ERR [AUTH] Authentication failed." {
		t.Fatalf("unknown user: PASS = %q", r)
	}
	srv.AddUser("late", "pw")
	srv.AddUser("later", "pw2")
	srv.Deliver("later", []byte("Subject: x\n\nx\n"))
	s = dialRaw(t, srv.Addr(), nil)
	s.login("later", "pw2")
	if r := s.cmd("STAT"); r != "+OK 1 17" {
		t.Fatalf("STAT = %q", r)
	}
	s = dialRaw(t, srv.Addr(), nil)
	s.login("late", "pw")
	if r := s.cmd("STAT"); r != "+OK 0 0" {
		t.Fatalf("STAT = %q", r)
	}
}

func TestCorpusAsDelivered(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{Users: []User{{Name: "c", Password: "p"}}})
	corpus := Corpus()
	for _, f := range corpus {
		srv.Deliver("c", f.Data)
	}
	s := dialRaw(t, srv.Addr(), nil)
	s.login("c", "p")
	if r := s.cmd("LIST"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("LIST: %q", r)
	}
	sizes := strings.Split(strings.TrimSpace(string(s.multi())), "\r\n")
	if len(sizes) != len(corpus) {
		t.Fatalf("LIST has %d lines, want %d", len(sizes), len(corpus))
	}
	for i, f := range corpus {
		t.Run(f.Name, func(t *testing.T) {
			if r := s.cmd("RETR " + strconv.Itoa(i+1)); !strings.HasPrefix(r, "+OK") {
				t.Fatalf("RETR: %q", r)
			}
			body := s.multi()
			want := ExpectedPOP3(f.Data)
			if !bytes.Equal(body, want) {
				t.Fatalf("%s: RETR returned %d bytes, ExpectedPOP3 says %d; first difference at %d",
					f.Why, len(body), len(want), firstDiff(body, want))
			}
			// LIST counts the CRLF size of the message as stored; the CRLF
			// Dovecot appends to a message without a final line ending is
			// not part of it.
			wantSize := len(want)
			if !bytes.HasSuffix(f.Data, []byte("\n")) {
				wantSize -= 2
			}
			if sizes[i] != fmt.Sprintf("%d %d", i+1, wantSize) {
				t.Errorf("LIST line %q, want \"%d %d\"", sizes[i], i+1, wantSize)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestTLSPorts(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{TLS: true, APOP: true, Users: []User{{Name: "tls", Password: "pw"}}})
	if srv.TLSAddr() == "" || srv.CertPool() == nil {
		t.Fatal("TLS on but no TLS address or pool")
	}
	// implicit TLS, certificate verified against CertPool
	s := dialRaw(t, srv.TLSAddr(), srv.TLSConfig())
	s.login("tls", "pw")
	if r := s.cmd("STAT"); r != "+OK 0 0" {
		t.Fatalf("STAT over pop3s = %q", r)
	}
	if r := s.cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("QUIT = %q", r)
	}
	// STLS on the plain port
	s = dialRaw(t, srv.Addr(), nil)
	if r := s.cmd("CAPA"); r != "+OK" {
		t.Fatalf("CAPA = %q", r)
	}
	if caps := string(s.multi()); !strings.Contains(caps, "STLS\r\n") {
		t.Fatalf("CAPA lacks STLS: %q", caps)
	}
	if r := s.cmd("STLS"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("STLS = %q", r)
	}
	tc := tls.Client(s.conn, srv.TLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake after STLS: %v", err)
	}
	s.conn, s.r = tc, bufio.NewReader(tc)
	s.login("tls", "pw")
	if r := s.cmd("NOOP"); r != "+OK" {
		t.Fatalf("NOOP = %q", r)
	}
}

func TestAPOPGreeting(t *testing.T) {
	t.Parallel()
	for _, apop := range []bool{false, true} {
		t.Run(fmt.Sprint("apop=", apop), func(t *testing.T) {
			t.Parallel()
			srv := Start(t, Options{APOP: apop})
			conn, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			g, _ := bufio.NewReader(conn).ReadString('\n')
			if has := strings.Contains(g, "<") && strings.Contains(g, "@"); has != apop {
				t.Fatalf("greeting %q: timestamp present=%v, want %v", g, has, apop)
			}
		})
	}
}

func TestStopEndsDovecot(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	pid := srv.PID()
	if pid <= 0 {
		t.Fatalf("PID = %d", pid)
	}
	srv.Stop()
	srv.Stop() // idempotent
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("after Stop, kill(%d, 0) = %v, want ESRCH", pid, err)
	}
	if _, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		t.Fatalf("after Stop, %s still accepts connections", srv.Addr())
	}
	if !strings.Contains(srv.Log(), "starting up for pop3") {
		t.Fatalf("log lacks the start-up line:\n%s", srv.Log())
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	testtool.Require(t, Available(), InstallCommand)
	_, err := start(t, Options{ExtraConfig: "this_setting_does_not_exist = 1"})
	if err == nil {
		t.Fatal("start with a bad setting succeeded")
	}
	if !strings.Contains(err.Error(), "dovecot exited during start-up") ||
		!strings.Contains(err.Error(), "this_setting_does_not_exist") {
		t.Fatalf("error does not carry Dovecot's complaint:\n%v", err)
	}
}

func TestLongTestNameGetsShortBaseDir(t *testing.T) {
	t.Parallel()
	t.Run(strings.Repeat("very_long_subtest_name_", 6), func(t *testing.T) {
		srv := Start(t, Options{})
		if len(filepath.Join(srv.BaseDir(), "anvil-auth-penalty")) > 100 {
			t.Fatalf("base_dir %q too long for unix sockets", srv.BaseDir())
		}
		if _, err := os.Stat(filepath.Join(srv.BaseDir(), "master.pid")); err != nil {
			t.Fatalf("master.pid: %v", err)
		}
	})
}

func TestExpectedPOP3(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a\n", "a\r\n"},
		{"a\r\n", "a\r\n"},
		{"a", "a\r\n"},
		{"\n\n", "\r\n\r\n"},
		{"a\rb\n", "a\rb\r\n"},
		{"x\r", "x\r\r\n"},
	} {
		if got := string(ExpectedPOP3([]byte(tc.in))); got != tc.want {
			t.Errorf("ExpectedPOP3(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCorpusShape(t *testing.T) {
	names := map[string]bool{}
	for _, f := range Corpus() {
		if names[f.Name] {
			t.Errorf("duplicate fixture name %q", f.Name)
		}
		names[f.Name] = true
		if f.Why == "" || len(f.Data) == 0 {
			t.Errorf("fixture %q lacks Why or Data", f.Name)
		}
	}
	byName := map[string][]byte{}
	for _, f := range Corpus() {
		byName[f.Name] = ExpectedPOP3(f.Data)
	}
	if len(byName["base64-3mb"]) < 4<<20 {
		t.Errorf("base64-3mb is %d bytes, want > 4 MiB", len(byName["base64-3mb"]))
	}
	// The CRLF form has "." lines at 4096, 8192, 12288.
	d := byName["dot-at-4k-offsets"]
	for _, off := range []int{4096, 8192, 12288} {
		if string(d[off-2:off+3]) != "\r\n.\r\n" {
			t.Errorf("dot-at-4k-offsets: bytes at %d = %q, want a \".\" line", off, d[off-2:off+3])
		}
	}
	if !bytes.Contains(byName["line-4096-then-dot"], []byte("\n"+pattern(4096)+"\r\n.\r\n")) {
		t.Error("line-4096-then-dot lacks a 4,096-byte line followed by a dot line")
	}
}

// recordingTB stands in for a test so that Start's Skipf and Fatalf can be
// observed; like the real ones they do not return.
type recordingTB struct {
	testing.TB
	skipped, fatal string
}

type stopped struct{}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func TestMissingDovecot(t *testing.T) {
	saved := lookupDovecot
	t.Cleanup(func() { lookupDovecot = saved })
	lookupDovecot = func() (string, error) {
		return "", errors.New("dovecot is not installed (no dovecot binary in PATH or /usr/sbin)")
	}
	const want = "dovecottest: dovecot is not installed (no dovecot binary in PATH or /usr/sbin); install it with: apt-get install -y dovecot-pop3d"
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		r := &recordingTB{TB: t}
		func() {
			defer func() {
				if v := recover(); v != nil {
					if _, ok := v.(stopped); !ok {
						panic(v)
					}
				}
			}()
			Start(r, Options{})
			t.Fatalf("CI=%q: Start returned without dovecot", ci)
		}()
		if ci == "true" && (r.fatal != want || r.skipped != "") {
			t.Errorf("CI=true: fatal %q, skipped %q; want fatal %q", r.fatal, r.skipped, want)
		}
		if ci == "" && (r.skipped != want || r.fatal != "") {
			t.Errorf("CI unset: skipped %q, fatal %q; want skipped %q", r.skipped, r.fatal, want)
		}
	}
}
