package pop3

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seeds reads testdata/seeds/name.txt: one Go-quoted string per line,
// "#" comments and blank lines skipped.
func seeds(f *testing.F, name string) []string {
	f.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "seeds", name+".txt"))
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			f.Fatalf("testdata/seeds/%s.txt:%d: %v", name, i+1, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		f.Fatalf("testdata/seeds/%s.txt has no seeds", name)
	}
	return out
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range seeds(f, "status") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		st, err := parseStatus(line)
		if err != nil {
			return
		}
		switch {
		case st.cont:
			if !strings.HasPrefix(line, "+") {
				t.Fatalf("continuation from %q", line)
			}
		case st.ok:
			if !hasPrefixFold(line, "+OK") {
				t.Fatalf("+OK from %q", line)
			}
		default:
			if !hasPrefixFold(line, "-ERR") {
				t.Fatalf("-ERR from %q", line)
			}
		}
		if st.code != "" {
			if st.code != strings.ToUpper(st.code) || strings.ContainsAny(st.code, " []") ||
				!strings.Contains(strings.ToUpper(line), "["+st.code+"]") {
				t.Fatalf("code %q from %q", st.code, line)
			}
		}
		if !strings.Contains(line, st.text) {
			t.Fatalf("text %q is not in %q", st.text, line)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	for _, s := range seeds(f, "stat") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		n, size, err := parseStat(text)
		if err != nil {
			return
		}
		if n < 0 || size < 0 || n > maxMsgNum {
			t.Fatalf("parseStat(%q) = %d, %d", text, n, size)
		}
		n2, size2, err := parseStat(strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
		if err != nil || n2 != n || size2 != size {
			t.Fatalf("round trip of %q: %d %d %v", text, n2, size2, err)
		}
	})
}

func FuzzParseListLine(f *testing.F) {
	for _, s := range seeds(f, "list") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		mi, err := parseListLine(line)
		if err != nil {
			return
		}
		if mi.Num < 1 || mi.Size < 0 {
			t.Fatalf("parseListLine(%q) = %+v", line, mi)
		}
	})
}

func FuzzParseUIDLLine(f *testing.F) {
	for _, s := range seeds(f, "uidl") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ui, err := parseUIDLLine(line)
		if err != nil {
			return
		}
		if ui.Num < 1 || len(ui.UIDL) == 0 || len(ui.UIDL) > maxUIDLLen {
			t.Fatalf("parseUIDLLine(%q) = %+v", line, ui)
		}
		for i := 0; i < len(ui.UIDL); i++ {
			if c := ui.UIDL[i]; c < 0x21 || c > 0x7e {
				t.Fatalf("parseUIDLLine(%q): uid has byte %#x", line, c)
			}
		}
	})
}

func FuzzParseCapa(f *testing.F) {
	for _, s := range seeds(f, "capa") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, listing string) {
		caps := Capabilities{}
		for _, l := range strings.Split(listing, "\n") {
			parseCapaLine(caps, strings.TrimSuffix(l, "\r"))
		}
		for name, args := range caps {
			if name == "" || name != strings.ToUpper(name) || !caps.Has(name) {
				t.Fatalf("capability %q from %q", name, listing)
			}
			for _, a := range args {
				if a == "" || strings.ContainsAny(a, " \t\r\n") {
					t.Fatalf("argument %q of %q", a, name)
				}
			}
		}
	})
}

// FuzzDotReader checks two things: stuffed data comes back exactly, and
// arbitrary wire bytes never make the reader panic, invent data, or read
// past the terminator.
func FuzzDotReader(f *testing.F) {
	for _, s := range seeds(f, "dot") {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Round trip: any data whose last line is complete.
		msg := string(data)
		if msg != "" && !strings.HasSuffix(msg, "\n") {
			msg += "\r\n"
		}
		for _, size := range []int{16, 4096} {
			d := &dotReader{r: bufio.NewReaderSize(strings.NewReader(dotStuff(msg)+"NEXT"), size)}
			got, err := io.ReadAll(d)
			if err != nil || string(got) != msg {
				t.Fatalf("round trip (buffer %d): got %q, %v; want %q", size, got, err, msg)
			}
			rest, _ := io.ReadAll(d.r)
			if string(rest) != "NEXT" {
				t.Fatalf("round trip read past the terminator: left %q", rest)
			}
		}
		// Arbitrary wire bytes.
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		d := &dotReader{r: br}
		got, err := io.ReadAll(d)
		if len(got) > len(data) {
			t.Fatalf("read %d bytes from %d", len(got), len(data))
		}
		if err == nil {
			rest, _ := io.ReadAll(br)
			if len(got)+len(rest) > len(data) {
				t.Fatalf("data %d + rest %d > input %d", len(got), len(rest), len(data))
			}
		}
	})
}

// FuzzClientSession plays arbitrary server output against a whole client
// session: every command must return (an error or a result), never panic
// or hang.
func FuzzClientSession(f *testing.F) {
	for _, s := range seeds(f, "session") {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		client, server := net.Pipe()
		go io.Copy(io.Discard, server)
		go func() {
			server.Write(append([]byte("+OK fuzz <1.2@fuzz>\r\n"), reply...))
			server.Close()
		}()
		ctx := context.Background()
		c, err := NewClient(ctx, client, "fuzz", Options{Timeout: 2 * time.Second})
		if err != nil {
			return
		}
		defer c.Close()
		c.Capa(ctx)
		c.Login(ctx, "u", "p")
		c.Stat(ctx)
		c.List(ctx)
		c.UIDL(ctx)
		c.ListOne(ctx, 1)
		c.UIDLOne(ctx, 1)
		if b, err := c.Retr(ctx, 1); err == nil {
			io.Copy(io.Discard, b)
		}
		if b, err := c.Top(ctx, 1, 0); err == nil {
			b.Close()
		}
		c.RetrMany(ctx, []MsgNum{1, 2}, func(n MsgNum, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
		c.DeleMany(ctx, []MsgNum{1, 2})
		c.Quit(ctx)
	})
}
