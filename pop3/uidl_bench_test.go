package pop3_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/pop3"
)

// BenchmarkUIDL: the client's UIDL of a 10,000-message maildrop (read,
// parsed, checked for duplicates: what every no-new-mail poll costs on our
// side), against reading the same reply line by line and throwing it away
// (the baseline), over loopback from a canned server.
func BenchmarkUIDL(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("+OK\r\n")
	for i := 1; i <= 10000; i++ {
		fmt.Fprintf(&sb, "%d 000%05dX4f1a2b3c\r\n", i, i)
	}
	sb.WriteString(".\r\n")
	resp := sb.String()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("+OK ready\r\n"))
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(l, "UIDL") {
						c.Write([]byte(resp))
					} else {
						c.Write([]byte("+OK\r\n"))
					}
				}
			}()
		}
	}()
	ctx := context.Background()
	c, err := pop3.Dial(ctx, ln.Addr().String(), pop3.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("client", func(b *testing.B) {
		for b.Loop() {
			u, err := c.UIDL(ctx)
			if err != nil || len(u) != 10000 {
				b.Fatal(err, len(u))
			}
		}
	})
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	br := bufio.NewReaderSize(raw, 64<<10)
	br.ReadString('\n')
	b.Run("raw-read", func(b *testing.B) {
		for b.Loop() {
			raw.Write([]byte("UIDL\r\n"))
			for {
				l, err := br.ReadSlice('\n')
				if err != nil {
					b.Fatal(err)
				}
				if len(l) == 3 && l[0] == '.' {
					break
				}
			}
		}
	})
}
