package pop3front_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/internal/testtool"
	"github.com/imapbridge/imapbridge/pop3"
	"github.com/imapbridge/imapbridge/pop3front"
)

const (
	hostPassword   = "host-pw-7"
	bridgePassword = "bridge-pw-9"
)

// poplibReport is what testdata/poplib_client.py prints.
type poplibReport struct {
	Welcome    string   `json:"welcome"`
	CapaBefore []string `json:"capa_before"`
	Stat       [2]int64 `json:"stat"`
	List       []int64  `json:"list"`
	UIDL       []string `json:"uidl"`
	Quit       string   `json:"quit"`
}

// runPoplib runs the poplib client against addr; cafile "-" means no STLS.
// It returns the report and the messages RETR gave (with "retr").
func runPoplib(t *testing.T, py, addr, user, pw, cafile string, actions ...string) (poplibReport, [][]byte) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out := t.TempDir()
	cmd := exec.Command(py, append([]string{"testdata/poplib_client.py", host, port, user, cafile, out}, actions...)...)
	cmd.Env = append(os.Environ(), "POP3_PASSWORD="+pw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("poplib against %s: %v\n%s", addr, err, stderr.String())
	}
	var rep poplibReport
	if err := json.Unmarshal(stdout, &rep); err != nil {
		t.Fatalf("poplib report %q: %v", stdout, err)
	}
	var msgs [][]byte
	for i := 1; ; i++ {
		data, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.eml", i)))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, data)
	}
	return rep, msgs
}

// fetchmailClient is one user's fetchmail: an rc file per server and one
// id file (fetchmail keys it by user and server address, not port).
type fetchmailClient struct {
	bin, home, ids string
	n              int
}

// run polls one server and returns the messages it delivered (to files,
// through an MDA), fetchmail's Received line removed.
func (f *fetchmailClient) run(t *testing.T, addr, pw, tlsOpts string) [][]byte {
	t.Helper()
	f.n++
	host, port, _ := net.SplitHostPort(addr)
	drop := filepath.Join(f.home, fmt.Sprintf("drop%d", f.n))
	if err := os.MkdirAll(drop, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(f.home, fmt.Sprintf("fetchmailrc%d", f.n))
	conf := fmt.Sprintf("set no syslog\npoll mailhost via %s port %s proto pop3 uidl auth password\n  user alice password %q keep no rewrite %s\n  mda \"/bin/sh -c 'cat > %s/m.$$'\"\n", host, port, pw, tlsOpts, drop)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(f.bin, "-f", rc, "-i", f.ids, "-v")
	cmd.Env = append(os.Environ(), "HOME="+f.home, "FETCHMAILHOME="+f.home)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	// Exit status 1 is "no mail".
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("fetchmail against %s: %v\n%s", addr, err, out)
	}
	if strings.Contains(string(out), pw) {
		t.Errorf("fetchmail's trace shows the password")
	}
	files, _ := filepath.Glob(filepath.Join(drop, "m.*"))
	var msgs [][]byte
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// fetchmail prepends "Received: from ..." and its continuation lines.
		if !bytes.HasPrefix(data, []byte("Received: from ")) {
			t.Fatalf("fetchmail delivered %.80q without its Received line", data)
		}
		i := bytes.IndexByte(data, '\n')
		for i+1 < len(data) && data[i+1] == '\t' {
			i += 1 + bytes.IndexByte(data[i+1:], '\n')
		}
		msgs = append(msgs, data[i+1:])
	}
	return msgs
}

// getmailClient is one user's getmail6: a getmail directory holding its
// oldmail files (one per server and port).
type getmailClient struct {
	bin, dir string
	n        int
}

