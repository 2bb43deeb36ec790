package lmtpfront_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/testtool"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

// TestCrashWithPostfix kills the LMTP server with SIGKILL at the three
// points of a delivery that matter, with a real Postfix delivering to it,
// then restarts it over the same store and lets Postfix retry:
//
//   - after the 250 (Postfix logged status=sent): the message is there
//     once, and Postfix does not send it again;
//   - before the commit (while the copy is being stored): nothing was
//     stored, Postfix saw the connection drop, defers and retries: the
//     message is there once;
//   - between the commit and the reply (the copy is durable, the 250 not
//     yet written): Postfix defers and retries, and the message is there
//     twice, byte-identical — the one window in which a crash duplicates,
//     as with Dovecot's LMTP.
//
// The server runs in a child process (this test binary re-executed),
// which announces each point on stdout and waits there to be killed.
func TestCrashWithPostfix(t *testing.T) {
	if dir := os.Getenv("LMTPFRONT_CRASH_CHILD"); dir != "" {
		runCrashChild(dir, os.Getenv("LMTPFRONT_CRASH_ADDR"), os.Getenv("LMTPFRONT_CRASH_MODE"))
		return
	}
	testtool.Long(t, "crash tests with Postfix")
	for _, tc := range []struct {
		mode   string
		killOn string // the child's line, or "" to kill on Postfix's status=sent
		copies int
	}{
		{mode: "after-reply", killOn: "", copies: 1},
		{mode: "before-commit", killOn: "storing", copies: 1},
		{mode: "after-commit", killOn: "committed", copies: 2},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := t.TempDir()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			child := startCrashChild(t, dir, addr, tc.mode)
			pf := startPostfix(t, addr)
			msg := crlf("From: sender@remote.example\nTo: alice@test.example\nSubject: crash " + tc.mode + "\nMessage-ID: <crash-" + tc.mode + "@remote.example>\n\nSurvive this.\n")
			if err := pf.Send(ctx, "sender@remote.example", []string{"alice@test.example"}, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			if tc.killOn == "" {
				line, off, err := pf.WaitLog(ctx, 0, regexp.MustCompile(`to=<alice@test\.example>.*status=sent`))
				if err != nil {
					t.Fatal(err)
				}
				// Postfix is done with it once it removed the queue file.
				id := regexp.MustCompile(`: ([0-9A-F]+): to=`).FindStringSubmatch(line)[1]
				if _, _, err := pf.WaitLog(ctx, off, regexp.MustCompile(id+`: removed`)); err != nil {
					t.Fatal(err)
				}
			} else if err := child.waitLine(tc.killOn); err != nil {
				t.Fatal(err)
			}
			child.kill(t)
			if tc.killOn != "" {
				line, off, err := pf.WaitLog(ctx, 0, regexp.MustCompile(`to=<alice@test\.example>.*status=deferred`))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(line, "lost connection with 127.0.0.1[127.0.0.1] while sending end of data -- message may be sent more than once") {
					t.Errorf("deferred: %q", line)
				}
				// Restarted, normal; Postfix is told to retry now.
				child = startCrashChild(t, dir, addr, "normal")
				if err := pf.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if _, _, err = pf.WaitLog(ctx, off, regexp.MustCompile(`to=<alice@test\.example>.*status=sent`)); err != nil {
					t.Fatal(err)
				}
			} else {
				// Restarted after the 250: Postfix has nothing left to send.
				child = startCrashChild(t, dir, addr, "normal")
				if ids, err := pf.QueueIDs(ctx); err != nil || len(ids) != 0 {
					t.Errorf("queue after status=sent: %v %v", ids, err)
				}
			}
			child.kill(t)

			b, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			u, err := b.User(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			mb, err := u.Mailbox(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			uids := mb.UIDs()
			if len(uids) != tc.copies {
				t.Fatalf("%d copies in INBOX (UIDs %v), want %d", len(uids), uids, tc.copies)
			}
			var first string
			for i, uid := range uids {
				if uid != bridge.UID(i+1) {
					t.Errorf("UIDs %v", uids)
				}
				body, err := mb.Open(ctx, uid)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(body)
				body.Close()
				got := string(data)
				if !strings.HasPrefix(got, "Return-Path: <sender@remote.example>\r\nDelivered-To: alice@test.example\r\n") || !strings.HasSuffix(got, "\r\n\r\nSurvive this.\r\n") {
					t.Errorf("copy %d: %q", i+1, got)
				}
				if i == 0 {
					first = got
				} else if got != first {
					t.Errorf("the copies differ:\n%q\n%q", first, got)
				}
			}
		})
	}
}

type crashChild struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

func startCrashChild(t *testing.T, dir, addr, mode string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWithPostfix$")
	cmd.Env = append(os.Environ(), "LMTPFRONT_CRASH_CHILD="+dir, "LMTPFRONT_CRASH_ADDR="+addr, "LMTPFRONT_CRASH_MODE="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, lines: bufio.NewScanner(out)}
	t.Cleanup(func() { c.kill(t) })
	if err := c.waitLine("listening"); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitLine reads the child's stdout up to the line want.
func (c *crashChild) waitLine(want string) error {
	for c.lines.Scan() {
		if c.lines.Text() == want {
			return nil
		}
	}
	return fmt.Errorf("the child ended before saying %q (%v)", want, c.lines.Err())
}

func (c *crashChild) kill(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Kill() // SIGKILL, by PID
	c.cmd.Wait()
}

// runCrashChild serves LMTP over the store in dir on addr; in mode
// before-commit or after-commit each delivery says "storing" or
// "committed" on stdout at that point and then waits to be killed.
func runCrashChild(dir, addr, mode string) {
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	alice, err := b.User(ctx, "alice")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	srv, err := lmtpfront.New(lmtpfront.Options{
		Hostname: "lmtp.test",
		Bridge:   b,
		Lookup: func(_ context.Context, name string) (*bridge.User, bool, error) {
			return alice, name == "alice", nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var real func(context.Context, *bridge.Spool, *bridge.User, []byte, time.Time) (bridge.UIDValidity, bridge.UID, error)
	real = lmtpfront.SetDeliver(srv, func(ctx context.Context, sp *bridge.Spool, u *bridge.User, header []byte, date time.Time) (bridge.UIDValidity, bridge.UID, error) {
		if mode == "before-commit" {
			fmt.Println("storing")
			select {}
		}
		v, uid, err := real(ctx, sp, u, header, date)
		if mode == "after-commit" && err == nil {
			fmt.Println("committed")
			select {}
		}
		return v, uid, err
	})
	l, err := lmtpfront.Listen(addr, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	fmt.Println("listening")
	if err := srv.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	os.Exit(0)
}
