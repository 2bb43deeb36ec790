package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
	"github.com/imapbridge/imapbridge/mboxstore"
)

// The crash-safety campaign. The built binary serves three users from
// four real sources: alice from a Dovecot POP3 maildrop with
// delete_policy after_sync, bob from another with keep, carol from an mbox
// spool, dave from a POP3 maildrop with on_expunge. While mail is delivered to the hosts, one IMAP session per user
// APPENDs, MOVEs between INBOX and Archive, STOREs flags and EXPUNGEs; the
// bridge is killed with SIGKILL at a random moment, or at a chosen one
// (while an APPEND, MOVE, STORE or UID EXPUNGE is in flight, while the
// reply to the POP3 DELE or QUIT is held back, or while it is starting
// up), then restarted. After every round the state seen over IMAP is
// checked against a model of what was acknowledged:
//
//   - every message present exactly once, BODY[] byte for byte as
//     delivered or appended;
//   - UIDVALIDITY of every mailbox unchanged; a message keeps its UID while
//     it stays in a mailbox (the UID an APPENDUID/COPYUID gave, or the one
//     last seen); a message new since the last check has a UID above every
//     UID that check saw;
//   - flags as last acknowledged (a STORE in flight may or may not have
//     happened);
//   - an acknowledged APPEND present once, an acknowledged EXPUNGE gone, an
//     acknowledged MOVE in the destination only (in flight: in exactly one
//     of the two);
//   - alice's POP3 maildrop drained (after_sync), bob's holding every
//     message delivered (keep), dave's holding exactly the delivered
//     messages not expunged (on_expunge), carol's spool unchanged by the
//     bridge.
//
// runCrashSoak runs rounds until maxRounds or until the time budget is
// spent, whichever first (at least one round).

// soakMsg is the model of one message: where it may be, its UID there, its
// flags.
type soakMsg struct {
	id   string // Message-ID, unique over the campaign
	body []byte // what BODY[] must return
	// locs: the mailboxes it may be in now; "" means absent (not appended,
	// or expunged). One entry: known; two: an operation was in flight.
	locs map[string]bool
	// uid is the UID the message has in the mailbox it is known to be in
	// (0: not known yet).
	uid     imap.UID
	uidMbox string
	flags   map[imap.Flag]bool // acknowledged
	maybe   map[imap.Flag]bool // a STORE of this flag was in flight: the value it set
	// target is where an operation in flight puts the message ("" for an
	// expunge); meaningful while locs has two entries.
	target string
	// delivered at a host; it must arrive even if not seen yet.
	delivered bool
}

func (m *soakMsg) only() (string, bool) {
	if len(m.locs) != 1 {
		return "", false
	}
	for l := range m.locs {
		return l, true
	}
	return "", false
}

var soakMailboxes = []string{"INBOX", "Archive"}

var soakFlags = []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered, "$Soak"}

// soakUser is one user: its source, model and counters.
type soakUser struct {
	name   string
	source string // pop3-sync | pop3-keep | spool
	mu     sync.Mutex
	msgs   map[string]*soakMsg
	order  []string // ids in creation order
	uidval map[string]uint32
	maxUID map[string]imap.UID // highest UID the last check saw, per mailbox
	// counters
	delivered, appended, acked, inflight int
	applied, notApplied                  int // in-flight operations, as a check found them
}

// resolved counts how an operation that was in flight at a kill turned
// out: it took effect, or it did not.
func (u *soakUser) resolved(applied bool) {
	if applied {
		u.applied++
	} else {
		u.notApplied++
	}
}

func (u *soakUser) add(m *soakMsg) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.msgs[m.id] = m
	u.order = append(u.order, m.id)
}

// soakEnv is the campaign's world: Dovecot, the proxy, the spool, the
// config, the running bridge.
type soakEnv struct {
	t      *testing.T
	rng    *rand.Rand
	rngMu  sync.Mutex
	srv    *dovecottest.Server
	proxy  *faultProxy
	dir    string
	spool  string
	config string
	imap   string
	admin  string
	logs   *syncBuffer
	proc   *bridgeProc
	users  []*soakUser
	seq    int // message counter
	seqMu  sync.Mutex
	spoolW []byte // the spool as the test last wrote it
	spoolM sync.Mutex
}