// run polls one server and returns what it delivered in this run,
// through an external MDA writing files.
func (g *getmailClient) run(t *testing.T, retriever, addr, pw, extra string) [][]byte {
	t.Helper()
	g.n++
	host, port, _ := net.SplitHostPort(addr)
	drop := filepath.Join(g.dir, fmt.Sprintf("drop%d", g.n))
	if err := os.MkdirAll(drop, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(g.dir, fmt.Sprintf("getmailrc%d", g.n))
	conf := fmt.Sprintf("[retriever]\ntype = %s\nserver = %s\nport = %s\nusername = alice\npassword = %s\n%s\n"+
		"[destination]\ntype = MDA_external\npath = /bin/sh\narguments = (\"-c\", \"cat > %s/m.$$\")\nallow_root_commands = true\nunixfrom = false\n\n"+
		"[options]\nread_all = false\ndelete = false\ndelivered_to = false\nreceived = false\nverbose = 2\n",
		retriever, host, port, pw, extra, drop)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(g.bin, "--getmaildir", g.dir, "--rcfile", rc).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("error")) {
		t.Fatalf("getmail against %s: %v\n%s", addr, err, out)
	}
	if strings.Contains(string(out), pw) {
		t.Errorf("getmail's output shows the password")
	}
	files, _ := filepath.Glob(filepath.Join(drop, "m.*"))
	var msgs [][]byte
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// getmail writes a Return-Path of its own.
		msgs = append(msgs, bytes.TrimPrefix(data, []byte("Return-Path: <unknown>\n")))
	}
	return msgs
}

