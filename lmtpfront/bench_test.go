package lmtpfront_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/lmtpfront"
)

// BenchmarkDelivery: one LMTP transaction (pipelined, as Postfix sends
// it) of a 4 KiB message to 1 or 10 recipients, over a real listener, each
// copy committed (fsync) before its 250.
func BenchmarkDelivery(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("rcpts=%d", n), func(b *testing.B) {
			ctx := context.Background()
			br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			users := map[string]*bridge.User{}
			var tx strings.Builder
			tx.WriteString("MAIL FROM:<s@r.example>\r\n")
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("u%d", i)
				if users[name], err = br.User(ctx, name); err != nil {
					b.Fatal(err)
				}
				fmt.Fprintf(&tx, "RCPT TO:<%s@test.example>\r\n", name)
			}
			tx.WriteString("DATA\r\nSubject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 64) + ".\r\n")
			srv, err := lmtpfront.New(lmtpfront.Options{Bridge: br, Hostname: "lmtp.test", Lookup: func(_ context.Context, name string) (*bridge.User, bool, error) {
				u, ok := users[name]
				return u, ok, nil
			}})
			if err != nil {
				b.Fatal(err)
			}
			l, err := lmtpfront.Listen("127.0.0.1:0", 0)
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			io.WriteString(c, "LHLO mta.test\r\n")
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if strings.HasPrefix(line, "220 ") || line[3] == '-' {
					continue
				}
				break
			}
			replies := 1 + n + 1 + n
			b.SetBytes(int64(len(tx.String())))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				io.WriteString(c, tx.String())
				for j := 0; j < replies; j++ {
					line, err := r.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if line[0] != '2' && line[0] != '3' {
						b.Fatalf("reply %q", line)
					}
				}
			}
		})
	}
}
