package imapfront_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/imapbridge/imapbridge/imapfront"
)

// lockedBuffer is a log destination shared by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogFloodClipped: issue 12's flood, 120 LOGINs with 45 KB user names
// (40 connections, three failures each), grew the log by 10.8 MB. Every
// client-supplied value in a log line is clipped now, with its length.
func TestLogFloodClipped(t *testing.T) {
	var logBuf lockedBuffer
	e := newEnv(t, withServer(func(o *imapfront.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}))
	name := "alice" + strings.Repeat("x", 45007)
	for range 40 {
		c := e.raw()
		for i := range 2 {
			_, status := c.cmd("LOGIN " + name + " wrong")
			if status != "NO [AUTHENTICATIONFAILED] Authentication failed" {
				t.Fatalf("LOGIN %d: %q", i, status)
			}
		}
		c.send("z LOGIN " + name + " wrong")
		if got := c.line(); got != "* BYE Too many authentication failures" {
			t.Fatalf("after three failures: %q", got)
		}
		c.closed()
	}
	// An ID with long values and a command with a long mailbox name go
	// through the same clip.
	c := e.raw()
	c.cmd(`ID ("name" "` + strings.Repeat("n", 1024) + `" "version" "` + strings.Repeat("v", 1024) + `")`)
	c.login("alice")
	c.cmd(`CREATE "` + strings.Repeat("m", 40000) + `"`)
	c.cmd("SEARCH " + strings.Repeat("NOT ", 10000) + "ALL")
	c.cmd("LOGOUT")

	log := logBuf.String()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	t.Logf("log: %d bytes in %d lines", len(log), len(lines))
	if len(log) > 200<<10 {
		t.Errorf("log grew by %d bytes, want < 200 KB", len(log))
	}
	for _, l := range lines {
		if len(l) > 2048 {
			t.Errorf("log line of %d bytes: %.200q…", len(l), l)
		}
	}
	if n := strings.Count(log, "alicexxx"); n < 120 {
		t.Errorf("the failed logins are logged %d times, want 120 (clipped, not dropped)", n)
	}
	if !strings.Contains(log, "…[45012 bytes]") {
		t.Errorf("no clipped user name with its length in the log")
	}
}
