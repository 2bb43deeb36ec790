package maildirexport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/imapbridge/imapbridge/bridge"
)

// Format is what Export writes.
type Format string

const (
	// FormatMaildir: a Maildir++ tree for Dovecot (the default).
	FormatMaildir Format = "maildir"
	// FormatMbox: one mboxrd file per mailbox, for archiving.
	FormatMbox Format = "mbox"
)

// Options configure an export.
type Options struct {
	// Format is FormatMaildir ("" too) or FormatMbox.
	Format Format
	// Force replaces a target directory that is not empty. The old
	// target is removed only once the new one is complete and in place.
	Force bool
	// HostUIDL says which UIDL the legacy POP3 host gave a message (the
	// wiring passes the one the bridge's POP3 face uses: pop3.HostUIDL
	// for the configured pop3 sources). Every INBOX message gets the P
	// field of dovecot-uidlist by the POP3 face's rule,
	// bridge.AssignPOP3UIDLs: the host's UIDL, or the UIDL the face
	// generates, so a POP3 client moved from the bridge's POP3 face to
	// the exported Dovecot downloads nothing again. Nil: every message
	// gets a generated UIDL.
	HostUIDL bridge.HostUIDLFunc
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// ErrTargetNotEmpty: the target directory holds something and Force is
// not set.
var ErrTargetNotEmpty = errors.New("target directory is not empty")

// ErrUnrepresentable: the user's mailboxes hold something the target
// format cannot hold (more than 26 keywords in one Maildir folder, a user
// name that cannot be a directory name).
var ErrUnrepresentable = errors.New("cannot be represented in the export format")

// Report says what an export wrote.
type Report struct {
	// Generation is the store commit the snapshot showed.
	Generation uint64
	// LastUIDValidity is the highest UIDVALIDITY the bridge handed out;
	// the Maildirs' Dovecot counter continues from it.
	LastUIDValidity uint32
	Format          Format
	Users           []UserReport
}

// UserReport is one user's part of a Report.
type UserReport struct {
	User string
	// Dir is where the user's tree (the Maildir, or the mbox files) is.
	Dir           string
	Mailboxes     []MailboxReport
	Subscriptions int
}

// MailboxReport is one mailbox's part of a Report.
type MailboxReport struct {
	Name        string
	SpecialUse  string
	Path        string // relative to UserReport.Dir
	UIDValidity bridge.UIDValidity
	UIDNext     bridge.UID
	Messages    int
	Bytes       int64
	// UIDLs counts the messages given their legacy host's POP3 UIDL;
	// GeneratedUIDLs those given the UIDL the POP3 face generates (both
	// in INBOX only: the maildrop POP3 serves).
	UIDLs          int
	GeneratedUIDLs int
	Keywords       []string
}

// Messages counts the messages over every user and mailbox.
func (r *Report) Messages() int {
	n := 0
	for _, u := range r.Users {
		for _, m := range u.Mailboxes {
			n += m.Messages
		}
	}
	return n
}

// Export writes user's mailboxes into dir: the Maildir itself (what
// ~/Maildir is for Dovecot) or, with FormatMbox, a directory of mbox
// files. The target is written under a temporary name next to it
// (".<name>.imapbridge-export-<random>") and renamed into place once
// complete and durable, so a crash leaves no half-written dir.
//
// b is a read-only handle (bridge.OpenReadOnly) or the serving Bridge
// itself; the snapshot holds one of its read connections meanwhile.
func Export(ctx context.Context, b *bridge.Bridge, user, dir string, opts Options) (*Report, error) {
	return run(ctx, b, dir, opts, func(ctx context.Context, snap *bridge.ReadSnapshot, tmp string, rep *Report, opts Options) error {
		ur, err := exportUser(ctx, snap, user, tmp, opts)
		if err != nil {
			return err
		}
		ur.Dir = dir
		rep.Users = append(rep.Users, *ur)
		return nil
	})
}

// ExportAll writes every user of the store, from one snapshot, into dir:
// DIR/<user>/Maildir (or DIR/<user>/ with mbox files), atomically as
// Export does.
func ExportAll(ctx context.Context, b *bridge.Bridge, dir string, opts Options) (*Report, error) {
	return run(ctx, b, dir, opts, func(ctx context.Context, snap *bridge.ReadSnapshot, tmp string, rep *Report, opts Options) error {
		users, err := snap.Users(ctx)
		if err != nil {
			return err
		}
		for _, u := range users {
			if err := checkUserDir(u); err != nil {
				return err
			}
			sub := u
			if opts.Format != FormatMbox {
				sub = filepath.Join(u, "Maildir")
			}
			if err := os.MkdirAll(filepath.Join(tmp, u), 0o700); err != nil {
				return fmt.Errorf("export %q: %w", u, err)
			}
			ur, err := exportUser(ctx, snap, u, filepath.Join(tmp, sub), opts)
			if err != nil {
				return err
			}
			ur.Dir = filepath.Join(dir, sub)
			rep.Users = append(rep.Users, *ur)
		}
		return nil
	})
}

// checkUserDir refuses a user name that is not a plain directory name.
func checkUserDir(u string) error {
	if u == "" || u == "." || u == ".." || strings.ContainsAny(u, "/\x00") {
		return fmt.Errorf("export user %q: %w: the name is not usable as a directory name", u, ErrUnrepresentable)
	}
	return nil
}

// exportBody writes the export into tmp from snap, with opts checked.
type exportBody func(ctx context.Context, snap *bridge.ReadSnapshot, tmp string, rep *Report, opts Options) error

// maxAttempts bounds the snapshots taken for one export: a later attempt
// is needed only when the server expunged a message whose body was a file
// between the snapshot and the read of that body.
const maxAttempts = 3

func run(ctx context.Context, b *bridge.Bridge, dir string, opts Options, body exportBody) (*Report, error) {
	switch opts.Format {
	case "":
		opts.Format = FormatMaildir
	case FormatMaildir, FormatMbox:
	default:
		return nil, fmt.Errorf("export: unknown format %q (want %q or %q)", opts.Format, FormatMaildir, FormatMbox)
	}
	if dir == "" {
		return nil, errors.New("export: no target directory")
	}
	dir = filepath.Clean(dir)
	existing, err := checkTarget(dir, opts.Force)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("export: create %s: %w", parent, err)
	}
	// What an interrupted export (a crash, a kill) left: never used,
	// never removed (another export may be writing it), only named.
	if stale, _ := filepath.Glob(filepath.Join(parent, "."+filepath.Base(dir)+".imapbridge-export-*")); len(stale) > 0 {
		logger(opts).Warn("export: an earlier export of this target did not finish; remove what it left once no export runs", "path", strings.Join(stale, " "))
	}
	var lastErr error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		tmp := filepath.Join(parent, "."+filepath.Base(dir)+".imapbridge-export-"+randomHex(6))
		rep, err := attemptExport(ctx, b, tmp, opts, body)
		if err == nil {
			if err := place(tmp, dir, existing); err != nil {
				os.RemoveAll(tmp)
				return nil, err
			}
			rep.Format = opts.Format
			return rep, nil
		}
		os.RemoveAll(tmp)
		lastErr = err
		if !errors.Is(err, bridge.ErrNoSuchMessage) || ctx.Err() != nil {
			return nil, err
		}
		logger(opts).Warn("export: a message was expunged while it was being exported; starting again from a new snapshot", "attempt", attempt, "err", err)
	}
	return nil, fmt.Errorf("export: %d attempts: %w", maxAttempts, lastErr)
}

