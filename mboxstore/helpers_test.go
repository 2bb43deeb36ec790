package mboxstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// helperEnv selects a helper role when the test binary runs as a child
// process: fcntl locks belong to a process, so only another process can
// hold one against the code under test.
const helperEnv = "MBOXSTORE_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		code := m.Run()
		cleanupBench()
		os.Exit(code)
	case "hold-fcntl":
		// Hold a write lock on the file until stdin closes.
		f, err := os.OpenFile(os.Args[len(os.Args)-1], os.O_RDWR, 0)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if err := lockFcntl(context.Background(), f, true, time.Minute); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "deliver":
		// Deliver one message under an fcntl lock, as a local MDA does.
		fmt.Println("delivering")
		locks := strings.Split(os.Getenv("MBOXSTORE_TEST_LOCKS"), ",")
		err := Deliver(context.Background(), os.Args[len(os.Args)-1], DeliverOptions{Locks: locks, LockTimeout: time.Minute, Location: time.UTC},
			"mda@example.org", time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), []byte("Subject: appended concurrently\n\nhello\n"))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("delivered")
		os.Exit(0)
	default:
		os.Exit(2)
	}
}

// helper starts the test binary as a helper process in role; it returns
// once the child printed its first line (want), with stdin to end it.
func helper(t *testing.T, role, path, want string, env ...string) (stdin io.WriteCloser, wait func() string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", path)
	cmd.Env = append(append(os.Environ(), helperEnv+"="+role), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil || line != want+"\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper %s: %q, %v", role, line, err)
	}
	var once sync.Once
	var rest string
	wait = func() string {
		once.Do(func() {
			stdin.Close()
			b, _ := io.ReadAll(r)
			cmd.Wait()
			rest = string(b)
		})
		return rest
	}
	t.Cleanup(func() { wait() })
	return stdin, wait
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testSource(t testing.TB, dir string, locks ...string) (*Source, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{Name: "spool", PathTemplate: dir + "/{user}", Locks: locks, LockTimeout: 2 * time.Second}
	return NewSource(cfg, logger), logs
}

type testMsg struct {
	sender string
	date   time.Time
	body   string // LF or CRLF
}

func msgN(i int) testMsg {
	return testMsg{
		sender: fmt.Sprintf("sender%d@example.org", i),
		date:   time.Date(2024, 1, 1+i%28, 10, i%60, 0, 0, time.UTC),
		body: fmt.Sprintf("From: Sender %d <sender%d@example.org>\nTo: alice@example.org\nSubject: message %d\nMessage-ID: <%d@example.org>\n\nBody of message %d.\n>From a quoted line\n",
			i, i, i, i, i),
	}
}

func spoolBytes(t testing.TB, msgs ...testMsg) []byte {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Location = time.UTC
	for _, m := range msgs {
		if err := w.WriteMessage(m.sender, m.date, []byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// list opens a session, lists and closes it.
func list(t testing.TB, src *Source, user string) []bridge.SourceMessage {
	t.Helper()
	msgs, err := tryList(src, user)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func tryList(src *Source, user string) ([]bridge.SourceMessage, error) {
	ctx := context.Background()
	ss, err := src.Open(ctx, bridge.Account{User: user})
	if err != nil {
		return nil, err
	}
	defer ss.Abort()
	return ss.List(ctx)
}

func ids(msgs []bridge.SourceMessage) []bridge.SourceID {
	out := make([]bridge.SourceID, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// settle lists twice (the second List sees the spool unchanged and so
// accepts the last message) and returns the second listing.
func settle(t testing.TB, src *Source, user string) []bridge.SourceMessage {
	t.Helper()
	list(t, src, user)
	return list(t, src, user)
}

func fetch(t testing.TB, ss bridge.SourceSession, id bridge.SourceID) []byte {
	t.Helper()
	rc, err := ss.Fetch(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
