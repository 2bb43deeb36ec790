package pop3front_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/pop3front"
)

// TestQuitDurableBeforeOK: QUIT answers +OK only once its change is
// durable. A child process serves POP3 over a store; the parent DELEs,
// reads QUIT's +OK and kills the child with SIGKILL at once, then opens
// the store: the expunge (or, with dele keep, the hiding) is there.
func TestQuitDurableBeforeOK(t *testing.T) {
	if dir := os.Getenv("POP3FRONT_CRASH_CHILD"); dir != "" {
		crashChild(dir, os.Getenv("POP3FRONT_CRASH_DELE"))
		return
	}
	t.Parallel()
	for _, mode := range []string{pop3front.DeleExpunge, pop3front.DeleKeep} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			b, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			u, _ := b.User(ctx, "alice")
			for i := 1; i <= 4; i++ {
				if _, _, err := u.Append(ctx, "INBOX", strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)), nil, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			b.Close()

			cmd := exec.Command(os.Args[0], "-test.run=^TestQuitDurableBeforeOK$")
			cmd.Env = append(os.Environ(), "POP3FRONT_CRASH_CHILD="+dir, "POP3FRONT_CRASH_DELE="+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			t.Cleanup(func() {
				if !killed {
					cmd.Process.Kill()
					cmd.Wait()
				}
			})
			sc := bufio.NewScanner(out)
			var addr string
			for sc.Scan() {
				if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
					addr = a
					break
				}
			}
			if addr == "" {
				t.Fatal("the child did not start listening")
			}
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
			c.login("alice")
			c.cmd("DELE 2")
			c.cmd("DELE 4")
			if l := c.cmd("QUIT"); !strings.HasPrefix(l, "+OK") {
				t.Fatalf("QUIT: %q", l)
			}
			cmd.Process.Kill()
			cmd.Wait()
			killed = true

			b, err = bridge.Open(ctx, bridge.Options{DataDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			u, _ = b.User(ctx, "alice")
			inbox, err := u.Mailbox(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			l, err := inbox.POP3Listing(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range l {
				got = append(got, fmt.Sprintf("%d%s", e.UID, map[bool]string{true: "h"}[e.Hidden]))
			}
			want := map[string]string{pop3front.DeleExpunge: "1 3", pop3front.DeleKeep: "1 2h 3 4h"}[mode]
			if strings.Join(got, " ") != want {
				t.Errorf("after SIGKILL right after +OK: %v, want %s", got, want)
			}
		})
	}
}

// crashChild serves POP3 over the store in dir until it is killed.
func crashChild(dir, mode string) {
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv, err := pop3front.New(pop3front.Options{
		Bridge:            b,
		AllowInsecureAuth: true,
		Dele:              mode,
		Authenticate: func(ctx context.Context, user, pw string, _ net.Addr) (*bridge.User, error) {
			if pw != password {
				return nil, pop3front.ErrAuthFailed
			}
			return b.User(ctx, user)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	srv.Serve(ln)
	os.Exit(0)
}
