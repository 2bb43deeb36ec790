package pop3front

import (
	"bufio"
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// seeds returns the command lines of testdata/commands.txt.
func seeds(f *testing.F) []string {
	data, err := os.ReadFile("testdata/commands.txt")
	if err != nil {
		f.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// FuzzParseCommand: parseCommand never panics, and what it accepts is a
// 3- or 4-letter upper-case keyword with arguments that, joined by single
// spaces, are the rest of the line with its runs of spaces collapsed.
func FuzzParseCommand(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := parseCommand(line)
		if err != nil {
			if c.name != "" || c.args != nil {
				t.Fatalf("error %v with a command %+v", err, c)
			}
			return
		}
		if len(c.name) < 3 || len(c.name) > 4 || strings.ToUpper(c.name) != c.name || !strings.EqualFold(string(line[:len(c.name)]), c.name) {
			t.Fatalf("keyword %q from %q", c.name, line)
		}
		if !strings.HasSuffix(string(line), c.rest) {
			t.Fatalf("rest %q is not the end of %q", c.rest, line)
		}
		for _, a := range c.args {
			if a == "" || strings.Contains(a, " ") {
				t.Fatalf("argument %q from %q", a, line)
			}
		}
		if got, want := strings.Join(c.args, " "), strings.Join(strings.FieldsFunc(c.rest, func(r rune) bool { return r == ' ' }), " "); got != want {
			t.Fatalf("arguments %q, want %q", got, want)
		}
		for _, a := range c.args {
			if n, ok := parseNumber(a); ok {
				want, err := strconv.ParseUint(a, 10, 64)
				if err != nil || want > maxNumber {
					want = maxNumber
				}
				if uint64(n) != want {
					t.Fatalf("parseNumber(%q) = %d, want %d", a, n, want)
				}
			} else if _, err := strconv.ParseUint(a, 10, 64); err == nil {
				t.Fatalf("parseNumber(%q) refused a number", a)
			}
		}
	})
}

// FuzzSession feeds whole sessions to a server over an in-memory pipe:
// whatever the client sends, the server never panics, every line it
// writes ends in CRLF, and the session ends.
func FuzzSession(f *testing.F) {
	f.Add([]byte("USER alice\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 1 1\r\nDELE 1\r\nRSET\r\nQUIT\r\n"))
	f.Add([]byte("AUTH PLAIN\r\nAGFsaWNlAHB3\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n"))
	f.Add([]byte("CAPA\r\nSTLS\r\nAUTH\r\nxyz\r\n\r\n"))
	f.Add([]byte(strings.Join(seeds(f), "\r\n")))
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	u, err := b.User(ctx, "alice")
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []string{"Subject: a\r\n\r\n.x\r\n", "Subject: b\nbare\n"} {
		if _, _, err := u.Append(ctx, "INBOX", strings.NewReader(m), nil, time.Now()); err != nil {
			f.Fatal(err)
		}
	}
	var recovered atomic.Int64
	srv, err := New(Options{
		Metrics:           &Metrics{Recovered: func() { recovered.Add(1) }},
		Bridge:            b,
		AllowInsecureAuth: true,
		Dele:              DeleKeep, // the maildrop stays the same for every input
		MaxCommandLength:  600,
		Authenticate: func(ctx context.Context, user, pw string, _ net.Addr) (*bridge.User, error) {
			if user == "alice" && pw == "pw" {
				return u, nil
			}
			return nil, ErrAuthFailed
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		cli, conn := net.Pipe()
		srv.accept(conn, "pop3", false)
		go func() {
			cli.SetWriteDeadline(time.Now().Add(10 * time.Second))
			cli.Write(input)
			cli.Write([]byte("\r\nQUIT\r\nQUIT\r\n"))
		}()
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(cli)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				if l != "" {
					t.Fatalf("unterminated line %q", l)
				}
				break
			}
			if !strings.HasSuffix(l, "\r\n") {
				t.Fatalf("line %q without CRLF", l)
			}
		}
		if n := recovered.Load(); n != 0 {
			t.Fatalf("%d panics", n)
		}
		cli.Close()
	})
	srv.Shutdown(ctx)
}
