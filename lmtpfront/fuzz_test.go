package lmtpfront_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

// FuzzSession writes arbitrary bytes to an LMTP connection after LHLO.
// Whatever they are: no panic, the server answers and closes when the
// client is done, and the header put in front of every copy is exactly
// the two lines, with no control character (an address can never inject
// a header or end the header block). Seeded from testdata/session/*.lmtp.
func FuzzSession(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/session/*.lmtp")
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	var panics atomic.Int32
	e := newEnv(f, "", func(o *lmtpfront.Options) {
		o.CommandTimeout = 10 * time.Second
		o.Metrics.Recovered = func() { panics.Add(1) }
	}, "alice", "bob@test.example")
	// Copies are kept in memory, not stored: the property is the
	// server's, and a commit per input would make fuzzing crawl.
	var mu sync.Mutex
	var copies []string
	lmtpfront.SetDeliver(e.srv, func(ctx context.Context, sp *bridge.Spool, u *bridge.User, header []byte, date time.Time) (bridge.UIDValidity, bridge.UID, error) {
		mu.Lock()
		defer mu.Unlock()
		copies = append(copies, string(header))
		return 1, bridge.UID(len(copies)), nil
	})
	f.Fuzz(func(t *testing.T, input []byte) {
		c, err := net.Dial(e.netw, e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		c.Write([]byte("LHLO fuzz.test\r\n"))
		c.Write(input)
		// End a DATA the input may have left open, then leave.
		c.Write([]byte("\r\n.\r\nQUIT\r\n"))
		c.(*net.TCPConn).CloseWrite()
		var out bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(out.Bytes(), []byte("220 lmtp.test LMTP Service Ready\r\n250-Hello fuzz.test\r\n")) {
			t.Fatalf("output %q", out.Bytes())
		}
		if n := panics.Load(); n != 0 {
			t.Fatalf("%d panics", n)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, h := range copies {
			lines := strings.Split(h, "\r\n")
			if len(lines) != 3 || lines[2] != "" || !strings.HasPrefix(lines[0], "Return-Path: <") || !strings.HasSuffix(lines[0], ">") || !strings.HasPrefix(lines[1], "Delivered-To: ") {
				t.Fatalf("header %q", h)
			}
			for _, l := range lines[:2] {
				for i := 0; i < len(l); i++ {
					if l[i] < 0x20 || l[i] == 0x7f {
						t.Fatalf("header line %q", l)
					}
				}
			}
		}
		copies = copies[:0]
	})
}
