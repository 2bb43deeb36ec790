package dovecottest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	imapAddr string
}

// IMAPAddr is the host:port of the plain IMAP port.
func (s *IMAPServer) IMAPAddr() string { return s.imapAddr }

// MaildirPath is where the user's Maildir now is.
func (s *IMAPServer) MaildirPath(user string) string { return filepath.Join(s.home(user), "Maildir") }

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
	port, err := freePort()
	if err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}
	var extra strings.Builder
	extra.WriteString("protocols = imap pop3\n")
	fmt.Fprintf(&extra, "service imap-login {\n  inet_listener imap {\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n", port)
	if os.Geteuid() != 0 {
		extra.WriteString("service imap-login {\n  chroot =\n}\n")
	}
	extra.WriteString(opts.ExtraConfig)
	srv, err := start(tb, Options{ExtraConfig: extra.String()})
	if err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}
	s := &IMAPServer{Server: srv, imapAddr: "127.0.0.1:" + strconv.Itoa(port)}
	for _, u := range opts.Users {
		if err := s.addMaildirUser(u); err != nil {
			tb.Fatalf("dovecottest: add user %q: %v", u.Name, err)
		}
	}
	return s
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

func (s *Server) addMaildirUser(u MaildirUser) error {
	if u.Name == "" || strings.ContainsAny(u.Name, ":/\r\n\x00 \t") || u.Name == "." || u.Name == ".." {
		return fmt.Errorf("invalid user name %q", u.Name)
	}
	if strings.ContainsAny(u.Password, ":\r\n\x00") {
		return fmt.Errorf("the password contains a character the passwd-file format cannot hold")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.Name]; ok {
		return fmt.Errorf("user %q exists", u.Name)
	}
	home := s.home(u.Name)
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	if err := s.chown(home); err != nil {
		return err
	}
	md := filepath.Join(home, "Maildir")
	if err := os.Rename(u.Maildir, md); err != nil {
		return err
	}
	if s.asRoot {
		err := filepath.WalkDir(md, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, s.mailUID, s.mailGID)
		})
		if err != nil {
			return err
		}
	}
	s.users[u.Name] = u.Password
	line := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", u.Name, u.Password, s.mailUID, s.mailGID, home)
	return writeFileAtomic(filepath.Join(s.dir, "passwd.d", u.Name), []byte(line), 0o644, -1, -1)
}
