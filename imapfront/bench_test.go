package imapfront_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fillInbox puts n messages in alice's INBOX quickly: 100 distinct ones by
// APPEND, then copies of them (one transaction per copy).
func fillInbox(b *testing.B, e *testEnv, n int) {
	b.Helper()
	u := e.user("alice")
	for i := 0; i < 100 && i < n; i++ {
		msg := simpleMsg(i)
		if i%4 == 0 {
			msg = strings.Replace(multipartMsg, "Message-ID: <mp-1@", fmt.Sprintf("Message-ID: <mp-%d@", i), 1)
		}
		if _, _, err := u.Append(e.ctx, "INBOX", strings.NewReader(msg), nil, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	mb, err := u.Mailbox(e.ctx, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	for {
		uids := mb.UIDs()
		if len(uids) >= n {
			break
		}
		if missing := n - len(uids); missing < len(uids) {
			uids = uids[:missing]
		}
		if _, _, _, err := mb.CopyTo(e.ctx, uids, mb); err != nil {
			b.Fatal(err)
		}
	}
	if got := len(mb.UIDs()); got != n {
		b.Fatalf("filled %d messages, want %d", got, n)
	}
}

func benchmarkFetchEnvelope(b *testing.B, opts ...envOption) {
	const n = 10000
	e := newEnv(b, opts...)
	fillInbox(b, e, n)
	c := e.raw()
	c.login("alice")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.ok("SELECT INBOX")
		got := c.ok("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)")
		if len(got) != n {
			b.Fatalf("%d FETCH responses, want %d", len(got), n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkFetchEnvelope: SELECT and UID FETCH 1:* of what a client's first
// sync asks for, on 10 000 messages, served from the ingest index.
func BenchmarkFetchEnvelope(b *testing.B) { benchmarkFetchEnvelope(b) }

// BenchmarkFetchEnvelopeWithoutIndex is the same with every message parsed
// at FETCH time, for comparison.
func BenchmarkFetchEnvelopeWithoutIndex(b *testing.B) { benchmarkFetchEnvelope(b, withoutIndex()) }

// BenchmarkSearchFrom: SEARCH FROM on 10 000 messages, which reads each
// message's header but not its body.
func BenchmarkSearchFrom(b *testing.B) {
	const n = 10000
	e := newEnv(b)
	fillInbox(b, e, n)
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.ok(`SEARCH FROM "example"`)
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkFetchHeaderFields: Thunderbird's folder open (UID, size, flags
// and its header-field list) on 10 000 messages, served from the header
// blocks the ingest index keeps.
func BenchmarkFetchHeaderFields(b *testing.B) {
	const n = 10000
	e := newEnv(b)
	fillInbox(b, e, n)
	c := e.raw()
	c.login("alice")
	c.ok("SELECT INBOX")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := c.ok("UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])")
		if len(got) != n {
			b.Fatalf("%d FETCH responses, want %d", len(got), n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
