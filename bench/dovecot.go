package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/imapbridge/imapbridge/internal/dovecottest/dovecotrun"
)

// dovecot is one Debian Dovecot serving POP3 (Maildir users, the legacy
// host imapbridge polls) and IMAP (mbox users, the comparison) on
// 127.0.0.1, run by the launcher the tests use (dovecotrun). As root, mail
// processes run as nobody.
type dovecot struct {
	srv      *dovecotrun.Server
	popAddr  string
	imapAddr string
}

const benchPassword = "bench-pw"

// dovecotUser is an account: a Maildir (pop) or an mbox INBOX file.
type dovecotUser struct {
	name string
	mbox bool
}

// maildir is the Maildir of a pop user.
func (d *dovecot) maildir(user string) string { return d.srv.Maildir(user) }

// inbox is the mbox INBOX of an mbox user, and index its index directory.
func (d *dovecot) inbox(user string) string { return filepath.Join(d.srv.Home(user), "inbox") }
func (d *dovecot) index(user string) string { return filepath.Join(d.srv.Home(user), "index") }

// newDovecot prepares the server in dir (users, Maildirs, mbox homes);
// start runs it once the Maildirs are filled.
func newDovecot(dir string, users []dovecotUser) (*dovecot, error) {
	d := &dovecot{}
	var us []dovecotrun.User
	for _, u := range users {
		du := dovecotrun.User{Name: u.name, Password: benchPassword}
		if u.mbox {
			home := filepath.Join(dir, "home", u.name)
			du.Mail = fmt.Sprintf("mbox:~/mail:INBOX=%s:INDEX=%s", filepath.Join(home, "inbox"), filepath.Join(home, "index"))
		}
		us = append(us, du)
	}
	srv, err := dovecotrun.New(dovecotrun.Options{
		Dir:           dir,
		Label:         "imapbridge's bench",
		Users:         us,
		IMAP:          true,
		NoSessionLock: true,
		ExtraConfig:   "mbox_read_locks = fcntl\nmbox_write_locks = fcntl\nmail_max_userip_connections = 1000",
		Logf:          logf,
	})
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install -y dovecot-pop3d dovecot-imapd)", err)
	}
	d.srv = srv
	for _, u := range users {
		if u.mbox {
			if err := os.MkdirAll(filepath.Join(srv.Home(u.name), "mail"), 0o700); err != nil {
				return nil, fmt.Errorf("dovecot: %w", err)
			}
		}
	}
	childMu.Lock()
	children.list = append(children.list, d)
	childMu.Unlock()
	return d, nil
}

func (d *dovecot) stop() { d.srv.Stop() }

func (d *dovecot) start(ctx context.Context) error {
	// Files the bench wrote into the homes go to the mail user (as root).
	if err := d.srv.ChownTree(filepath.Join(d.srv.Dir(), "home")); err != nil {
		return fmt.Errorf("dovecot: chown: %w", err)
	}
	if err := d.srv.Start(ctx); err != nil {
		return fmt.Errorf("dovecot: %w (apt-get install -y dovecot-pop3d dovecot-imapd)", err)
	}
	d.popAddr, d.imapAddr = d.srv.Addr(), d.srv.IMAPAddr()
	return nil
}

// deliver puts msg into the Maildir's new/ as an MDA does (tmp/, rename).
func (d *dovecot) deliver(user string, msg []byte) error {
	_, err := d.srv.Deliver(user, msg)
	return err
}

// freshMbox gives an mbox user a pristine copy of src and no index, so
// that the next SELECT builds the index from scratch.
func (d *dovecot) freshMbox(user, src string) error {
	if err := os.RemoveAll(d.index(user)); err != nil {
		return err
	}
	if err := copyFile(src, d.inbox(user)); err != nil {
		return err
	}
	return d.srv.ChownTree(d.inbox(user))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return os.Rename(tmp, dst)
}
