package dovecottest

import (
	"fmt"
	"os"
	"path/filepath"
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
	// Maildir is moved (renamed) to the user's home as ~/Maildir before
	// the user is added; as root its files are then given to the mail
	// user. It must be on the same filesystem as the test's temp dir.
	Maildir string
}

// IMAPOptions configure StartIMAP.
type IMAPOptions struct {
	Users []MaildirUser
	// ExtraConfig is appended to the generated configuration (after the
	// IMAP listener), e.g. the namespace settings an export needs.
	ExtraConfig string
}

// IMAPServer is a Dovecot serving IMAP and POP3 over Maildirs.
type IMAPServer struct {
	*Server
}

// MaildirPath is where the user's Maildir now is.
func (s *IMAPServer) MaildirPath(user string) string { return s.Maildir(user) }

// StartIMAP starts Dovecot with IMAP and POP3 (plain text, USER/PASS and
// LOGIN allowed) on free ports of 127.0.0.1, with mail_location
// maildir:~/Maildir, serving the Maildirs given; it is stopped when the
// test ends. Like Start it skips or fails the test when Dovecot's IMAP or
// POP3 server is missing.
func StartIMAP(tb testing.TB, opts IMAPOptions) *IMAPServer {
	tb.Helper()
	if err := availableIMAP(); err != nil {
		testtool.Require(tb, fmt.Errorf("dovecottest: %w", err), InstallIMAPCommand)
	}
	srv, err := start(tb, Options{IMAP: true, ExtraConfig: opts.ExtraConfig})
	if err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}
	for _, u := range opts.Users {
		if err := srv.AddMaildirUser(u.Name, u.Password, u.Maildir); err != nil {
			tb.Fatalf("dovecottest: %v", err)
		}
	}
	return &IMAPServer{Server: srv}
}

func availableIMAP() error {
	if err := Available(); err != nil {
		return err
	}
	bin, _ := lookupDovecot()
	libexec := filepath.Join(filepath.Dir(filepath.Dir(bin)), "lib", "dovecot")
	for _, name := range []string{"imap", "imap-login"} {
		if _, err := os.Stat(filepath.Join(libexec, name)); err != nil {
			return fmt.Errorf("dovecot is installed but its IMAP server %s is not", filepath.Join(libexec, name))
		}
	}
	return nil
}
