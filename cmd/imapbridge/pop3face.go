package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/login"
	"github.com/imapbridge/imapbridge/pop3"
	"github.com/imapbridge/imapbridge/pop3front"
)

// startPOP3 serves the bridge's own POP3 face on pop3.listen (STLS when
// imap.tls is set) and pop3.tls_listen (implicit TLS), with the IMAP
// certificate; nothing when neither is set.
func (a *app) startPOP3(cfg *config.Config, tlsConfig *tls.Config) error {
	if !cfg.POP3.Enabled() {
		return nil
	}
	srv, err := pop3front.New(pop3front.Options{
		Bridge:                   a.bridge,
		Authenticate:             pop3Authenticate(a.live.loginService),
		HostUIDL:                 hostUIDLs(cfg),
		Logger:                   a.log.With(slog.String("face", "pop3")),
		TLSConfig:                tlsConfig,
		AllowInsecureAuth:        cfg.POP3.AllowInsecureAuth,
		Dele:                     pop3DeleMode(cfg.POP3.Dele),
		MaxConnections:           cfg.POP3.MaxConnections,
		MaxConnectionsPerAddress: cfg.POP3.MaxConnectionsPerAddress,
		MaxConnectionsPerUser:    cfg.POP3.MaxConnectionsPerUser,
		LoginTimeout:             cfg.POP3.LoginTimeout,
		IdleTimeout:              cfg.POP3.IdleTimeout,
		Metrics:                  a.metrics.pop3Hooks(),
	})
	if err != nil {
		return err
	}
	a.pop3 = srv
	for _, l := range []struct {
		name, addr string
		serve      func(net.Listener) error
		where      *net.Addr
	}{
		{"pop3", cfg.POP3.Listen, srv.Serve, &a.pop3Addr},
		{"pop3s", cfg.POP3.TLSListen, srv.ServeTLS, &a.pop3sAddr},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("%s listen %s: %w", l.name, l.addr, err)
		}
		*l.where = ln.Addr()
		a.listeners = append(a.listeners, ln)
		a.acceptWG.Add(1)
		serve := l.serve
		a.serve(l.name, func() error {
			defer a.acceptWG.Done()
			if err := serve(ln); !errors.Is(err, pop3front.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				return err
			}
			return nil
		})
	}
	return nil
}

func pop3DeleMode(dele string) string {
	if dele == "keep" {
		return pop3front.DeleKeep
	}
	return pop3front.DeleExpunge
}

// hostUIDLs is the rule both the POP3 face and the export use for a
// message's legacy UIDL: messages from a configured pop3 source have the
// UIDL that host listed (pop3.HostUIDL), every other message none (the
// bridge generates one).
func hostUIDLs(cfg *config.Config) bridge.HostUIDLFunc {
	pop3Sources := map[string]bool{}
	for _, s := range cfg.Sources {
		if s.Type == "pop3" {
			pop3Sources[s.Name] = true
		}
	}
	return func(source string, id bridge.SourceID) (string, bool) {
		if !pop3Sources[source] {
			return "", false
		}
		return pop3.HostUIDL(id)
	}
}

// pop3Authenticate is pop3front's Authenticate hook: the login service
// (the same users, limiter and passthrough check as IMAP), with its
// ErrFailed told to pop3front as ErrAuthFailed.
func pop3Authenticate(svc func() *login.Service) func(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error) {
	return func(ctx context.Context, username, password string, remote net.Addr) (*bridge.User, error) {
		u, err := svc().Authenticate(ctx, username, password, remote)
		if errors.Is(err, login.ErrFailed) || errors.Is(err, login.ErrBadName) {
			return nil, pop3AuthFailed{err}
		}
		return u, err
	}
}

// pop3AuthFailed is a login failure that is also a pop3front.ErrAuthFailed;
// its text is login's.
type pop3AuthFailed struct{ err error }

func (e pop3AuthFailed) Error() string   { return e.err.Error() }
func (e pop3AuthFailed) Unwrap() []error { return []error{e.err, pop3front.ErrAuthFailed} }