func attemptExport(ctx context.Context, b *bridge.Bridge, tmp string, opts Options, body exportBody) (*Report, error) {
	snap, err := b.ReadSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer snap.Close()
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	rep := &Report{Generation: snap.Generation(), LastUIDValidity: uint32(snap.LastUIDValidity())}
	if err := body(ctx, snap, tmp, rep, opts); err != nil {
		return nil, err
	}
	if err := syncTree(ctx, tmp); err != nil {
		return nil, fmt.Errorf("export: sync %s: %w", tmp, err)
	}
	return rep, nil
}

// checkTarget: dir must not exist, or be an empty directory, or Force
// must be set. It reports whether something is there to replace.
func checkTarget(dir string, force bool) (existing bool, err error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("export: target %s: %w", dir, err)
	}
	if !fi.IsDir() {
		if !force {
			return false, fmt.Errorf("export: target %s: %w (it is a file; -force replaces it)", dir, ErrTargetNotEmpty)
		}
		return true, nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return false, fmt.Errorf("export: target %s: %w", dir, err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("export: target %s: %w", dir, err)
	}
	if len(names) > 0 && !force {
		return false, fmt.Errorf("export: target %s: %w (it holds %q; -force replaces it)", dir, ErrTargetNotEmpty, names[0])
	}
	return true, nil
}

