package pop3_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/pop3"
)

// The sync benchmarks measure the bridge's POP3 sync against the ceiling a
// bare client reaches on the same maildrop of a real Dovecot, in the same
// run, so the ratio is what counts:
//
//	BenchmarkSyncFirst / BenchmarkRawRetrLoop      first sync vs a bare RETR loop
//	BenchmarkPollNoNewMail / BenchmarkRawUIDL      no-new-mail poll vs one UIDL round trip
//
// BENCH_POP3_MESSAGES sets the first-sync maildrop size (default 1000);
// BENCH_POP3_IDLE_MESSAGES the no-new-mail maildrop (default 10000).

type benchDrop struct {
	srv   *dovecottest.Server
	bytes int64
	n     int
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchMessage is a realistic message of roughly size bytes.
func benchMessage(i, size int, r *rand.Rand) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: Sender %d <s%d@example.org>\nTo: alice@example.org\nSubject: benchmark message %d\nDate: Mon, 2 Nov 2026 10:00:00 +0000\nMessage-ID: <bench-%d@example.org>\n\n", i, i, i, i)
	words := []string{"quarterly", "report", "meeting", "lunch", "invoice", "the", "and", "project", "deadline", "coffee"}
	line := 0
	for sb.Len() < size {
		w := words[r.IntN(len(words))]
		sb.WriteString(w)
		line += len(w) + 1
		if line > 72 {
			sb.WriteString("\n")
			line = 0
		} else {
			sb.WriteString(" ")
		}
	}
	sb.WriteString("\n")
	return []byte(sb.String())
}

// maildrop starts a Dovecot with user "bench" holding n messages (the same
// n messages for every benchmark), stopped when the benchmark ends.
func maildrop(b *testing.B, n int) *benchDrop {
	b.Helper()
	srv := dovecottest.Start(b, dovecottest.Options{Users: []dovecottest.User{{Name: "bench", Password: "bench-pw"}}})
	r := rand.New(rand.NewPCG(1, uint64(n)))
	d := &benchDrop{srv: srv, n: n}
	for i := 0; i < n; i++ {
		size := 2000 + r.IntN(30000)
		if i%200 == 199 {
			size = 2 << 20 // a few multi-MB messages
		}
		m := benchMessage(i, size, r)
		srv.Deliver("bench", m)
		d.bytes += int64(len(m))
	}
	// The maildrop is on disk, as on a real host: the store's syncs must
	// not pay for writing it out.
	syscall.Sync()
	return d
}

func benchSource(d *benchDrop) *pop3.Source {
	return pop3.NewSource(pop3.SourceConfig{Name: "bench", Address: d.srv.Addr(), TLS: "none"}, nil)
}

func BenchmarkRawRetrLoop(b *testing.B) {
	d := maildrop(b, envInt("BENCH_POP3_MESSAGES", 1000))
	ctx := context.Background()
	b.SetBytes(d.bytes)
	for b.Loop() {
		c, err := pop3.Dial(ctx, d.srv.Addr(), pop3.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Login(ctx, "bench", "bench-pw"); err != nil {
			b.Fatal(err)
		}
		list, err := c.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range list {
			body, err := c.Retr(ctx, m.Num)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, body)
			body.Close()
		}
		c.Quit(ctx)
	}
	b.ReportMetric(float64(d.n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkSyncFirst(b *testing.B) {
	d := maildrop(b, envInt("BENCH_POP3_MESSAGES", 1000))
	ctx := context.Background()
	src := benchSource(d)
	b.SetBytes(d.bytes)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		u, _ := br.User(ctx, "bench")
		b.StartTimer()
		res, err := br.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "bench", SourceUser: "bench", Password: "bench-pw"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}})
		if err != nil || res.Fetched != d.n {
			b.Fatalf("poll: %+v, %v", res, err)
		}
		b.StopTimer()
		br.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(d.n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkRawUIDL(b *testing.B) {
	d := maildrop(b, envInt("BENCH_POP3_IDLE_MESSAGES", 10000))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := pop3.Dial(ctx, d.srv.Addr(), pop3.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Login(ctx, "bench", "bench-pw"); err != nil {
			b.Fatal(err)
		}
		if _, err := c.UIDL(ctx); err != nil {
			b.Fatal(err)
		}
		c.Quit(ctx)
	}
}

func BenchmarkPollNoNewMail(b *testing.B) {
	d := maildrop(b, envInt("BENCH_POP3_IDLE_MESSAGES", 10000))
	ctx := context.Background()
	br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	u, _ := br.User(ctx, "bench")
	feed := bridge.Feed{Source: benchSource(d), Account: bridge.Account{User: "bench", SourceUser: "bench", Password: "bench-pw"}, Policy: bridge.DeletePolicy{Mode: bridge.DeleteKeep}}
	if res, err := br.Poll(ctx, u, feed); err != nil || res.Fetched != d.n {
		b.Fatalf("first poll: %+v, %v", res, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := br.Poll(ctx, u, feed)
		if err != nil || res.Fetched != 0 {
			b.Fatalf("poll: %+v, %v", res, err)
		}
	}
}
