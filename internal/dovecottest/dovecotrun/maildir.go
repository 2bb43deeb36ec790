package dovecotrun

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Message is one message file in a user's Maildir.
type Message struct {
	// Name is the file's base name as Deliver chose it, without the
	// ":2,flags" info Dovecot adds when it moves the file to cur/.
	Name string
	// Data is the file's content: what was delivered, byte for byte (LF
	// line endings stay LF on disk; POP3 sends CRLF).
	Data []byte
}

// AddUser creates a user with an empty Maildir. It may be called while the
// server runs: Dovecot re-reads the passwd file when it changes. A name or
// password that the passwd-file format cannot hold is an error.
func (s *Server) AddUser(u User) error {
	if err := s.addUser(u); err != nil {
		return fmt.Errorf("dovecotrun: add user %q: %w", u.Name, err)
	}
	return nil
}

func (s *Server) addUser(u User) error {
	name, password := u.Name, u.Password
	if name == "" || strings.ContainsAny(name, ":/\r\n\x00 \t") || name == "." || name == ".." {
		return fmt.Errorf("invalid user name %q", name)
	}
	if strings.ContainsAny(u.Mail, "\r\n\x00 \t") {
		return fmt.Errorf("the mail location of %q contains a space or line break, which the passwd-file format cannot hold", name)
	}
	if strings.ContainsAny(password, ":\r\n\x00") {
		return fmt.Errorf("the password of %q contains a character the passwd-file format cannot hold", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; ok {
		return fmt.Errorf("user %q exists", name)
	}
	home := s.home(name)
	for _, d := range []string{home, filepath.Join(home, "Maildir"), s.maildir(name, "new"), s.maildir(name, "cur"), s.maildir(name, "tmp")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if err := s.chown(d); err != nil {
			return err
		}
	}
	s.users[name] = password
	// passwd-file: user:password:uid:gid:gecos:home:shell
	extra := ""
	if u.Mail != "" {
		extra = "userdb_mail=" + u.Mail
	}
	line := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::%s\n", name, password, s.mailUID, s.mailGID, home, extra)
	return writeFileAtomic(filepath.Join(s.dir, "passwd.d", name), []byte(line), 0o644, -1, -1)
}

// AddMaildirUser creates a user whose Maildir already exists (an export,
// say): maildir is moved (renamed) to the user's home as ~/Maildir, so it
// must be on the same filesystem as Options.Dir; as root its files are then
// given to the mail user.
func (s *Server) AddMaildirUser(name, password, maildir string) error {
	if err := s.addMaildirUser(name, password, maildir); err != nil {
		return fmt.Errorf("dovecotrun: add user %q: %w", name, err)
	}
	return nil
}

func (s *Server) addMaildirUser(name, password, maildir string) error {
	if name == "" || strings.ContainsAny(name, ":/\r\n\x00 \t") || name == "." || name == ".." {
		return fmt.Errorf("invalid user name %q", name)
	}
	if strings.ContainsAny(password, ":\r\n\x00") {
		return fmt.Errorf("the password of %q contains a character the passwd-file format cannot hold", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; ok {
		return fmt.Errorf("user %q exists", name)
	}
	home := s.home(name)
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	if err := s.chown(home); err != nil {
		return err
	}
	md := filepath.Join(home, "Maildir")
	if err := os.Rename(maildir, md); err != nil {
		return err
	}
	if err := s.ChownTree(md); err != nil {
		return err
	}
	s.users[name] = password
	line := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", name, password, s.mailUID, s.mailGID, home)
	return writeFileAtomic(filepath.Join(s.dir, "passwd.d", name), []byte(line), 0o644, -1, -1)
}

// Home is the user's home directory.
func (s *Server) Home(user string) string { return s.home(user) }

// Maildir is the user's Maildir.
func (s *Server) Maildir(user string) string { return filepath.Join(s.home(user), "Maildir") }

func (s *Server) home(user string) string { return filepath.Join(s.dir, "home", user) }

func (s *Server) maildir(user, sub string) string {
	return filepath.Join(s.home(user), "Maildir", sub)
}

func (s *Server) chown(path string) error {
	if !s.asRoot {
		return nil
	}
	return os.Chown(path, s.mailUID, s.mailGID)
}

// Deliver puts msg into the user's Maildir the way an MDA does: written in
// tmp/, then renamed into new/. Dovecot sees it at the next POP3 session.
// Messages are numbered in delivery order (the file names sort that way, and
// Dovecot gives new files UIDs in file-name order). It returns the file name.
func (s *Server) Deliver(user string, msg []byte) (string, error) {
	name, err := s.deliver(user, msg)
	if err != nil {
		return "", fmt.Errorf("dovecotrun: deliver to %q: %w", user, err)
	}
	return name, nil
}

func (s *Server) deliver(user string, msg []byte) (string, error) {
	s.mu.Lock()
	if _, ok := s.users[user]; !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("no user %q", user)
	}
	s.seq++
	// <time>.<unique>.<host>: the time part is fixed per server so that the
	// sequence number alone orders the deliveries.
	name := fmt.Sprintf("%d.P%dQ%08d.dovecottest", s.epoch, os.Getpid(), s.seq)
	s.mu.Unlock()
	tmp := filepath.Join(s.maildir(user, "tmp"), name)
	if err := os.WriteFile(tmp, msg, 0o600); err != nil {
		return "", err
	}
	if err := s.chown(tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(s.maildir(user, "new"), name)); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return name, nil
}

// Messages returns the messages the user's maildrop holds now (new/ and
// cur/), in delivery order. A message a POP3 client deleted and committed
// with QUIT is gone from it.
func (s *Server) Messages(user string) ([]Message, error) {
	var out []Message
	for _, sub := range []string{"new", "cur"} {
		dir := s.maildir(user, sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("dovecotrun: messages of %q: %w", user, err)
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if os.IsNotExist(err) {
				continue // moved from new/ to cur/ meanwhile: read below
			}
			if err != nil {
				return nil, fmt.Errorf("dovecotrun: messages of %q: %w", user, err)
			}
			name, _, _ := strings.Cut(e.Name(), ":")
			out = append(out, Message{Name: name, Data: data})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	// A file seen in new/ and again in cur/ after a concurrent move.
	dedup := out[:0]
	for i, m := range out {
		if i > 0 && out[i-1].Name == m.Name {
			continue
		}
		dedup = append(dedup, m)
	}
	return dedup, nil
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place.
func writeFileAtomic(path string, data []byte, perm os.FileMode, uid, gid int) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
