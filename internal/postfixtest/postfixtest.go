// Package postfixtest starts a real Postfix (Debian's postfix) as a
// private instance on loopback, for tests of what an MTA does: take a
// message over SMTP and deliver it over LMTP, defer and retry.
//
// Start writes its own config_directory (main.cf, master.cf), queue and
// data directories under a fresh directory of the system's temp dir (the
// Postfix daemons run as the unprivileged user "postfix" and must be able
// to reach it, which a test's 0700 TempDir does not allow), with
// inet_interfaces = 127.0.0.1, smtpd on a free port, mydestination = the
// test domain and local_transport = an LMTP transport to the server under
// test, and the log in a file of its own (maillog_file). It runs
// `postfix -c DIR start` and waits until smtpd answers; Stop runs
// `postfix -c DIR stop`, kills the master by PID if it is still there,
// and removes the directory.
//
//	pf, err := postfixtest.Start(ctx, postfixtest.Options{Domain: "test.example", LMTP: "inet:127.0.0.1:2424"})
//	defer pf.Stop()
//	err = pf.Send(ctx, "sender@remote.example", []string{"alice@test.example"}, msg)
//	line, err := pf.WaitLog(ctx, "status=sent")
//
// The package does not import testing: it is a launcher that a test, a
// benchmark or a demo can use. Postfix's master must be started as root
// (its daemons then drop to "postfix"); Available says whether it can run.
package postfixtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// InstallCommand installs what the harness runs (Debian, Ubuntu).
const InstallCommand = "apt-get install -y postfix"

const (
	postfixBin = "/usr/sbin/postfix"
	daemonDir  = "/usr/lib/postfix/sbin"
)

// Available says why Postfix cannot be started here, or nil.
func Available() error {
	for _, p := range []string{postfixBin, filepath.Join(daemonDir, "master"), filepath.Join(daemonDir, "lmtp"), filepath.Join(daemonDir, "smtpd")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("postfix is not installed: %w", err)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("postfix's master must be started as root (its daemons run as the user postfix)")
	}
	return nil
}

// Options configure an instance.
type Options struct {
	// Domain is the one domain Postfix delivers for (mydestination);
	// every recipient there goes to LMTP. Default "test.example".
	Domain string
	// LMTP is where Postfix delivers: "inet:127.0.0.1:PORT" or
	// "unix:/path" (a socket the user postfix can reach). Required.
	LMTP string
	// Main are more main.cf settings (they override the harness's).
	Main map[string]string
}

// Instance is a running private Postfix.
type Instance struct {
	dir      string
	smtpAddr string
	log      string
}