const soakPOPPassword = "pop-Soak-4411"

func (e *soakEnv) intn(n int) int {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	return e.rng.IntN(n)
}

func newSoakEnv(t *testing.T, seed uint64) *soakEnv {
	t.Helper()
	e := &soakEnv{t: t, rng: rand.New(rand.NewPCG(seed, 0x50a6)), dir: t.TempDir(), logs: &syncBuffer{}}
	e.srv = dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{
		{Name: "alice", Password: soakPOPPassword}, {Name: "bob", Password: soakPOPPassword}, {Name: "dave", Password: soakPOPPassword}}})
	e.proxy = newFaultProxy(t, e.srv.Addr())
	e.imap, e.admin = freePort(t), freePort(t)
	spoolDir := filepath.Join(e.dir, "mail")
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.spool = filepath.Join(spoolDir, "carol")
	if err := os.WriteFile(e.spool, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, source string }{{"alice", "pop3-sync"}, {"bob", "pop3-keep"}, {"carol", "spool"}, {"dave", "pop3-expunge"}} {
		e.users = append(e.users, &soakUser{name: u.name, source: u.source, msgs: map[string]*soakMsg{},
			uidval: map[string]uint32{}, maxUID: map[string]imap.UID{}})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\nlog: {level: info, format: text}\n", filepath.Join(e.dir, "data"))
	fmt.Fprintf(&b, "imap:\n  listen: %q\n  allow_insecure_auth: true\nadmin:\n  listen: %q\n", e.imap, e.admin)
	b.WriteString("sources:\n")
	for _, s := range []struct{ name, policy string }{{"pop3-sync", "after_sync"}, {"pop3-keep", "keep"}, {"pop3-expunge", "on_expunge"}} {
		fmt.Fprintf(&b, "  - name: %s\n    type: pop3\n    address: %q\n    tls: none\n    auth: static\n    poll_interval: 200ms\n    idle_poll_interval: 200ms\n    timeout: 5s\n    delete_policy: %s\n",
			s.name, e.proxy.Addr(), s.policy)
	}
	fmt.Fprintf(&b, "  - name: spool\n    type: mbox\n    path: %q\n    poll_interval: 200ms\n", filepath.Join(spoolDir, "{user}"))
	b.WriteString("users:\n")
	for _, u := range e.users {
		fmt.Fprintf(&b, "  - name: %s\n    password_hash: %q\n    sources: [%s]\n", u.name, p3IMAPHash(t), u.source)
		if u.source != "spool" {
			fmt.Fprintf(&b, "    source_user: %s\n    source_password: %q\n", u.name, soakPOPPassword)
		}
	}
	e.config = filepath.Join(e.dir, "imapbridge.yaml")
	if err := os.WriteFile(e.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log (tail):\n%s", p3Tail(e.logs.String(), 80))
		}
	})
	return e
}

func (e *soakEnv) nextSeq() int {
	e.seqMu.Lock()
	defer e.seqMu.Unlock()
	e.seq++
	return e.seq
}

func (e *soakEnv) genMessage(tag string) []byte {
	n := e.nextSeq()
	size := 300 + e.intn(12000)
	if e.intn(15) == 0 {
		size = 100<<10 + e.intn(200<<10)
	}
	return p3GenMessage(tag, n, size)
}