// place renames the finished tree tmp to dir. Whatever was at dir is
// moved aside first and removed only after the rename.
func place(tmp, dir string, existing bool) error {
	var old string
	if existing {
		old = filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".imapbridge-replaced-"+randomHex(6))
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("export: move the old %s aside: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("export: put %s in place: %w", dir, err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("export: sync %s: %w", filepath.Dir(dir), err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("export: remove the old target %s: %w", old, err)
		}
	}
	return nil
}

// syncTree makes everything under root durable: every file, then every
// directory (the entries naming them). The files are written without a
// sync of their own; here syncWorkers fsyncs run at once, which the
// filesystem's journal commits together, instead of one commit a file.
func syncTree(ctx context.Context, root string) error {
	var files, dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		} else {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := syncAll(ctx, files); err != nil {
		return err
	}
	return syncAll(ctx, dirs)
}

// syncWorkers is how many fsyncs syncAll keeps in flight.
const syncWorkers = 16

// syncAll fsyncs paths, syncWorkers at a time, and returns the first
// failure (naming the path).
func syncAll(ctx context.Context, paths []string) error {
	work := make(chan string)
	errs := make(chan error, syncWorkers)
	var wg sync.WaitGroup
	for range min(syncWorkers, len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if err := syncDir(p); err != nil {
					errs <- fmt.Errorf("fsync %s: %w", p, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for _, p := range paths {
		select {
		case work <- p:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// syncDir fsyncs a file or directory.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func logger(opts Options) *slog.Logger {
	if opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return opts.Logger
}

// writeFile creates path with data (made durable by syncTree).
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// exportUser writes one user's mailboxes into dir (which must not exist
// yet) in opts.Format.
func exportUser(ctx context.Context, snap *bridge.ReadSnapshot, user, dir string, opts Options) (*UserReport, error) {
	mbs, err := snap.Mailboxes(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", user, err)
	}
	subs, err := snap.Subscriptions(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", user, err)
	}
	ur := &UserReport{User: user, Subscriptions: len(subs)}
	if opts.Format == FormatMbox {
		err = writeMboxUser(ctx, snap, mbs, dir, ur)
	} else {
		err = writeMaildirUser(ctx, snap, mbs, subs, dir, opts, ur)
	}
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", user, err)
	}
	return ur, nil
}

// DovecotConfig returns the Dovecot configuration the exported users
// need: the listescape plugin (folder names with ".", "\" or a leading
// "~" are stored escaped, as that plugin reads them), the inbox namespace
// with the bridge's hierarchy separator "/", and a mailbox section for
// every special-use mailbox. Dovecot's special-use
// attributes are configuration, for every user alike: a name that has
// different uses for different users (or none for some) is configured
// with the use most users have, and named in conflicts.
func (r *Report) DovecotConfig() (conf string, conflicts []string) {
	uses := map[string]map[string]int{} // name → use ("" none) → users
	for _, u := range r.Users {
		for _, m := range u.Mailboxes {
			if uses[m.Name] == nil {
				uses[m.Name] = map[string]int{}
			}
			uses[m.Name][m.SpecialUse]++
		}
	}
	names := make([]string, 0, len(uses))
	for n, byUse := range uses {
		if len(byUse) > 1 || byUse[""] == 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# Written by imapbridge export for the exported Maildirs.\n")
	b.WriteString("mail_location = maildir:~/Maildir\n")
	b.WriteString("mail_plugins = $mail_plugins listescape\n")
	b.WriteString("namespace inbox {\n  inbox = yes\n  separator = /\n")
	for _, n := range names {
		best, bestN := "", 0
		var all []string
		for use, k := range uses[n] {
			label := use
			if use == "" {
				label = "plain"
			}
			all = append(all, fmt.Sprintf("%s for %d", label, k))
			if use != "" && (k > bestN || (k == bestN && use < best)) {
				best, bestN = use, k
			}
		}
		if len(all) > 1 {
			sort.Strings(all)
			conflicts = append(conflicts, fmt.Sprintf("mailbox %q is %s user(s); configured as %s for all", n, strings.Join(all, ", "), best))
		}
		fmt.Fprintf(&b, "  mailbox %s {\n    special_use = %s\n  }\n", quoteConf(n), best)
	}
	b.WriteString("}\n")
	return b.String(), conflicts
}

// quoteConf quotes a mailbox name for dovecot.conf.
func quoteConf(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
