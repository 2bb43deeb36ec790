package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/postfixtest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// End-to-end tests of the retirement path (deploy/RETIRING.md) with the
// built binary configured from a file and real parts: a legacy Dovecot
// POP3 host, Postfix delivering over LMTP, poplib on the bridge's POP3
// face, `imapbridge export` beside the running server and a real Dovecot
// serving the export.

const retireLegacyPassword = "legacy-Pw-41c2"

// retireConfig writes the config of the path's end state: alice fed by
// the legacy host (delete_policy keep) and by LMTP, bob fed by LMTP only,
// the POP3 face with STLS on the IMAP certificate.
func retire2Config(t *testing.T, dir, hostAddr, imapAddr, adminAddr, lmtpAddr, pop3Addr, cert, key string) string {
	t.Helper()
	hash := p3IMAPHash(t)
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\nlog: {level: debug}\n", filepath.Join(dir, "data"))
	fmt.Fprintf(&b, "imap:\n  listen: %q\n  allow_insecure_auth: true\n  tls: {cert_file: %q, key_file: %q}\n", imapAddr, cert, key)
	fmt.Fprintf(&b, "admin:\n  listen: %q\n", adminAddr)
	fmt.Fprintf(&b, "lmtp:\n  listen: %q\n  hostname: bridge.test.example\n", lmtpAddr)
	fmt.Fprintf(&b, "pop3:\n  listen: %q\n  dele: keep\n", pop3Addr)
	if hostAddr != "" {
		fmt.Fprintf(&b, "sources:\n  - {name: legacy, type: pop3, address: %q, tls: none, auth: static, poll_interval: 300ms}\n", hostAddr)
	} else {
		b.WriteString("sources: []\n")
	}
	b.WriteString("users:\n")
	if hostAddr != "" {
		fmt.Fprintf(&b, "  - {name: alice, password_hash: %q, sources: [legacy], source_password: %q}\n", hash, retireLegacyPassword)
	}
	fmt.Fprintf(&b, "  - {name: bob, password_hash: %q, sources: []}\n", hash)
	path := filepath.Join(dir, "imapbridge.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// popListing is what poplib_uidl.py printed: per message, UIDL, the
// SHA-256 of RETR's bytes and their count.
type popEntry struct{ UIDL, SHA, Octets string }

func poplibListing(t *testing.T, python, addr, user, pass, cafile string) []popEntry {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"testdata/e2e/poplib_uidl.py", host, port, user, pass}
	if cafile != "" {
		args = append(args, cafile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("poplib against %s as %s: %v\n%s", addr, user, err, out)
	}
	var list []popEntry
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			list = append(list, popEntry{f[0], f[1], f[2]})
		} else if line != "" {
			t.Fatalf("poplib printed %q", line)
		}
	}
	return list
}

func uidlsOf(list []popEntry) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.UIDL)
	}
	return out
}

func startRetirePostfix(t *testing.T, lmtpAddr string) *postfixtest.Instance {
	t.Helper()
	testtool.Require(t, postfixtest.Available(), postfixtest.InstallCommand)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pf, err := postfixtest.Start(ctx, postfixtest.Options{Domain: "test.example", LMTP: "inet:" + lmtpAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Stop() })
	return pf
}

// waitSent waits for Postfix to log status=sent for rcpt: the bridge
// answered 250 for it.
func waitSent(t *testing.T, pf *postfixtest.Instance, rcpt string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	line, _, err := pf.WaitLog(ctx, 0, regexp.MustCompile(`to=<`+regexp.QuoteMeta(rcpt)+`>.*status=sent`))
	if err != nil {
		t.Fatalf("postfix did not deliver to %s: %v\n%s", rcpt, err, pf.Log())
	}
	return line
}