// lf is a message as a local delivery program stores it: LF line endings.
func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// sameSet reports whether got holds exactly want, in any order.
func sameSet(got, want [][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	key := func(l [][]byte) []string {
		var s []string
		for _, b := range l {
			s = append(s, string(b))
		}
		sort.Strings(s)
		return s
	}
	g, w := key(got), key(want)
	for i := range g {
		if g[i] != w[i] {
			return false
		}
	}
	return true
}

func writeCAFile(t *testing.T, pool *tls.Certificate) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pool.Leaf.Raw})
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealClientsAfterDovecot is the retirement step this package exists
// for. A user's POP3 clients — Python's poplib, fetchmail and getmail6 —
// first read a real Dovecot host, as they did for years; the bridge then
// fronts that host (pop3.Source and bridge.Syncer, in process); the same
// clients are pointed at the bridge's POP3 face (STLS for poplib and
// fetchmail, implicit TLS for getmail). The UIDL list matches the
// host's, RETR is byte for byte the host's, the clients download nothing
// again, only new mail, and a DELE shows up as an EXPUNGE in an IMAP
// session idling on the same bridge.
func TestRealClientsAfterDovecot(t *testing.T) {
	testtool.Long(t, "a real Dovecot and three real POP3 clients")
	py := testtool.Need(t, "python3", "python3")
	fm := testtool.Need(t, "fetchmail", "fetchmail")
	gm := testtool.Need(t, "getmail", "getmail6")
	ctx := context.Background()

	host := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: hostPassword}}})
	for _, f := range dovecottest.Corpus() {
		host.Deliver("alice", f.Data)
	}
	for i := 0; i < 3; i++ {
		host.Deliver("alice", []byte(fmt.Sprintf("From: x@example.org\nSubject: old %d\n\nold mail %d\n", i, i)))
	}

	// The clients as they were: reading the host.
	hostRep, hostMsgs := runPoplib(t, py, host.Addr(), "alice", hostPassword, "-", "retr")
	if len(hostMsgs) != len(dovecottest.Corpus())+3 || len(hostRep.UIDL) != len(hostMsgs) {
		t.Fatalf("the host gave %d messages, %d UIDLs", len(hostMsgs), len(hostRep.UIDL))
	}
	home := t.TempDir()
	fetch := &fetchmailClient{bin: fm, home: home, ids: filepath.Join(home, "fetchids")}
	// fetchmail itself rewrites some mail (it folds lines of 2 KiB and
	// more, and adds a blank line to a message that is all header), so
	// its deliveries are counted here; poplib compares bytes.
	if got := fetch.run(t, host.Addr(), hostPassword, "sslproto ''"); len(got) != len(hostMsgs) {
		t.Fatalf("fetchmail from the host: %d messages, want %d", len(got), len(hostMsgs))
	}
	gdir := t.TempDir()
	getm := &getmailClient{bin: gm, dir: gdir}
	if got := getm.run(t, "SimplePOP3Retriever", host.Addr(), hostPassword, ""); len(got) != len(hostMsgs) {
		t.Fatalf("getmail from the host: %d messages, want %d", len(got), len(hostMsgs))
	}

	// The bridge fronts the host.
	b, err := bridge.Open(ctx, bridge.Options{DataDir: t.TempDir(), Index: imapfront.Index})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	src := pop3.NewSource(pop3.SourceConfig{Name: "legacy", Address: host.Addr(), TLS: pop3.TLSNone, Timeout: 30 * time.Second}, nil)
	syncer := bridge.NewSyncer(b, bridge.SyncerOptions{})
	t.Cleanup(func() { syncer.Stop(context.Background()) })
	alice, err := b.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	syncer.Add(alice, []bridge.Feed{{
		Source:       src,
		Account:      bridge.Account{User: "alice", SourceUser: "alice", Password: hostPassword},
		Policy:       bridge.DeletePolicy{Mode: bridge.DeleteKeep},
		PollInterval: time.Hour,
	}})
	if err := syncer.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	authenticate := func(ctx context.Context, user, pw string, _ net.Addr) (*bridge.User, error) {
		if user != "alice" || pw != bridgePassword {
			return nil, pop3front.ErrAuthFailed
		}
		return b.User(ctx, user)
	}
	cert, _ := selfSigned(t)
	ca := writeCAFile(t, &cert)
	logs := &syncBuffer{}
	pop, err := pop3front.New(pop3front.Options{
		Bridge:       b,
		Authenticate: authenticate,
		HostUIDL: func(source string, id bridge.SourceID) (string, bool) {
			if source == "legacy" {
				return pop3.HostUIDL(id)
			}
			return "", false
		},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:    slogTo(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	popLn, popsLn := listen(t), listen(t)
	go pop.Serve(popLn)
	go pop.ServeTLS(popsLn)
	t.Cleanup(func() { pop.Shutdown(context.Background()) })
	imapSrv := imapfront.New(imapfront.Options{
		Bridge:            b,
		AllowInsecureAuth: true,
		Authenticate: func(ctx context.Context, user, pw string, r net.Addr) (*bridge.User, error) {
			u, err := authenticate(ctx, user, pw, r)
			if err != nil {
				return nil, imapfront.ErrAuthFailed
			}
			return u, nil
		},
	})
	imapLn := listen(t)
	go imapSrv.Serve(imapLn)
	t.Cleanup(func() { imapSrv.Shutdown(context.Background()) })
	popAddr, popsAddr := popLn.Addr().String(), popsLn.Addr().String()

	// poplib at the bridge: the host's UIDLs, sizes and bytes.
	rep, msgs := runPoplib(t, py, popAddr, "alice", bridgePassword, ca, "retr")
	if strings.Join(rep.UIDL, " ") != strings.Join(hostRep.UIDL, " ") {
		t.Errorf("UIDL at the bridge\n%v\nat the host\n%v", rep.UIDL, hostRep.UIDL)
	}
	// LIST sizes are exactly what RETR sends. Dovecot's are too, but for
	// a message without a final line ending: it lists its stored size and
	// sends the CRLF it adds on top.
	var total int64
	for i, m := range hostMsgs {
		total += int64(len(m))
		if i >= len(rep.List) || rep.List[i] != int64(len(m)) {
			t.Errorf("LIST %d at the bridge: %v, RETR sends %d (the host listed %d)", i+1, rep.List, len(m), hostRep.List[i])
		}
		if d := int64(len(m)) - hostRep.List[i]; d != 0 && !(d == 2 && !bytes.HasSuffix(dovecottest.Corpus()[i].Data, []byte("\n"))) {
			t.Errorf("LIST %d: the bridge says %d, the host %d", i+1, len(m), hostRep.List[i])
		}
	}
	if rep.Stat != [2]int64{int64(len(hostMsgs)), total} {
		t.Errorf("STAT at the bridge %v, want %d messages of %d octets", rep.Stat, len(hostMsgs), total)
	}
	for i := range hostMsgs {
		if i >= len(msgs) || !bytes.Equal(msgs[i], hostMsgs[i]) {
			t.Errorf("RETR %d at the bridge differs from the host's", i+1)
		}
	}
	if !strings.Contains(strings.Join(rep.CapaBefore, " "), "STLS") || strings.Contains(strings.Join(rep.CapaBefore, " "), "USER") {
		t.Errorf("CAPA before STLS: %v", rep.CapaBefore)
	}

	// fetchmail and getmail at the bridge: nothing new.
	bridgeTLS := fmt.Sprintf("sslproto tls1.2+ sslcertck sslcertfile %q sslcommonname localhost", ca)
	if got := fetch.run(t, popAddr, bridgePassword, bridgeTLS); len(got) != 0 {
		t.Errorf("fetchmail downloaded %d messages again from the bridge", len(got))
	}
	hostPort := strings.TrimPrefix(host.Addr(), "127.0.0.1:")
	popsPort := strings.TrimPrefix(popsAddr, "127.0.0.1:")
	oldmail, err := os.ReadFile(filepath.Join(gdir, "oldmail-127.0.0.1-"+hostPort+"-alice"))
	if err != nil {
		t.Fatal(err)
	}
	// getmail keys what it has seen by server and port: moving a user
	// to the bridge keeps the file under the new port's name.
	if err := os.WriteFile(filepath.Join(gdir, "oldmail-127.0.0.1-"+popsPort+"-alice"), oldmail, 0o600); err != nil {
		t.Fatal(err)
	}
	getmailTLS := "ca_certs = " + ca
	if got := getm.run(t, "SimplePOP3SSLRetriever", popsAddr, bridgePassword, getmailTLS); len(got) != 0 {
		t.Errorf("getmail downloaded %d messages again from the bridge", len(got))
	}

	// New mail at the host, polled into the bridge: each client gets it,
	// once.
	fresh := []byte("From: y@example.org\nSubject: new\n\n.a dot line\nnew mail\n")
	host.Deliver("alice", fresh)
	if err := syncer.PollAndWait(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	want := dovecottest.ExpectedPOP3(fresh)
	if got := fetch.run(t, popAddr, bridgePassword, bridgeTLS); !sameSet(got, [][]byte{lf(want)}) {
		t.Errorf("fetchmail got %q, want only the new message", got)
	}
	if got := fetch.run(t, popAddr, bridgePassword, bridgeTLS); len(got) != 0 {
		t.Errorf("fetchmail's second run downloaded %d", len(got))
	}
	if got := getm.run(t, "SimplePOP3SSLRetriever", popsAddr, bridgePassword, getmailTLS); !sameSet(got, [][]byte{lf(want)}) {
		t.Errorf("getmail got %q, want only the new message", got)
	}
	if got := getm.run(t, "SimplePOP3SSLRetriever", popsAddr, bridgePassword, getmailTLS); len(got) != 0 {
		t.Errorf("getmail's second run downloaded %d", len(got))
	}
	rep, msgs = runPoplib(t, py, popAddr, "alice", bridgePassword, ca, "retr")
	hostRep, _ = runPoplib(t, py, host.Addr(), "alice", hostPassword, "-")
	if strings.Join(rep.UIDL, " ") != strings.Join(hostRep.UIDL, " ") || len(msgs) != len(hostMsgs)+1 || !bytes.Equal(msgs[len(msgs)-1], want) {
		t.Errorf("after new mail: UIDLs %v, host %v; %d messages", rep.UIDL, hostRep.UIDL, len(msgs))
	}

	// A DELE through the bridge is an EXPUNGE in IMAP.
	expunged := make(chan uint32, 4)
	ic, err := imapclient.DialInsecure(imapLn.Addr().String(), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Expunge: func(seq uint32) { expunged <- seq }},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("alice", bridgePassword).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil || int(sel.NumMessages) != len(msgs) {
		t.Fatalf("SELECT: %v, %v", sel, err)
	}
	idle, err := ic.Idle()
	if err != nil {
		t.Fatal(err)
	}
	rep, _ = runPoplib(t, py, popAddr, "alice", bridgePassword, ca, "dele:2")
	if !strings.HasPrefix(rep.Quit, "+OK") {
		t.Fatalf("QUIT after DELE: %q", rep.Quit)
	}
	select {
	case seq := <-expunged:
		if seq != 2 {
			t.Errorf("IMAP was told EXPUNGE %d, want 2", seq)
		}
	case <-time.After(time.Minute):
		t.Fatal("no EXPUNGE reached the IDLE session")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := ic.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || int(*st.NumMessages) != len(msgs)-1 {
		t.Errorf("STATUS after the DELE: %v, %v", st, err)
	}
	// The host is untouched (keep), and the bridge no longer lists it.
	after, _ := runPoplib(t, py, popAddr, "alice", bridgePassword, ca)
	if len(after.UIDL) != len(hostRep.UIDL)-1 || after.UIDL[1] != hostRep.UIDL[2] {
		t.Errorf("UIDL after the DELE: %v (host %v)", after.UIDL, hostRep.UIDL)
	}
	if h, _ := runPoplib(t, py, host.Addr(), "alice", hostPassword, "-"); len(h.UIDL) != len(hostRep.UIDL) {
		t.Errorf("the host lost mail: %d UIDLs, had %d", len(h.UIDL), len(hostRep.UIDL))
	}
	if strings.Contains(logs.String(), bridgePassword) {
		t.Error("the password appears in the POP3 face's log")
	}
}

// A host that gives every message the same UIDL (Dovecot with
// pop3_uidl_format %08Xv, on cue): the bridge's UIDLs stay unique — the
// oldest message keeps the host's, the others get the bridge's own.
func TestBrokenHostUIDLsStayUnique(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: hostPassword}}, UIDLFormat: "%08Xv"})
	for i := 0; i < 3; i++ {
		host.Deliver("alice", []byte(fmt.Sprintf("Subject: same uidl %d\n\nbody %d\n", i, i)))
	}
	e := newEnv(t, func(o *pop3front.Options) {
		o.HostUIDL = func(source string, id bridge.SourceID) (string, bool) {
			if source == "dovecot" {
				return pop3.HostUIDL(id)
			}
			return "", false
		}
	})
	src := pop3.NewSource(pop3.SourceConfig{Name: "dovecot", Address: host.Addr(), TLS: pop3.TLSNone, Timeout: 30 * time.Second}, nil)
	if _, err := e.b.Poll(ctx, e.user("alice"), bridge.Feed{Source: src, Account: bridge.Account{User: "alice", Password: hostPassword}}); err != nil {
		t.Fatal(err)
	}
	hc := &client{t: t}
	conn, err := net.Dial("tcp", host.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc.conn, hc.r = conn, bufioReader(conn)
	hc.mustLine()
	hc.cmd("USER alice")
	hc.cmd("PASS " + hostPassword)
	hostUIDL := strings.Fields(hc.cmd("UIDL 1"))[2]

	uv := e.inbox("alice").Info().UIDValidity
	c := e.dial()
	c.login("alice")
	c.send("UIDL")
	want := []string{"+OK", "1 " + hostUIDL, "2 " + bridge.GeneratedUIDL(uv, 2), "3 " + bridge.GeneratedUIDL(uv, 3), "."}
	for _, w := range want {
		if l := c.mustLine(); l != w {
			t.Fatalf("UIDL line %q, want %q", l, w)
		}
	}
}
