package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/bridge/bridgetest"
)

// TestQuotaSentinels: what refuses an APPEND past the quota or a keyword
// past the cap is a typed error wrapping bridge.ErrOverQuota / ErrLimit,
// for the IMAP front end and (later) LMTP's 552 5.2.2; mail from a source
// is stored past the quota all the same (it would be lost otherwise).
func TestQuotaSentinels(t *testing.T) {
	ctx := context.Background()
	b, err := bridge.Open(ctx, bridge.Options{
		DataDir:               t.TempDir(),
		MaxKeywordsPerMailbox: 2,
		Quota:                 func(string) bridge.Quota { return bridge.Quota{Messages: 1} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	appendTo(t, u, "INBOX", 1, []string{"a", "b"}, time.Now())
	_, _, err = u.Append(ctx, "INBOX", bytes.NewReader(msg(2)), nil, time.Now())
	var qe *bridge.QuotaError
	if !errors.Is(err, bridge.ErrOverQuota) || !errors.As(err, &qe) || qe.Resource != "MESSAGE" || qe.Usage != 1 || qe.Limit != 1 {
		t.Fatalf("APPEND past the quota: %v (%+v)", err, qe)
	}
	src := bridgetest.NewSource("legacy")
	src.Deliver("alice", msg(3), time.Now())
	if _, err := b.Poll(ctx, u, bridge.Feed{Source: src, Account: bridge.Account{User: "alice"}}); err != nil {
		t.Fatalf("a poll past the quota: %v", err)
	}
	mb := mailbox(t, u, "INBOX")
	if n := len(mb.UIDs()); n != 2 {
		t.Fatalf("INBOX holds %d messages after the poll, want 2", n)
	}
	_, err = mb.Store(ctx, mb.UIDs(), bridge.FlagsAdd, []string{"c"}, nil)
	var le *bridge.LimitError
	if !errors.Is(err, bridge.ErrLimit) || !errors.As(err, &le) || le.Limit != 2 || le.Error() != "too many keywords in a mailbox (limit 2)" {
		t.Fatalf("a third keyword: %v", err)
	}
}
