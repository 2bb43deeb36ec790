package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
)

// A full flow at log level debug: static and passthrough users, wrong and
// right passwords, LOGIN and AUTHENTICATE PLAIN, POP3 polling (real
// Dovecot), APPEND and FETCH of messages whose bodies carry unique markers,
// a restart that reopens the sealed passthrough password, and `check`. No
// password, the secret key, the source password nor a body marker may show
// in anything the binary printed; no stored file may hold a password in
// clear; the data directory is 0700, every directory under it 0700 and
// every file 0600.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	tag := strconv.FormatUint(rand.Uint64(), 36)
	var (
		alicePOP   = "pop-Src-" + tag       // alice's static source password (config)
		bobPOP     = "pop-Pass-" + tag      // bob's passthrough password (IMAP = POP3)
		secretKey  = "key-Seal-" + tag      // secrets.key_file
		wrongIMAP  = "wrong-Imap-" + tag    // a wrong static password
		wrongPass  = "wrong-Pass-" + tag    // a wrong passthrough password
		hostMarker = "BODY-HOST-" + tag     // in a body delivered at the host
		appMarker  = "BODY-APPEND-" + tag   // in a body APPENDed over IMAP
		bobMarker  = "BODY-BOB-HOST-" + tag // in a body delivered to bob
	)
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: alicePOP}, {Name: "bob", Password: bobPOP}}})
	keyFile := filepath.Join(e.dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(secretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostMsg := []byte("From: s@example.org\nTo: alice@example.org\nSubject: secrets\nMessage-ID: <secret-host@imapbridge.test>\n\nThe marker " + hostMarker + " is in this body.\n")
	bobMsg := []byte("From: s@example.org\nTo: bob@example.org\nSubject: secrets\nMessage-ID: <secret-bob@imapbridge.test>\n\n" + bobMarker + "\n")
	e.srv.Deliver("alice", hostMsg)
	e.srv.Deliver("bob", bobMsg)
	conf := e.config([]p3Source{
		{Name: "static-src", Address: e.srv.Addr()},
		{Name: "pass-src", Address: e.srv.Addr(), Auth: "passthrough"},
	}, []p3User{p3StaticUser(t, "alice", alicePOP, "static-src"), {Name: "bob", Sources: []string{"pass-src"}}})
	conf.KeyFile = keyFile
	conf.LogLevel = "debug"
	cfgPath := conf.write(t)
	p := p3LaunchBridge(t, cfgPath, e.imap, e.admin, e.logs)

	// Wrong passwords, static and passthrough, LOGIN and AUTHENTICATE.
	for _, c := range []struct{ user, pass string }{{"alice", wrongIMAP}, {"bob", wrongPass}} {
		if err := p3LoginError(e.imap, c.user, c.pass); err == nil {
			t.Errorf("LOGIN %s with a wrong password succeeded", c.user)
		}
		if err := plainAuthError(e.imap, c.user, c.pass); err == nil {
			t.Errorf("AUTHENTICATE PLAIN %s with a wrong password succeeded", c.user)
		}
	}
	// Right passwords; the host's mail arrives; FETCH it; APPEND and FETCH.
	if err := plainAuthError(e.imap, "alice", p3IMAPPassword); err != nil {
		t.Errorf("AUTHENTICATE PLAIN alice: %v", err)
	}
	_, msgs := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 1, 15*time.Second)
	if len(msgs) != 1 || !bytes.Contains(msgs[0].Body, []byte(hostMarker)) {
		t.Fatalf("alice's INBOX: %d messages, want the one with the marker", len(msgs))
	}
	appMsg := []byte("From: a@example.org\r\nSubject: appended\r\nMessage-ID: <secret-app@imapbridge.test>\r\n\r\n" + appMarker + "\r\n")
	if _, err := appendError(t, e.imap, "alice", appMsg); err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	_, msgs = p3Snapshot(t, e.imap, "alice", p3IMAPPassword, "INBOX")
	if len(msgs) != 2 || !bytes.Equal(msgs[1].Body, appMsg) {
		t.Errorf("the APPENDed message did not come back byte for byte")
	}
	if err := plainAuthError(e.imap, "bob", bobPOP); err != nil {
		t.Errorf("AUTHENTICATE PLAIN bob (passthrough): %v", err)
	}
	_, bobMsgs := p3WaitCount(t, e.imap, "bob", bobPOP, "INBOX", 1, 15*time.Second)
	if len(bobMsgs) != 1 || !bytes.Contains(bobMsgs[0].Body, []byte(bobMarker)) {
		t.Errorf("bob's INBOX does not hold the host's message")
	}
	p.stop()

	// Restart: bob's sealed password is opened to poll without a login.
	bobMsg2 := []byte("From: s@example.org\nTo: bob@example.org\nSubject: secrets 2\nMessage-ID: <secret-bob-2@imapbridge.test>\n\n" + bobMarker + " again\n")
	e.srv.Deliver("bob", bobMsg2)
	p = p3LaunchBridge(t, cfgPath, e.imap, e.admin, e.logs)
	p3WaitFetched(t, e.admin, "pass-src", 1, "passthrough poll after a restart")
	p.stop()

	// `check` reads the same config.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkOut, err := exec.CommandContext(ctx, binary(t), "check", "-config", cfgPath).CombinedOutput()
	if err != nil {
		t.Errorf("imapbridge check: %v\n%s", err, checkOut)
	}

	output := e.logs.String() + string(checkOut)
	if !strings.Contains(output, "level=DEBUG") {
		t.Fatalf("no DEBUG lines: the flow did not run at log level debug")
	}
	plain := func(user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	}
	secrets := map[string]string{
		"alice's IMAP password":                  p3IMAPPassword,
		"alice's source password":                alicePOP,
		"bob's passthrough password":             bobPOP,
		"the secret key":                         secretKey,
		"a wrong static password":                wrongIMAP,
		"a wrong passthrough password":           wrongPass,
		"the body marker delivered at the host":  hostMarker,
		"the body marker of bob's mail":          bobMarker,
		"the body marker APPENDed":               appMarker,
		"alice's AUTHENTICATE PLAIN response":    plain("alice", p3IMAPPassword),
		"bob's AUTHENTICATE PLAIN response":      plain("bob", bobPOP),
		"a wrong AUTHENTICATE PLAIN response":    plain("alice", wrongIMAP),
		"a wrong passthrough AUTHENTICATE PLAIN": plain("bob", wrongPass),
	}
	for what, s := range secrets {
		if strings.Contains(output, s) {
			i := strings.Index(output, s)
			line := output[strings.LastIndex(output[:i], "\n")+1:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			t.Errorf("%s appears in the bridge's output: %s", what, strings.ReplaceAll(line, s, "<HERE>"))
		}
	}
	t.Logf("%d bytes of output (%d lines) checked for %d secrets and markers", len(output), strings.Count(output, "\n"), len(secrets))

	// The data directory: modes, and no password in clear in any file.
	data := filepath.Join(e.dir, "data")
	files := 0
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		switch {
		case d.IsDir():
			if mode.Perm() != 0o700 {
				t.Errorf("%s: directory mode %v, want drwx------", path, mode)
			}
		case mode.IsRegular():
			files++
			if mode.Perm() != 0o600 {
				t.Errorf("%s: file mode %v, want -rw-------", path, mode)
			}
			content, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, s := range []string{p3IMAPPassword, alicePOP, bobPOP, secretKey, wrongIMAP, wrongPass} {
				if bytes.Contains(content, []byte(s)) {
					t.Errorf("%s holds a password or the key in clear", path)
				}
			}
		default:
			t.Errorf("%s: unexpected %v in the data directory", path, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no file in the data directory %s", data)
	}
	t.Logf("%d files under the data directory checked", files)
}

// plainAuthError runs AUTHENTICATE PLAIN and returns its error (nil:
// authenticated).
func plainAuthError(addr, user, pass string) error {
	s, err := p3DialIMAP(addr)
	if err != nil {
		return err
	}
	defer s.c.Close()
	err = s.c.Authenticate(sasl.NewPlainClient("", user, pass))
	if err == nil {
		s.c.Logout().Wait()
		return nil
	}
	var ierr *imap.Error
	if !errors.As(err, &ierr) {
		return err
	}
	return ierr
}
