package dovecottest

import (
	"fmt"
	"os"
	"testing"

	"github.com/imapbridge/imapbridge/internal/testtool"
)

// InstallIMAPCommand installs what StartIMAP needs.
const InstallIMAPCommand = "apt-get install -y dovecot-imapd dovecot-pop3d"

// MaildirUser is a user of StartIMAP with a Maildir that already exists
// (an export, say).
type MaildirUser struct {
	Name     string
	Password string
	// Maildir is moved (renamed) to the user's home as ~/Maildir when the
	// user is added; as root its files are then given to the mail user.
	// It must be on the same filesystem as the test's temp dir.
	Maildir string
}

// IMAPOptions configure StartIMAP.
type IMAPOptions struct {
	Users []MaildirUser
	// ExtraConfig is appended to the generated configuration, e.g. the
	// namespace settings an export needs.
	ExtraConfig string
}

// IMAPServer is a Dovecot serving IMAP and POP3 over Maildirs.
type IMAPServer struct {
	*Server
}

// MaildirPath is where the user's Maildir now is.
func (s *IMAPServer) MaildirPath(user string) string { return s.Maildir(user) }

// StartIMAP starts Dovecot with IMAP and POP3 on free ports of 127.0.0.1
// (dovecotrun.Options.IMAP), serving the Maildirs given; it is stopped
// when the test ends. Like Start it fails the test (skips outside CI)
// when Dovecot's IMAP or POP3 server is missing.
func StartIMAP(tb testing.TB, opts IMAPOptions) *IMAPServer {
	tb.Helper()
	if err := Available(); err != nil {
		testtool.Require(tb, fmt.Errorf("dovecottest: %w", err), InstallIMAPCommand)
	}
	srv, err := start(tb, Options{IMAP: true, ExtraConfig: opts.ExtraConfig})
	if err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}
	s := &IMAPServer{Server: srv}
	for _, u := range opts.Users {
		if err := s.addMaildirUser(u); err != nil {
			tb.Fatalf("dovecottest: add user %q: %v", u.Name, err)
		}
	}
	return s
}

func (s *IMAPServer) addMaildirUser(u MaildirUser) error {
	if err := s.Server.Server.AddUser(User{Name: u.Name, Password: u.Password}); err != nil {
		return err
	}
	md := s.Maildir(u.Name)
	if err := os.RemoveAll(md); err != nil {
		return err
	}
	if err := os.Rename(u.Maildir, md); err != nil {
		return err
	}
	return s.ChownTree(md)
}
