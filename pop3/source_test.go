package pop3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
)

var alice = bridge.Account{User: "alice@bridge", SourceUser: "alice", Password: "secret"}

// syncBuffer is a log sink safe for the concurrent writes of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestSource(cfg SourceConfig) (*Source, *syncBuffer) {
	if cfg.Name == "" {
		cfg.Name = "legacy"
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSNone
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	logs := &syncBuffer{}
	return NewSource(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), logs
}

func openSession(t *testing.T, src *Source, acct bridge.Account) *Session {
	t.Helper()
	ss, err := src.Open(context.Background(), acct)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(ss.Abort)
	return ss.(*Session)
}

func listIDs(t *testing.T, s *Session) []bridge.SourceID {
	t.Helper()
	msgs, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	ids := make([]bridge.SourceID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func fetchString(t *testing.T, s *Session, id bridge.SourceID) string {
	t.Helper()
	rc, err := s.Fetch(context.Background(), id)
	if err != nil {
		t.Fatalf("Fetch(%q): %v", id, err)
	}
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Fetch(%q): reading: %v", id, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Fetch(%q): Close: %v", id, err)
	}
	return string(data)
}

func TestSourceListFetchByteExact(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{})
	corpus := dovecottest.Corpus()
	for _, f := range corpus {
		srv.Deliver("alice", f.Data)
	}
	src, _ := newTestSource(SourceConfig{Address: srv.Addr()})
	if src.Name() != "legacy" {
		t.Fatalf("Name = %q", src.Name())
	}
	s := openSession(t, src, alice)
	ctx := context.Background()
	msgs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(corpus) {
		t.Fatalf("List: %d messages, want %d", len(msgs), len(corpus))
	}
	seen := map[bridge.SourceID]bool{}
	for i, m := range msgs {
		want := dovecottest.ExpectedPOP3(corpus[i].Data)
		if seen[m.ID] || m.ID == "" || strings.HasPrefix(string(m.ID), "fp:") || strings.Contains(string(m.ID), "#") {
			t.Fatalf("id %q of %s: want a plain, distinct UIDL", m.ID, corpus[i].Name)
		}
		seen[m.ID] = true
		if d := int64(len(want)) - m.Size; d != 0 && d != 2 || !m.Date.IsZero() {
			t.Errorf("%s: size %d (message is %d bytes), date %v", corpus[i].Name, m.Size, len(want), m.Date)
		}
		if got := fetchString(t, s, m.ID); got != string(want) {
			t.Errorf("%s: Fetch returned %d bytes, want %d; first difference at %d", corpus[i].Name, len(got), len(want), firstDiff([]byte(got), want))
		}
	}

	// FetchMany pipelines the same bytes.
	ids := make([]bridge.SourceID, len(msgs))
	byID := map[bridge.SourceID][]byte{}
	for i, m := range msgs {
		ids[i] = m.ID
		byID[m.ID] = dovecottest.ExpectedPOP3(corpus[i].Data)
	}
	var mf bridge.SourceBatchFetcher = s
	n := 0
	err = mf.FetchMany(ctx, ids, func(id bridge.SourceID, r io.Reader) error {
		got, err := io.ReadAll(r)
		if !bytes.Equal(got, byID[id]) {
			t.Errorf("FetchMany %q: %d bytes, want %d", id, len(got), len(byID[id]))
		}
		n++
		return err
	})
	if err != nil || n != len(ids) {
		t.Fatalf("FetchMany = %v after %d of %d", err, n, len(ids))
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A second session lists the same ids.
	s2 := openSession(t, src, alice)
	if got := listIDs(t, s2); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("ids changed between sessions:\n%q\n%q", ids, got)
	}
	s2.Close(ctx)
}

