package pop3

import (
	"bufio"
	"context"
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
