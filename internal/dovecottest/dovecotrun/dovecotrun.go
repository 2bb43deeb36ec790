// Package dovecotrun starts and stops a real Dovecot (Debian's
// dovecot-pop3d, and dovecot-imapd for IMAP) on free ports of 127.0.0.1,
// for the tests (through dovecottest, which adds the testing.TB glue) and
// for the bench alike. It imports no testing package: the bench binary
// links it.
//
// Launch writes a private configuration under Options.Dir (base_dir,
// state_dir, log file, a passwd-file passdb/userdb and one Maildir per
// user), runs `dovecot -F`, waits until every port answers, and Stop
// stops it by PID:
//
//	srv, err := dovecotrun.Launch(dovecotrun.Options{
//		Dir:   dir,
//		Users: []dovecotrun.User{{Name: "alice", Password: "secret"}},
//	})
//	defer srv.Stop()
//	name, err := srv.Deliver("alice", []byte("Subject: hi\n\nhello\n"))
//
// New and Start split Launch in two, for a caller that fills the
// Maildirs before Dovecot starts (the bench).
//
// The harness works as root (the mail processes then run as the
// unprivileged user "nobody", and Dovecot's own users "dovecot" and
// "dovenull", created by the Debian package, run the internal and login
// processes) and as an ordinary user (every process then runs as that
// user).
package dovecotrun

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// InstallCommand is the command that installs the Dovecot POP3 server on
// Debian and Ubuntu; the harness names it when Dovecot is missing.
const InstallCommand = "apt-get install -y dovecot-pop3d"

// User is a mail account of the server.
type User struct {
	Name     string
	Password string
	// Mail overrides the user's mail location (userdb_mail), e.g. an
	// mbox INBOX for IMAP; "" is the Maildir under the user's home.
	Mail string
}

// Options configure a server. The zero value with a Dir is a plain-text
// POP3 server with no users.
type Options struct {
	// Dir holds everything the harness writes (configuration, log,
	// homes); it is created if missing. Required.
	Dir string

	// Label names the server in its configuration's first line (the
	// test's name, "bench").
	Label string

	// Binary is the dovecot binary; "" finds it (FindBinary).
	Binary string

	// Users are created before the server starts. More can be added with
	// Server.AddUser at any time.
	Users []User

	// IMAP serves IMAP too (Server.IMAPAddr); needs dovecot-imapd.
	IMAP bool

	// TLS generates a self-signed certificate for 127.0.0.1 and localhost,
	// offers STLS on the plain port and opens an implicit-TLS (pop3s) port.
	// Server.CertPool trusts the certificate.
	TLS bool

	// APOP enables the APOP mechanism: the greeting then carries a
	// timestamp. (The passdb always stores plain-text passwords, which APOP
	// needs.)
	APOP bool

	// NoSessionLock turns pop3_lock_session off. By default a second POP3
	// session on a maildrop in use is refused with "-ERR [IN-USE]" (after
	// Dovecot's fixed ten-second lock wait).
	NoSessionLock bool

	// UIDLFormat overrides pop3_uidl_format (default "%08Xu%08Xv"). "%08Xv"
	// makes every message of a maildrop share one UIDL: a broken server on
	// cue.
	UIDLFormat string

	// ExtraConfig is appended verbatim to the generated dovecot.conf.
	ExtraConfig string

	// StartTimeout bounds the wait for the first greeting (default 15s).
	StartTimeout time.Duration

	// Logf, if set, is told what Stop had to do beyond SIGTERM.
	Logf func(format string, args ...any)
}

// Server is a Dovecot, prepared (New) or running (Start). Its methods may
// be called from any goroutine.
type Server struct {
	opts Options
	dir  string // root of everything the harness writes
	base string // Dovecot's base_dir (may live outside dir: socket paths are short)
	// shortDir is a directory made for base when dir is too deep; Stop
	// removes it.
	shortDir string

	addr     string
	tlsAddr  string
	imapAddr string
	pool     *x509.CertPool

	mailUID, mailGID int
	asRoot           bool
	epoch            int64

	mu      sync.Mutex
	users   map[string]string // name → password
	seq     int
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	stopped bool
}