// Start writes the configuration and starts Postfix; the returned
// instance answers SMTP on SMTPAddr. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Instance, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.LMTP == "" {
		return nil, errors.New("postfixtest: no LMTP destination")
	}
	if opts.Domain == "" {
		opts.Domain = "test.example"
	}
	dir, err := os.MkdirTemp("", "postfixtest-")
	if err != nil {
		return nil, fmt.Errorf("postfixtest: %w", err)
	}
	// The postfix user must reach the queue below it.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("postfixtest: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	in := &Instance{dir: dir, smtpAddr: "127.0.0.1:" + strconv.Itoa(port), log: filepath.Join(dir, "maillog")}
	if err := in.writeConfig(opts, port); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if out, err := in.postfix(ctx, "start"); err != nil {
		log := in.Log()
		in.Stop()
		return nil, fmt.Errorf("postfixtest: postfix start: %w: %s; maillog:\n%s", err, out, log)
	}
	if err := in.waitSMTP(ctx); err != nil {
		log, _ := os.ReadFile(in.log)
		in.Stop()
		return nil, fmt.Errorf("postfixtest: %w; maillog:\n%s", err, log)
	}
	return in, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("postfixtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (in *Instance) writeConfig(opts Options, port int) error {
	main := map[string]string{
		"compatibility_level":      "3.6",
		"queue_directory":          filepath.Join(in.dir, "queue"),
		"data_directory":           filepath.Join(in.dir, "data"),
		"command_directory":        "/usr/sbin",
		"daemon_directory":         daemonDir,
		"meta_directory":           "/etc/postfix",
		"shlib_directory":          "/usr/lib/postfix",
		"mail_owner":               "postfix",
		"setgid_group":             "postdrop",
		"maillog_file":             in.log,
		"maillog_file_prefixes":    in.dir,
		"myhostname":               "mx." + opts.Domain,
		"mydomain":                 opts.Domain,
		"myorigin":                 "$mydomain",
		"mydestination":            opts.Domain,
		"inet_interfaces":          "127.0.0.1",
		"inet_protocols":           "ipv4",
		"mynetworks":               "127.0.0.0/8",
		"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
		"local_transport":          "lmtp:" + opts.LMTP,
		"local_recipient_maps":     "",
		"alias_maps":               "",
		"alias_database":           "",
		"biff":                     "no",
		"smtputf8_enable":          "no",
		"smtp_host_lookup":         "native",
		"lmtp_host_lookup":         "native",
		// A deferred message is tried again as soon as it is flushed
		// (Flush), and the queue is scanned every second.
		"queue_run_delay":      "1s",
		"minimal_backoff_time": "1s",
		"maximal_backoff_time": "2s",
		"delay_warning_time":   "0",
		"notify_classes":       "",
		"syslog_name":          "postfixtest",
		"import_environment":   "MAIL_CONFIG MAIL_DEBUG TZ",
	}
	for k, v := range opts.Main {
		main[k] = v
	}
	var mb strings.Builder
	for _, k := range sortedKeys(main) {
		fmt.Fprintf(&mb, "%s = %s\n", k, main[k])
	}
	master := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`, port)
	// The queue's top directory must exist; `postfix start` makes the
	// rest (post-install create-missing) with the owners it wants.
	// The data directory is the postfix user's (master.lock, caches);
	// the configuration is apart from the queue, so that postfix's owner
	// checks of config_directory do not walk the queue.
	for _, d := range []string{"queue", "data", "etc"} {
		if err := os.Mkdir(filepath.Join(in.dir, d), 0o755); err != nil {
			return fmt.Errorf("postfixtest: %w", err)
		}
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("postfixtest: the postfix user: %w", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	if err := os.Chown(filepath.Join(in.dir, "data"), uid, gid); err != nil {
		return fmt.Errorf("postfixtest: %w", err)
	}
	for _, f := range [][2]string{{"/etc/postfix/postfix-files", "postfix-files"}, {"/usr/share/postfix/dynamicmaps.cf", "dynamicmaps.cf"}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			return fmt.Errorf("postfixtest: %w", err)
		}
		if err := os.WriteFile(filepath.Join(in.conf(), f[1]), data, 0o644); err != nil {
			return fmt.Errorf("postfixtest: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(in.conf(), "main.cf"), []byte(mb.String()), 0o644); err != nil {
		return fmt.Errorf("postfixtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(in.conf(), "master.cf"), []byte(master), 0o644); err != nil {
		return fmt.Errorf("postfixtest: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// conf is the config_directory.
func (in *Instance) conf() string { return filepath.Join(in.dir, "etc") }

// postfix runs `postfix -c CONF args...`.
func (in *Instance) postfix(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, postfixBin, append([]string{"-c", in.conf()}, args...)...)
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+in.conf())
	return cmd.CombinedOutput()
}

// waitSMTP waits until smtpd greets (bounded by ctx and by 100 tries over
// about a minute: the master starts smtpd on the first connection).
func (in *Instance) waitSMTP(ctx context.Context) error {
	var last error
	for i := 0; i < 100; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", in.smtpAddr, time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220 ") {
				return nil
			}
			err = fmt.Errorf("greeting %q: %v", line, rerr)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(i+1) * 10 * time.Millisecond):
		}
	}
	return fmt.Errorf("smtpd on %s never answered: %w", in.smtpAddr, last)
}

// SMTPAddr is smtpd's address (127.0.0.1:port).
func (in *Instance) SMTPAddr() string { return in.smtpAddr }

// Dir is the instance's directory: etc/ (config_directory), queue/,
// data/ and the maillog.
func (in *Instance) Dir() string { return in.dir }

// Send submits msg over SMTP, as a remote MTA would.
func (in *Instance) Send(ctx context.Context, from string, to []string, msg []byte) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", in.smtpAddr)
	if err != nil {
		return fmt.Errorf("postfixtest: send: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(time.Minute))
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.remote.example"); err != nil {
		return fmt.Errorf("postfixtest: send: EHLO: %w", err)
	}
	if err := c.SendMail(from, to, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("postfixtest: send: %w", err)
	}
	return c.Quit()
}

// Log is the instance's maillog so far.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(in.log)
	return string(b)
}

// WaitLog waits until a line of the maillog, from byte offset from on,
// matches re, and returns it with the offset after it (to wait for the
// next one). It checks the file as it grows, every 20 ms, until ctx ends.
func (in *Instance) WaitLog(ctx context.Context, from int, re *regexp.Regexp) (string, int, error) {
	for {
		data, _ := os.ReadFile(in.log)
		if from < len(data) {
			rest := data[from:]
			off := 0
			for {
				i := bytes.IndexByte(rest[off:], '\n')
				if i < 0 {
					break
				}
				line := rest[off : off+i]
				off += i + 1
				if re.Match(line) {
					return string(line), from + off, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", from, fmt.Errorf("postfixtest: no log line matching %q: %w; maillog:\n%s", re, ctx.Err(), data)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Flush asks Postfix to try every deferred message again now
// (`postqueue -f`), as an operator would after fixing the destination.
func (in *Instance) Flush(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "/usr/sbin/postqueue", "-c", in.conf(), "-f")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postfixtest: postqueue -f: %w: %s", err, out)
	}
	return nil
}

// QueueIDs lists the messages still in the queue (`postqueue -j`).
func (in *Instance) QueueIDs(ctx context.Context) ([]string, error) {
	cmd := exec.CommandContext(ctx, "/usr/sbin/postqueue", "-c", in.conf(), "-j")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("postfixtest: postqueue -j: %w", err)
	}
	var ids []string
	re := regexp.MustCompile(`"queue_id":\s*"([0-9A-Za-z]+)"`)
	for _, m := range re.FindAllSubmatch(out, -1) {
		ids = append(ids, string(m[1]))
	}
	return ids, nil
}

// PID is the master's process id, 0 if none is running.
func (in *Instance) PID() int {
	b, err := os.ReadFile(filepath.Join(in.dir, "queue", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Stop stops Postfix (`postfix stop`, then SIGKILL to the master by PID if
// it is still alive after that) and removes the instance's directory.
func (in *Instance) Stop() error {
	pid := in.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := in.postfix(ctx, "stop")
	if pid > 0 {
		// postfix stop returns once the master was told; wait for it to
		// go, bounded.
		for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(25 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	os.RemoveAll(in.dir)
	if err != nil && pid > 0 {
		return fmt.Errorf("postfixtest: postfix stop: %w: %s", err, out)
	}
	return nil
}
