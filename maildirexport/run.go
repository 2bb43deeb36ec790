package maildirexport

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/imapbridge/imapbridge/bridge"
)

// Command is the "imapbridge export" sub-command's arguments.
type Command struct {
	// ConfigFile is -config: the caller loads it and opens the store
	// (bridge.OpenReadOnly on the configured data directory).
	ConfigFile string
	User       string // -user NAME
	All        bool   // -all
	To         string // -to DIR
	Format     Format // -format maildir|mbox
	Force      bool   // -force
	// DovecotConf is -dovecot-conf FILE: where the Dovecot settings the
	// export needs are written ("" prints them).
	DovecotConf string
}

// Usage is the sub-command's synopsis.
const Usage = `usage: imapbridge export -config FILE (-user NAME | -all) -to DIR [-format maildir|mbox] [-force] [-dovecot-conf FILE]

  -user NAME   export one user: DIR becomes that user's Maildir (~/Maildir for Dovecot)
  -all         export every user: DIR/<user>/Maildir
  -format      maildir (default: Dovecot Maildir++, UIDs and UIDLs kept) or mbox (archive files)
  -force       replace a DIR that is not empty (the old one is removed once the new one is in place)
  -dovecot-conf FILE   write the Dovecot settings the export needs there (default: print them)
`

// ParseArgs parses the sub-command's arguments (those after "export").
// Errors name the problem; the usage goes to stderr.
func ParseArgs(args []string, stderr io.Writer) (Command, error) {
	var c Command
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, Usage) }
	fs.StringVar(&c.ConfigFile, "config", "", "configuration file")
	fs.StringVar(&c.User, "user", "", "user to export")
	fs.BoolVar(&c.All, "all", false, "export every user")
	fs.StringVar(&c.To, "to", "", "target directory")
	format := fs.String("format", string(FormatMaildir), "maildir or mbox")
	fs.BoolVar(&c.Force, "force", false, "replace a non-empty target")
	fs.StringVar(&c.DovecotConf, "dovecot-conf", "", "write the Dovecot settings here")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Format = Format(*format)
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("export: unexpected argument %q", fs.Arg(0)))
	}
	if c.ConfigFile == "" {
		errs = append(errs, errors.New("export: -config is required"))
	}
	if (c.User == "") == !c.All {
		errs = append(errs, errors.New("export: give exactly one of -user NAME and -all"))
	}
	if c.To == "" {
		errs = append(errs, errors.New("export: -to DIR is required"))
	}
	if c.Format != FormatMaildir && c.Format != FormatMbox {
		errs = append(errs, fmt.Errorf("export: -format %q: want maildir or mbox", c.Format))
	}
	return c, errors.Join(errs...)
}

// Run runs the export c describes over b and writes a summary (and, for
// Maildir, the Dovecot settings) to stdout. opts.Format and opts.Force
// are taken from c; the caller sets opts.HostUIDL (the POP3 face's, with the
// names of the configured POP3 sources) and opts.Logger.
func (c Command) Run(ctx context.Context, b *bridge.Bridge, stdout io.Writer, opts Options) (*Report, error) {
	opts.Format, opts.Force = c.Format, c.Force
	var (
		rep *Report
		err error
	)
	if c.All {
		rep, err = ExportAll(ctx, b, c.To, opts)
	} else {
		rep, err = Export(ctx, b, c.User, c.To, opts)
	}
	if err != nil {
		return nil, err
	}
	for _, u := range rep.Users {
		n, uidls := 0, 0
		for _, m := range u.Mailboxes {
			n += m.Messages
			uidls += m.UIDLs
		}
		fmt.Fprintf(stdout, "exported %s: %d mailboxes, %d messages, %d POP3 UIDLs, %d subscriptions -> %s\n", u.User, len(u.Mailboxes), n, uidls, u.Subscriptions, u.Dir)
	}
	if rep.Format == FormatMaildir {
		conf, conflicts := rep.DovecotConfig()
		for _, c := range conflicts {
			fmt.Fprintf(stdout, "warning: special-use: %s\n", c)
		}
		if c.DovecotConf != "" {
			if err := os.WriteFile(c.DovecotConf, []byte(conf), 0o644); err != nil {
				return rep, fmt.Errorf("export: write %s: %w", c.DovecotConf, err)
			}
			fmt.Fprintf(stdout, "Dovecot settings written to %s\n", c.DovecotConf)
		} else {
			fmt.Fprintf(stdout, "Dovecot settings the export needs:\n%s", conf)
		}
	}
	return rep, nil
}
