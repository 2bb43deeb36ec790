package maildirexport_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/maildirexport"
)

// BenchmarkExportMaildir exports one user with 1,000 messages of about
// 4 KiB in INBOX (each file fsync'd, as the export does).
func BenchmarkExportMaildir(b *testing.B) {
	ctx := context.Background()
	br, err := bridge.Open(ctx, bridge.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	u, _ := br.User(ctx, "alice")
	const n = 1000
	for i := range n {
		msg := fmt.Sprintf("Subject: %d\r\n\r\n%s", i, strings.Repeat("line of text for the benchmark\r\n", 128))
		if _, _, err := u.Append(ctx, "INBOX", strings.NewReader(msg), []string{bridge.FlagSeen}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := maildirexport.Export(ctx, br, "alice", filepath.Join(b.TempDir(), fmt.Sprint(i)), maildirexport.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
