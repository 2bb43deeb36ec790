package pop3front_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// benchMessages is the maildrop size of BenchmarkSession
// (POP3FRONT_BENCH_MESSAGES, default 2000).
func benchMessages() int {
	if n, err := strconv.Atoi(os.Getenv("POP3FRONT_BENCH_MESSAGES")); err == nil && n > 0 {
		return n
	}
	return 2000
}

func benchEnv(b *testing.B, n int) *testEnv {
	return benchEnvT(b, newEnv(b), n)
}

func benchEnvT(b testing.TB, e *testEnv, n int) *testEnv {
	u := e.user("alice")
	body := "Subject: bench\r\n\r\n" + strings.Repeat("some text of a line\r\n", 300)
	for i := 0; i < n; i++ {
		if _, _, err := u.Append(e.ctx, "INBOX", strings.NewReader(fmt.Sprintf("X-N: %d\r\n%s", i, body)), nil, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkSession: a POP3 client's poll of a maildrop whose sizes are
// known (login, UIDL, QUIT): what a client polling every few minutes costs.
func BenchmarkSession(b *testing.B) {
	n := benchMessages()
	e := benchEnv(b, n)
	inbox := e.inbox("alice")
	if _, err := inbox.POP3Listing(e.ctx, nil); err != nil { // sizes measured once
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		c := e.dial()
		c.login("alice")
		c.send("UIDL")
		if got := len(c.multi()); got == 0 {
			b.Fatal("empty UIDL")
		}
		c.cmd("QUIT")
		c.conn.Close()
	}
	b.ReportMetric(float64(n), "msgs")
}

// BenchmarkFirstListing: the first POP3 listing of a maildrop never listed
// before, which reads every body once to measure its POP3 size.
func BenchmarkFirstListing(b *testing.B) {
	n := benchMessages()
	for b.Loop() {
		b.StopTimer()
		e := benchEnv(b, n)
		inbox := e.inbox("alice")
		b.StartTimer()
		if _, err := inbox.POP3Listing(e.ctx, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "msgs")
}

// BenchmarkRetr: RETR of a 10 MB message through the face (POP3Content
// and dot-stuffing), against reading its body from the bridge.
func BenchmarkRetr(b *testing.B) {
	e := newEnv(b)
	line := strings.Repeat("x", 76) + "\r\n"
	big := "Subject: big\r\n\r\n" + strings.Repeat(line, (10<<20)/len(line))
	_, uid, err := e.user("alice").Append(e.ctx, "INBOX", strings.NewReader(big), nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pop3", func(b *testing.B) {
		c := e.dial()
		c.login("alice")
		b.SetBytes(int64(len(big)))
		buf := make([]byte, 64<<10)
		for b.Loop() {
			c.cmd("RETR 1")
			drainMulti(b, c, buf)
		}
	})
	b.Run("bridge-read", func(b *testing.B) {
		inbox := e.inbox("alice")
		b.SetBytes(int64(len(big)))
		buf := make([]byte, 32<<10)
		for b.Loop() {
			body, err := inbox.Open(e.ctx, uid)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := body.Read(buf); err != nil {
					break
				}
			}
			body.Close()
		}
	})
	_ = bridge.UID(0)
}

// drainMulti reads a multi-line answer in large reads, up to the
// terminating line.
func drainMulti(b *testing.B, c *client, buf []byte) {
	var tail []byte
	for {
		n, err := c.r.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		tail = append(tail, buf[:n]...)
		if len(tail) > 5 {
			tail = tail[len(tail)-5:]
		}
		if string(tail) == "\r\n.\r\n" {
			return
		}
	}
}