// Launch prepares and starts a server: New, then Start.
func Launch(ctx context.Context, opts Options) (*Server, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// New prepares a server: the directory layout, the certificate and the
// users with their (empty) Maildirs. Nothing runs until Start.
func New(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("dovecotrun: no directory given (Options.Dir)")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 15 * time.Second
	}
	if opts.Binary == "" {
		bin, err := FindBinary()
		if err != nil {
			return nil, fmt.Errorf("dovecotrun: %w", err)
		}
		opts.Binary = bin
	}
	s := &Server{
		opts:   opts,
		dir:    opts.Dir,
		users:  map[string]string{},
		asRoot: os.Geteuid() == 0,
		epoch:  time.Now().Unix(),
	}
	if err := os.MkdirAll(opts.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("dovecotrun: %w", err)
	}
	if err := s.prepare(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("dovecotrun: %w", err)
	}
	for _, u := range opts.Users {
		if err := s.addUser(u); err != nil {
			s.Stop()
			return nil, fmt.Errorf("dovecotrun: add user %q: %w", u.Name, err)
		}
	}
	return s, nil
}

// Start starts Dovecot and waits until it answers on every port (or ctx
// ends). The ports are picked free and handed to Dovecot; another process
// may take one in between, so a start that fails on a busy port is retried.
func (s *Server) Start(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = s.launch(ctx)
		if err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("dovecotrun: %w", err)
	}
	return nil
}

// Available reports whether the dovecot binary bin has the POP3 server
// installed beside it.
func Available(bin string) error {
	libexec := filepath.Join(filepath.Dir(filepath.Dir(bin)), "lib", "dovecot")
	for _, name := range []string{"pop3", "pop3-login"} {
		if _, err := os.Stat(filepath.Join(libexec, name)); err != nil {
			return fmt.Errorf("dovecot is installed but its POP3 server %s is not", filepath.Join(libexec, name))
		}
	}
	return nil
}

// FindBinary finds the dovecot binary.
func FindBinary() (string, error) {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	// /usr/sbin is often missing from an ordinary user's PATH.
	for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("dovecot is not installed (no dovecot binary in PATH or /usr/sbin)")
}

var errAddrInUse = errors.New("address already in use")

