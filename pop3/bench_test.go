package pop3

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// benchServer answers every command line on a connection with reply.
func benchServer(b *testing.B, reply []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.Write([]byte("+OK bench\r\n"))
				r := bufio.NewReader(conn)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := conn.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkRetr compares RETR of a 10 MB message (76-character lines, some
// of them dot-stuffed) through the client against a raw io.Copy of the same
// bytes from the same kind of TCP stream.
func BenchmarkRetr(b *testing.B) {
	var msg strings.Builder
	msg.WriteString("Subject: bench\r\n\r\n")
	line := strings.Repeat("x", 74) + "\r\n"
	for i := 0; msg.Len() < 10<<20; i++ {
		if i%100 == 0 {
			msg.WriteString(".stuffed\r\n")
		}
		msg.WriteString(line)
	}
	wire := []byte("+OK\r\n" + dotStuff(msg.String()))
	ctx := context.Background()

	b.Run("client", func(b *testing.B) {
		c, err := Dial(ctx, benchServer(b, wire), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.SetBytes(int64(msg.Len()))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			body, err := c.Retr(ctx, 1)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, body)
			if err != nil || n != int64(msg.Len()) {
				b.Fatalf("read %d, %v", n, err)
			}
		}
	})
	b.Run("raw-io.Copy", func(b *testing.B) {
		conn, err := net.Dial("tcp", benchServer(b, wire))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		greeting := make([]byte, len("+OK bench\r\n"))
		if _, err := io.ReadFull(conn, greeting); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(msg.Len()))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			conn.Write([]byte("RETR 1\r\n"))
			if n, err := io.CopyN(io.Discard, conn, int64(len(wire))); err != nil {
				b.Fatalf("read %d, %v", n, err)
			}
		}
	})
}

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
	addr := benchServer(b, []byte(sb.String()))
	ctx := context.Background()
	b.Run("client", func(b *testing.B) {
		c, err := Dial(ctx, addr, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for b.Loop() {
			u, err := c.UIDL(ctx)
			if err != nil || len(u) != 10000 {
				b.Fatal(err, len(u))
			}
		}
	})
	b.Run("raw-read", func(b *testing.B) {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer raw.Close()
		br := bufio.NewReaderSize(raw, 64<<10)
		br.ReadString('\n')
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
