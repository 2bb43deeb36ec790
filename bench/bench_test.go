package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The generated data is what every figure rests on: it must be the same
// for a seed, have the promised mix, and be a valid mbox whose messages are
// byte for byte the Maildir files.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	const n = 600
	ds, err := generate(7, n, filepath.Join(dir, "spool"), filepath.Join(dir, "Maildir"))
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := genMessage(7, 123, n)
	first, _, _ := genMessage(7, 123, n)
	if !bytes.Equal(again, first) {
		t.Fatal("message 123 differs between two calls with the same seed")
	}
	other, _, _ := genMessage(8, 123, n)
	if bytes.Equal(other, first) {
		t.Fatal("message 123 is the same for seeds 7 and 8")
	}

	files, err := os.ReadDir(filepath.Join(dir, "Maildir", "new"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != n {
		t.Fatalf("Maildir has %d files, want %d", len(files), n)
	}
	var (
		total                          int64
		small, big, huge, word, zelda  int
		plain, alternative, withAttach int
		encoded                        int
	)
	for i, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, "Maildir", "new", f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := genMessage(7, i, n)
		if !bytes.Equal(data, want) {
			t.Fatalf("Maildir file %d (%s) is not message %d", i, f.Name(), i)
		}
		total += int64(len(data))
		switch {
		case len(data) >= 1<<20:
			huge++
		case len(data) >= 60<<10:
			big++
		case len(data) >= 2<<10 && len(data) <= 24<<10:
			small++
		}
		s := string(data)
		if strings.Contains(s, searchWord) {
			word++
		}
		if i := strings.Index(s, "\nFrom: "); i >= 0 {
			if from, _, _ := strings.Cut(s[i+1:], "\n"); strings.Contains(from, "<zelda.okafor@") {
				zelda++
			}
		}
		switch {
		case strings.Contains(s, "multipart/alternative"):
			alternative++
		case strings.Contains(s, "multipart/mixed"):
			withAttach++
		case strings.Contains(s, "text/plain"):
			plain++
		}
		if strings.Contains(s, "=?UTF-8?") {
			encoded++
		}
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(line, "From ") {
				t.Fatalf("message %d has a body line starting \"From \": %q", i, line)
			}
		}
	}
	if total != ds.bytes {
		t.Errorf("dataSet.bytes = %d, files hold %d", ds.bytes, total)
	}
	checks := []struct {
		what     string
		got      int
		min, max int
	}{
		{"2-24 KB messages", small, n * 80 / 100, n},
		{"60 KB-1 MB messages (~100 KB attachment)", big, n * 5 / 100, n * 12 / 100},
		{"multi-MB messages", huge, 1, 1},
		{"messages with " + searchWord, word, n / 200, n * 2 / 100},
		{"messages from zelda", zelda, n * 3 / 100, n * 7 / 100},
		{"text/plain", plain, n * 50 / 100, n * 70 / 100},
		{"multipart/alternative", alternative, n * 25 / 100, n * 40 / 100},
		{"multipart/mixed", withAttach, n * 5 / 100, n * 12 / 100},
		{"with encoded-words", encoded, n * 10 / 100, n * 40 / 100},
		{"dated since " + searchSince, ds.sinceHits, n * 45 / 100, n * 55 / 100},
	}
	for _, c := range checks {
		if c.got < c.min || c.got > c.max {
			t.Errorf("%s: %d of %d, want %d..%d", c.what, c.got, n, c.min, c.max)
		}
	}

	// The spool: one From_ line per message, each followed by exactly
	// that message and a blank line.
	spool, err := os.ReadFile(ds.mbox)
	if err != nil {
		t.Fatal(err)
	}
	rest := spool
	for i := 0; i < n; i++ {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 || !bytes.HasPrefix(rest, []byte("From ")) {
			t.Fatalf("spool: message %d does not start with a From_ line", i)
		}
		rest = rest[nl+1:]
		want, _, _ := genMessage(7, i, n)
		if !bytes.HasPrefix(rest, want) || len(rest) < len(want)+1 || rest[len(want)] != '\n' {
			t.Fatalf("spool: message %d differs from the generated one", i)
		}
		rest = rest[len(want)+1:]
	}
	if len(rest) != 0 {
		t.Fatalf("spool: %d bytes after the last message", len(rest))
	}
}

func TestLiteralLen(t *testing.T) {
	for _, c := range []struct {
		line string
		n    int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {123}\r\n", 123, true},
		{"* 1 FETCH (BODY[] {0}\r\n", 0, true},
		{"A1 APPEND x {12+}\r\n", 12, true},
		{"* OK done\r\n", 0, false},
		{"* OK {x}\r\n", 0, false},
		{"}\r\n", 0, false},
	} {
		n, ok := literalLen([]byte(c.line))
		if n != c.n || ok != c.ok {
			t.Errorf("literalLen(%q) = %d, %v; want %d, %v", c.line, n, ok, c.n, c.ok)
		}
	}
}

// The client reads literals as bytes, not lines: a literal holding CRLF,
// "}" line ends and a fake tagged line must not end the response early.
func TestIMAPClientLiterals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	body := "Subject: x {5}\r\n\r\nb1 OK fake\r\n* 9 EXISTS\r\n"
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.Write([]byte("* OK ready\r\n"))
		r.ReadString('\n') // LOGIN
		c.Write([]byte("b1 OK logged in\r\n"))
		r.ReadString('\n') // FETCH
		c.Write([]byte("* 1 FETCH (UID 1 BODY[] {" + strconv.Itoa(len(body)) + "}\r\n" + body + ")\r\n* 2 FETCH (UID 2 BODY[] {0}\r\n)\r\nb2 OK done\r\n"))
		r.ReadString('\n')
	}()
	ctx := t.Context()
	c, err := dialIMAP(ctx, ln.Addr().String(), "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	n, err := c.fetchCount(ctx, "UID FETCH 1:* (BODY.PEEK[])")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || c.litBytes != int64(len(body)) {
		t.Fatalf("fetchCount = %d, literal bytes %d; want 2, %d", n, c.litBytes, len(body))
	}
	c.c.Close()
	<-done
}
