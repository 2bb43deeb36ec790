package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
	"github.com/imapbridge/imapbridge/internal/admin"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/login"
	"github.com/imapbridge/imapbridge/lmtpfront"
	"github.com/imapbridge/imapbridge/mboxstore"
	"github.com/imapbridge/imapbridge/pop3"
	"github.com/imapbridge/imapbridge/pop3front"
)

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "imapbridge serve: -config FILE is required")
		return 2
	}
	cfg, warnings, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge: %v\n", err)
		return 1
	}
	logger := newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		logger.Warn("config warning", "warning", w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := startApp(ctx, cfg, logger)
	if err != nil {
		logger.Error("start failed", "err", err)
		return 1
	}
	a.watchReloads(ctx, *configPath)
	<-ctx.Done()
	logger.Info("shutting down")
	if err := a.shutdown(serveShutdown); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app is one running bridge: store, poll loops, IMAP and admin listeners.
type app struct {
	log     *slog.Logger
	bridge  *bridge.Bridge
	syncer  *bridge.Syncer
	front   *imapfront.Server
	lmtp    *lmtpfront.Server // nil without lmtp.listen
	pop3    *pop3front.Server // nil without a pop3 listener
	admin   *admin.Server
	metrics *metrics
	login   *login.Service

	imapAddr  net.Addr // the plain listener's address, when there is one
	lmtpAddr  net.Addr // the LMTP listener's (a *net.UnixAddr for unix:)
	pop3Addr  net.Addr // the POP3 face's plain and implicit-TLS listeners'
	pop3sAddr net.Addr
	adminAddr net.Addr

	serveErr  chan error
	wg        sync.WaitGroup // every goroutine a.serve started
	listeners []net.Listener // the IMAP, LMTP and POP3 listeners, closed first at shutdown
	acceptWG  sync.WaitGroup // their accept loops
	ready     readiness

	bgCancel context.CancelFunc // background work on the store (reindex)
	bgWG     sync.WaitGroup
	live     liveConfig     // what SIGHUP reloads (reload.go)
	logins   *loginRecorder // IMAP logins and clients to the store (logins.go)
}

// startApp opens the store, starts the poll loops of configured users and
// the listeners. Listening errors (port taken) are returned, not logged.
func startApp(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	a := &app{log: logger, metrics: m, serveErr: make(chan error, 4)}

	opts := bridge.Options{
		DataDir:      cfg.DataDir,
		Logger:       logger,
		Index:        imapfront.Index,
		IndexCurrent: imapfront.IndexCurrent,
		Metrics:      m.bridgeHooks(),
	}
	storeLimits(cfg, &opts, a.live.cfg.Load)
	b, err := bridge.Open(ctx, opts)
	if err != nil {
		// SQLite says "unable to open database file" for a read-only
		// directory: say what is wrong with it.
		if werr := probeDataDir(cfg.DataDir); werr != nil {
			return nil, fmt.Errorf("%w (data_dir %s cannot be written: %v)", err, cfg.DataDir, werr)
		}
		return nil, err
	}
	a.bridge = b
	a.startReindex()
	m.watchStore(b)
	a.syncer = bridge.NewSyncer(b, bridge.SyncerOptions{Logger: logger})

	sources := make(map[string]bridge.Source)
	for _, s := range cfg.Sources {
		src, err := newSource(s, logger)
		if err != nil {
			a.closeStore()
			return nil, err
		}
		sources[s.Name] = src
		m.knownSource(s.Name)
	}
	userSources, err := oauth2Sources(cfg, reg, logger)
	if err != nil {
		a.closeStore()
		return nil, err
	}
	loginOpts := login.Options{
		Config:           cfg,
		Bridge:           b,
		Syncer:           a.syncer,
		Sources:          sources,
		UserSources:      userSources,
		Logger:           logger,
		Attempt:          m.authAttempt,
		PasswordAccepted: pop3PasswordAccepted,
	}
	a.login = login.New(loginOpts)
	a.live.start(cfg, loginOpts, a.login)
	m.watchRetirement(b, a.live.quietPeriod, sources)
	if err := a.login.StartPolls(ctx); err != nil {
		a.closeStore()
		return nil, err
	}

	var tlsConfig *tls.Config
	if cfg.IMAP.TLS.CertFile != "" {
		certs, err := newCertReloader(cfg.IMAP.TLS.CertFile, cfg.IMAP.TLS.KeyFile, logger)
		if err != nil {
			a.closeStore()
			return nil, err
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
		go certs.reloadOnSIGHUP(ctx)
	}
	a.logins = newLoginRecorder(b, logger, &a.wg)
	a.front = imapfront.New(imapfront.Options{
		Bridge:                   b,
		Authenticate:             imapAuthenticate(a.live.loginService),
		Logger:                   logger,
		TLSConfig:                tlsConfig,
		AllowInsecureAuth:        cfg.IMAP.AllowInsecureAuth,
		AppendLimit:              uint32(cfg.IMAP.AppendLimit),
		MaxConnections:           cfg.IMAP.MaxConnections,
		MaxConnectionsPerAddress: cfg.IMAP.MaxConnectionsPerAddress,
		MaxConnectionsPerUser:    cfg.IMAP.MaxConnectionsPerUser,
		LoginTimeout:             cfg.IMAP.LoginTimeout,
		IdleTimeout:              cfg.IMAP.IdleTimeout,
		Metrics:                  m.frontHooks(),
		LoggedIn:                 a.logins.loggedIn,
		ClientSeen:               a.logins.clientSeen,
		Version:                  buildVersion(),
	})

	if cfg.IMAP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.IMAP.Listen)
		if err != nil {
			a.stopAll()
			return nil, fmt.Errorf("imap listen %s: %w", cfg.IMAP.Listen, err)
		}
		a.imapAddr = ln.Addr()
		a.accept("imap", ln, a.front.Serve)
	}
	if cfg.IMAP.TLSListen != "" {
		ln, err := net.Listen("tcp", cfg.IMAP.TLSListen)
		if err != nil {
			a.stopAll()
			return nil, fmt.Errorf("imap tls listen %s: %w", cfg.IMAP.TLSListen, err)
		}
		a.accept("imaps", ln, a.front.ServeTLS)
	}
	if err := a.startLMTP(cfg); err != nil {
		a.stopAll()
		return nil, err
	}
	if err := a.startPOP3(cfg, tlsConfig); err != nil {
		a.stopAll()
		return nil, err
	}
	if cfg.Admin.Listen != "" {
		srv, err := admin.Listen(cfg.Admin.Listen, admin.Options{
			Gatherer:   reg,
			Registerer: reg,
			Ready:      a.readyCheck,
			Pprof:      cfg.Admin.Pprof,
			Routes:     a.statusRoutes(),
		})
		if err != nil {
			a.stopAll()
			return nil, err
		}
		a.admin, a.adminAddr = srv, srv.Addr()
		a.serve("admin", srv.Wait)
		logger.Info("admin listening", "addr", srv.Addr().String())
	}
	a.ready.set(nil)
	return a, nil
}

