package maildirexport_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/maildirexport"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want maildirexport.Command
		err  string
	}{
		{[]string{"-config", "c.yaml", "-user", "alice", "-to", "/m"}, maildirexport.Command{ConfigFile: "c.yaml", User: "alice", To: "/m", Format: maildirexport.FormatMaildir}, ""},
		{[]string{"-config", "c.yaml", "-all", "-to", "/m", "-format", "mbox", "-force"}, maildirexport.Command{ConfigFile: "c.yaml", All: true, To: "/m", Format: maildirexport.FormatMbox, Force: true}, ""},
		{[]string{"-user", "alice", "-all"}, maildirexport.Command{}, "export: -config is required\nexport: give exactly one of -user NAME and -all\nexport: -to DIR is required"},
		{[]string{"-config", "c", "-to", "/m"}, maildirexport.Command{}, "export: give exactly one of -user NAME and -all"},
		{[]string{"-config", "c", "-all", "-to", "/m", "-format", "tar"}, maildirexport.Command{}, `export: -format "tar": want maildir or mbox`},
		{[]string{"-config", "c", "-all", "-to", "/m", "extra"}, maildirexport.Command{}, `export: unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		got, err := maildirexport.ParseArgs(tc.args, &stderr)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseArgs(%q) error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseArgs(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

// TestCommandRun: the sub-command's body prints one line per user and
// writes the Dovecot settings where -dovecot-conf says.
func TestCommandRun(t *testing.T) {
	b := smallStore(t)
	dir := t.TempDir()
	confPath := filepath.Join(dir, "99-imapbridge-export.conf")
	cmd, err := maildirexport.ParseArgs([]string{"-config", "x.yaml", "-all", "-to", filepath.Join(dir, "mail"), "-dovecot-conf", confPath}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep, err := cmd.Run(context.Background(), b, &out, maildirexport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^exported alice: 6 mailboxes, 1 messages, 0 POP3 UIDLs, 6 subscriptions -> \S+/mail/alice/Maildir
exported bob: 6 mailboxes, 1 messages, 0 POP3 UIDLs, 6 subscriptions -> \S+/mail/bob/Maildir
Dovecot settings written to \S+/99-imapbridge-export.conf
$`)
	if !want.MatchString(out.String()) {
		t.Errorf("output:\n%s", out.String())
	}
	conf, _ := rep.DovecotConfig()
	data, err := os.ReadFile(confPath)
	if err != nil || string(data) != conf || !strings.Contains(conf, "separator = /") {
		t.Errorf("%s: %q, %v", confPath, data, err)
	}
	// Again, into the same place: refused without -force.
	if _, err := cmd.Run(context.Background(), b, &out, maildirexport.Options{}); err == nil || !strings.Contains(err.Error(), "target directory is not empty") {
		t.Errorf("second run: %v", err)
	}
}
