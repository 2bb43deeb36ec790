package imapfront_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/testtool"
)

// TestPythonImaplib runs a real client, Python's imaplib, through login,
// select, fetch, search, store, copy, append and expunge.
func TestPythonImaplib(t *testing.T) {
	python := testtool.Need(t, "python3", "python3")
	e := newEnv(t)
	e.deliver("alice", simpleMsg(1), multipartMsg)
	msgFile := filepath.Join(t.TempDir(), "msg1.eml")
	if err := os.WriteFile(msgFile, []byte(simpleMsg(1)), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, filepath.Join("testdata", "imaplib_client.py"), host, port, "alice", password, msgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "all checks passed") {
		t.Fatalf("imaplib output:\n%s", out)
	}
}
