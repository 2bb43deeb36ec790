package maildirexport_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/maildirexport"
	"github.com/imapbridge/imapbridge/mboxstore"
)

// TestMboxRoundTrip: every mailbox exported as mbox reads back through
// the project's mbox reader as the same messages, byte for byte, in UID
// order, with the INTERNALDATE (to the second) as the From_ date. The
// fixture holds the hard cases: From_ lines in bodies, long lines, dot
// lines, 8-bit text, a multi-megabyte attachment.
func TestMboxRoundTrip(t *testing.T) {
	f := newFixture(t)
	ro, err := bridge.OpenReadOnly(f.ctx, bridge.Options{DataDir: f.dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	target := filepath.Join(t.TempDir(), "archive")
	rep, err := maildirexport.Export(f.ctx, ro, "alice", target, maildirexport.Options{Format: maildirexport.FormatMbox})
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.b.User(f.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := u.ListMailboxes(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Users) != 1 || len(rep.Users[0].Mailboxes) != len(infos) {
		t.Fatalf("report: %+v, want %d mailboxes", rep.Users, len(infos))
	}
	paths := map[string]string{}
	for _, m := range rep.Users[0].Mailboxes {
		paths[m.Name] = m.Path
	}
	if paths[nested] != filepath.Join("Projekte", "Überblick & Co.mbox") || paths["INBOX"] != "INBOX.mbox" {
		t.Errorf("mbox paths: %v", paths)
	}
	total := 0
	for _, info := range infos {
		mb, err := u.Mailbox(f.ctx, info.Name)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := mb.Messages(f.ctx, mb.UIDs(), false)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(target, paths[info.Name])
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("mailbox %q: %v", info.Name, err)
		}
		// The reader holds back a spool's last message until it has
		// seen the spool unchanged: the second listing has it.
		src := mboxstore.NewSource(mboxstore.Config{Name: "archive", PathTemplate: path}, testLogger())
		var sess bridge.SourceSession
		var list []bridge.SourceMessage
		for range 2 {
			if sess != nil {
				sess.Abort()
			}
			if sess, err = src.Open(f.ctx, bridge.Account{User: "alice"}); err != nil {
				t.Fatal(err)
			}
			list, err = sess.List(f.ctx)
		}
		if err != nil {
			t.Fatalf("mailbox %q: read %s: %v", info.Name, path, err)
		}
		if len(list) != len(msgs) {

			t.Fatalf("mailbox %q: %d messages read back, %d stored", info.Name, len(list), len(msgs))
		}
		for i, m := range msgs {
			body, err := mb.Open(f.ctx, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := io.ReadAll(body)
			body.Close()
			r, err := sess.Fetch(f.ctx, list[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("mailbox %q UID %d: read back %d bytes, stored %d, first difference at %d", info.Name, m.UID, len(got), len(want), firstDiff(got, want))
			}
			if list[i].Date.Unix() != m.InternalDate.Unix() {
				t.Errorf("mailbox %q UID %d: From_ date %v, INTERNALDATE %v", info.Name, m.UID, list[i].Date, m.InternalDate)
			}
			total++
		}
		sess.Abort()
	}
	if total != rep.Messages() || total < 20 {
		t.Errorf("%d messages compared, report says %d", total, rep.Messages())
	}
}