func TestSourceDeletesCommittedAtCloseOnly(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{})
	for _, m := range []string{"Subject: 1\n\none\n", "Subject: 2\n\ntwo\n", "Subject: 3\n\nthree\n"} {
		srv.Deliver("alice", []byte(m))
	}
	src, logs := newTestSource(SourceConfig{Address: srv.Addr()})
	ctx := context.Background()

	s := openSession(t, src, alice)
	ids := listIDs(t, s)
	if err := s.Delete(ctx, []bridge.SourceID{ids[0], ids[2]}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, []bridge.SourceID{ids[0]}); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if n := len(srv.Messages("alice")); n != 3 {
		t.Fatalf("before Close the maildrop holds %d messages, want 3", n)
	}
	if _, err := s.Fetch(ctx, ids[0]); !errors.Is(err, bridge.ErrSourceGone) ||
		err.Error() != fmt.Sprintf("pop3 source \"legacy\": fetch %q: deleted in this session: message no longer at the source", ids[0]) {
		t.Fatalf("Fetch of a deleted message = %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	held := srv.Messages("alice")
	if len(held) != 1 || string(held[0].Data) != "Subject: 2\n\ntwo\n" {
		t.Fatalf("after Close the maildrop holds %q", held)
	}
	if !strings.Contains(logs.String(), "pop3 session closed") || !strings.Contains(logs.String(), "deleted=2") {
		t.Errorf("logs lack the close line:\n%s", logs)
	}

	s = openSession(t, src, alice)
	if got := listIDs(t, s); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("next session lists %q, want [%q]", got, ids[1])
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSourceAbortDeletesNothing(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{})
	big := "Subject: big\n\n" + strings.Repeat("a line of the big message\n", 100000)
	for _, m := range []string{"Subject: 1\n\none\n", big} {
		srv.Deliver("alice", []byte(m))
	}
	src, _ := newTestSource(SourceConfig{Address: srv.Addr()})
	ctx := context.Background()

	for _, mid := range []bool{false, true} {
		s := openSession(t, src, alice)
		ids := listIDs(t, s)
		if !mid {
			if err := s.Delete(ctx, ids); err != nil {
				t.Fatal(err)
			}
		} else {
			// Abort while a message is being read: no RSET is possible
			// then, the connection is simply dropped.
			if err := s.Delete(ctx, ids[:1]); err != nil {
				t.Fatal(err)
			}
			rc, err := s.Fetch(ctx, ids[1])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rc.Read(make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
		}
		s.Abort()
		s.Abort() // idempotent
		if n := len(srv.Messages("alice")); n != 2 {
			t.Fatalf("after Abort (mid-read %v) the maildrop holds %d messages, want 2", mid, n)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("Close after Abort = %v, want nil", err)
		}
	}
	s := openSession(t, src, alice)
	if got := listIDs(t, s); len(got) != 2 {
		t.Fatalf("after the aborted sessions: %q", got)
	}
	s.Close(ctx)
}

// Dovecot locks a maildrop for a POP3 session (pop3_lock_session): a second
// login waits ten seconds for the lock, then answers
// "-ERR [IN-USE] Mailbox is locked by another POP3 session."
func TestSourceInUse(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{})
	src, _ := newTestSource(SourceConfig{Address: srv.Addr()})
	first := openSession(t, src, alice)
	_, err := src.Open(context.Background(), alice)
	if !errors.Is(err, bridge.ErrSourceBusy) || errors.Is(err, bridge.ErrSourceAuth) || ErrorCode(err) != CodeInUse {
		t.Fatalf("second Open = %v; want ErrSourceBusy with code IN-USE", err)
	}
	const want = `pop3 source "legacy": login as "alice" (USER/PASS): source busy: pop3: pass: server replied -ERR [IN-USE] Mailbox is locked by another POP3 session.`
	if err.Error() != want {
		t.Fatalf("second Open error:\n%v\nwant\n%s", err, want)
	}
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := openSession(t, src, alice)
	again.Close(context.Background())
}

func TestSourceWrongPassword(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{})
	src, logs := newTestSource(SourceConfig{Address: srv.Addr()})
	acct := alice
	acct.Password = "not-the-Password-42"
	_, err := src.Open(context.Background(), acct)
	const want = `pop3 source "legacy": login as "alice" (USER/PASS): source refused the credentials: pop3: pass: server replied -ERR [AUTH] Authentication failed.`
	if !errors.Is(err, bridge.ErrSourceAuth) || errors.Is(err, bridge.ErrSourceBusy) || err.Error() != want {
		t.Fatalf("Open = %v\nwant %s", err, want)
	}
	if strings.Contains(logs.String(), acct.Password) {
		t.Fatalf("the logs carry the password:\n%s", logs)
	}
	// an unknown user is refused the same way
	_, err = src.Open(context.Background(), bridge.Account{User: "x", SourceUser: "nobody-here", Password: "pw"})
	if !errors.Is(err, bridge.ErrSourceAuth) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestSourceTLSModes(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{TLS: true, APOP: true, NoSessionLock: true})
	srv.Deliver("alice", []byte("Subject: t\n\ntls\n"))
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		cfg      SourceConfig
		wantAuth string
		wantTLS  bool
	}{
		{"starttls", SourceConfig{Address: srv.Addr(), TLS: TLSStartTLS, RootCAs: srv.CertPool()}, "AUTH PLAIN", true},
		{"implicit", SourceConfig{Address: srv.TLSAddr(), TLS: TLSImplicit, RootCAs: srv.CertPool()}, "AUTH PLAIN", true},
		{"implicit skip verify", SourceConfig{Address: srv.TLSAddr(), TLS: TLSImplicit, TLSSkipVerify: true}, "AUTH PLAIN", true},
		{"none", SourceConfig{Address: srv.Addr(), TLS: TLSNone}, "USER/PASS", false},
		{"starttls user", SourceConfig{Address: srv.Addr(), TLS: TLSStartTLS, RootCAs: srv.CertPool(), Auth: AuthUser}, "USER/PASS", true},
		{"none plain", SourceConfig{Address: srv.Addr(), TLS: TLSNone, Auth: AuthPlain}, "AUTH PLAIN", false},
		{"apop", SourceConfig{Address: srv.Addr(), TLS: TLSNone, Auth: AuthAPOP}, "APOP", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, logs := newTestSource(tc.cfg)
			s := openSession(t, src, alice)
			if got := fetchString(t, s, listIDs(t, s)[0]); got != "Subject: t\r\n\r\ntls\r\n" {
				t.Fatalf("Fetch = %q", got)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			auth := tc.wantAuth
			if strings.Contains(auth, " ") {
				auth = strconv.Quote(auth)
			}
			want := fmt.Sprintf("pop3 session open\" source=legacy user=alice@bridge remote=%s tls=%v auth=%s", tc.cfg.Address, tc.wantTLS, auth)
			if !strings.Contains(logs.String(), want) {
				t.Fatalf("logs lack %s:\n%s", want, logs)
			}
			if strings.Contains(logs.String(), alice.Password) {
				t.Fatalf("the logs carry the password:\n%s", logs)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		for _, cfg := range []SourceConfig{
			{Address: srv.TLSAddr(), TLS: TLSImplicit},
			{Address: srv.Addr(), TLS: TLSStartTLS},
		} {
			src, _ := newTestSource(cfg)
			_, err := src.Open(ctx, alice)
			if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Fatalf("%s: Open = %v", cfg.TLS, err)
			}
		}
	})
	t.Run("apop without timestamp", func(t *testing.T) {
		plain := startDovecot(t, dovecottest.Options{})
		src, _ := newTestSource(SourceConfig{Address: plain.Addr(), Auth: AuthAPOP})
		_, err := src.Open(ctx, alice)
		if !errors.Is(err, ErrNotSupported) || errors.Is(err, bridge.ErrSourceAuth) ||
			err.Error() != `pop3 source "legacy": login as "alice" (APOP): pop3: apop: not offered by the server: the greeting has no APOP timestamp` {
			t.Fatalf("Open = %v", err)
		}
	})
}

