package mboxstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// The ingest benchmarks run the mbox source through the bridge's sync
// engine (bridge.Poll into a real store):
//
//	BenchmarkImportFirst / BenchmarkImportRawRead   first import of a spool vs reading it raw
//	BenchmarkTailPoll/spool=N                      10 messages appended to an N-message spool
//	                                               until all 10 are in the store
//
// MBOXSTORE_BENCH_IMPORT sets the import spool's message count (default
// 2000); MBOXSTORE_BENCH_TAIL the spool sizes of the tail benchmark
// (default "1000,10000"; "10000,100000" is the figure in the README, its
// setup imports the spool once and takes minutes).

func envCount(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// ingestSpool writes a spool of n messages (a few KB each, and with big
// every 100th of 1 MB) to a new file under dir and returns its path and
// size.
func ingestSpool(b *testing.B, dir string, n int, big bool) (string, int64) {
	b.Helper()
	path := filepath.Join(dir, "alice")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter(f)
	w.Location = time.UTC
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	for i := range n {
		m := tailMessage(i, rng)
		if !big && len(m) > 8000 {
			m = m[:8000]
		}
		if err := w.WriteMessage("sender@example.org", time.Unix(1.7e9+int64(i), 0), m); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, fi.Size()
}

func tailMessage(i int, rng *rand.Rand) []byte {
	size := 1000 + rng.IntN(4000)
	if i%100 == 99 {
		size = 1 << 20
	}
	m := fmt.Appendf(nil, "From: Sender <s%d@example.org>\nTo: alice@example.org\nSubject: message %d\nMessage-ID: <tail-%d-%x@example.org>\n\n", i, i, i, rng.Uint64())
	for len(m) < size {
		m = append(m, "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"...)
	}
	return m
}

func pollAll(b *testing.B, br *bridge.Bridge, u *bridge.User, src *Source) int {
	b.Helper()
	res, err := br.Poll(context.Background(), u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}})
	if err != nil {
		b.Fatalf("poll: %+v, %v", res, err)
	}
	return res.Fetched
}

// BenchmarkImportRawRead reads the import spool raw, in 64 KiB reads: the
// baseline for BenchmarkImportFirst.
func BenchmarkImportRawRead(b *testing.B) {
	path, size := ingestSpool(b, b.TempDir(), envCount("MBOXSTORE_BENCH_IMPORT", 2000), true)
	buf := make([]byte, 64<<10)
	b.SetBytes(size)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		f.Close()
	}
}

// BenchmarkImportFirst imports the whole spool into an empty store: the
// listing (scan and content keys), fetching every message and committing
// it durably.
func BenchmarkImportFirst(b *testing.B) {
	n := envCount("MBOXSTORE_BENCH_IMPORT", 2000)
	spoolDir := b.TempDir()
	_, size := ingestSpool(b, spoolDir, n, true)
	ctx := context.Background()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		u, _ := br.User(ctx, "alice")
		src := NewSource(Config{Name: "spool", PathTemplate: spoolDir + "/{user}"}, nil)
		b.StartTimer()
		// The last message waits for a second poll (nothing follows it).
		got := pollAll(b, br, u, src) + pollAll(b, br, u, src)
		if got != n {
			b.Fatalf("imported %d of %d", got, n)
		}
		b.StopTimer()
		br.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkTailPoll: a spool of N messages, all in the store; each
// iteration appends 10 messages and polls until the store holds them (two
// polls: the last one is listed once the spool is seen unchanged). The
// time per iteration should not grow with N.
func BenchmarkTailPoll(b *testing.B) {
	sizes := []int{1000, 10000}
	if v := os.Getenv("MBOXSTORE_BENCH_TAIL"); v != "" {
		sizes = nil
		for _, f := range splitComma(v) {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("spool=%d", n), func(b *testing.B) {
			spoolDir := b.TempDir()
			path, _ := ingestSpool(b, spoolDir, n, false)
			ctx := context.Background()
			br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			u, _ := br.User(ctx, "alice")
			src := NewSource(Config{Name: "spool", PathTemplate: spoolDir + "/{user}"}, nil)
			if got := pollAll(b, br, u, src) + pollAll(b, br, u, src); got != n {
				b.Fatalf("first import: %d of %d", got, n)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			next := n
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					b.Fatal(err)
				}
				w := NewWriter(f)
				w.Location = time.UTC
				for range 10 {
					// Small tail messages: the time measured is the
					// poll's, not the copy of a big body.
					m := tailMessage(next, rng)
					if len(m) > 8000 {
						m = m[:8000]
					}
					if err := w.WriteMessage("sender@example.org", time.Unix(1.7e9+int64(next), 0), m); err != nil {
						b.Fatal(err)
					}
					next++
				}
				f.Close()
				b.StartTimer()
				if got := pollAll(b, br, u, src) + pollAll(b, br, u, src); got != 10 {
					b.Fatalf("tail poll fetched %d, want 10", got)
				}
			}
		})
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
