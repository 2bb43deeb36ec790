package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// TestBenchDovecot: the bench's Dovecot (the tests' launcher, dovecotrun)
// serves a Maildir filled before it started over POP3, an mbox INBOX over
// IMAP, and a message delivered while it runs.
func TestBenchDovecot(t *testing.T) {
	testtool.Require(t, dovecottest.Available(), dovecottest.InstallCommand)
	ctx := context.Background()
	tmp := t.TempDir()
	// As root, Dovecot's mail processes must reach the homes: the test's
	// directory is made searchable by the launcher, as the bench's is.
	d, err := newDovecot(t.TempDir(), []dovecotUser{{name: "pop3"}, {name: "mbox3", mbox: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	ds, err := generate(11, 3, filepath.Join(tmp, "spool"), d.maildir("pop3"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.freshMbox("mbox3", ds.mbox); err != nil {
		t.Fatal(err)
	}
	if err := d.start(ctx); err != nil {
		t.Fatal(err)
	}
	msg, _, _ := genMessage(12, 0, 1)
	if err := d.deliver("pop3", msg); err != nil {
		t.Fatal(err)
	}
	p, err := dialPOP3(ctx, d.popAddr, "pop3", benchPassword)
	if err != nil {
		t.Fatal(err)
	}
	lines, _, err := p.multi("UIDL")
	p.quit()
	if err != nil || lines != 4 {
		t.Fatalf("POP3 UIDL: %d lines, %v; want 4", lines, err)
	}
	c, err := dialIMAP(ctx, d.imapAddr, "mbox3", benchPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer c.logout()
	if n, err := c.selectBox(ctx, "INBOX"); err != nil || n != 3 {
		t.Fatalf("IMAP SELECT INBOX: %d messages, %v; want 3", n, err)
	}
}
