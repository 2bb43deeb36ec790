package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/internal/login"
)

// runOAuth2Login is "imapbridge oauth2-login -config FILE -user NAME
// -account N": the device authorization grant (RFC 8628) for one OAuth2
// account; it prints where to sign in and the code, waits for the user,
// and stores the refresh token sealed in data_dir. N is the index in the
// user's sources: one account per static-auth pop3 source with
// source_oauth2.
func runOAuth2Login(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("oauth2-login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: imapbridge oauth2-login -config FILE -user NAME [-account N]")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "config file (YAML)")
	userName := fs.String("user", "", "the user (users[].name)")
	account := fs.Int("account", 0, "the account: index in the user's sources, from 0")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *configPath == "" || *userName == "" {
		fmt.Fprintln(stderr, "imapbridge oauth2-login: -config FILE and -user NAME are required")
		fs.Usage()
		return 2
	}
	cfg, _, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge oauth2-login: %v\n", err)
		return 1
	}
	tok, err := oauth2TokensFor(cfg, *userName, *account, nil, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge oauth2-login: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = tok.DeviceLogin(ctx, func(uri, complete, code string) {
		fmt.Fprintf(stdout, "To sign in, open %s and enter the code %s\n", uri, code)
		if complete != "" {
			fmt.Fprintf(stdout, "(or open %s)\n", complete)
		}
		fmt.Fprintln(stdout, "Waiting for the sign-in …")
	})
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge oauth2-login: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "refresh token stored sealed in %s\n", tok.SealedPath())
	return 0
}

// oauth2TokensFor is the token source of account n (an index in the
// user's sources) of user name.
func oauth2TokensFor(cfg *config.Config, name string, n int, observe func(string), logger *slog.Logger) (*login.OAuth2Tokens, error) {
	var u *config.User
	for i := range cfg.Users {
		if cfg.Users[i].Name == name {
			u = &cfg.Users[i]
		}
	}
	if u == nil {
		return nil, fmt.Errorf("no user %q in the config", name)
	}
	if u.SourceOAuth2 == nil {
		return nil, fmt.Errorf("user %q has no source_oauth2", name)
	}
	if n < 0 || n >= len(u.Sources) {
		return nil, fmt.Errorf("user %q has %d sources; -account %d is not one of them (0 to %d)", name, len(u.Sources), n, len(u.Sources)-1)
	}
	var src *config.Source
	for i := range cfg.Sources {
		if cfg.Sources[i].Name == u.Sources[n] {
			src = &cfg.Sources[i]
		}
	}
	if src == nil || src.Type != "pop3" || src.Auth != "static" {
		return nil, fmt.Errorf("account %d of user %q (source %q) is not a pop3 source with auth static, so it does not use source_oauth2", n, name, u.Sources[n])
	}
	return newOAuth2Tokens(cfg, *u, *src, observe, logger)
}

// newOAuth2Tokens builds the token source of user u at source src from
// u's source_oauth2.
func newOAuth2Tokens(cfg *config.Config, u config.User, src config.Source, observe func(string), logger *slog.Logger) (*login.OAuth2Tokens, error) {
	o := u.SourceOAuth2
	if o == nil {
		return nil, errors.New("no source_oauth2")
	}
	sealer, err := login.NewSealer(string(cfg.Secrets.Key))
	if err != nil {
		return nil, fmt.Errorf("oauth2 for user %q: %w", u.Name, err)
	}
	return login.NewOAuth2Tokens(login.OAuth2Params{
		TokenURL:         o.TokenURL,
		DeviceAuthURL:    o.DeviceAuthURL,
		ClientID:         o.ClientID,
		ClientSecret:     string(o.ClientSecret),
		Scopes:           o.Scopes,
		RefreshTokenFile: o.RefreshTokenFile,
	}, login.OAuth2Options{
		User:    u.Name,
		Account: login.OAuth2AccountKey(src.Name, u.SourceUser),
		DataDir: cfg.DataDir,
		Sealer:  sealer,
		Observe: observe,
		Logger:  logger,
	})
}

// oauth2Sources builds, for every user with source_oauth2, an OAuth2Source
// for each of the user's pop3 sources with auth static: a pop3 source of
// its own that logs in with the configured mechanism, and the account's
// token source. It registers imapbridge_oauth2_refresh_total on reg.
func oauth2Sources(cfg *config.Config, reg prometheus.Registerer, logger *slog.Logger) (map[string]map[string]bridge.Source, error) {
	observe, err := login.NewOAuth2Metrics(reg)
	if err != nil {
		return nil, err
	}
	byName := map[string]config.Source{}
	for _, s := range cfg.Sources {
		byName[s.Name] = s
	}
	out := map[string]map[string]bridge.Source{}
	for _, u := range cfg.Users {
		if u.SourceOAuth2 == nil {
			continue
		}
		for _, sn := range u.Sources {
			sc, ok := byName[sn]
			if !ok || sc.Type != "pop3" || sc.Auth != "static" {
				continue
			}
			tok, err := newOAuth2Tokens(cfg, u, sc, observe, logger)
			if err != nil {
				return nil, err
			}
			inner, err := newSourceAuth(sc, u.SourceOAuth2.Mechanism, logger)
			if err != nil {
				return nil, err
			}
			if out[u.Name] == nil {
				out[u.Name] = map[string]bridge.Source{}
			}
			out[u.Name][sn] = &login.OAuth2Source{Inner: inner, Tokens: tok}
		}
	}
	return out, nil
}
