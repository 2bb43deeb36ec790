package bridge_test

import (
	"context"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
	"github.com/imapbridge/imapbridge/pop3"
)

// TestRetirementAgainstDovecot walks the pilot path against a real Dovecot
// POP3 with three users: a shadow source with after_sync leaves every
// maildrop untouched over many polls and reports would_delete; another
// POP3 client (Python's poplib) deleting at the host shows up as a foreign
// deletion and makes that user not ready, with the reason; switching one
// user to serve by Syncer.Update drains that user's maildrop and nobody
// else's.
func TestRetirementAgainstDovecot(t *testing.T) {
	python := testtool.Need(t, "python3", "python3")
	ctx := context.Background()
	names := []string{"alice", "bob", "carol"}
	var users []dovecottest.User
	for _, n := range names {
		users = append(users, dovecottest.User{Name: n, Password: n + "-pop"})
	}
	srv := dovecottest.Start(t, dovecottest.Options{Users: users})
	for _, n := range names {
		for i := 1; i <= 3; i++ {
			srv.Deliver(n, []byte(fmt.Sprintf("From: x@example.org\nSubject: %s %d\n\nbody %d\n", n, i, i)))
		}
	}
	held := func(user string) []string {
		var out []string
		for _, m := range srv.Messages(user) {
			out = append(out, m.Name)
		}
		return out
	}
	before := map[string][]string{}
	for _, n := range names {
		before[n] = held(n)
	}

	b := openStore(t, t.TempDir())
	defer b.Close()
	src := pop3.NewSource(pop3.SourceConfig{Name: "legacy", Address: srv.Addr(), TLS: "none", Timeout: 30 * time.Second}, nil)
	feed := func(user string, mode bridge.FeedMode) bridge.Feed {
		return bridge.Feed{Source: src, Account: bridge.Account{User: user, SourceUser: user, Password: user + "-pop"},
			Policy: bridge.DeletePolicy{Mode: bridge.DeleteAfterSync}, Mode: mode, PollInterval: time.Hour}
	}
	s := bridge.NewSyncer(b, bridge.SyncerOptions{})
	defer s.Stop(ctx)
	bu := map[string]*bridge.User{}
	for _, n := range names {
		u, err := b.User(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		bu[n] = u
		s.Add(u, []bridge.Feed{feed(n, bridge.ModeShadow)})
	}
	pollAll := func(step string) {
		t.Helper()
		for _, n := range names {
			if err := s.PollAndWait(ctx, n); err != nil {
				t.Fatalf("%s: poll %s: %v", step, n, err)
			}
		}
	}
	for i := range 4 {
		pollAll(fmt.Sprintf("shadow poll %d", i+1))
	}
	for _, n := range names {
		if got := held(n); !reflect.DeepEqual(got, before[n]) {
			t.Errorf("%s's maildrop after shadow polls: %v, want %v", n, got, before[n])
		}
		if got := len(mailbox(t, bu[n], "INBOX").UIDs()); got != 3 {
			t.Errorf("%s's INBOX holds %d, want 3", n, got)
		}
	}
	status := func() map[string]bridge.UserStatus {
		all, err := b.Status(ctx, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bridge.UserStatus{}
		for _, u := range all {
			out[u.Name] = u
		}
		return out
	}
	for _, n := range names {
		st := status()[n]
		src := sourceOf(t, st, "legacy")
		if src.WouldDelete != 3 || src.HostMessages != 3 || src.StoredMessages != 3 || src.Pending != 0 || src.Mode != bridge.ModeShadow || src.DeletePolicy != bridge.DeleteAfterSync {
			t.Errorf("%s's source after shadow polls: %+v", n, src)
		}
		if st.Ready || !reflect.DeepEqual(st.Reasons, []string{"never logged in over IMAP"}) {
			t.Errorf("%s: ready %v, reasons %q; want only the missing IMAP login", n, st.Ready, st.Reasons)
		}
		if err := bu[n].RecordLogin(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}

	// Carol's old POP3 client still takes mail off the host.
	script := `import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]))
p.user(sys.argv[3]); p.pass_(sys.argv[4]); p.dele(1); p.quit()`
	host, port, _ := strings.Cut(srv.Addr(), ":")
	if out, err := exec.Command(python, "-c", script, host, port, "carol", "carol-pop").CombinedOutput(); err != nil {
		t.Fatalf("poplib: %v\n%s", err, out)
	}
	pollAll("after carol's old client")
	st := status()
	if c := sourceOf(t, st["carol"], "legacy"); c.ForeignDeletions != 1 || c.LastForeignDeletion == nil || c.HostMessages != 2 {
		t.Errorf("carol's source after her old client deleted one: %+v", c)
	}
	if st["carol"].Ready || len(st["carol"].Reasons) != 1 || !strings.Contains(st["carol"].Reasons[0], "source legacy: another client took mail off the host at ") {
		t.Errorf("carol: ready %v, reasons %q", st["carol"].Ready, st["carol"].Reasons)
	}
	for _, n := range []string{"alice", "bob"} {
		if !st[n].Ready || sourceOf(t, st[n], "legacy").ForeignDeletions != 0 {
			t.Errorf("%s: ready %v, reasons %q, want ready", n, st[n].Ready, st[n].Reasons)
		}
	}

	// Alice moves on to serve: her maildrop drains, nobody else's.
	if err := s.Update(ctx, bu["alice"], []bridge.Feed{feed("alice", bridge.ModeServe)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	pollAll("after alice's switch")
	if got := held("alice"); len(got) != 0 {
		t.Errorf("alice's maildrop after the switch to serve: %v, want empty", got)
	}
	if got := held("bob"); !reflect.DeepEqual(got, before["bob"]) {
		t.Errorf("bob's maildrop: %v, want %v untouched", got, before["bob"])
	}
	if got := held("carol"); !reflect.DeepEqual(got, before["carol"][1:]) {
		t.Errorf("carol's maildrop: %v, want %v", got, before["carol"][1:])
	}
	st = status()
	if a := sourceOf(t, st["alice"], "legacy"); a.Mode != bridge.ModeServe || a.HostMessages != 0 || a.HostBytes != 0 || a.WouldDelete != 0 || a.ForeignDeletions != 0 || a.StoredMessages != 3 {
		t.Errorf("alice's source after the drain: %+v", a)
	}
	if got := len(mailbox(t, bu["alice"], "INBOX").UIDs()); got != 3 {
		t.Errorf("alice's INBOX holds %d after the drain, want 3", got)
	}
	h, err := b.HostHistory(ctx, "alice", "legacy")
	if err != nil || len(h) == 0 || h[len(h)-1].Messages != 0 || h[0].Messages != 3 {
		t.Errorf("alice's drain chart: %+v, %v; want from 3 to 0", h, err)
	}
}
