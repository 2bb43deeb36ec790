package pop3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

func startDovecot(t *testing.T, opts dovecottest.Options) *dovecottest.Server {
	t.Helper()
	if len(opts.Users) == 0 {
		opts.Users = []dovecottest.User{{Name: "alice", Password: "secret"}}
	}
	return dovecottest.Start(t, opts)
}

// headerOf is what TOP n 0 returns for a message: up to and including the
// blank line after the header.
func headerOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+4]
	}
	return msg
}

// Every fixture of the hard-case corpus comes back byte for byte, by RETR,
// by pipelined RETR and (its header) by TOP; LIST sizes match.
func TestDovecotCorpusByteExact(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{})
	corpus := dovecottest.Corpus()
	for _, f := range corpus {
		srv.Deliver("alice", f.Data)
	}
	c := dial(t, srv.Addr(), Options{})
	ctx := context.Background()
	caps, err := c.Capa(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has("PIPELINING") || !caps.Has("UIDL") || !caps.Has("TOP") {
		t.Fatalf("Dovecot's CAPA = %v", caps)
	}
	login(t, c)

	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(corpus) {
		t.Fatalf("LIST has %d messages, want %d", len(list), len(corpus))
	}
	count, total, err := c.Stat(ctx)
	if err != nil || count != len(corpus) {
		t.Fatalf("STAT = %d, %d, %v", count, total, err)
	}
	var sum int64
	for i, f := range corpus {
		want := dovecottest.ExpectedPOP3(f.Data)
		wantSize := int64(len(want))
		if !bytes.HasSuffix(f.Data, []byte("\n")) {
			wantSize -= 2 // the CRLF Dovecot adds is not counted
		}
		if list[i] != (MsgInfo{MsgNum(i + 1), wantSize}) {
			t.Errorf("%s: LIST entry %v, want {%d %d}", f.Name, list[i], i+1, wantSize)
		}
		sum += list[i].Size
	}
	if sum != total {
		t.Errorf("STAT size %d, sum of LIST %d", total, sum)
	}

	for i, f := range corpus {
		t.Run("retr/"+f.Name, func(t *testing.T) {
			got := bodyOf(t)(c.Retr(ctx, MsgNum(i+1)))
			if want := dovecottest.ExpectedPOP3(f.Data); got != string(want) {
				t.Fatalf("%s\nRETR returned %d bytes, want %d; first difference at byte %d",
					f.Why, len(got), len(want), firstDiff([]byte(got), want))
			}
		})
		t.Run("top/"+f.Name, func(t *testing.T) {
			got := bodyOf(t)(c.Top(ctx, MsgNum(i+1), 0))
			if want := headerOf(dovecottest.ExpectedPOP3(f.Data)); got != string(want) {
				t.Fatalf("TOP n 0 = %.200q\nwant      %.200q", got, want)
			}
		})
	}

	t.Run("retrmany", func(t *testing.T) {
		nums := make([]MsgNum, len(corpus))
		for i := range nums {
			nums[i] = MsgNum(len(corpus) - i) // any order
		}
		seen := 0
		err := c.RetrMany(ctx, nums, func(n MsgNum, r io.Reader) error {
			got, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			f := corpus[n-1]
			if want := dovecottest.ExpectedPOP3(f.Data); !bytes.Equal(got, want) {
				t.Errorf("%s by RetrMany: %d bytes, want %d; first difference at %d", f.Name, len(got), len(want), firstDiff(got, want))
			}
			seen++
			return nil
		})
		if err != nil || seen != len(corpus) {
			t.Fatalf("RetrMany = %v after %d of %d", err, seen, len(corpus))
		}
	})

	uidls, err := c.UIDL(ctx)
	if err != nil || len(uidls) != len(corpus) {
		t.Fatalf("UIDL = %d entries, %v", len(uidls), err)
	}
	distinct := map[UIDL]bool{}
	for _, u := range uidls {
		distinct[u.UIDL] = true
	}
	if len(distinct) != len(corpus) {
		t.Fatalf("UIDL has %d distinct ids for %d messages", len(distinct), len(corpus))
	}
	one, err := c.UIDLOne(ctx, 3)
	if err != nil || one != uidls[2].UIDL {
		t.Fatalf("UIDL 3 = %q, %v; listing says %q", one, err, uidls[2].UIDL)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestDovecotTLSAndLogins(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{TLS: true, APOP: true, NoSessionLock: true})
	srv.Deliver("alice", []byte("Subject: tls\n\nover tls\n"))
	ctx := context.Background()

	t.Run("stls then user/pass", func(t *testing.T) {
		c := dial(t, srv.Addr(), Options{})
		caps, err := c.Capa(ctx)
		if err != nil || !caps.Has("STLS") {
			t.Fatalf("CAPA = %v, %v", caps, err)
		}
		if err := c.StartTLS(ctx, srv.TLSConfig()); err != nil {
			t.Fatal(err)
		}
		if c.TLS() == nil || c.TLS().Version < tls.VersionTLS12 || c.Caps() != nil {
			t.Fatalf("after STLS: TLS %v, caps %v", c.TLS(), c.Caps())
		}
		caps, err = c.Capa(ctx)
		if err != nil || caps.Has("STLS") {
			t.Fatalf("CAPA after STLS = %v, %v (STLS must be gone)", caps, err)
		}
		if err := c.StartTLS(ctx, nil); err == nil || err.Error() != "pop3: stls: TLS is already active" {
			t.Fatalf("second StartTLS = %v", err)
		}
		login(t, c)
		if got := bodyOf(t)(c.Retr(ctx, 1)); got != "Subject: tls\r\n\r\nover tls\r\n" {
			t.Fatalf("RETR over STLS = %q", got)
		}
		if err := c.Quit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("implicit tls then auth plain", func(t *testing.T) {
		c := dial(t, srv.TLSAddr(), Options{ImplicitTLS: true, TLSConfig: &tls.Config{RootCAs: srv.CertPool()}})
		if c.TLS() == nil {
			t.Fatal("no TLS on the pop3s port")
		}
		if err := c.AuthPlain(ctx, "", "alice", "secret"); err != nil {
			t.Fatal(err)
		}
		if n, _, err := c.Stat(ctx); err != nil || n != 1 {
			t.Fatalf("STAT = %d, %v", n, err)
		}
		c.Quit(ctx)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		_, err := Dial(ctx, srv.TLSAddr(), Options{ImplicitTLS: true, TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}})
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &uae) || !strings.HasPrefix(err.Error(), "pop3: tls handshake: ") {
			t.Fatalf("Dial with an empty root pool = %v", err)
		}
	})
	t.Run("apop", func(t *testing.T) {
		c := dial(t, srv.Addr(), Options{})
		if !strings.HasPrefix(c.APOPTimestamp(), "<") {
			t.Fatalf("greeting %q has no APOP timestamp", c.Greeting())
		}
		if err := c.APOP(ctx, "alice", "secret"); err != nil {
			t.Fatal(err)
		}
		c.Quit(ctx)

		c = dial(t, srv.Addr(), Options{})
		err := c.APOP(ctx, "alice", "wrong")
		if ErrorCode(err) != CodeAuth || err.Error() != "pop3: apop: server replied -ERR [AUTH] Authentication failed." {
			t.Fatalf("APOP with a wrong password = %v", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		c := dial(t, srv.Addr(), Options{})
		err := c.Login(ctx, "alice", "wrong")
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeAuth || pe.Command != "PASS" || pe.Temporary() ||
			err.Error() != "pop3: pass: server replied -ERR [AUTH] Authentication failed." {
			t.Fatalf("Login = %v", err)
		}
	})
}

// DELE takes effect at QUIT only: not after Close (no QUIT), not after RSET.
func TestDovecotDeleteSemantics(t *testing.T) {
	t.Parallel()
	srv := startDovecot(t, dovecottest.Options{})
	msgs := []string{"Subject: 1\n\none\n", "Subject: 2\n\ntwo\n", "Subject: 3\n\nthree\n"}
	for _, m := range msgs {
		srv.Deliver("alice", []byte(m))
	}
	ctx := context.Background()
	held := func() string {
		var s []string
		for _, m := range srv.Messages("alice") {
			s = append(s, strings.TrimPrefix(strings.SplitN(string(m.Data), "\n", 2)[0], "Subject: "))
		}
		return strings.Join(s, ",")
	}
	session := func() *Client {
		c := dial(t, srv.Addr(), Options{})
		if _, err := c.Capa(ctx); err != nil {
			t.Fatal(err)
		}
		login(t, c)
		return c
	}

	c := session()
	if err := c.Dele(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Retr(ctx, 1); ErrorCode(err) != "" || err == nil || err.Error() != "pop3: retr 1: server replied -ERR Message is deleted." {
		t.Fatalf("RETR of a deleted message = %v", err)
	}
	c.Close()
	if got := held(); got != "1,2,3" {
		t.Fatalf("after DELE and Close without QUIT the maildrop holds %s", got)
	}

	c = session()
	if err := c.Dele(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Rset(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := held(); got != "1,2,3" {
		t.Fatalf("after DELE, RSET, QUIT the maildrop holds %s", got)
	}

	c = session()
	done, err := c.DeleMany(ctx, []MsgNum{1, 3})
	if err != nil || fmt.Sprint(done) != "[1 3]" {
		t.Fatalf("DeleMany = %v, %v", done, err)
	}
	if got := held(); got != "1,2,3" {
		t.Fatalf("before QUIT the maildrop holds %s", got)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := held(); got != "2" {
		t.Fatalf("after DELE 1, DELE 3, QUIT the maildrop holds %s", got)
	}
}

// A 50 MB message streams through RETR without the heap growing anywhere
// near its size.
func TestDovecotLargeMessageStreams(t *testing.T) {
	testtool.Long(t, "50 MB message")
	srv := startDovecot(t, dovecottest.Options{})
	const size = 50 << 20
	line := []byte(strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-+/0123456", 1) + "\n")
	msg := make([]byte, 0, size+len(line))
	msg = append(msg, "Subject: big\n\n"...)
	for i := 0; len(msg) < size; i++ {
		if i%1000 == 0 {
			msg = append(msg, ".dot line\n"...) // stuffed on the wire
		}
		msg = append(msg, line...)
	}
	srv.Deliver("alice", msg)
	want := sha256.Sum256(dovecottest.ExpectedPOP3(msg))
	wantLen := int64(len(dovecottest.ExpectedPOP3(msg)))
	msg = nil

	c := dial(t, srv.Addr(), Options{})
	login(t, c)
	ctx := context.Background()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, b, make([]byte, 32<<10))
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)

	if n != wantLen || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("RETR of the 50 MB message: %d bytes, want %d (or content differs)", n, wantLen)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("streaming %d bytes allocated %d bytes in total", n, allocated)
	if allocated > 4<<20 {
		t.Fatalf("streaming a %d-byte message allocated %d bytes: it is being buffered", n, allocated)
	}
}
