package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/mboxstore"
)

//go:embed demo/sample.mbox
var sampleSpool []byte

// runDemo is the embedded default: the bundled sample spool served over
// IMAP on loopback as user demo, password demo, with nothing to install or
// configure. A new message lands in the spool every -deliver-every so push
// (IDLE) can be seen working.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1143", "IMAP listen address (loopback only: the demo allows plaintext login)")
	admin := fs.String("admin", "127.0.0.1:9154", "admin listen address (/metrics /healthz /readyz); empty disables")
	dataDir := fs.String("data", "", "data directory (default: a temporary one, removed at exit)")
	every := fs.Duration("deliver-every", 2*time.Minute, "deliver a new demo message to the spool this often (0: never)")
	logLevel := fs.String("log-level", "info", "debug | info | warn | error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || !isLoopbackHost(host) {
		fmt.Fprintf(stderr, "imapbridge demo: -listen %q: the demo allows plaintext passwords, so it listens on loopback only (127.0.0.1 or [::1])\n", *listen)
		return 2
	}
	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "imapbridge-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "imapbridge demo: %v\n", err)
			return 1
		}
		defer os.RemoveAll(d)
		dir = d
	}
	spoolDir := filepath.Join(dir, "mail")
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		fmt.Fprintf(stderr, "imapbridge demo: %v\n", err)
		return 1
	}
	spool := filepath.Join(spoolDir, "demo")
	if _, err := os.Stat(spool); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(spool, sampleSpool, 0o600); err != nil {
			fmt.Fprintf(stderr, "imapbridge demo: %v\n", err)
			return 1
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("demo"), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge demo: %v\n", err)
		return 1
	}
	yaml := fmt.Sprintf(`data_dir: %s
log: {level: %s, format: text}
imap:
  listen: %s
  allow_insecure_auth: true
admin:
  listen: %s
sources:
  - name: demo-spool
    type: mbox
    path: %s
    poll_interval: 2s
users:
  - name: demo
    password_hash: %s
    sources: [demo-spool]
`, strconv.Quote(filepath.Join(dir, "state")), *logLevel, strconv.Quote(*listen), strconv.Quote(*admin), strconv.Quote(filepath.Join(spoolDir, "{user}")), strconv.Quote(string(hash)))
	cfg, _, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge demo: %v\n", err)
		return 1
	}
	logger := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := startApp(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge demo: %v\n", err)
		return 1
	}
	host, port, _ := net.SplitHostPort(a.imapAddr.String())
	fmt.Fprintf(stdout, `
imapbridge demo is serving a sample mailbox over IMAP.

  server:   %s  port %s  (no TLS: demo only, loopback only)
  user:     demo
  password: demo

Try it:
  curl -s --url "imap://%s:%s/INBOX" --user demo:demo --request 'FETCH 1:5 (FLAGS ENVELOPE)'
  python3 -c "import imaplib; m=imaplib.IMAP4('%s', %s); m.login('demo','demo'); print(m.select('INBOX')); print(m.fetch('1', '(BODY[HEADER.FIELDS (SUBJECT FROM)])'))"
  or point Thunderbird / mutt / mbsync at it (security: none, authentication: normal password).

The spool is %s; a new message arrives every %v (watch it pushed to a client in IDLE).
Metrics: http://%s/metrics   Press Ctrl-C to stop.
`, host, port, host, port, host, port, spool, *every, *admin)
	if *every > 0 {
		go deliverDemoMail(ctx, spool, *every, logger)
	}
	<-ctx.Done()
	if err := a.shutdown(quickShutdown); err != nil {
		fmt.Fprintf(stderr, "imapbridge demo: shutdown: %v\n", err)
		return 1
	}
	return 0
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// deliverDemoMail appends a message to the spool every interval, taking
// the same locks an MDA would, until ctx ends.
func deliverDemoMail(ctx context.Context, spool string, every time.Duration, logger interface {
	Warn(string, ...any)
	Info(string, ...any)
}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			msg := fmt.Sprintf("From: Demo Robot <robot@demo.example>\r\nTo: demo@demo.example\r\nSubject: Demo delivery #%d\r\nDate: %s\r\nMessage-ID: <demo-%d-%d@demo.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis message was delivered to the mbox spool at %s\r\nand pushed to your IMAP client by imapbridge.\r\n",
				n, now.Format(time.RFC1123Z), now.Unix(), n, now.Format(time.RFC3339))
			if err := mboxstore.Deliver(ctx, spool, mboxstore.DeliverOptions{}, "robot@demo.example", now, []byte(msg)); err != nil {
				logger.Warn("demo: delivery failed", "err", err)
				continue
			}
			logger.Info("demo: delivered a new message to the spool", "n", n)
		}
	}
}