// prepare creates the directory layout, the certificate and the users'
// numeric ids.
func (s *Server) prepare() error {
	if s.asRoot {
		// Dovecot refuses mail access as root: the mail processes run as
		// nobody, which must be able to walk down to the Maildirs. The test's
		// temporary directories are created 0700.
		s.mailUID, s.mailGID = 65534, 65534
		if u, err := user.Lookup("nobody"); err == nil {
			s.mailUID, _ = strconv.Atoi(u.Uid)
			s.mailGID, _ = strconv.Atoi(u.Gid)
		}
		for _, d := range []string{filepath.Dir(s.dir), s.dir} {
			if err := os.Chmod(d, 0o711); err != nil {
				return err
			}
		}
		for d := filepath.Dir(filepath.Dir(s.dir)); ; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("%s is not searchable by others, so Dovecot's mail processes (uid %d) cannot reach the Maildirs under it; point TMPDIR at a directory such as /tmp", d, s.mailUID)
			}
			if d == filepath.Dir(d) {
				break
			}
		}
		for _, name := range []string{"dovecot", "dovenull"} {
			if _, err := user.Lookup(name); err != nil {
				return fmt.Errorf("running as root needs Dovecot's system user %q (the Debian package creates it; reinstall with %s): %v", name, InstallCommand, err)
			}
		}
	} else {
		s.mailUID, s.mailGID = os.Geteuid(), os.Getegid()
	}
	for _, d := range []string{"state", "home"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	if s.asRoot {
		if err := os.Chown(filepath.Join(s.dir, "home"), s.mailUID, s.mailGID); err != nil {
			return err
		}
	}
	// Unix socket paths are limited to 107 bytes; Dovecot's longest socket
	// name under base_dir is about 30. Long test names make long temp dirs.
	s.base = filepath.Join(s.dir, "run")
	if len(s.base) > 70 {
		short, err := os.MkdirTemp("", "dvt")
		if err != nil {
			return err
		}
		if err := os.Chmod(short, 0o755); err != nil {
			return err
		}
		s.shortDir = short
		s.base = filepath.Join(short, "run")
	}
	if err := os.Mkdir(filepath.Join(s.dir, "passwd.d"), 0o755); err != nil {
		return err
	}
	if s.opts.TLS {
		pool, err := writeSelfSignedCert(filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem"))
		if err != nil {
			return fmt.Errorf("generate certificate: %w", err)
		}
		s.pool = pool
	}
	return nil
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) config(port, tlsPort, imapPort int) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# generated by dovecotrun for %s", s.opts.Label)
	w("base_dir = %s", s.base)
	w("state_dir = %s", filepath.Join(s.dir, "state"))
	w("instance_name = dovecottest-%d", port)
	if s.opts.IMAP {
		w("protocols = pop3 imap")
	} else {
		w("protocols = pop3")
	}
	w("listen = 127.0.0.1")
	w("log_path = %s", filepath.Join(s.dir, "dovecot.log"))
	w("mail_location = maildir:~/Maildir")
	w("mail_fsync = never")
	w("first_valid_uid = 1")
	w("first_valid_gid = 1")
	w("disable_plaintext_auth = no")
	// Tests provoke failures on purpose: answer them at once.
	w("auth_failure_delay = 0")
	if s.opts.APOP {
		w("auth_mechanisms = plain apop")
	} else {
		w("auth_mechanisms = plain")
	}
	if s.opts.NoSessionLock {
		w("pop3_lock_session = no")
	} else {
		w("pop3_lock_session = yes")
	}
	if s.opts.UIDLFormat != "" {
		w("pop3_uidl_format = %s", s.opts.UIDLFormat)
	}
	if s.opts.TLS {
		w("ssl = yes")
		w("ssl_cert = <%s", filepath.Join(s.dir, "cert.pem"))
		w("ssl_key = <%s", filepath.Join(s.dir, "key.pem"))
	} else {
		w("ssl = no")
	}
	if !s.asRoot {
		u, _ := user.Current()
		name := strconv.Itoa(os.Geteuid())
		if u != nil {
			name = u.Username
		}
		w("default_internal_user = %s", name)
		w("default_login_user = %s", name)
		w("default_internal_group = %s", groupName())
		w("service anvil {\n  chroot =\n}")
		w("service pop3-login {\n  chroot =\n}")
		if s.opts.IMAP {
			w("service imap-login {\n  chroot =\n}")
		}
	}
	// One passwd file per user: Dovecot stats a passwd file at most once a
	// second, so a single file would hide a user added within that second.
	w("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN %s/%%u\n}", filepath.Join(s.dir, "passwd.d"))
	w("userdb {\n  driver = passwd-file\n  args = %s/%%u\n}", filepath.Join(s.dir, "passwd.d"))
	// Auth penalties (delays that double with every failure from one IP)
	// need anvil's penalty socket: turning it off turns them off.
	w("service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}")
	w("service pop3-login {\n  inet_listener pop3 {\n    port = %d\n  }\n  inet_listener pop3s {\n    port = %d\n    ssl = yes\n  }\n}", port, tlsPort)
	if s.opts.IMAP {
		w("service imap-login {\n  inet_listener imap {\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}", imapPort)
	}
	if s.opts.ExtraConfig != "" {
		w("%s", s.opts.ExtraConfig)
	}
	return b.String()
}

func groupName() string {
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getegid())); err == nil {
		return g.Name
	}
	return strconv.Itoa(os.Getegid())
}

