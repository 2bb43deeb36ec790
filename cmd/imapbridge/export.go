package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
	"github.com/imapbridge/imapbridge/internal/config"
	"github.com/imapbridge/imapbridge/maildirexport"
)

// runExport is "imapbridge export": the users' mailboxes written out for
// Dovecot (Maildir, keeping UIDVALIDITY, UIDs, flags, keywords and the
// UIDLs the POP3 face lists) or as mbox files, from one consistent
// snapshot of the store. It reads the store read-only, so it runs beside
// a serving bridge on the same data directory (or on a stopped one's).
func runExport(args []string, stdout, stderr io.Writer) int {
	cmd, err := maildirexport.ParseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge %v\n", err)
		return 2
	}
	cfg, warnings, err := config.Load(cmd.ConfigFile)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge: %v\n", err)
		return 1
	}
	logger := newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		logger.Debug("config warning", "warning", w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, err := bridge.OpenReadOnly(ctx, bridge.Options{DataDir: cfg.DataDir, Logger: logger, Index: imapfront.Index})
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge export: %v\n", err)
		return 1
	}
	defer b.Close()
	if _, err := cmd.Run(ctx, b, stdout, maildirexport.Options{HostUIDL: hostUIDLs(cfg), Logger: logger}); err != nil {
		fmt.Fprintf(stderr, "imapbridge export: %v\n", err)
		if errors.Is(err, maildirexport.ErrTargetNotEmpty) {
			fmt.Fprintln(stderr, "imapbridge export: give -force to replace it")
		}
		return 1
	}
	return 0
}