func newSource(s config.Source, logger *slog.Logger) (bridge.Source, error) {
	return newSourceAuth(s, "", logger)
}

// newSourceAuth is newSource with a pop3 login method (pop3.AuthXOAUTH2
// for an OAuth2 account; "" chooses as the server allows).
func newSourceAuth(s config.Source, auth string, logger *slog.Logger) (bridge.Source, error) {
	switch s.Type {
	case "mbox":
		return mboxstore.NewSource(mboxstore.Config{Name: s.Name, PathTemplate: s.Path, Locks: s.Lock}, logger), nil
	case "pop3":
		return pop3.NewSource(pop3.SourceConfig{
			Name:          s.Name,
			Address:       s.Address,
			TLS:           s.TLS,
			TLSSkipVerify: s.TLSSkipVerify,
			Timeout:       s.Timeout,
			Auth:          auth,
		}, logger), nil
	}
	return nil, fmt.Errorf("source %q: unknown type %q", s.Name, s.Type)
}

// imapAuthenticate is imapfront's Authenticate hook: the login service of
// the running config (svc: a SIGHUP replaces it), with its ErrFailed told
// to imapfront as ErrAuthFailed.
func imapAuthenticate(svc func() *login.Service) func(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error) {
	return func(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error) {
		u, err := svc().Authenticate(ctx, username, password, remote)
		switch {
		case errors.Is(err, login.ErrBadName):
			// Its text says what is wrong with the name ("login name
			// refused: contains a space or a control character").
			text := err.Error()
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
				Text: strings.ToUpper(text[:1]) + text[1:]}
		case errors.Is(err, login.ErrFailed):
			return nil, authFailed{err}
		}
		return u, err
	}
}