// launch writes the configuration for fresh ports, starts Dovecot and waits
// until it answers.
func (s *Server) launch(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	tlsPort, imapPort := 0, 0
	if s.opts.TLS {
		if tlsPort, err = freePort(); err != nil {
			return err
		}
	}
	if s.opts.IMAP {
		if imapPort, err = freePort(); err != nil {
			return err
		}
	}
	confPath := filepath.Join(s.dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(s.config(port, tlsPort, imapPort)), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, "dovecot.log")
	os.Remove(logPath)
	stderr, err := os.Create(filepath.Join(s.dir, "dovecot.stderr"))
	if err != nil {
		return err
	}
	defer stderr.Close()
	bin := s.opts.Binary
	cmd := exec.Command(bin, "-F", "-c", confPath)
	// Never the test binary's stdout/stderr: a Dovecot that outlived the test
	// would hold the runner's pipes open.
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Dir = s.dir
	// A test binary killed without cleanup takes Dovecot's master with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited, s.stopped = cmd, exited, false
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()

	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if tlsPort != 0 {
		s.tlsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	}
	if imapPort != 0 {
		s.imapAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(imapPort))
	}
	deadline := time.Now().Add(s.opts.StartTimeout)
	for {
		if err := probe(s.addr, nil, "+OK"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		case <-exited:
			out := s.Log()
			if strings.Contains(out, "Address already in use") {
				return errAddrInUse
			}
			s.mu.Lock()
			werr := s.waitErr
			s.mu.Unlock()
			return fmt.Errorf("dovecot exited during start-up (%v)\n%s", werr, out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("dovecot did not answer +OK on %s within %v\n%s", s.addr, s.opts.StartTimeout, s.Log())
		}
	}
	if s.tlsAddr != "" {
		if err := probe(s.tlsAddr, &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1"}, "+OK"); err != nil {
			s.Stop()
			return fmt.Errorf("dovecot's pop3s port %s: %v\n%s", s.tlsAddr, err, s.Log())
		}
	}
	if s.imapAddr != "" {
		// The login processes start together: the IMAP port answers
		// as soon as the POP3 one does, or within a few tries.
		var err error
		for range 100 {
			if err = probe(s.imapAddr, nil, "* OK"); err == nil {
				break
			}
			select {
			case <-exited:
				return fmt.Errorf("dovecot exited during start-up\n%s", s.Log())
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err != nil {
			s.Stop()
			return fmt.Errorf("dovecot's imap port %s: %v\n%s", s.imapAddr, err, s.Log())
		}
	}
	return nil
}

// probe connects, reads the greeting (which must start with ok) and says
// QUIT (POP3) or LOGOUT (IMAP).
func probe(addr string, cfg *tls.Config, ok string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if cfg != nil {
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		conn = tc
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, ok) {
		return fmt.Errorf("greeting %q", line)
	}
	bye := "QUIT\r\n"
	if ok == "* OK" {
		bye = "a LOGOUT\r\n"
	}
	_, err = conn.Write([]byte(bye))
	return err
}

// Addr is the host:port of the POP3 port (with STLS when Options.TLS).
func (s *Server) Addr() string { return s.addr }

// TLSAddr is the host:port of the implicit-TLS (pop3s) port, or "" without
// Options.TLS.
func (s *Server) TLSAddr() string { return s.tlsAddr }

// CertPool trusts the server's self-signed certificate (nil without
// Options.TLS).
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// TLSConfig returns a client configuration that verifies the server's
// certificate for 127.0.0.1.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// IMAPAddr is the host:port of the IMAP port, or "" without Options.IMAP.
func (s *Server) IMAPAddr() string { return s.imapAddr }

// Dir is the directory that holds the configuration, the log and the
// Maildirs.
func (s *Server) Dir() string { return s.dir }

// BaseDir is Dovecot's base_dir (its sockets and master.pid).
func (s *Server) BaseDir() string { return s.base }

// Log returns what Dovecot has logged so far (its log file and anything it
// wrote to stderr before opening it).
func (s *Server) Log() string {
	var b bytes.Buffer
	for _, name := range []string{"dovecot.stderr", "dovecot.log"} {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err == nil && len(data) > 0 {
			fmt.Fprintf(&b, "--- %s ---\n%s", name, data)
		}
	}
	if b.Len() == 0 {
		return "(dovecot logged nothing)"
	}
	return b.String()
}

// PID is the process id of Dovecot's master process.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop stops the server: SIGTERM to the master process (which stops its
// children), SIGKILL if it has not exited after ten seconds. Calling it
// again does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited, stopped := s.cmd, s.exited, s.stopped
	s.stopped = true
	s.mu.Unlock()
	if stopped {
		return
	}
	if s.shortDir != "" {
		defer os.RemoveAll(s.shortDir)
	}
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		if s.opts.Logf != nil {
			s.opts.Logf("dovecotrun: dovecot (pid %d) ignored SIGTERM for 10s; killing it", cmd.Process.Pid)
		}
		_ = cmd.Process.Kill()
		<-exited
	}
}

// ChownTree hands path and everything below it to the mail processes' user
// (when running as root; otherwise it does nothing), for files a caller
// wrote into a home itself.
func (s *Server) ChownTree(path string) error {
	if !s.asRoot {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, s.mailUID, s.mailGID)
	})
}
