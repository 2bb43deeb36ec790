package imapfront

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkGuardScan measures the guard's cost per byte against the least
// any line scanner does (bytes.Count of LF over the same buffer), on a
// client's command stream and on a server's FETCH output with literals.
//
//	go test -run '^$' -bench BenchmarkGuardScan ./imapfront/
func BenchmarkGuardScan(b *testing.B) {
	var cmds strings.Builder
	for i := 0; cmds.Len() < 1<<20; i++ {
		fmt.Fprintf(&cmds, "a%d UID FETCH %d:%d (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])\r\n", i, i, i+50)
	}
	var out strings.Builder
	body := strings.Repeat("A line of a message body, as long as most of them are.\r\n", 200)
	for i := 1; out.Len() < 1<<20; i++ {
		fmt.Fprintf(&out, "* %d FETCH (UID %d FLAGS (\\Seen) BODY[] {%d}\r\n%s)\r\n", i, i, len(body), body)
	}
	for _, tc := range []struct {
		name string
		data []byte
		scan func(g *guardConn, p []byte)
	}{
		{"commands", []byte(cmds.String()), func(g *guardConn, p []byte) { g.feedIn(p) }},
		{"fetch output", []byte(out.String()), func(g *guardConn, p []byte) { g.scanOut(p) }},
	} {
		b.Run(tc.name+"/guard", func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				g := &guardConn{pendingSync: -1}
				for p := tc.data; len(p) > 0; {
					n := min(len(p), 4096)
					tc.scan(g, p[:n])
					p = p[n:]
				}
			}
		})
		b.Run(tc.name+"/baseline", func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				for p := tc.data; len(p) > 0; {
					n := min(len(p), 4096)
					bytes.Count(p[:n], []byte{'\n'})
					p = p[n:]
				}
			}
		})
	}
}

// feedIn runs the guard's input side over p as if go-imap read it all,
// answering every command at once.
func (g *guardConn) feedIn(p []byte) {
	g.inbuf = append(g.inbuf, p...)
	for {
		if g.ready > 0 {
			g.consume(g.ready)
			g.ready = 0
			g.busy = false
		}
		if ok, _ := g.process(); !ok {
			return
		}
	}
}
