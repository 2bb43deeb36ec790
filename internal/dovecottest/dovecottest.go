// Package dovecottest starts a real Dovecot POP3 server for tests: the
// testing.TB glue around dovecotrun (the launcher, shared with the bench,
// which must not link the testing package).
//
// Start writes a private configuration into the test's temporary directory
// (base_dir, state_dir, log file, a passwd-file passdb/userdb and one Maildir
// per user), runs `dovecot -F` on free ports of 127.0.0.1, waits until the
// server answers "+OK", and stops it (by PID) when the test ends:
//
//	srv := dovecottest.Start(t, dovecottest.Options{
//		Users: []dovecottest.User{{Name: "alice", Password: "secret"}},
//		TLS:   true,
//	})
//	srv.Deliver("alice", []byte("Subject: hi\n\nhello\n"))
//	c, err := pop3.Dial(ctx, srv.Addr(), pop3.Options{})
//
// Dovecot is Debian's dovecot-pop3d. When it is not installed, Start skips the
// test, or fails it when the environment variable CI is "true", naming the
// command that installs it (InstallCommand).
//
// It is for tests only (the bench uses dovecotrun directly), and imports
// nothing of this module but dovecotrun and internal/testtool.
package dovecottest

import (
	"context"
	"fmt"
	"testing"

	"github.com/imapbridge/imapbridge/internal/dovecottest/dovecotrun"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// InstallCommand is the command that installs the Dovecot POP3 server on
// Debian and Ubuntu; the harness names it when Dovecot is missing.
const InstallCommand = dovecotrun.InstallCommand

// User is a mail account of the test server.
type User = dovecotrun.User

// Options configure a test server (Dir, Label and Logf are set by Start).
type Options = dovecotrun.Options

// Message is one message file in a user's Maildir.
type Message = dovecotrun.Message

// Server is a running Dovecot whose methods fail the test instead of
// returning an error.
type Server struct {
	*dovecotrun.Server
	tb testing.TB
}

// lookupDovecot finds the dovecot binary; tests replace it.
var lookupDovecot = dovecotrun.FindBinary

// Available reports whether a Dovecot with the POP3 server is installed.
func Available() error {
	bin, err := lookupDovecot()
	if err != nil {
		return err
	}
	return dovecotrun.Available(bin)
}

// Start starts a Dovecot POP3 server for the test and registers its Stop
// with t.Cleanup. It skips or fails the test when Dovecot is missing (see the
// package documentation) and fails it when the server does not come up, with
// the server's log in the message.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if err := Available(); err != nil {
		testtool.Require(tb, fmt.Errorf("dovecottest: %w", err), InstallCommand)
	}
	s, err := start(tb, opts)
	if err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}
	return s
}

func start(tb testing.TB, opts Options) (*Server, error) {
	opts.Dir, opts.Label, opts.Logf = tb.TempDir(), tb.Name(), tb.Logf
	if opts.Binary == "" {
		bin, err := lookupDovecot()
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	s, err := dovecotrun.Launch(context.Background(), opts)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(s.Stop)
	return &Server{Server: s, tb: tb}, nil
}

// AddUser creates a user with an empty Maildir, while the server runs or
// not. A name or password that the passwd-file format cannot hold fails the
// test.
func (s *Server) AddUser(name, password string) {
	s.tb.Helper()
	if err := s.Server.AddUser(User{Name: name, Password: password}); err != nil {
		s.tb.Fatalf("dovecottest: %v", err)
	}
}

// Deliver puts msg into the user's Maildir the way an MDA does (see
// dovecotrun.Server.Deliver) and returns the file name.
func (s *Server) Deliver(user string, msg []byte) string {
	s.tb.Helper()
	name, err := s.Server.Deliver(user, msg)
	if err != nil {
		s.tb.Fatalf("dovecottest: %v", err)
	}
	return name
}

// Messages returns the messages the user's maildrop holds now (new/ and
// cur/), in delivery order. A message a POP3 client deleted and committed
// with QUIT is gone from it.
func (s *Server) Messages(user string) []Message {
	s.tb.Helper()
	msgs, err := s.Server.Messages(user)
	if err != nil {
		s.tb.Fatalf("dovecottest: %v", err)
	}
	return msgs
}
