package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// imapLine is a raw IMAP client over any connection, for checking the
// exact wire text through the built binary.
type imapLine struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func newIMAPLine(t *testing.T, conn net.Conn) *imapLine {
	t.Cleanup(func() { conn.Close() })
	return &imapLine{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func dialIMAP(t *testing.T, addr string) (*imapLine, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := newIMAPLine(t, conn)
	return c, c.line()
}

func (c *imapLine) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// cmd sends "tag command" and returns the tagged response without the tag.
func (c *imapLine) cmd(tag, command string) string {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, command); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return rest
		}
	}
}

func (c *imapLine) closed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\n')
	var ne net.Error
	if l != "" || (errors.As(err, &ne) && ne.Timeout()) {
		c.t.Fatalf("connection still open (read %q, %v)", l, err)
	}
}

// withIMAPKeys adds lines under "imap:" of a config written by writeConfig.
func withIMAPKeys(t *testing.T, config string, lines ...string) {
	t.Helper()
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	extra := ""
	for _, l := range lines {
		extra += "  " + l + "\n"
	}
	out := strings.Replace(string(data), "imap:\n", "imap:\n"+extra, 1)
	if err := os.WriteFile(config, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}

// metricValue reads one series from /metrics.
func metricValue(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no series %s in /metrics", series)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestEndToEndLimits: the config keys reach the IMAP server of the built
// binary, and each limit is logged and counted.
func TestEndToEndLimits(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "mail")
	os.MkdirAll(spoolDir, 0o700)
	writeSpool(t, filepath.Join(spoolDir, "alice"), testSpool()[:1], false)
	imapAddr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, imapAddr, adminAddr, filepath.Join(spoolDir, "{user}"))
	withIMAPKeys(t, config,
		"max_connections_per_address: 3",
		"max_connections_per_user: 1",
		"login_timeout: 1500ms",
		"idle_timeout: 2s",
	)
	logs := &syncBuffer{}
	p := startBridge(t, config, imapAddr, adminAddr, logs)

	c1, _ := dialIMAP(t, imapAddr)
	c2, _ := dialIMAP(t, imapAddr)
	c3, _ := dialIMAP(t, imapAddr)
	// The server's idle timer starts at its last byte, the LOGIN's OK,
	// which it writes after this moment and the client reads after it:
	// timing from here, not from the client's reading of the OK, keeps
	// the lower bound true on a loaded machine.
	loggedIn := time.Now()
	if got := c1.cmd("a", "LOGIN alice s3cret-pass"); !strings.HasPrefix(got, "OK ") {
		t.Fatalf("LOGIN: %q", got)
	}
	c4, greeting := dialIMAP(t, imapAddr)
	if greeting != "* BYE Too many connections from your address (limit 3)" {
		t.Errorf("fourth connection: %q", greeting)
	}
	c4.closed()
	if got := c2.cmd("b", "LOGIN alice s3cret-pass"); got != "NO [LIMIT] Too many connections for this user (limit 1); log out elsewhere and try again" {
		t.Errorf("second LOGIN of alice: %q", got)
	}
	// Busy but never logged in: NOOP does not extend the login timeout.
	var last string
	for i := 0; i < 100; i++ {
		fmt.Fprintf(c3.conn, "n NOOP\r\n")
		if last = c3.line(); last != "n OK NOOP completed" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != "* BYE Login timeout" {
		t.Errorf("unauthenticated session: %q", last)
	}
	c3.closed()
	// The refused LOGIN left c2 unauthenticated: it times out too.
	if got := c2.line(); got != "* BYE Login timeout" {
		t.Errorf("connection whose LOGIN was refused: %q", got)
	}
	c2.closed()
	if got := c1.line(); got != "* BYE Autologout; idle for too long" {
		t.Errorf("silent session: %q", got)
	}
	if d := time.Since(loggedIn); d < 2*time.Second {
		t.Errorf("autologout after %v, want 2s", d)
	}
	c1.closed()

	for limit, want := range map[string]float64{
		"max_connections_per_address": 1,
		"max_connections_per_user":    1,
		"login_timeout":               2,
		"idle_timeout":                1,
		"command_length":              0,
	} {
		if v := metricValue(t, adminAddr, `imapbridge_imap_limits_total{limit="`+limit+`"}`); v != want {
			t.Errorf("limit %s counted %v, want %v", limit, v, want)
		}
	}
	if v := metricValue(t, adminAddr, `imapbridge_auth_attempts_total{result="failure"}`); v != 0 {
		t.Errorf("%v authentication failures counted", v)
	}
	for _, want := range []string{
		"connection refused: too many connections from this address",
		"login refused: too many sessions for this user",
		"session ended: Login timeout",
		"session ended: Autologout; idle for too long",
		"imap.idle_timeout: 2s is below the 30 minutes RFC 3501 requires",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	p.stop()
}

// writeCert writes a fresh self-signed certificate for 127.0.0.1 and
// returns its DER bytes.
func writeCert(t *testing.T, certFile, keyFile, name string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written next to the target and renamed over it, as certbot does.
	write := func(path, typ string, b []byte) {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(keyFile, "EC PRIVATE KEY", keyDER)
	write(certFile, "CERTIFICATE", der)
	return der
}

// tlsDial connects with implicit TLS at one TLS version (0: any) and
// returns the server's certificate, or the handshake error.
func tlsDial(t *testing.T, addr string, version uint16) (*imapLine, []byte, error) {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version}
	if version == 0 {
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, 0
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	c := newIMAPLine(t, conn)
	if g := c.line(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting over TLS: %q", g)
	}
	return c, conn.ConnectionState().PeerCertificates[0].Raw, nil
}

// startTLSDial upgrades a plain connection with STARTTLS at one version.
func startTLSDial(t *testing.T, addr string, version uint16) error {
	t.Helper()
	c, _ := dialIMAP(t, addr)
	if got := c.cmd("s", "STARTTLS"); got != "OK Begin TLS negotiation now" {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	return tc.Handshake()
}

// TestEndToEndTLS: TLS 1.2 at least on both listeners, and SIGHUP reloads
// the certificate for new connections while open sessions go on.
func TestEndToEndTLS(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "mail")
	os.MkdirAll(spoolDir, 0o700)
	writeSpool(t, filepath.Join(spoolDir, "alice"), testSpool()[:1], false)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certA := writeCert(t, certFile, keyFile, "cert A")
	imapAddr, imapsAddr, adminAddr := freePort(t), freePort(t), freePort(t)
	config := writeConfig(t, dir, imapAddr, adminAddr, filepath.Join(spoolDir, "{user}"))
	withIMAPKeys(t, config,
		fmt.Sprintf("tls_listen: %s", imapsAddr),
		fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", certFile, keyFile),
	)
	// Go's server default is TLS 1.2 since Go 1.22; tls10server=1 brings
	// back 1.0 for the child, so that only our MinVersion refuses 1.0/1.1.
	t.Setenv("GODEBUG", "tls10server=1")
	logs := &syncBuffer{}
	p := startBridge(t, config, imapAddr, adminAddr, logs)

	for _, tc := range []struct {
		name     string
		version  uint16
		accepted bool
	}{
		{"TLS 1.0", tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	} {
		_, _, err := tlsDial(t, imapsAddr, tc.version)
		if tc.accepted != (err == nil) {
			t.Errorf("%s on tls_listen: %v", tc.name, err)
		}
		err = startTLSDial(t, imapAddr, tc.version)
		if tc.accepted != (err == nil) {
			t.Errorf("%s with STARTTLS: %v", tc.name, err)
		}
	}

	old, cert, err := tlsDial(t, imapsAddr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert, certA) {
		t.Fatal("first connection: not certificate A")
	}
	if got := old.cmd("a", "LOGIN alice s3cret-pass"); !strings.HasPrefix(got, "OK ") {
		t.Fatalf("LOGIN: %q", got)
	}

	reloads := func() int { return strings.Count(logs.String(), "tls: certificate reloaded") }
	failures := func() int { return strings.Count(logs.String(), "tls: reload failed; keeping the old certificate") }
	waitLog := func(what string, f func() int, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for f() < want {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	certB := writeCert(t, certFile, keyFile, "cert B")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("certificate reloaded", reloads, 1)
	for _, addr := range []string{imapsAddr} {
		_, cert, err := tlsDial(t, addr, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cert, certB) {
			t.Errorf("after SIGHUP: %s does not present certificate B", addr)
		}
	}
	if got := old.cmd("b", "NOOP"); got != "OK NOOP completed" {
		t.Errorf("session opened before the reload: NOOP %q", got)
	}

	// A broken file: the reload fails, certificate B stays.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("reload failed", failures, 1)
	if _, cert, err := tlsDial(t, imapsAddr, 0); err != nil || !bytes.Equal(cert, certB) {
		t.Errorf("after a failed reload: err %v, certificate B kept: %v", err, bytes.Equal(cert, certB))
	}
	if got := old.cmd("c", "NOOP"); got != "OK NOOP completed" {
		t.Errorf("after a failed reload: NOOP %q", got)
	}
	p.stop()
}
