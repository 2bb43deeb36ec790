package mboxstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// benchSpoolSize is the size of the generated benchmark spool; the
// environment variable MBOXSTORE_BENCH_MB overrides it (e.g. 1024).
func benchSpoolSize() int64 {
	if mb, err := strconv.Atoi(os.Getenv("MBOXSTORE_BENCH_MB")); err == nil && mb > 0 {
		return int64(mb) << 20
	}
	return 256 << 20
}

var bench struct {
	once sync.Once
	dir  string
	path string
	size int64
	msgs int
	err  error
}

func cleanupBench() {
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
}

// benchSpool returns a generated spool of about 256 MB (benchSpoolSize) with a realistic
// mix: mostly short text mails, some with attachments of tens of KB, a few
// of several MB, all base64-encoded with 76-byte lines, and the odd
// ">From " line. It is generated once per test binary and read once so
// that it is in the page cache (the benchmarks measure a warm spool).
func benchSpool(b *testing.B) (string, int64) {
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "mboxstore-bench-")
		if bench.err != nil {
			return
		}
		bench.path = filepath.Join(bench.dir, "spool")
		f, err := os.Create(bench.path)
		if err != nil {
			bench.err = err
			return
		}
		rng := rand.New(rand.NewPCG(1, 2))
		w := NewWriter(f)
		w.Location = time.UTC
		raw := make([]byte, 4<<20)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		var written int64
		for i, limit := 0, benchSpoolSize(); written < limit; i++ {
			var attach int
			switch p := rng.IntN(100); {
			case p < 60:
				attach = 0
			case p < 92:
				attach = 10<<10 + rng.IntN(90<<10)
			default:
				attach = 500<<10 + rng.IntN(3<<20)
			}
			msg := benchMessage(i, rng, raw[:attach])
			if err := w.WriteMessage(fmt.Sprintf("user%d@example.org", i%97), time.Unix(1.7e9+int64(i)*60, 0), msg); err != nil {
				bench.err = err
				return
			}
			written += int64(len(msg)) + 60
			bench.msgs++
		}
		if err := f.Close(); err != nil {
			bench.err = err
			return
		}
		fi, err := os.Stat(bench.path)
		if err != nil {
			bench.err = err
			return
		}
		bench.size = fi.Size()
		g, _ := os.Open(bench.path)
		io.Copy(io.Discard, g)
		g.Close()
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.path, bench.size
}

func benchMessage(i int, rng *rand.Rand, attach []byte) []byte {
	var m []byte
	m = fmt.Appendf(m, "Return-Path: <user%d@example.org>\nReceived: from mx%d.example.org (mx%d.example.org [192.0.2.%d])\n\tby mail.example.net with ESMTPS id %x\n\tfor <alice@example.net>; Tue, 13 Feb 2024 09:00:00 +0000\n", i%97, i%7, i%7, i%250, rng.Uint64())
	m = fmt.Appendf(m, "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; b=%s\n", base64.StdEncoding.EncodeToString(attach[:0]))
	m = fmt.Appendf(m, "From: User %d <user%d@example.org>\nTo: Alice <alice@example.net>\nSubject: Message number %d about things\nDate: Tue, 13 Feb 2024 09:00:00 +0000\nMessage-ID: <%x@example.org>\nMIME-Version: 1.0\n", i%97, i%97, i, rng.Uint64())
	m = append(m, "Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\n"...)
	for l := 0; l < 10+rng.IntN(60); l++ {
		m = append(m, "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"...)
		if l == 5 && i%10 == 0 {
			m = append(m, "\nFrom the previous mail:\n"...)
		}
	}
	if len(attach) > 0 {
		m = append(m, "--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"...)
		enc := make([]byte, base64.StdEncoding.EncodedLen(len(attach)))
		base64.StdEncoding.Encode(enc, attach)
		for len(enc) > 0 {
			n := min(76, len(enc))
			m = append(m, enc[:n]...)
			m = append(m, '\n')
			enc = enc[n:]
		}
	}
	return append(m, "--b1--\n"...)
}

// BenchmarkRawRead reads the spool into a buffer of the reader's size,
// nothing else: the ceiling for BenchmarkReader.
func BenchmarkRawRead(b *testing.B) {
	path, size := benchSpool(b)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, DefaultBufferSize)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < size; {
			n, err := f.ReadAt(buf, off)
			if n == 0 && err != nil {
				b.Fatal(err)
			}
			off += int64(n)
		}
	}
}

// BenchmarkReader is the boundary scan: From_ lines parsed, offsets and
// CRLF sizes of every message, no keys.
func BenchmarkReader(b *testing.B) {
	path, size := benchSpool(b)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		res, err := Scan(context.Background(), f, path, ScanOptions{Size: size, Complete: true})
		if err != nil || len(res.Messages) != bench.msgs {
			b.Fatalf("%d messages of %d, %v", len(res.Messages), bench.msgs, err)
		}
	}
	b.ReportMetric(float64(bench.msgs), "msgs/op")
}

// BenchmarkList is a full List of the spool by a fresh Source (no cache):
// locks, scan, content keys (SHA-256 over every message), ids.
func BenchmarkList(b *testing.B) {
	path, size := benchSpool(b)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		src := NewSource(Config{Name: "bench", PathTemplate: filepath.Dir(path) + "/{user}"}, nil)
		ss, err := src.Open(context.Background(), bridge.Account{User: filepath.Base(path)})
		if err != nil {
			b.Fatal(err)
		}
		msgs, err := ss.List(context.Background())
		if err != nil || len(msgs) != bench.msgs-1 { // the last one waits for a second poll
			b.Fatalf("%d messages of %d, %v", len(msgs), bench.msgs, err)
		}
		ss.Abort()
	}
}

// BenchmarkListUnchanged is the steady state: a poll of a spool that did
// not change since the previous one.
func BenchmarkListUnchanged(b *testing.B) {
	path, _ := benchSpool(b)
	src := NewSource(Config{Name: "bench", PathTemplate: filepath.Dir(path) + "/{user}"}, nil)
	acct := bridge.Account{User: filepath.Base(path)}
	for range 2 {
		if _, err := tryList(src, acct.User); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := tryList(src, acct.User); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetch streams every message of the spool (unescape, CRLF, key
// check).
func BenchmarkFetch(b *testing.B) {
	path, size := benchSpool(b)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	res, err := Scan(context.Background(), f, path, ScanOptions{Size: size, Complete: true, Keys: true})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	buf := make([]byte, 32<<10)
	for b.Loop() {
		for _, m := range res.Messages {
			if _, err := io.CopyBuffer(io.Discard, newMessageReader(context.Background(), f, path, m), buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}
