package maildirexport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// maxKeywords is how many keywords a Maildir filename can carry (a–z).
const maxKeywords = 26

// systemFlagLetters maps the flags Maildir names to their info letters.
var systemFlagLetters = map[string]byte{
	bridge.FlagDraft:    'D',
	bridge.FlagFlagged:  'F',
	bridge.FlagAnswered: 'R',
	bridge.FlagSeen:     'S',
	bridge.FlagDeleted:  'T',
}

// maildirFolder returns the Maildir++ directory of a mailbox name,
// relative to the Maildir root: "" for INBOX, ".Sent", ".Archive.2024";
// each level as storageLevel spells it.
func maildirFolder(name string) string {
	if name == bridge.InboxName {
		return ""
	}
	levels := strings.Split(name, bridge.Delimiter)
	for i, l := range levels {
		levels[i] = storageLevel(l)
	}
	return "." + strings.Join(levels, ".")
}

// storageLevel spells one level of a mailbox name as Dovecot stores it
// (with the listescape plugin): in modified UTF-7, then "\" as "\5c",
// "." (Maildir++'s separator) as "\2e", and a leading "~" as "\7e".
// Names without these characters are the same with the plugin or
// without it.
func storageLevel(l string) string {
	l = encodeMUTF7(l)
	l = strings.ReplaceAll(l, `\`, `\5c`)
	l = strings.ReplaceAll(l, ".", `\2e`)
	if strings.HasPrefix(l, "~") {
		l = `\7e` + l[1:]
	}
	return l
}

func writeMaildirUser(ctx context.Context, snap *bridge.ReadSnapshot, mbs []bridge.SnapshotMailbox, subs []string, dir string, opts Options, ur *UserReport) error {
	folders := make([]string, len(mbs))
	for i, mb := range mbs {
		folders[i] = maildirFolder(mb.Name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	hasInbox := false
	for i, mb := range mbs {
		if err := ctx.Err(); err != nil {
			return err
		}
		hasInbox = hasInbox || mb.Name == bridge.InboxName
		mr, err := writeMaildirFolder(ctx, snap, mb, filepath.Join(dir, folders[i]), folders[i] != "", opts)
		if err != nil {
			return fmt.Errorf("mailbox %q: %w", mb.Name, err)
		}
		mr.Path = folders[i]
		ur.Mailboxes = append(ur.Mailboxes, *mr)
	}
	if !hasInbox {
		for _, d := range []string{"cur", "new", "tmp"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
				return err
			}
		}
	}
	if err := writeUIDValidityFiles(dir, snap.LastUIDValidity(), mbs); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "subscriptions"), subscriptionsFile(subs))
}

// writeUIDValidityFiles writes Dovecot's UIDVALIDITY counter: the file
// dovecot-uidvalidity holding the last value handed out ("%08x") and the
// marker dovecot-uidvalidity.<that value>, from which Dovecot gives the
// next new mailbox that value + 1. It starts above every UIDVALIDITY the
// bridge ever handed out, so that a mailbox deleted and created again in
// Dovecot never gets the UIDVALIDITY the bridge gave the old one.
func writeUIDValidityFiles(dir string, last bridge.UIDValidity, mbs []bridge.SnapshotMailbox) error {
	for _, mb := range mbs {
		last = max(last, mb.UIDValidity)
	}
	if last == 0 {
		return nil
	}
	hex := fmt.Sprintf("%08x", uint32(last))
	if err := writeFile(filepath.Join(dir, "dovecot-uidvalidity"), []byte(hex)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "dovecot-uidvalidity."+hex), nil); err != nil {
		return err
	}
	return os.Chmod(filepath.Join(dir, "dovecot-uidvalidity."+hex), 0o444)
}

// subscriptionsFile is Dovecot's version 2 subscriptions file as Dovecot
// writes it: a header, then one name a line with the levels separated by
// a tab (so the file does not depend on the namespace separator), each
// level spelt as stored (storageLevel) and tab-escaped.
func subscriptionsFile(subs []string) []byte {
	var b strings.Builder
	b.WriteString("V\t2\n\n")
	for _, s := range subs {
		for i, l := range strings.Split(s, bridge.Delimiter) {
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(tabEscape(storageLevel(l)))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// tabEscape escapes as Dovecot's str_append_tabescaped does.
func tabEscape(s string) string {
	if !strings.ContainsAny(s, "\x01\t\r\n") {
		return s
	}
	r := strings.NewReplacer("\x01", "\x011", "\t", "\x01t", "\r", "\x01r", "\n", "\x01n")
	return r.Replace(s)
}

func writeMaildirFolder(ctx context.Context, snap *bridge.ReadSnapshot, mb bridge.SnapshotMailbox, dir string, sub bool, opts Options) (*MailboxReport, error) {
	msgs, err := snap.Messages(ctx, mb.ID)
	if err != nil {
		return nil, err
	}
	mr := &MailboxReport{Name: mb.Name, SpecialUse: mb.SpecialUse, UIDValidity: mb.UIDValidity, UIDNext: mb.UIDNext}
	// Keywords in use, in order: letter a is the first.
	kw := map[string]bool{}
	for _, m := range msgs {
		for _, f := range m.Flags {
			if !strings.HasPrefix(f, `\`) {
				kw[f] = true
			}
		}
	}
	for k := range kw {
		mr.Keywords = append(mr.Keywords, k)
	}
	sort.Strings(mr.Keywords)
	if len(mr.Keywords) > maxKeywords {
		return nil, fmt.Errorf("%w: %d keywords in use, a Maildir holds at most %d (%s …)", ErrUnrepresentable, len(mr.Keywords), maxKeywords, strings.Join(mr.Keywords[maxKeywords:], " "))
	}
	letter := make(map[string]byte, len(mr.Keywords))
	for i, k := range mr.Keywords {
		letter[k] = byte('a' + i)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if sub {
		if err := writeFile(filepath.Join(dir, "maildirfolder"), nil); err != nil {
			return nil, err
		}
	}
	var uidls []bridge.AssignedUIDL
	if mb.Name == "INBOX" {
		in := make([]bridge.UIDLMessage, len(msgs))
		for i, m := range msgs {
			in[i] = bridge.UIDLMessage{UID: m.UID, Origin: m.Origin}
		}
		uidls = bridge.AssignPOP3UIDLs(mb.UIDValidity, in, opts.HostUIDL)
	}
	var uidlist strings.Builder
	fmt.Fprintf(&uidlist, "3 V%d N%d G%s\n", mb.UIDValidity, mb.UIDNext, randomHex(16))
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, dropped := infoLetters(m.Flags, letter)
		if len(dropped) > 0 {
			logger(opts).Warn("export: flags a Maildir cannot hold were left out", "mailbox", mb.Name, "uid", m.UID, "flags", strings.Join(dropped, " "))
		}
		base, err := writeMessage(ctx, snap, m, mb.UIDValidity, dir, info)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&uidlist, "%d", m.UID)
		if uidls != nil {
			fmt.Fprintf(&uidlist, " P%s", uidls[i].UIDL)
			if uidls[i].Host {
				mr.UIDLs++
			} else {
				mr.GeneratedUIDLs++
			}
		}
		fmt.Fprintf(&uidlist, " :%s\n", base)
		mr.Messages++
		mr.Bytes += m.Size
	}
	if err := writeFile(filepath.Join(dir, "dovecot-uidlist"), []byte(uidlist.String())); err != nil {
		return nil, err
	}
	var kwf strings.Builder
	for i, k := range mr.Keywords {
		fmt.Fprintf(&kwf, "%d %s\n", i, k)
	}
	if err := writeFile(filepath.Join(dir, "dovecot-keywords"), []byte(kwf.String())); err != nil {
		return nil, err
	}
	return mr, nil
}

// infoLetters returns the Maildir info letters of flags: system flags
// (ASCII order: D F R S T), then keyword letters (ASCII order). Flags a
// Maildir cannot hold (an unknown system flag) are returned apart.
func infoLetters(flags []string, letter map[string]byte) (string, []string) {
	var sys, kws []byte
	var dropped []string
	for _, f := range flags {
		if c, ok := systemFlagLetters[f]; ok {
			sys = append(sys, c)
		} else if c, ok := letter[f]; ok {
			kws = append(kws, c)
		} else {
			dropped = append(dropped, f)
		}
	}
	sort.Slice(sys, func(i, j int) bool { return sys[i] < sys[j] })
	sort.Slice(kws, func(i, j int) bool { return kws[i] < kws[j] })
	return string(sys) + string(kws), dropped
}

// writeMessage writes one message to tmp/, then renames it to cur/ under
// its final name (the virtual size is known once it is written), with the
// INTERNALDATE as mtime. It returns the base name (without ":2,…").
func writeMessage(ctx context.Context, snap *bridge.ReadSnapshot, m bridge.SnapshotMessage, uv bridge.UIDValidity, dir, info string) (string, error) {
	body, err := snap.Open(ctx, m)
	if err != nil {
		return "", err
	}
	defer body.Close()
	date := m.InternalDate
	tmpName := fmt.Sprintf("%d.U%dV%d.imapbridge", date.Unix(), m.UID, uv)
	tmp := filepath.Join(dir, "tmp", tmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	cw := &crlfCounter{}
	w := bufio.NewWriterSize(io.MultiWriter(f, cw), 64<<10)
	n, err := io.Copy(w, body)
	if err == nil {
		err = w.Flush()
	}
	if err == nil && n != m.Size {
		err = fmt.Errorf("uid %d: read %d bytes, the store says %d", m.UID, n, m.Size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write uid %d: %w", m.UID, err)
	}
	base := tmpName + ",S=" + strconv.FormatInt(n, 10) + ",W=" + strconv.FormatInt(n+cw.bareLF, 10)
	final := filepath.Join(dir, "cur", base+":2,"+info)
	if err := os.Chtimes(tmp, time.Now(), date); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("date uid %d: %w", m.UID, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("place uid %d: %w", m.UID, err)
	}
	return base, nil
}

// crlfCounter counts the LFs not preceded by a CR: what the message grows
// by when its line endings are made CRLF (Dovecot's virtual size).
type crlfCounter struct {
	bareLF int64
	lastCR bool
}

func (c *crlfCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' && !c.lastCR {
			c.bareLF++
		}
		c.lastCR = b == '\r'
	}
	return len(p), nil
}
