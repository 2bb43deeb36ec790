package dovecotrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewRefuses: what the passwd-file format or the layout cannot hold is
// refused by New with the reason, before anything runs.
func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no directory", Options{Binary: "/bin/true"}, "dovecotrun: no directory given (Options.Dir)"},
		{"bad user name", Options{Binary: "/bin/true", Users: []User{{Name: "a:b"}}}, `dovecotrun: add user "a:b": invalid user name "a:b"`},
		{"bad password", Options{Binary: "/bin/true", Users: []User{{Name: "a", Password: "x:y"}}}, `the password of "a" contains a character the passwd-file format cannot hold`},
		{"bad mail location", Options{Binary: "/bin/true", Users: []User{{Name: "a", Mail: "mbox:~/mail dir"}}}, `the mail location of "a" contains a space or line break`},
		{"same user twice", Options{Binary: "/bin/true", Users: []User{{Name: "a"}, {Name: "a"}}}, `user "a" exists`},
	} {
		if tc.name != "no directory" {
			tc.opts.Dir = t.TempDir()
		}
		s, err := New(tc.opts)
		if err == nil {
			s.Stop()
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}

// TestNewWritesUsers: a user's passwd entry carries the mail location
// override, and its Maildir exists before Dovecot starts.
func TestNewWritesUsers(t *testing.T) {
	s, err := New(Options{Binary: "/bin/true", Dir: t.TempDir(), Users: []User{{Name: "m", Password: "pw", Mail: "mbox:~/mail:INBOX=/x/inbox"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	line, err := os.ReadFile(filepath.Join(s.Dir(), "passwd.d", "m"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(line), "m:{PLAIN}pw:") || !strings.HasSuffix(string(line), "::userdb_mail=mbox:~/mail:INBOX=/x/inbox\n") {
		t.Errorf("passwd entry %q", line)
	}
	for _, sub := range []string{"new", "cur", "tmp"} {
		if fi, err := os.Stat(filepath.Join(s.Maildir("m"), sub)); err != nil || !fi.IsDir() {
			t.Errorf("Maildir %s: %v", sub, err)
		}
	}
}