// authFailed is a login.ErrFailed that is also an imapfront.ErrAuthFailed;
// its text is login's.
type authFailed struct{ err error }

func (e authFailed) Error() string   { return e.err.Error() }
func (e authFailed) Unwrap() []error { return []error{e.err, imapfront.ErrAuthFailed} }

// pop3PasswordAccepted: a POP3 host refused the session with IN-USE or
// LOGIN-DELAY in its answer to the password itself (PASS, APOP, AUTH),
// which RFC 2449 sends only after the credentials checked out. Busy
// answers to anything else (USER, the greeting) or without those codes
// prove nothing about the password.
func pop3PasswordAccepted(err error) bool {
	var pe *pop3.Error
	if !errors.As(err, &pe) {
		return false
	}
	cmd := strings.ToUpper(pe.Command)
	if !strings.HasPrefix(cmd, "PASS") && !strings.HasPrefix(cmd, "APOP") && !strings.HasPrefix(cmd, "AUTH") {
		return false
	}
	return pe.HasCode(pop3.CodeInUse) || pe.HasCode(pop3.CodeLoginDelay)
}

// ignoreClosed drops the error a listener returns because Shutdown closed it.
func ignoreClosed(err error) error {
	if errors.Is(err, imapfront.ErrServerClosed) {
		return nil
	}
	return err
}

// accept serves IMAP on ln (with serve: front.Serve or front.ServeTLS)
// until shutdown closes ln.
func (a *app) accept(name string, ln net.Listener, serve func(net.Listener) error) {
	a.listeners = append(a.listeners, ln)
	a.acceptWG.Add(1)
	a.serve(name, func() error {
		defer a.acceptWG.Done()
		return ignoreClosed(serve(ln))
	})
}

// serve runs fn on a goroutine owned by the app; an error before shutdown
// makes the app not ready and is logged.
func (a *app) serve(name string, fn func() error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := fn(); err != nil {
			a.log.Error("listener stopped", "listener", name, "err", err)
			a.ready.set(fmt.Errorf("%s listener stopped: %w", name, err))
			select {
			case a.serveErr <- err:
			default:
			}
		}
	}()
}

type readiness struct {
	mu        sync.Mutex
	err       error
	started   bool
	lastProbe time.Time
}

func (r *readiness) set(err error) {
	r.mu.Lock()
	r.err = err
	r.started = true
	r.mu.Unlock()
}

// readyCheck is /readyz: the store takes writes and the listeners are up.
func (a *app) readyCheck() error {
	a.ready.mu.Lock()
	err, started := a.ready.err, a.ready.started
	a.ready.mu.Unlock()
	if !started {
		return errors.New("starting")
	}
	if err != nil {
		return err
	}
	if err := a.bridge.Ready(); err != nil {
		if errors.Is(err, bridge.ErrStoreNotWritable) && a.ready.probeDue() {
			// The disk may have come back with nothing else to write:
			// try, instead of waiting for the next message.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if perr := a.bridge.ProbeWrites(ctx); perr == nil {
				a.log.Info("store takes writes again")
				return nil
			}
			err = a.bridge.Ready()
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, bridge.ErrStoreNotWritable) {
			return err // the text names the store, the path and why
		}
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// probeDue says whether a write probe may run now: at most one a second,
// however often /readyz is asked.
func (r *readiness) probeDue() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.lastProbe) < time.Second {
		return false
	}
	r.lastProbe = time.Now()
	return true
}

func (a *app) closeStore() {
	a.stopBackground(context.Background())
	a.syncer.Stop(context.Background())
	a.bridge.Close()
}

// probeDataDir creates and removes a file in dir: nil if dir takes files.
func probeDataDir(dir string) error {
	f, err := os.CreateTemp(dir, ".imapbridge-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
