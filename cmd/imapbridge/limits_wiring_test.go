package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"

	"github.com/imapbridge/imapbridge/internal/config"
)

// TestConfiguredCapsAndQuota: imap.max_mailboxes_per_user,
// imap.max_keywords_per_mailbox and users[].quota from the config file
// reach the store, and a client is told which one it hit; the IMAP login
// and the client's ID reach the status the store keeps.
func TestConfiguredCapsAndQuota(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mail"), 0o700)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw-alice"), bcrypt.MinCost)
	yaml := fmt.Sprintf(`data_dir: %s
imap:
  listen: 127.0.0.1:0
  allow_insecure_auth: true
  max_mailboxes_per_user: 8
  max_keywords_per_mailbox: 3
admin:
  listen: ""
sources:
  - name: spool
    type: mbox
    path: %s
users:
  - name: alice
    password_hash: %q
    sources: [spool]
    quota: {messages: 2}
`, filepath.Join(dir, "data"), filepath.Join(dir, "mail", "{user}"), hash)
	cfg, _, err := config.Parse([]byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	a, err := startApp(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.shutdown(quickShutdown); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	c, err := imapclient.DialInsecure(a.imapAddr.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ID(&imap.IDData{Name: "TestClient", Version: "7.1", OS: "Plan 9"}).Wait(); err != nil {
		t.Fatalf("ID: %v", err)
	}
	if err := c.Login("alice", "pw-alice").Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}

	codeOf := func(err error) imap.ResponseCode {
		if ie, ok := err.(*imap.Error); ok {
			return ie.Code
		}
		return ""
	}
	// INBOX and the five special-use mailboxes count: two more fit.
	for i := 0; i < 2; i++ {
		if err := c.Create(fmt.Sprintf("Box%d", i), nil).Wait(); err != nil {
			t.Fatalf("CREATE Box%d: %v", i, err)
		}
	}
	err = c.Create("OneTooMany", nil).Wait()
	if codeOf(err) != imap.ResponseCodeLimit || !strings.Contains(err.Error(), "limit 8") {
		t.Errorf("CREATE past max_mailboxes_per_user: %v, want NO [LIMIT] naming 8", err)
	}

	appendMsg := func(flags ...imap.Flag) error {
		msg := "Subject: q\r\n\r\nbody\r\n"
		cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: flags})
		cmd.Write([]byte(msg))
		cmd.Close()
		_, err := cmd.Wait()
		return err
	}
	if err := appendMsg("k1", "k2", "k3"); err != nil {
		t.Fatalf("APPEND with 3 keywords: %v", err)
	}
	if err := appendMsg("k4"); codeOf(err) != imap.ResponseCodeLimit {
		t.Errorf("APPEND of a 4th keyword: %v, want NO [LIMIT]", err)
	}
	if err := appendMsg(); err != nil {
		t.Fatalf("second APPEND: %v", err)
	}
	if err := appendMsg(); codeOf(err) != imap.ResponseCodeOverQuota {
		t.Errorf("third APPEND with quota messages 2: %v, want NO [OVERQUOTA]", err)
	}

	st, err := a.bridge.Status(context.Background(), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range st {
		if u.Name != "alice" {
			continue
		}
		if u.LastLogin == nil || time.Since(*u.LastLogin) > time.Hour {
			t.Errorf("last_login %v, want the login just made", u.LastLogin)
		}
		found := false
		for _, cl := range u.Clients {
			found = found || (cl.Name == "TestClient" && cl.Version == "7.1" && cl.OS == "Plan 9")
		}
		if !found {
			t.Errorf("clients %+v, want TestClient 7.1 (Plan 9)", u.Clients)
		}
		return
	}
	t.Errorf("alice not in the status: %+v", st)
}
