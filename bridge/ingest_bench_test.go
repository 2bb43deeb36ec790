package bridge_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

// The ingest benchmarks measure the store side of a first sync alone: the
// source is in memory, so the network costs nothing and what is left is
// writing, hashing, syncing and committing. The baseline writes the same
// bodies to files and makes them durable with one fsync each and one of
// their directory (what the store did per message before group commit)
// or syncs nothing at all (the ceiling).

const ingestMessages = 1000

func ingestBodies() [][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	out := make([][]byte, ingestMessages)
	for i := range out {
		size := 2000 + r.IntN(30000)
		if i%200 == 199 {
			size = 2 << 20
		}
		b := fmt.Appendf(nil, "Subject: ingest %d\r\nMessage-ID: <ingest-%d@example.org>\r\n\r\n", i, i)
		for len(b) < size {
			b = append(b, "lorem ipsum dolor sit amet, consectetur adipiscing elit sed do eiusmod\r\n"...)
		}
		out[i] = b
	}
	return out
}

func totalBytes(bodies [][]byte) int64 {
	var n int64
	for _, b := range bodies {
		n += int64(len(b))
	}
	return n
}

// BenchmarkIngestPoll is a first sync of 1000 messages from an in-memory
// source through Bridge.Poll (group commit).
func BenchmarkIngestPoll(b *testing.B) {
	for _, tc := range []struct {
		name     string
		noSyncFS bool
	}{{"syncfs", false}, {"fsync-each", true}} {
		b.Run(tc.name, func(b *testing.B) {
			bodies := ingestBodies()
			src := bridgetest.NewSource("mem")
			for _, body := range bodies {
				src.Deliver("alice", body, time.Time{})
			}
			ctx := context.Background()
			b.SetBytes(totalBytes(bodies))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir(), NoSyncFS: tc.noSyncFS})
				if err != nil {
					b.Fatal(err)
				}
				u, _ := br.User(ctx, "alice")
				b.StartTimer()
				res, err := br.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}})
				if err != nil || res.Fetched != len(bodies) {
					b.Fatalf("poll: %+v, %v", res, err)
				}
				b.StopTimer()
				br.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(len(bodies))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkIngestRawFiles writes the same bodies to one file each: with
// an fsync of each file and of the directory per message ("fsync-each",
// the durable floor of one-at-a-time ingest), or with no sync at all
// ("nosync", the ceiling).
func BenchmarkIngestRawFiles(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "nosync"
		if sync {
			name = "fsync-each"
		}
		b.Run(name, func(b *testing.B) {
			bodies := ingestBodies()
			b.SetBytes(totalBytes(bodies))
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				b.StartTimer()
				for i, body := range bodies {
					f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.Write(body); err != nil {
						b.Fatal(err)
					}
					if sync {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
						d, _ := os.Open(dir)
						d.Sync()
						d.Close()
					}
					f.Close()
				}
			}
			b.ReportMetric(float64(len(bodies))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkOpenBodies reads every message of a mailbox of 2,000 bodies of
// 2-32 KB (stored inline) through Mailbox.Open, as FETCH BODY[] of all
// does, against a raw read of the same bodies from one file each (what
// serving them cost when every body was a file): the baseline.
func BenchmarkOpenBodies(b *testing.B) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 3))
	bodies := make([][]byte, 2000)
	for i := range bodies {
		body := fmt.Appendf(nil, "Subject: open %d\r\n\r\n", i)
		for size := 2000 + r.IntN(30000); len(body) < size; {
			body = append(body, "lorem ipsum dolor sit amet, consectetur adipiscing elit sed do eiusmod\r\n"...)
		}
		bodies[i] = body
	}
	b.Run("inline", func(b *testing.B) {
		br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		src := bridgetest.NewSource("mem")
		for _, body := range bodies {
			src.Deliver("alice", body, time.Time{})
		}
		u, _ := br.User(ctx, "alice")
		if _, err := br.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}}); err != nil {
			b.Fatal(err)
		}
		inbox, _ := u.Mailbox(ctx, "INBOX")
		uids := inbox.UIDs()
		b.SetBytes(totalBytes(bodies))
		b.ReportAllocs()
		for b.Loop() {
			for _, uid := range uids {
				f, err := inbox.Open(ctx, uid)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, f); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		}
	})
	b.Run("files", func(b *testing.B) {
		dir := b.TempDir()
		for i, body := range bodies {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), body, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(totalBytes(bodies))
		b.ReportAllocs()
		for b.Loop() {
			for i := range bodies {
				f, err := os.Open(filepath.Join(dir, fmt.Sprint(i)))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, f); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		}
	})
}