// TestRetirementEndToEnd walks the end of the path with the built binary:
// Postfix delivers over LMTP to alice (also fed by the legacy host) and to
// bob (no source at all) while alice's IMAP client is in IDLE; poplib on
// the POP3 face (STLS with the test certificate) sees the legacy host's
// UIDLs and bytes; `imapbridge export` runs beside the server, and a real
// Dovecot on the export shows the same UIDVALIDITY and UIDs over IMAP and
// the same UIDLs over POP3 as the bridge's POP3 face.
func TestRetirementEndToEnd(t *testing.T) {
	python := testtool.Need(t, "python3", "python3")
	host := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: retireLegacyPassword}}})
	for i := range 3 {
		host.Deliver("alice", p3GenMessage("legacy", i, 300+i*700))
	}
	hostList := poplibListing(t, python, host.Addr(), "alice", retireLegacyPassword, "")
	if len(hostList) != 3 {
		t.Fatalf("the legacy host lists %d messages, want 3", len(hostList))
	}

	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cert, key, "127.0.0.1")
	imapAddr, adminAddr, lmtpAddr, pop3Addr := freePort(t), freePort(t), freePort(t), freePort(t)
	config := retire2Config(t, dir, host.Addr(), imapAddr, adminAddr, lmtpAddr, pop3Addr, cert, key)
	logs := &syncBuffer{}
	p := p3LaunchBridge(t, config, imapAddr, adminAddr, logs)
	p3WaitCount(t, imapAddr, "alice", p3IMAPPassword, "INBOX", 3, 30*time.Second)

	// alice's IMAP client waits in IDLE; Postfix takes one message over
	// SMTP for alice and bob and delivers it over LMTP.
	idler := p3LoginIMAP(t, imapAddr, "alice", p3IMAPPassword)
	if _, err := idler.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := idler.c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	pf := startRetirePostfix(t, lmtpAddr)
	delivered := []byte("From: sender@remote.example\r\nTo: alice@test.example, bob@test.example\r\nSubject: over LMTP\r\nMessage-ID: <lmtp-1@remote.example>\r\n\r\nDelivered by Postfix.\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pf.Send(ctx, "sender@remote.example", []string{"alice@test.example", "bob@test.example"}, delivered); err != nil {
		t.Fatal(err)
	}
	waitSent(t, pf, "alice@test.example")
	waitSent(t, pf, "bob@test.example")
	select {
	case n := <-idler.exists:
		if n != 4 {
			t.Errorf("IDLE pushed EXISTS %d, want 4", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery was not pushed to the IDLE session within 30s")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	// bob, fed by delivery alone, has the message, with the headers a
	// delivery agent adds ahead of the MTA's bytes.
	_, bobMsgs := p3WaitCount(t, imapAddr, "bob", p3IMAPPassword, "INBOX", 1, 30*time.Second)
	if b := bobMsgs[0].Body; !bytes.Contains(b, []byte("Delivered-To: bob@test.example\r\n")) || !bytes.Contains(b, []byte("Subject: over LMTP\r\n")) || !bytes.HasSuffix(b, []byte("\r\n\r\nDelivered by Postfix.\r\n")) {
		t.Errorf("bob's message:\n%s", b)
	}
	if got := p3MetricSum(adminAddr, "imapbridge_lmtp_deliveries_total", "result", "delivered"); got != 2 {
		t.Errorf("imapbridge_lmtp_deliveries_total{result=delivered} = %v, want 2", got)
	}

	// The POP3 face, over STLS with the test certificate: the host's
	// UIDLs and bytes for its messages, a generated UIDL for the
	// delivered one.
	face := poplibListing(t, python, pop3Addr, "alice", p3IMAPPassword, cert)
	if len(face) != 4 {
		t.Fatalf("the POP3 face lists %d messages, want 4: %q", len(face), face)
	}
	if !slices.Equal(face[:3], hostList) {
		t.Errorf("POP3 face (UIDL, sha256, octets):\n got %q\nwant %q (the legacy host's)", face[:3], hostList)
	}
	if !strings.HasPrefix(face[3].UIDL, "ib.") {
		t.Errorf("the delivered message's UIDL %q is not a generated one", face[3].UIDL)
	}
	if again := poplibListing(t, python, pop3Addr, "alice", p3IMAPPassword, cert); !slices.Equal(uidlsOf(again), uidlsOf(face)) {
		t.Errorf("a second POP3 session lists %q, the first %q", uidlsOf(again), uidlsOf(face))
	}
	if got := p3MetricSum(adminAddr, "imapbridge_pop3_auth_attempts_total", "result", "success"); got != 2 {
		t.Errorf("imapbridge_pop3_auth_attempts_total{result=success} = %v, want 2", got)
	}

	// The export, as a command, while the server runs.
	uvBridge, bridgeMsgs := p3Snapshot(t, imapAddr, "alice", p3IMAPPassword, "INBOX")
	target := filepath.Join(t.TempDir(), "Maildir")
	confFile := filepath.Join(dir, "dovecot-export.conf")
	out, err := exec.Command(binary(t), "export", "-config", config, "-user", "alice", "-to", target, "-dovecot-conf", confFile).CombinedOutput()
	if err != nil {
		t.Fatalf("imapbridge export: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^exported alice: \d+ mailboxes, 4 messages, 3 POP3 UIDLs, `).Match(out) {
		t.Errorf("export said:\n%s", out)
	}
	again, err := exec.Command(binary(t), "export", "-config", config, "-user", "alice", "-to", target).CombinedOutput()
	if err == nil || !strings.Contains(string(again), "target directory is not empty") || !strings.Contains(string(again), "-force") {
		t.Errorf("a second export to the same target: %v\n%s", err, again)
	}
	conf, err := os.ReadFile(confFile)
	if err != nil {
		t.Fatal(err)
	}
	dc := dovecottest.StartIMAP(t, dovecottest.IMAPOptions{
		Users:       []dovecottest.MaildirUser{{Name: "alice", Password: "dovecot-Pw-9a1b", Maildir: target}},
		ExtraConfig: string(conf),
	})
	uvDovecot, dovecotMsgs := p3Snapshot(t, dc.IMAPAddr(), "alice", "dovecot-Pw-9a1b", "INBOX")
	if uvDovecot != uvBridge {
		t.Errorf("Dovecot's INBOX UIDVALIDITY %d, the bridge's %d", uvDovecot, uvBridge)
	}
	if len(dovecotMsgs) != len(bridgeMsgs) {
		t.Fatalf("Dovecot's INBOX holds %d messages, the bridge's %d", len(dovecotMsgs), len(bridgeMsgs))
	}
	for i := range bridgeMsgs {
		if dovecotMsgs[i].UID != bridgeMsgs[i].UID || !bytes.Equal(dovecotMsgs[i].Body, bridgeMsgs[i].Body) {
			t.Errorf("message %d: Dovecot UID %d (%d bytes), bridge UID %d (%d bytes)", i, dovecotMsgs[i].UID, len(dovecotMsgs[i].Body), bridgeMsgs[i].UID, len(bridgeMsgs[i].Body))
		}
	}
	// A POP3 client moved from the bridge's POP3 face to the exported
	// Dovecot sees the same UIDLs (the generated one included) and bytes.
	exported := poplibListing(t, python, dc.Addr(), "alice", "dovecot-Pw-9a1b", "")
	if !slices.Equal(exported, face) {
		t.Errorf("exported Dovecot over POP3:\n got %q\nwant %q (the bridge's POP3 face)", exported, face)
	}
	p.stop()
}

// TestLMTPKillAfter250: the built binary is SIGKILLed right after Postfix
// logged the 250 for a delivery-only user (no sources in the config);
// after a restart the message is there, once.
func TestLMTPKillAfter250(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cert, key, "127.0.0.1")
	imapAddr, adminAddr, lmtpAddr, pop3Addr := freePort(t), freePort(t), freePort(t), freePort(t)
	config := retire2Config(t, dir, "", imapAddr, adminAddr, lmtpAddr, pop3Addr, cert, key)
	logs := &syncBuffer{}
	p := p3LaunchBridge(t, config, imapAddr, adminAddr, logs)
	pf := startRetirePostfix(t, lmtpAddr)
	msg := []byte("From: sender@remote.example\r\nTo: bob@test.example\r\nSubject: kill after 250\r\nMessage-ID: <kill-1@remote.example>\r\n\r\nMust survive.\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pf.Send(ctx, "sender@remote.example", []string{"bob@test.example"}, msg); err != nil {
		t.Fatal(err)
	}
	waitSent(t, pf, "bob@test.example")
	p3KillBridge(p)

	logs2 := &syncBuffer{}
	p2 := p3LaunchBridge(t, config, imapAddr, adminAddr, logs2)
	_, msgs := p3Snapshot(t, imapAddr, "bob", p3IMAPPassword, "INBOX")
	// Postfix adds Received and Date; the bridge Return-Path and
	// Delivered-To.
	if len(msgs) != 1 || msgs[0].MsgID != "<kill-1@remote.example>" || !bytes.HasPrefix(msgs[0].Body, []byte("Return-Path: <sender@remote.example>\r\nDelivered-To: bob@test.example\r\n")) ||
		!bytes.HasSuffix(msgs[0].Body, []byte("\r\n\r\nMust survive.\r\n")) {
		var sums []string
		for _, m := range msgs {
			s := sha256.Sum256(m.Body)
			sums = append(sums, hex.EncodeToString(s[:8]))
		}
		t.Fatalf("after the restart bob's INBOX holds %d messages (%q), want the one delivered; first:\n%s", len(msgs), sums, msgs[0].Body)
	}
	p2.stop()
}