// tls=starttls against a server without STLS fails before any credentials
// are sent: never a fall-back to plain text.
func TestSourceStartTLSFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     faultConfig
		wantErr string
	}{
		{"no STLS in CAPA", faultConfig{},
			`pop3 source "legacy": tls is "starttls" but the server does not offer STLS: not offered by the server; refusing to log in without TLS`},
		{"no CAPA at all", faultConfig{noCapa: true},
			`pop3 source "legacy": tls is "starttls" but the server does not offer STLS: not offered by the server; refusing to log in without TLS`},
		{"STLS offered, then refused", faultConfig{caps: append([]string{"STLS"}, defaultCaps...)},
			`pop3 source "legacy": pop3: stls: server replied -ERR Unknown command: STLS`},
		{"STLS offered, handshake garbage", faultConfig{caps: append([]string{"STLS"}, defaultCaps...),
			hook: func(c *faultConn, verb, arg string) bool {
				if verb == "STLS" {
					c.send("+OK Begin TLS negotiation now.")
					c.r.ReadByte() // let the ClientHello start
					c.sendRaw("-ERR this is not TLS\r\n")
					c.Close()
					return true
				}
				return false
			}},
			`pop3 source "legacy": pop3: stls: tls handshake: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFaultServer(t, tc.cfg)
			src, _ := newTestSource(SourceConfig{Address: fs.Addr(), TLS: TLSStartTLS})
			_, err := src.Open(context.Background(), alice)
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("Open = %v\nwant %s", err, tc.wantErr)
			}
			fs.close()
			for _, c := range fs.Commands() {
				if strings.HasPrefix(c, "USER") || strings.HasPrefix(c, "PASS") || strings.HasPrefix(c, "AUTH") || strings.Contains(c, alice.Password) {
					t.Fatalf("credentials sent without TLS: %q", fs.Commands())
				}
			}
		})
	}
}

// Dovecot with pop3_uidl_format = %08Xv gives every message the same UIDL:
// the ids stay distinct and stable.
func TestSourceDuplicateUIDLs(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{UIDLFormat: "%08Xv"})
	msgs := []string{"Subject: 1\n\none\n", "Subject: 2\n\ntwo\n", "Subject: 3\n\nthree\n"}
	for _, m := range msgs {
		srv.Deliver("alice", []byte(m))
	}
	src, logs := newTestSource(SourceConfig{Address: srv.Addr()})
	ctx := context.Background()

	s := openSession(t, src, alice)
	uidls, err := s.c.UIDL(ctx)
	if err != nil || len(uidls) != 3 || uidls[0].UIDL != uidls[1].UIDL || uidls[1].UIDL != uidls[2].UIDL {
		t.Fatalf("the server was meant to repeat one UIDL: %v, %v", uidls, err)
	}
	u := string(uidls[0].UIDL)
	ids := listIDs(t, s)
	fp := func(m string) string {
		crlf := dovecottest.ExpectedPOP3([]byte(m))
		h := sha256.Sum256([]byte(fmt.Sprintf("size %d\n%s", len(crlf), headerOf(crlf))))
		return hex.EncodeToString(h[:])[:16]
	}
	want := []bridge.SourceID{bridge.SourceID(u), bridge.SourceID(u + "#" + fp(msgs[1])), bridge.SourceID(u + "#" + fp(msgs[2]))}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("ids %q\nwant %q", ids, want)
	}
	for i, id := range ids {
		if got := fetchString(t, s, id); got != string(dovecottest.ExpectedPOP3([]byte(msgs[i]))) {
			t.Fatalf("Fetch(%q) = %q, want message %d", id, got, i+1)
		}
	}
	if !strings.Contains(logs.String(), "same UIDL") {
		t.Errorf("no warning about duplicate UIDLs:\n%s", logs)
	}
	// Deleting message 2 leaves message 3 with its id.
	if err := s.Delete(ctx, ids[1:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = openSession(t, src, alice)
	if got := listIDs(t, s); fmt.Sprint(got) != fmt.Sprint([]bridge.SourceID{ids[0], ids[2]}) {
		t.Fatalf("after deleting message 2: %q, want %q", got, []bridge.SourceID{ids[0], ids[2]})
	}
	s.Close(ctx)
}

func TestSourceWithoutUIDL(t *testing.T) {
	msgs := []string{
		"Subject: same\r\n\r\nbody a\r\n",
		"Subject: other\r\n\r\nbody b\r\n",
		"Subject: same\r\n\r\nbody c\r\n", // same header and size as the first
	}
	fs := newFaultServer(t, faultConfig{msgs: msgs, noUIDL: true})
	src, logs := newTestSource(SourceConfig{Address: fs.Addr()})
	ctx := context.Background()
	fp := func(m string) string {
		hdr := m[:strings.Index(m, "\r\n\r\n")+4]
		h := sha256.Sum256([]byte(fmt.Sprintf("size %d\n%s", len(m), hdr)))
		return "fp:" + hex.EncodeToString(h[:])
	}
	want := []bridge.SourceID{bridge.SourceID(fp(msgs[0])), bridge.SourceID(fp(msgs[1])), bridge.SourceID(fp(msgs[0]) + "-2")}
	for session := 0; session < 2; session++ {
		s := openSession(t, src, alice)
		ids := listIDs(t, s)
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Fatalf("session %d: ids %q\nwant %q", session, ids, want)
		}
		for i, id := range ids {
			if got := fetchString(t, s, id); got != msgs[i] {
				t.Fatalf("Fetch(%q) = %q, want %q", id, got, msgs[i])
			}
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(logs.String(), "no UIDL") {
		t.Errorf("no log about the UIDL fall-back:\n%s", logs)
	}
	if !fs.Sent("TOP 1 0") {
		t.Fatalf("no TOP sent: %q", fs.Commands())
	}

	t.Run("neither UIDL nor TOP", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{msgs: msgs, noUIDL: true, caps: []string{"USER"},
			hook: func(c *faultConn, verb, arg string) bool {
				if verb == "TOP" {
					c.send("-ERR Unknown command: TOP")
					return true
				}
				return false
			}})
		src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
		s := openSession(t, src, alice)
		_, err := s.List(ctx)
		if err == nil || err.Error() != `pop3 source "legacy": list: messages need fingerprint ids (no usable UIDL) but the server refuses TOP: pop3: top 1 0: server replied -ERR Unknown command: TOP` {
			t.Fatalf("List = %v", err)
		}
	})
}

func TestSourceQuitErrorMeansNotCommitted(t *testing.T) {
	fs := newFaultServer(t, faultConfig{msgs: []string{"a\r\n", "b\r\n"}, quitErr: "[SYS/TEMP] could not expunge"})
	src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
	s := openSession(t, src, alice)
	ctx := context.Background()
	if err := s.Delete(ctx, listIDs(t, s)); err != nil {
		t.Fatal(err)
	}
	err := s.Close(ctx)
	const want = `pop3 source "legacy": 2 deletions were not committed: pop3: quit: server replied -ERR [SYS/TEMP] could not expunge`
	if err == nil || err.Error() != want || ErrorCode(err) != CodeSysTemp {
		t.Fatalf("Close = %v\nwant %s", err, want)
	}
}

func TestSourceUnknownIDs(t *testing.T) {
	fs := newFaultServer(t, faultConfig{msgs: []string{"Subject: a\r\n\r\na\r\n"}})
	src, logs := newTestSource(SourceConfig{Address: fs.Addr()})
	s := openSession(t, src, alice)
	ctx := context.Background()
	// Fetch before List lists first.
	if got := fetchString(t, s, "uid-1"); got != "Subject: a\r\n\r\na\r\n" {
		t.Fatalf("Fetch = %q", got)
	}
	if _, err := s.Fetch(ctx, "no-such-id"); !errors.Is(err, bridge.ErrSourceGone) ||
		err.Error() != `pop3 source "legacy": fetch "no-such-id": message no longer at the source` {
		t.Fatalf("Fetch = %v", err)
	}
	err := s.FetchMany(ctx, []bridge.SourceID{"uid-1", "gone"}, func(bridge.SourceID, io.Reader) error {
		t.Fatal("fn called although an id is unknown")
		return nil
	})
	if !errors.Is(err, bridge.ErrSourceGone) {
		t.Fatalf("FetchMany = %v", err)
	}
	// Deleting what is not there any more is what was asked for.
	if err := s.Delete(ctx, []bridge.SourceID{"gone-1", "uid-1", "gone-2"}); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if !strings.Contains(logs.String(), "ids not at the source any more, skipped\" source=legacy user=alice@bridge remote="+fs.Addr()+" count=2") {
		t.Fatalf("no log about the skipped ids:\n%s", logs)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	fs.close()
	if got := fmt.Sprint(fs.Committed()); got != "[[1]]" {
		t.Fatalf("committed %s: the known id was not deleted", got)
	}
}

func TestSourceFetchManyErrors(t *testing.T) {
	fs := newFaultServer(t, faultConfig{msgs: testMsgs(4)})
	src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
	s := openSession(t, src, alice)
	ctx := context.Background()
	ids := listIDs(t, s)
	stop := errors.New("store full")
	err := s.FetchMany(ctx, ids, func(id bridge.SourceID, r io.Reader) error {
		if id == ids[1] {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("FetchMany = %v, want fn's error as it is", err)
	}
	if got := fetchString(t, s, ids[3]); got != testMsgs(4)[3] {
		t.Fatalf("Fetch after FetchMany = %.30q", got)
	}
}

// How refusals at login map onto the bridge's errors.
func TestSourceLoginErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		reply    string
		greeting string
		busy     bool
		auth     bool
	}{
		{reply: "-ERR [IN-USE] Mailbox is locked by another POP3 session.", busy: true},
		{reply: "-ERR [LOGIN-DELAY] wait 15 minutes", busy: true},
		{reply: "-ERR [AUTH] Authentication failed.", auth: true},
		{reply: "-ERR invalid password", auth: true},
		{reply: "-ERR maildrop already locked", busy: true},
		{reply: "-ERR Unable to lock maildrop: in use", busy: true},
		{reply: "-ERR [SYS/TEMP] Couldn't sync mailbox."},
		{reply: "-ERR [SYS/PERM] mailbox corrupt"},
		{reply: "-ERR [UNKNOWN-CODE] strange", auth: true},
		{greeting: "-ERR [IN-USE] too busy", busy: true},
		{greeting: "-ERR [SYS/TEMP] too many connections"},
		{greeting: "-ERR go away"},
	} {
		name := tc.reply + tc.greeting
		t.Run(name, func(t *testing.T) {
			cfg := faultConfig{greeting: tc.greeting, hook: func(c *faultConn, verb, arg string) bool {
				if verb == "PASS" {
					c.send(tc.reply)
					return true
				}
				return false
			}}
			fs := newFaultServer(t, cfg)
			src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
			_, err := src.Open(context.Background(), alice)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, bridge.ErrSourceBusy) != tc.busy || errors.Is(err, bridge.ErrSourceAuth) != tc.auth {
				t.Fatalf("Open = %v: busy=%v auth=%v, want busy=%v auth=%v", err,
					errors.Is(err, bridge.ErrSourceBusy), errors.Is(err, bridge.ErrSourceAuth), tc.busy, tc.auth)
			}
			var pe *Error
			if !errors.As(err, &pe) || !strings.HasSuffix(err.Error(), pe.Error()) {
				t.Fatalf("Open = %v: the server's reply must be in the chain and the text", err)
			}
		})
	}
}

func TestSourceConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{Name: "x", Address: "127.0.0.1:1"}, `pop3 source "x": tls mode "" is not one of "implicit", "starttls", "none"`},
		{SourceConfig{Name: "x", Address: "127.0.0.1:1", TLS: "yes"}, `pop3 source "x": tls mode "yes" is not one of "implicit", "starttls", "none"`},
		{SourceConfig{Name: "x", Address: "127.0.0.1:1", TLS: TLSNone, Auth: "cram-md5"}, `pop3 source "x": auth method "cram-md5" is not one of "user", "plain", "apop", "xoauth2", "oauthbearer" or empty`},
	} {
		_, err := NewSource(tc.cfg, nil).Open(context.Background(), alice)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Open = %v\nwant %s", err, tc.want)
		}
	}
}

func TestSourceOpenCancelled(t *testing.T) {
	fs := newFaultServer(t, faultConfig{})
	src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := src.Open(ctx, alice)
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), `pop3 source "legacy": connect: pop3: dial `) {
		t.Fatalf("Open = %v", err)
	}
}

func TestSourceCloseCommitState(t *testing.T) {
	ctx := context.Background()
	t.Run("session broke before QUIT: not committed", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{msgs: []string{"a\r\n", "b\r\n"}, hook: func(c *faultConn, verb, arg string) bool {
			return verb == "RETR" // and never answer
		}})
		src, _ := newTestSource(SourceConfig{Address: fs.Addr(), Timeout: 100 * time.Millisecond})
		s := openSession(t, src, alice)
		ids := listIDs(t, s)
		if err := s.Delete(ctx, ids[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Fetch(ctx, ids[1]); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Fetch = %v, want a timeout", err)
		}
		err := s.Close(ctx)
		if !errors.Is(err, ErrClosed) || !strings.HasPrefix(err.Error(), `pop3 source "legacy": 1 deletions were not committed: pop3: quit: connection closed (`) {
			t.Fatalf("Close = %v", err)
		}
		fs.close()
		if fs.Sent("QUIT") {
			t.Fatal("QUIT sent on a broken session")
		}
	})
	t.Run("no reply to QUIT: unknown", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{msgs: []string{"a\r\n"}, hook: func(c *faultConn, verb, arg string) bool {
			if verb == "QUIT" {
				c.Close()
				return true
			}
			return false
		}})
		src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
		s := openSession(t, src, alice)
		if err := s.Delete(ctx, listIDs(t, s)); err != nil {
			t.Fatal(err)
		}
		err := s.Close(ctx)
		if err == nil || !strings.HasPrefix(err.Error(), `pop3 source "legacy": it is unknown whether 1 deletions were committed: pop3: quit: `) {
			t.Fatalf("Close = %v", err)
		}
	})
}

func TestWithDefaultPort(t *testing.T) {
	for _, tc := range []struct{ addr, mode, want string }{
		{"pop.example.org", TLSNone, "pop.example.org:110"},
		{"pop.example.org", TLSStartTLS, "pop.example.org:110"},
		{"pop.example.org", TLSImplicit, "pop.example.org:995"},
		{"pop.example.org:1110", TLSImplicit, "pop.example.org:1110"},
		{"127.0.0.1", TLSNone, "127.0.0.1:110"},
		{"[::1]", TLSImplicit, "[::1]:995"},
		{"[::1]:2110", TLSNone, "[::1]:2110"},
	} {
		if got := withDefaultPort(tc.addr, tc.mode); got != tc.want {
			t.Errorf("withDefaultPort(%q, %q) = %q, want %q", tc.addr, tc.mode, got, tc.want)
		}
	}
}

// TestSourceAdvertisedUIDLRefused: a server that advertises UIDL and then
// answers it -ERR is in trouble, not UIDL-less. Switching to fingerprint
// ids would give every known message a second id (and the bridge a second
// copy), so List fails and the next poll retries.
func TestSourceAdvertisedUIDLRefused(t *testing.T) {
	fs := newFaultServer(t, faultConfig{msgs: []string{"Subject: a\r\n\r\nbody\r\n"}, noUIDL: true, caps: defaultCaps})
	src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
	s := openSession(t, src, alice)
	defer s.Abort()
	ids, err := s.List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "list: pop3: uidl: server replied -ERR") {
		t.Fatalf("List = %v, %v; want the UIDL error, never fingerprint ids", ids, err)
	}
	if len(ids) != 0 {
		t.Fatalf("List returned ids %v with the error", ids)
	}
}

// TestSourceListIDs: ListIDs gives the ids List gives when UIDL alone
// settles them (real Dovecot), and declines (ok false, no error) when it
// does not — repeated UIDLs, or a server without UIDL — so that the
// bridge's poll uses List, whose answer is unchanged by the ListIDs before
// it in the same session.
func TestSourceListIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	check := func(t *testing.T, src *Source, wantOK bool) {
		t.Helper()
		s := openSession(t, src, alice)
		ids, ok, err := s.ListIDs(ctx)
		if err != nil || ok != wantOK {
			t.Fatalf("ListIDs: ok %v, err %v; want ok %v, no error", ok, err, wantOK)
		}
		after := listIDs(t, s) // List in the same session, reusing the UIDL listing
		s.Close(ctx)
		fresh := listIDs(t, openSession(t, src, alice))
		if fmt.Sprint(after) != fmt.Sprint(fresh) {
			t.Fatalf("List after ListIDs %q, List alone %q", after, fresh)
		}
		if wantOK && fmt.Sprint(ids) != fmt.Sprint(fresh) {
			t.Fatalf("ListIDs %q, List %q", ids, fresh)
		}
	}
	t.Run("dovecot", func(t *testing.T) {
		srv := startDovecot(t, dovecottest.Options{})
		for _, f := range dovecottest.Corpus() {
			srv.Deliver("alice", f.Data)
		}
		src, _ := newTestSource(SourceConfig{Address: srv.Addr()})
		check(t, src, true)
	})
	t.Run("empty maildrop", func(t *testing.T) {
		srv := startDovecot(t, dovecottest.Options{})
		src, _ := newTestSource(SourceConfig{Address: srv.Addr()})
		check(t, src, true)
	})
	t.Run("repeated UIDLs", func(t *testing.T) {
		srv := startDovecot(t, dovecottest.Options{UIDLFormat: "%08Xv"})
		for _, m := range []string{"Subject: 1\n\none\n", "Subject: 2\n\ntwo\n"} {
			srv.Deliver("alice", []byte(m))
		}
		src, _ := newTestSource(SourceConfig{Address: srv.Addr()})
		check(t, src, false)
	})
	t.Run("no UIDL", func(t *testing.T) {
		fs := newFaultServer(t, faultConfig{msgs: []string{"Subject: a\r\n\r\nbody\r\n"}, noUIDL: true})
		src, _ := newTestSource(SourceConfig{Address: fs.Addr()})
		check(t, src, false)
	})
}