// deliver puts one new message at u's host.
func (e *soakEnv) deliver(u *soakUser) error {
	m := e.genMessage("soak-" + u.name)
	var want []byte
	switch u.source {
	case "spool":
		e.spoolM.Lock()
		err := mboxstore.Deliver(context.Background(), e.spool, mboxstore.DeliverOptions{}, "sender@example.org", time.Now(), m)
		if err == nil {
			e.spoolW, err = os.ReadFile(e.spool)
		}
		e.spoolM.Unlock()
		if err != nil {
			return fmt.Errorf("deliver to the spool: %w", err)
		}
		want = bytes.ReplaceAll(m, []byte("\n"), []byte("\r\n"))
	default:
		e.srv.Deliver(u.name, m)
		want = dovecottest.ExpectedPOP3(m)
	}
	u.add(&soakMsg{id: p3MessageID(m), body: want, locs: map[string]bool{"INBOX": true},
		flags: map[imap.Flag]bool{}, maybe: map[imap.Flag]bool{}, delivered: true})
	u.mu.Lock()
	u.delivered++
	u.mu.Unlock()
	return nil
}

// start runs the binary; with wait it returns once /readyz says 200.
func (e *soakEnv) start(wait bool) *bridgeProc {
	t := e.t
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "-config", e.config)
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &bridgeProc{t: t, cmd: cmd, imap: e.imap, admin: e.admin, logBuf: e.logs}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	if !wait {
		return p
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p.cmd.ProcessState != nil {
			break
		}
		resp, err := client.Get("http://" + e.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("bridge not ready within 60s after a restart")
	return nil
}

// soakKill is how a round ends.
type soakKill int

const (
	killRandom soakKill = iota
	killAppend
	killMove
	killStore
	killExpunge
	killDELE
	killQUIT
	killStartup
	numKills
)

func (k soakKill) String() string {
	return [...]string{"random", "during APPEND", "during MOVE", "during STORE", "during UID EXPUNGE",
		"POP3 DELE reply held", "POP3 QUIT reply held", "random + during start-up"}[k]
}

// soakHook lets a worker announce that it has just sent the command a
// round is waiting for.
type soakHook struct {
	want soakKill
	once sync.Once
	ch   chan struct{}
}

func (h *soakHook) fire(k soakKill) {
	if h != nil && h.want == k {
		h.once.Do(func() { close(h.ch) })
	}
}

// soakWorker is one user's IMAP session during a round. It stops at the
// first error (the bridge died) or when stop is closed.
func (e *soakEnv) soakWorker(u *soakUser, stop <-chan struct{}, hook *soakHook) {
	s, err := p3DialIMAP(e.imap)
	if err != nil {
		return
	}
	defer s.c.Close()
	if err := s.c.Login(u.name, p3IMAPPassword).Wait(); err != nil {
		return
	}
	mbox := soakMailboxes[e.intn(2)]
	if err := e.refresh(u, s, mbox); err != nil {
		return
	}
	for {
		select {
		case <-stop:
			s.c.Logout().Wait()
			return
		default:
		}
		var err error
		switch r := e.intn(100); {
		case r < 22:
			err = e.opAppend(u, s, mbox, hook)
		case r < 52:
			err = e.opStore(u, s, mbox, hook)
		case r < 72:
			other := "Archive"
			if mbox == "Archive" {
				other = "INBOX"
			}
			err = e.opMove(u, s, mbox, other, hook)
		case r < 86:
			err = e.opExpunge(u, s, mbox, hook)
		default:
			mbox = soakMailboxes[e.intn(2)]
			err = e.refresh(u, s, mbox)
		}
		if err != nil {
			return
		}
		time.Sleep(time.Duration(e.intn(15)) * time.Millisecond)
	}
}

// refresh selects mbox and learns the UIDs of messages the model has there
// without one.
func (e *soakEnv) refresh(u *soakUser, s *p3IMAPSession, mbox string) error {
	sel, err := s.c.Select(mbox, nil).Wait()
	if err != nil {
		return err
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	bufs, err := s.c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, b := range bufs {
		m := u.msgs[p3MessageID(b.FindBodySection(sec))]
		if m == nil {
			continue
		}
		if l, ok := m.only(); ok && l == mbox && m.uid == 0 {
			m.uid, m.uidMbox = b.UID, mbox
		}
	}
	return nil
}

// pick returns a message known to be in mbox with a known UID, or nil.
func (e *soakEnv) pick(u *soakUser, mbox string) *soakMsg {
	u.mu.Lock()
	defer u.mu.Unlock()
	var cands []*soakMsg
	for _, id := range u.order {
		m := u.msgs[id]
		if l, ok := m.only(); ok && l == mbox && m.uid != 0 && m.uidMbox == mbox && len(m.maybe) == 0 {
			cands = append(cands, m)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[e.intn(len(cands))]
}

func (e *soakEnv) opAppend(u *soakUser, s *p3IMAPSession, mbox string, hook *soakHook) error {
	raw := bytes.ReplaceAll(e.genMessage("soak-app-"+u.name), []byte("\n"), []byte("\r\n"))
	flags := map[imap.Flag]bool{}
	var fl []imap.Flag
	for _, f := range soakFlags {
		if e.intn(3) == 0 {
			flags[f] = true
			fl = append(fl, f)
		}
	}
	m := &soakMsg{id: p3MessageID(raw), body: raw, locs: map[string]bool{"": true, mbox: true}, target: mbox, flags: flags, maybe: map[imap.Flag]bool{}}
	u.add(m)
	u.mu.Lock()
	u.appended++
	u.inflight++
	u.mu.Unlock()
	cmd := s.c.Append(mbox, int64(len(raw)), &imap.AppendOptions{Flags: fl})
	if _, err := cmd.Write(raw); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	hook.fire(killAppend) // the whole command is sent
	data, err := cmd.Wait()
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inflight--
	u.acked++
	m.locs = map[string]bool{mbox: true}
	if data.UID != 0 {
		m.uid, m.uidMbox = data.UID, mbox
	}
	return nil
}

func (e *soakEnv) opStore(u *soakUser, s *p3IMAPSession, mbox string, hook *soakHook) error {
	m := e.pick(u, mbox)
	if m == nil {
		return nil
	}
	f := soakFlags[e.intn(len(soakFlags))]
	op := imap.StoreFlagsAdd
	if e.intn(2) == 0 {
		op = imap.StoreFlagsDel
	}
	u.mu.Lock()
	m.maybe[f] = op == imap.StoreFlagsAdd
	u.inflight++
	u.mu.Unlock()
	cmd := s.c.Store(imap.UIDSetNum(m.uid), &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{f}}, nil)
	hook.fire(killStore)
	if err := cmd.Close(); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inflight--
	u.acked++
	delete(m.maybe, f)
	if op == imap.StoreFlagsAdd {
		m.flags[f] = true
	} else {
		delete(m.flags, f)
	}
	return nil
}

func (e *soakEnv) opMove(u *soakUser, s *p3IMAPSession, from, to string, hook *soakHook) error {
	m := e.pick(u, from)
	if m == nil {
		return nil
	}
	u.mu.Lock()
	m.locs[to] = true
	m.target = to
	u.inflight++
	u.mu.Unlock()
	cmd := s.c.Move(imap.UIDSetNum(m.uid), to)
	hook.fire(killMove)
	data, err := cmd.Wait()
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inflight--
	u.acked++
	m.locs = map[string]bool{to: true}
	m.uid, m.uidMbox = 0, ""
	if data != nil {
		if us, ok := data.DestUIDs.(imap.UIDSet); ok {
			if uids, ok := us.Nums(); ok && len(uids) == 1 {
				m.uid, m.uidMbox = uids[0], to
			}
		}
	}
	return nil
}

func (e *soakEnv) opExpunge(u *soakUser, s *p3IMAPSession, mbox string, hook *soakHook) error {
	m := e.pick(u, mbox)
	if m == nil {
		return nil
	}
	u.mu.Lock()
	m.maybe[imap.FlagDeleted] = true
	u.inflight++
	u.mu.Unlock()
	if err := s.c.Store(imap.UIDSetNum(m.uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return err
	}
	u.mu.Lock()
	delete(m.maybe, imap.FlagDeleted)
	m.flags[imap.FlagDeleted] = true
	m.locs[""] = true
	m.target = ""
	u.mu.Unlock()
	cmd := s.c.UIDExpunge(imap.UIDSetNum(m.uid))
	hook.fire(killExpunge)
	if _, err := cmd.Collect(); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inflight--
	u.acked += 2
	m.locs = map[string]bool{"": true}
	return nil
}

// soakSeen is one message as a check found it.
type soakSeen struct {
	mbox  string
	uid   imap.UID
	flags map[imap.Flag]bool
	body  []byte
}

// snapshot reads u's mailboxes: UIDVALIDITY and, per Message-ID, where it
// is (every place, to catch duplicates). With bodies it fetches BODY[].
func (e *soakEnv) snapshot(u *soakUser, bodies bool) (map[string]uint32, map[string][]soakSeen, error) {
	s, err := p3DialIMAP(e.imap)
	if err != nil {
		return nil, nil, err
	}
	defer s.c.Close()
	if err := s.c.Login(u.name, p3IMAPPassword).Wait(); err != nil {
		return nil, nil, fmt.Errorf("login %s: %w", u.name, err)
	}
	uv := map[string]uint32{}
	seen := map[string][]soakSeen{}
	for _, mbox := range soakMailboxes {
		sel, err := s.c.Select(mbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, nil, fmt.Errorf("select %s: %w", mbox, err)
		}
		uv[mbox] = sel.UIDValidity
		if sel.NumMessages == 0 {
			continue
		}
		var all imap.SeqSet
		all.AddRange(1, 0)
		sec := &imap.FetchItemBodySection{Peek: true}
		if !bodies {
			sec = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
		}
		bufs, err := s.c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
		if err != nil {
			return nil, nil, fmt.Errorf("fetch %s: %w", mbox, err)
		}
		for _, b := range bufs {
			body := b.FindBodySection(sec)
			fl := map[imap.Flag]bool{}
			for _, f := range b.Flags {
				if !strings.EqualFold(string(f), `\Recent`) {
					fl[f] = true
				}
			}
			id := p3MessageID(body)
			seen[id] = append(seen[id], soakSeen{mbox: mbox, uid: b.UID, flags: fl, body: body})
		}
	}
	s.c.Logout().Wait()
	return uv, seen, nil
}

// missing lists the messages that must be there and are not.
func (u *soakUser) missing(seen map[string][]soakSeen) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, id := range u.order {
		if m := u.msgs[id]; !m.locs[""] && len(seen[id]) == 0 {
			out = append(out, id)
		}
	}
	return out
}

// check waits until every message that must be there is, then compares
// the full state of u with the model, returns the violations and collapses
// the model onto what it found.
func (e *soakEnv) check(u *soakUser) []string {
	deadline := time.Now().Add(45 * time.Second)
	for {
		_, seen, err := e.snapshot(u, false)
		if err == nil && len(u.missing(seen)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				return []string{fmt.Sprintf("%s: %v", u.name, err)}
			}
			break // the full check reports what is lost
		}
		time.Sleep(100 * time.Millisecond)
	}
	uv, seen, err := e.snapshot(u, true)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", u.name, err)}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var bad []string
	badf := func(format string, args ...any) { bad = append(bad, u.name+": "+fmt.Sprintf(format, args...)) }
	for mbox, v := range uv {
		if old, ok := u.uidval[mbox]; ok && old != v {
			badf("%s UIDVALIDITY %d, was %d", mbox, v, old)
		}
		u.uidval[mbox] = v
	}
	for id, places := range seen {
		if u.msgs[id] == nil {
			badf("%s: UID %d %q is no message of this campaign", places[0].mbox, places[0].uid, id)
		}
	}
	newMax := map[string]imap.UID{}
	for _, id := range u.order {
		m := u.msgs[id]
		places := seen[id]
		if len(places) > 1 {
			var where []string
			for _, p := range places {
				where = append(where, fmt.Sprintf("%s UID %d", p.mbox, p.uid))
			}
			badf("%s is there %d times: %s (duplicated)", id, len(places), strings.Join(where, ", "))
		}
		if len(m.locs) == 2 {
			at := ""
			if len(places) > 0 {
				at = places[0].mbox
			}
			u.resolved(at == m.target)
		}
		if len(places) == 0 {
			if !m.locs[""] {
				badf("%s lost: want it in %v", id, keys(m.locs))
			}
			m.locs = map[string]bool{"": true}
			m.uid, m.uidMbox = 0, ""
			continue
		}
		p := places[0]
		newMax[p.mbox] = max(newMax[p.mbox], p.uid)
		if !m.locs[p.mbox] {
			badf("%s in %s UID %d; want it in %v", id, p.mbox, p.uid, keys(m.locs))
		}
		if !bytes.Equal(p.body, m.body) {
			badf("%s %s UID %d: BODY[] differs (%d bytes, want %d; first difference at %d)", id, p.mbox, p.uid, len(p.body), len(m.body), p3FirstDifference(p.body, m.body))
		}
		if m.uid != 0 && m.uidMbox == p.mbox && m.uid != p.uid {
			badf("%s %s: UID %d, was %d", id, p.mbox, p.uid, m.uid)
		}
		if m.uid == 0 || m.uidMbox != p.mbox {
			if p.uid <= u.maxUID[p.mbox] {
				badf("%s new in %s with UID %d, not above %d seen at the last check (UID reused?)", id, p.mbox, p.uid, u.maxUID[p.mbox])
			}
		}
		for _, f := range soakFlagsAll {
			if want, ok := m.maybe[f]; ok {
				u.resolved(p.flags[f] == want)
				continue
			}
			if p.flags[f] != m.flags[f] {
				badf("%s %s UID %d: flag %s is %v, acknowledged %v", id, p.mbox, p.uid, f, p.flags[f], m.flags[f])
			}
		}
		for f := range p.flags {
			if !slices.Contains(soakFlagsAll, f) {
				badf("%s %s UID %d: unexpected flag %s", id, p.mbox, p.uid, f)
			}
		}
		m.locs = map[string]bool{p.mbox: true}
		m.uid, m.uidMbox = p.uid, p.mbox
		m.flags, m.maybe = p.flags, map[imap.Flag]bool{}
	}
	for mbox, v := range newMax {
		u.maxUID[mbox] = max(u.maxUID[mbox], v)
	}
	u.inflight = 0
	return bad
}

var soakFlagsAll = append(slices.Clone(soakFlags), imap.FlagDeleted)

func keys[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkHosts: alice's maildrop drains (after_sync), bob's holds every
// message delivered (keep), the spool is as the test wrote it.
func (e *soakEnv) checkHosts() []string {
	var bad []string
	alice, bob := e.users[0], e.users[1]
	deadline := time.Now().Add(30 * time.Second)
	for len(e.srv.Messages(alice.name)) != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(e.srv.Messages(alice.name)); n != 0 {
		bad = append(bad, fmt.Sprintf("alice (after_sync): the host still holds %d messages", n))
	}
	var want []string
	bob.mu.Lock()
	for _, id := range bob.order {
		if bob.msgs[id].delivered {
			want = append(want, id)
		}
	}
	bob.mu.Unlock()
	got := p3HostIDs(e.srv, bob.name)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		bad = append(bad, fmt.Sprintf("bob (keep): the host holds %d messages, want the %d delivered", len(got), len(want)))
	}
	// dave (on_expunge): the host holds what was delivered and is still
	// in some mailbox; what the user expunged goes (there is no COPY in
	// the workload, so an expunged message has no copy left).
	dave := e.users[3]
	hostWant := func() []string {
		var want []string
		dave.mu.Lock()
		defer dave.mu.Unlock()
		for _, id := range dave.order {
			if m := dave.msgs[id]; m.delivered && !m.locs[""] {
				want = append(want, id)
			}
		}
		sort.Strings(want)
		return want
	}
	want = hostWant()
	var hostGot []string
	lost := false
	for deadline := time.Now().Add(30 * time.Second); ; {
		hostGot = p3HostIDs(e.srv, dave.name)
		sort.Strings(hostGot)
		if slices.Equal(hostGot, want) || time.Now().After(deadline) {
			break
		}
		for _, id := range want {
			if !slices.Contains(hostGot, id) {
				bad = append(bad, fmt.Sprintf("dave (on_expunge): %s deleted at the host though it is still in a mailbox", id))
				lost = true
			}
		}
		if lost {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(hostGot, want) && !lost {
		bad = append(bad, fmt.Sprintf("dave (on_expunge): the host holds %d messages, want the %d delivered and not expunged", len(hostGot), len(want)))
	}
	e.spoolM.Lock()
	now, err := os.ReadFile(e.spool)
	if err != nil || !bytes.Equal(now, e.spoolW) {
		bad = append(bad, fmt.Sprintf("carol: the spool changed (%d bytes, the test wrote %d; %v)", len(now), len(e.spoolW), err))
	}
	e.spoolM.Unlock()
	return bad
}

// soakStats sums the counters of the run.
type soakStats struct {
	rounds, kills, startupKills int
	delivered, appended, acked  int
	inflightAtKill              int
	applied, notApplied         int
	stored                      int
	byKind                      map[soakKill]int
}

// runCrashSoak is the campaign (see the comment at the top of the file).
func runCrashSoak(t *testing.T, maxRounds int, budget time.Duration) soakStats {
	seed := rand.Uint64()
	if s := os.Getenv("SOAK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("crash soak: seed %d (SOAK_SEED=%d reproduces the choices), up to %d rounds or %v", seed, seed, maxRounds, budget)
	e := newSoakEnv(t, seed)
	start := time.Now()
	st := soakStats{byKind: map[soakKill]int{}}

	for _, u := range e.users {
		for i := 0; i < 4; i++ {
			if err := e.deliver(u); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.proc = e.start(true)
	for _, u := range e.users {
		if bad := e.check(u); len(bad) > 0 {
			t.Fatalf("before the first kill:\n%s", strings.Join(bad, "\n"))
		}
	}
	failed := false
	for r := 1; r <= maxRounds && (r == 1 || time.Since(start) < budget); r++ {
		kind := soakKill(e.intn(int(numKills)))
		if r == 1 {
			kind = killRandom
		}
		roundStart := time.Now()
		var hook *soakHook
		switch kind {
		case killAppend, killMove, killStore, killExpunge:
			hook = &soakHook{want: kind, ch: make(chan struct{})}
		}
		var rule *faultRule
		if kind == killDELE || kind == killQUIT {
			rule = &faultRule{Cmd: map[soakKill]string{killDELE: "DELE", killQUIT: "QUIT"}[kind], User: "alice", Action: faultStall, Dur: time.Minute}
			if err := e.deliver(e.users[0]); err != nil {
				t.Fatal(err)
			}
			e.proxy.addRule(rule)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, u := range e.users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.soakWorker(u, stop, hook)
			}()
		}
		// New mail at the hosts while the sessions work.
		delivered := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-delivered:
					return
				case <-time.After(time.Duration(40+e.intn(160)) * time.Millisecond):
				}
				if err := e.deliver(e.users[e.intn(len(e.users))]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		delay := time.Duration(150+e.intn(1500)) * time.Millisecond
		how := ""
		switch {
		case hook != nil:
			select {
			case <-hook.ch:
				d := time.Duration(e.intn(4000)) * time.Microsecond
				time.Sleep(d)
				how = fmt.Sprintf("%v after sending the command", d)
			case <-time.After(5 * time.Second):
				how = "command never sent in 5s; killed anyway"
			}
		case rule != nil:
			select {
			case <-rule.started:
				time.Sleep(50 * time.Millisecond)
				how = "reply held back"
			case <-time.After(10 * time.Second):
				how = "command never sent in 10s; killed anyway"
			}
		default:
			time.Sleep(delay)
			how = fmt.Sprintf("%v into the round", delay)
		}
		stored := p3MetricSum(e.admin, "imapbridge_store_messages")
		p3KillBridge(e.proc)
		st.kills++
		st.byKind[kind]++
		close(delivered)
		close(stop)
		wg.Wait()
		inflight := 0
		for _, u := range e.users {
			u.mu.Lock()
			inflight += u.inflight
			u.mu.Unlock()
		}
		st.inflightAtKill += inflight
		// Mail arrives while the bridge is down.
		for _, u := range e.users {
			if e.intn(2) == 0 {
				if err := e.deliver(u); err != nil {
					t.Fatal(err)
				}
			}
		}
		extra := ""
		if kind == killStartup {
			// Killed again while starting up (opening the store,
			// sweeping, first polls).
			p := e.start(false)
			d := time.Duration(e.intn(800)) * time.Millisecond
			time.Sleep(d)
			p3KillBridge(p)
			st.kills++
			st.startupKills++
			extra = fmt.Sprintf("; killed again %v after exec", d)
		}
		e.proc = e.start(true)
		var bad []string
		for _, u := range e.users {
			bad = append(bad, e.check(u)...)
		}
		bad = append(bad, e.checkHosts()...)
		for _, metric := range []string{"imapbridge_store_uidvalidity_resets_total", "imapbridge_store_rollbacks_detected_total", "imapbridge_panics_recovered_total"} {
			if n := p3MetricSum(e.admin, metric); n != 0 {
				bad = append(bad, fmt.Sprintf("%s = %v after the restart, want 0", metric, n))
			}
		}
		st.rounds++
		total := 0
		for _, u := range e.users {
			u.mu.Lock()
			for _, m := range u.msgs {
				if !m.locs[""] {
					total++
				}
			}
			u.mu.Unlock()
		}
		result := "ok"
		if len(bad) > 0 {
			result = fmt.Sprintf("%d VIOLATIONS", len(bad))
		}
		t.Logf("round %3d: SIGKILL %s (%s)%s; store held %v just before; %d ops in flight; %d messages now; %v; %s",
			r, kind, how, extra, stored, inflight, total, time.Since(roundStart).Round(time.Millisecond), result)
		if len(bad) > 0 {
			t.Errorf("round %d (kill %s):\n  %s", r, kind, strings.Join(bad, "\n  "))
			failed = true
			break
		}
	}
	e.proc.stop()
	for _, u := range e.users {
		u.mu.Lock()
		st.delivered += u.delivered
		st.appended += u.appended
		st.acked += u.acked
		st.applied += u.applied
		st.notApplied += u.notApplied
		for _, m := range u.msgs {
			if !m.locs[""] {
				st.stored++
			}
		}
		u.mu.Unlock()
	}
	logs := e.logs.String()
	for _, bad := range []string{"DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the bridge's output contains %q", bad)
			failed = true
		}
	}
	var kinds []string
	for k := soakKill(0); k < numKills; k++ {
		if st.byKind[k] > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, st.byKind[k]))
		}
	}
	result := "PASS"
	if failed || t.Failed() {
		result = "FAIL"
	}
	t.Logf("crash soak summary: %d rounds, %d SIGKILLs (%d during start-up; %s), %d messages delivered to the hosts, %d APPENDed, %d IMAP changes acknowledged, %d in flight at a kill (found applied %d, not applied %d), %d messages held at the end, %v, %s (seed %d)",
		st.rounds, st.kills, st.startupKills, strings.Join(kinds, ", "), st.delivered, st.appended, st.acked, st.inflightAtKill, st.applied, st.notApplied, st.stored,
		time.Since(start).Round(time.Second), result, seed)
	return st
}

// A short crash campaign in the default suite: three rounds (the long one
// is `make soak`).
func TestCrashSoakShort(t *testing.T) {
	t.Parallel()
	runCrashSoak(t, 3, time.Minute)
}
