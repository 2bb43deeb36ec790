package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
)

// faultProxy is a TCP proxy between the bridge and a real POP3 server
// (Dovecot) that does, on cue, what a real server cannot be made to do:
// cut the connection in the middle of a reply, stall, trickle a reply byte
// by byte, answer a command with -ERR or with garbage, or drop the session
// and refuse connections for a while (a server restart).
//
// It reads the client's command lines to know which reply belongs to which
// command. POP3 is request/response, but the client pipelines RETR and
// DELE when the server advertises PIPELINING: the commands are queued in
// the order they arrive and the replies are matched to them in that order,
// so pipelining stays on. A command answered by the proxy itself (-ERR,
// garbage) is not forwarded; its reply is put in its place in the reply
// stream.
type faultProxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	rules     []*faultRule
	downUntil time.Time
	conns     map[*proxyConn]bool
	commands  map[string][]string // by POP3 user: every command verb seen
	refused   int                 // connections refused while "down"
	pipelined int                 // commands that arrived before the reply to an earlier one
	rate      int                 // bytes per second to the client; 0: no limit
	closed    bool
	quit      chan struct{} // closed by close
	wg        sync.WaitGroup
}

type faultAction int

const (
	// faultCut forwards Bytes bytes of the reply (status line included),
	// then closes both connections.
	faultCut faultAction = iota
	// faultStall holds the reply back for Dur, then forwards it (if the
	// client is still there). The stall lasts Dur even when the client
	// gives up earlier.
	faultStall
	// faultTrickle forwards the reply one byte per write, Dur apart.
	faultTrickle
	// faultERR answers the command with Reply (default a -ERR) without
	// forwarding it.
	faultERR
	// faultGarbage answers the command with a line that is no POP3 reply,
	// without forwarding it.
	faultGarbage
	// faultDrop closes both connections when the command arrives, and the
	// proxy refuses connections for Dur: the server restarting.
	faultDrop
	// faultEdit passes the command's argument to Edit, which returns the
	// argument to forward instead, or a reply to give without forwarding.
	faultEdit
)

func (a faultAction) String() string {
	return [...]string{"cut", "stall", "trickle", "err", "garbage", "drop", "edit"}[a]
}

// faultRule fires on the Nth command Cmd (upper-case verb: USER PASS STAT
// LIST UIDL RETR DELE QUIT ...) sent in sessions of POP3 user User ("" for
// any), counted across sessions, and then on the next Times-1 matches.
type faultRule struct {
	Cmd    string
	User   string
	Nth    int
	Times  int
	Action faultAction
	Bytes  int
	Dur    time.Duration
	Reply  string
	Edit   func(arg string) (newArg, reply string)

	seen      int
	fired     int
	started   chan struct{} // closed when the fault first takes effect
	ended     chan struct{} // closed when its first firing is over
	startOnce sync.Once
	endOnce   sync.Once
}

func (r *faultRule) markStarted() { r.startOnce.Do(func() { close(r.started) }) }
func (r *faultRule) markEnded()   { r.endOnce.Do(func() { close(r.ended) }) }

const garbageReply = "}}} \x01\xfe garbage, not a POP3 reply {{{"

func newFaultProxy(t *testing.T, target string, rules ...*faultRule) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		r.init()
	}
	p := &faultProxy{ln: ln, target: target, rules: rules, conns: map[*proxyConn]bool{}, commands: map[string][]string{}, quit: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (r *faultRule) init() {
	if r.Nth == 0 {
		r.Nth = 1
	}
	if r.Times == 0 {
		r.Times = 1
	}
	r.started = make(chan struct{})
	r.ended = make(chan struct{})
}

func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

// addRule adds a rule; it counts commands from now on.
func (p *faultProxy) addRule(r *faultRule) {
	r.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
}

func (p *faultProxy) close() {
	p.mu.Lock()
	if !p.closed {
		close(p.quit)
	}
	p.closed = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.kill()
	}
	p.wg.Wait()
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := time.Now().Before(p.downUntil)
		if down {
			p.refused++
		}
		closed := p.closed
		p.mu.Unlock()
		if down || closed {
			client.Close()
			continue
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		c := &proxyConn{p: p, client: client, server: server, pending: make(chan pendingCmd, 4096), done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			server.Close()
			continue
		}
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(2)
		go c.upstream()
		go c.downstream()
	}
}

// match counts cmd against the rules and returns the one that fires, if
// any.
func (p *faultProxy) match(user, verb string) *faultRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.commands[user] = append(p.commands[user], verb)
	for _, r := range p.rules {
		if r.Cmd != verb || (r.User != "" && r.User != user) {
			continue
		}
		r.seen++
		if r.seen >= r.Nth && r.fired < r.Times {
			r.fired++
			return r
		}
	}
	return nil
}

// Fired returns how often rule r fired.
func (p *faultProxy) Fired(r *faultRule) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.fired
}

// setDown makes the proxy refuse connections (accept and close at once)
// for d; d <= 0 ends that.
func (p *faultProxy) setDown(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.downUntil = time.Now().Add(d)
}

// setRate limits what each connection forwards to the client to bps bytes
// per second (a slow link), so that a sync takes a while.
func (p *faultProxy) setRate(bps int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bps
}

// Refused returns how many connections were refused while down.
func (p *faultProxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Pipelined returns how many commands arrived while the reply to an
// earlier one of the same session was still due.
func (p *faultProxy) Pipelined() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pipelined
}

// Commands returns the verbs sent in sessions of user, in order.
func (p *faultProxy) Commands(user string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.commands[user]...)
}

type pendingCmd struct {
	verb, arg string
	reply     string     // the reply of a synthetic command, if not the rule's
	rule      *faultRule // nil, or the rule that fired on this command
	synthetic bool       // answered by the proxy, not forwarded
}

type proxyConn struct {
	p              *faultProxy
	client, server net.Conn
	cw             *bufio.Writer // buffered writes to client (downstream only)
	pending        chan pendingCmd
	unanswered     atomic.Int64 // commands queued whose reply is not yet written
	unpaced        int          // bytes written since the last pause (rate limit)
	killOnce       sync.Once
	done           chan struct{}
}

func (c *proxyConn) kill() {
	c.killOnce.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// upstream reads the client's commands, notes them, applies command-side
// faults and forwards the rest to the server.
func (c *proxyConn) upstream() {
	defer c.p.wg.Done()
	defer close(c.pending)
	r := bufio.NewReader(c.client)
	user := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// The client hung up (after QUIT, or giving up): the server
			// sees the same.
			c.kill()
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		verb = strings.ToUpper(verb)
		if verb == "USER" {
			user = arg
		}
		rule := c.p.match(user, verb)
		pc := pendingCmd{verb: verb, arg: arg, rule: rule}
		if c.unanswered.Add(1) > 1 {
			c.p.mu.Lock()
			c.p.pipelined++
			c.p.mu.Unlock()
		}
		if rule != nil {
			switch rule.Action {
			case faultDrop:
				c.p.mu.Lock()
				c.p.downUntil = time.Now().Add(rule.Dur)
				c.p.mu.Unlock()
				rule.markStarted()
				c.kill()
				rule.markEnded()
				return
			case faultERR, faultGarbage:
				pc.synthetic = true
				c.pending <- pc
				continue
			case faultEdit:
				newArg, reply := rule.Edit(arg)
				if reply != "" {
					pc.synthetic = true
					pc.reply = reply
					c.pending <- pc
					continue
				}
				line = verb + " " + newArg + "\r\n"
				pc.rule = nil
			}
		}
		c.pending <- pc
		if _, err := c.server.Write([]byte(line)); err != nil {
			c.kill()
			return
		}
	}
}

// downstream forwards the greeting, then one reply per pending command,
// applying reply-side faults.
func (c *proxyConn) downstream() {
	defer c.p.wg.Done()
	defer c.kill()
	sr := bufio.NewReaderSize(c.server, 64<<10)
	c.cw = bufio.NewWriterSize(c.client, 64<<10)
	greeting, err := sr.ReadBytes('\n')
	if err != nil {
		return
	}
	if _, err := c.client.Write(greeting); err != nil {
		return
	}
	for pc := range c.pending {
		if pc.synthetic {
			reply := pc.rule.Reply
			if pc.reply != "" {
				reply = pc.reply
			}
			if reply == "" && pc.rule.Action == faultERR {
				reply = "-ERR fault injected by the test proxy"
			}
			if pc.rule.Action == faultGarbage {
				reply = garbageReply
			}
			pc.rule.markStarted()
			_, err := c.client.Write([]byte(reply + "\r\n"))
			c.unanswered.Add(-1)
			pc.rule.markEnded()
			if err != nil {
				return
			}
			continue
		}
		w := &faultWriter{c: c, rule: pc.rule}
		status, err := sr.ReadBytes('\n')
		if err != nil {
			return
		}
		if err := w.write(status); err != nil {
			return
		}
		if !pop3MultiLine(pc.verb, pc.arg) || !bytes.HasPrefix(status, []byte("+OK")) {
			if err := w.flush(); err != nil {
				return
			}
		}
		if bytes.HasPrefix(status, []byte("+OK")) && pop3MultiLine(pc.verb, pc.arg) {
			for {
				line, err := sr.ReadBytes('\n')
				if err != nil {
					return
				}
				if err := w.write(line); err != nil {
					return
				}
				if string(line) == ".\r\n" {
					break
				}
			}
			if err := w.flush(); err != nil {
				return
			}
		}
		c.unanswered.Add(-1)
		w.finish()
	}
}

func pop3MultiLine(verb, arg string) bool {
	switch verb {
	case "CAPA", "RETR", "TOP":
		return true
	case "LIST", "UIDL":
		return arg == ""
	}
	return false
}

// faultWriter writes one reply to the client, applying rule's reply-side
// fault (cut, stall, trickle).
type faultWriter struct {
	c       *proxyConn
	rule    *faultRule
	written int
	begun   bool
}

var errFaultCut = errors.New("cut by the fault proxy")

func (w *faultWriter) write(b []byte) error {
	r := w.rule
	if r == nil {
		if _, err := w.c.cw.Write(b); err != nil {
			return err
		}
		return w.c.pace(len(b))
	}
	if !w.begun {
		w.begun = true
		r.markStarted()
		if r.Action == faultStall {
			select {
			case <-time.After(r.Dur):
			case <-w.c.p.quit:
			}
			r.markEnded()
		}
	}
	switch r.Action {
	case faultCut:
		if w.written+len(b) >= r.Bytes {
			w.c.client.Write(b[:r.Bytes-w.written])
			r.markEnded()
			w.c.kill()
			return errFaultCut
		}
	case faultTrickle:
		for i := range b {
			if _, err := w.c.client.Write(b[i : i+1]); err != nil {
				return err
			}
			w.written++
			select {
			case <-time.After(r.Dur):
			case <-w.c.done:
				return errFaultCut
			}
		}
		return nil
	}
	n, err := w.c.client.Write(b)
	w.written += n
	return err
}

// flush sends what is buffered for the client.
func (w *faultWriter) flush() error { return w.c.cw.Flush() }

// pace flushes and sleeps as the proxy's rate limit requires after n more
// bytes.
func (c *proxyConn) pace(n int) error {
	c.p.mu.Lock()
	rate := c.p.rate
	c.p.mu.Unlock()
	c.unpaced += n
	if c.unpaced < 32<<10 {
		return nil
	}
	if err := c.cw.Flush(); err != nil {
		return err
	}
	if rate > 0 {
		d := time.Duration(c.unpaced) * time.Second / time.Duration(rate)
		select {
		case <-time.After(d):
		case <-c.done:
		}
	}
	c.unpaced = 0
	return nil
}

func (w *faultWriter) finish() {
	if w.rule != nil {
		w.rule.markEnded()
	}
}

// ---------------------------------------------------------------------------
// Fault scenarios.

// policyShort names a delete policy in user names.
var policyShort = map[string]string{"after_sync": "sync", "keep": "keep"}

// faultCase is one POP3 user whose sessions meet one fault.
type faultCase struct {
	name   string     // subtest name
	user   string     // POP3 and IMAP user
	policy string     // after_sync | keep
	rule   *faultRule // its User is set to user
	// extra are more rules for the same user (set up what rule needs).
	extra []*faultRule
	// step matches the error of the failed poll as logged ("retr \d+").
	// Empty: the fault must not fail any poll (trickle).
	step string
}

// faultFamily runs cases against one Dovecot through one faultProxy and
// one bridge with two sources on the proxy: sync-src (after_sync) and
// keep-src (keep), poll_interval 300ms, timeout 1s. Each user has six
// messages, the second about 120 KB. It checks, per case, that the fault
// happened, that the failed poll was logged with user=, source= and the
// step, and that the next polls recovered: every message in INBOX once and
// byte for byte, and the host drained (after_sync) or untouched (keep).
// during, if not nil, runs as soon as the first rule takes effect.
func faultFamily(t *testing.T, cases []faultCase, during func(t *testing.T, e *p3Env, p *faultProxy)) *faultProxy {
	t.Helper()
	var users []dovecottest.User
	for _, c := range cases {
		users = append(users, dovecottest.User{Name: c.user, Password: "pop-" + c.user})
	}
	e := newP3Env(t, dovecottest.Options{Users: users})
	expected := map[string]map[string][]byte{}
	for _, c := range cases {
		expected[c.user] = map[string][]byte{}
		for i := 1; i <= 6; i++ {
			size := 1200 + 300*i
			if i == 2 {
				size = 120 << 10
			}
			m := p3GenMessage(c.user, i, size)
			e.srv.Deliver(c.user, m)
			expected[c.user][p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
		}
	}
	var rules []*faultRule
	for _, c := range cases {
		for _, r := range append([]*faultRule{c.rule}, c.extra...) {
			r.User = c.user
			rules = append(rules, r)
		}
	}
	proxy := newFaultProxy(t, e.srv.Addr(), rules...)
	src := func(name, policy string) p3Source {
		return p3Source{Name: name, Address: proxy.Addr(), DeletePolicy: policy, Timeout: time.Second}
	}
	sourceOf := map[string]string{"after_sync": "sync-src", "keep": "keep-src"}
	var cfgUsers []p3User
	for _, c := range cases {
		cfgUsers = append(cfgUsers, p3StaticUser(t, c.user, "pop-"+c.user, sourceOf[c.policy]))
	}
	conf := e.config([]p3Source{src("sync-src", "after_sync"), src("keep-src", "keep")}, cfgUsers)
	conf.LogLevel = "info"
	p := p3LaunchBridge(t, conf.write(t), e.imap, e.admin, e.logs)
	defer p.stop()

	if during != nil {
		select {
		case <-rules[0].started:
			during(t, e, proxy)
		case <-time.After(20 * time.Second):
			t.Fatalf("the first fault (%s %s) never took effect", rules[0].Action, rules[0].Cmd)
		}
	}
	// Every fault happens...
	deadline := time.After(20 * time.Second)
	for _, r := range rules {
		select {
		case <-r.ended:
		case <-deadline:
			t.Fatalf("fault %s on %s of %s never fired; commands seen: %v", r.Action, r.Cmd, r.User, proxy.Commands(r.User))
		}
	}
	// ... and the polls after it recover: INBOX complete, host drained
	// (after_sync).
	recovered := map[string]bool{}
	p3WaitFor(t, 20*time.Second, "recovery after the faults", func() (bool, string) {
		var waiting []string
		for _, c := range cases {
			if recovered[c.user] {
				continue
			}
			if ok, state := inboxRecovered(e, c); !ok {
				waiting = append(waiting, c.user+": "+state)
				continue
			}
			recovered[c.user] = true
		}
		return len(waiting) == 0, strings.Join(waiting, "; ")
	})
	// More polls of every user change nothing.
	p3WaitPolls(t, e.admin, 2*len(cases))
	logs := e.logs.String()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, msgs := p3Snapshot(t, e.imap, c.user, p3IMAPPassword, "INBOX")
			p3CheckMessages(t, c.user+"'s INBOX", msgs, expected[c.user])
			host := e.srv.Messages(c.user)
			switch c.policy {
			case "after_sync":
				if len(host) != 0 {
					t.Errorf("after_sync: host still holds %d messages", len(host))
				}
			case "keep":
				if len(host) != 6 {
					t.Errorf("keep: host holds %d messages, want 6", len(host))
				}
				for _, verb := range proxy.Commands(c.user) {
					if verb == "DELE" {
						t.Errorf("keep: the bridge sent DELE")
						break
					}
				}
			}
			for _, r := range append([]*faultRule{c.rule}, c.extra...) {
				if got := proxy.Fired(r); got != 1 {
					t.Errorf("fault %s on %s fired %d times, want 1", r.Action, r.Cmd, got)
				}
			}
			checkPollErrorLogged(t, logs, c.user, sourceOf[c.policy], c.step)
		})
	}
	var pws []string
	for _, c := range cases {
		pws = append(pws, "pop-"+c.user)
	}
	p3CheckNoSecrets(t, e.logs, pws...)
	return proxy
}

// inboxRecovered: c's INBOX holds (at least) its six messages and, with
// after_sync, the host none.
func inboxRecovered(e *p3Env, c faultCase) (bool, string) {
	n := len(e.srv.Messages(c.user))
	if c.policy == "after_sync" && n != 0 {
		return false, fmt.Sprintf("host holds %d", n)
	}
	s, err := p3DialIMAP(e.imap)
	if err != nil {
		return false, err.Error()
	}
	defer s.c.Close()
	if err := s.c.Login(c.user, p3IMAPPassword).Wait(); err != nil {
		return false, "login: " + err.Error()
	}
	st, err := s.c.Select("INBOX", nil).Wait()
	if err != nil {
		return false, "select: " + err.Error()
	}
	s.c.Logout().Wait()
	return st.NumMessages >= 6, fmt.Sprintf("INBOX holds %d, host %d", st.NumMessages, n)
}

// checkPollErrorLogged checks that a failed poll of user at source was
// logged with both attributes and an error naming the step; with step
// empty, that none was.
func checkPollErrorLogged(t *testing.T, logs, user, source, step string) {
	t.Helper()
	var mine []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="sync: poll failed"`) && strings.Contains(line, " user="+user+" ") {
			mine = append(mine, line)
		}
	}
	if step == "" {
		if len(mine) > 0 {
			t.Errorf("polls of %s failed:\n%s", user, strings.Join(mine, "\n"))
		}
		return
	}
	re := regexp.MustCompile(step)
	for _, line := range mine {
		if strings.Contains(line, " source="+source+" ") && re.MatchString(line) {
			t.Logf("logged: %s", line[strings.Index(line, "level="):])
			return
		}
	}
	t.Errorf("no failed poll logged with user=%s source=%s and an error matching %q; failed polls of %s: %d\n%s",
		user, source, step, user, len(mine), strings.Join(mine, "\n"))
}

// The connection is cut in the middle of the reply to the second RETR
// (after 30,000 bytes of a 120 KB message), in the middle of a pipelined
// batch.
func TestFaultCutMidRETR(t *testing.T) {
	t.Parallel()
	var cases []faultCase
	for _, policy := range []string{"after_sync", "keep"} {
		cases = append(cases, faultCase{
			name: policy, user: "cut-" + policyShort[policy], policy: policy,
			rule: &faultRule{Cmd: "RETR", Nth: 2, Action: faultCut, Bytes: 30000},
			step: `fetch: .*pop3: retr 2: .*(EOF|reset|closed)`,
		})
	}
	proxy := faultFamily(t, cases, nil)
	// The bridge pipelines RETR (Dovecot offers PIPELINING); the proxy
	// matched each reply to its command.
	if proxy.Pipelined() == 0 {
		t.Errorf("no command was pipelined: the cut did not meet a pipelined batch")
	}
}

// The host stops sending in the middle of a session for longer than the
// source's timeout (1s): the poll gives up, the next one recovers, and
// IMAP serves LOGIN and SELECT of the same user while the poll is stuck.
func TestFaultStall(t *testing.T) {
	t.Parallel()
	const stall = 3 * time.Second
	cases := []faultCase{
		{name: "retr/after_sync", user: "stall-retr-sync", policy: "after_sync",
			rule: &faultRule{Cmd: "RETR", Nth: 3, Action: faultStall, Dur: stall},
			step: `fetch: pop3: retr 3: .*i/o timeout`},
		{name: "retr/keep", user: "stall-retr-keep", policy: "keep",
			rule: &faultRule{Cmd: "RETR", Nth: 3, Action: faultStall, Dur: stall},
			step: `fetch: pop3: retr 3: .*i/o timeout`},
		{name: "list/after_sync", user: "stall-list-sync", policy: "after_sync",
			rule: &faultRule{Cmd: "LIST", Action: faultStall, Dur: stall},
			step: `list: pop3: list: .*i/o timeout`},
		{name: "quit/after_sync", user: "stall-quit-sync", policy: "after_sync",
			rule: &faultRule{Cmd: "QUIT", Action: faultStall, Dur: stall},
			step: `close: .*pop3: quit: .*i/o timeout`},
	}
	faultFamily(t, cases, func(t *testing.T, e *p3Env, p *faultProxy) {
		// The first rule has just started stalling a RETR of
		// stall-retr-sync: its poll is blocked until the 1s timeout.
		imapDuringOutage(t, e, "stall-retr-sync", cases[0].rule, 2)
	})
}

// imapDuringOutage logs in as user and selects INBOX while the host is
// out (a stall or a restart), and checks that this succeeds at once:
// before rule's stall has ended, if rule is not nil, and with at most
// maxExists messages stored so far.
func imapDuringOutage(t *testing.T, e *p3Env, user string, rule *faultRule, maxExists uint32) {
	t.Helper()
	start := time.Now()
	s := p3LoginIMAP(t, e.imap, user, p3IMAPPassword)
	sel, err := s.c.Select("INBOX", nil).Wait()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("SELECT while the host is out: %v", err)
	}
	if rule != nil {
		select {
		case <-rule.ended:
			t.Errorf("LOGIN+SELECT took %v: not done before the %v stall ended", took, rule.Dur)
		default:
		}
	}
	if sel.NumMessages > maxExists {
		t.Errorf("SELECT while the host is out: %d EXISTS, want at most %d", sel.NumMessages, maxExists)
	}
	s.c.Logout().Wait()
	s.c.Close()
	t.Logf("LOGIN+SELECT while the host is out: %v, %d EXISTS", took.Round(time.Millisecond), sel.NumMessages)
}

// A reply trickles in one byte at a time, 1ms apart (about 2s for the
// first message, longer than the 1s timeout): the timeout bounds silence,
// not a slow transfer, so nothing fails and the message is intact.
func TestFaultTrickle(t *testing.T) {
	t.Parallel()
	var cases []faultCase
	for _, policy := range []string{"after_sync", "keep"} {
		cases = append(cases, faultCase{
			name: policy, user: "trickle-" + policyShort[policy], policy: policy,
			rule: &faultRule{Cmd: "RETR", Nth: 1, Action: faultTrickle, Dur: time.Millisecond},
		})
	}
	faultFamily(t, cases, nil)
}

// The server drops the session in the middle (at the first DELE for
// after_sync, at the second RETR for keep) and refuses connections for a
// second, as a restarting server does.
func TestFaultDropMidSession(t *testing.T) {
	t.Parallel()
	cases := []faultCase{
		{name: "retr/keep", user: "drop-retr-keep", policy: "keep",
			rule: &faultRule{Cmd: "RETR", Nth: 2, Action: faultDrop, Dur: time.Second},
			step: `fetch: pop3: retr \d+: .*(EOF|reset|closed|broken pipe)`},
		{name: "dele/after_sync", user: "drop-dele-sync", policy: "after_sync",
			rule: &faultRule{Cmd: "DELE", Action: faultDrop, Dur: time.Second},
			step: `delete: pop3 source \\"sync-src\\": delete: pop3: dele \d+: .*(EOF|reset|closed|broken pipe)`},
	}
	proxy := faultFamily(t, cases, func(t *testing.T, e *p3Env, p *faultProxy) {
		// The host is "restarting" for a second: IMAP serves on.
		imapDuringOutage(t, e, "drop-retr-keep", nil, 1)
	})
	if proxy.Refused() == 0 {
		t.Errorf("no poll met the restarting server (no connection refused)")
	}
}

// Every command the bridge sends is answered once with -ERR.
func TestFaultERRReply(t *testing.T) {
	t.Parallel()
	faultFamily(t, replacedCases("err", faultERR), nil)
}

// Every command the bridge sends is answered once with a line that is no
// POP3 reply.
func TestFaultGarbageReply(t *testing.T) {
	t.Parallel()
	faultFamily(t, replacedCases("junk", faultGarbage), nil)
}

// replacedCases: one user per command and policy whose first such command
// gets a reply made up by the proxy. DELE only for after_sync (keep never
// sends it). STAT opens every poll's listing (STAT, then UIDL).
func replacedCases(prefix string, action faultAction) []faultCase {
	what := map[faultAction]string{faultERR: `server replied -ERR fault injected`, faultGarbage: `malformed`}[action]
	steps := map[string]string{
		"USER": `open: pop3 source \\"[a-z]+-src\\": login as \\"[^"\\]+\\" \(USER/PASS\): .*pop3: user: ` + what,
		"PASS": `open: pop3 source \\"[a-z]+-src\\": login as \\"[^"\\]+\\" \(USER/PASS\): .*pop3: pass: ` + what,
		"STAT": `list: .*pop3: stat: ` + what,
		"UIDL": `list: .*pop3: uidl: ` + what,
		"LIST": `list: .*pop3: list: ` + what,
		"RETR": `fetch: pop3: retr 1: ` + what,
		"DELE": `delete: .*pop3: dele \d+: ` + what,
		"QUIT": `close: .*pop3: quit: ` + what,
	}
	var cases []faultCase
	for _, cmd := range []string{"USER", "PASS", "STAT", "UIDL", "LIST", "RETR", "DELE", "QUIT"} {
		for _, policy := range []string{"after_sync", "keep"} {
			if cmd == "DELE" && policy == "keep" {
				continue
			}
			lc := strings.ToLower(cmd)
			c := faultCase{
				name: lc + "/" + policy, user: prefix + "-" + lc + "-" + policyShort[policy], policy: policy,
				rule: &faultRule{Cmd: cmd, Action: action},
				step: steps[cmd],
			}
			if cmd == "UIDL" && policy == "after_sync" {
				// With after_sync the host holds only unknown mail
				// after a good poll. Make the first poll store all
				// six but fail to delete them (its QUIT refused), so
				// the UIDL fault meets messages the bridge already has.
				c.rule.Nth = 2
				c.extra = []*faultRule{{Cmd: "QUIT", Action: faultERR}}
			}
			cases = append(cases, c)
		}
	}
	return cases
}

// AllCommands returns the verbs sent in every session, whoever the user.
func (p *faultProxy) AllCommands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, verbs := range p.commands {
		out = append(out, verbs...)
	}
	return out
}

// ---------------------------------------------------------------------------
// TLS faults.

// silentTLSProxy forwards TCP connections to target byte for byte, except
// while it is silent: then it accepts a connection, reads and drops what
// the client sends (a TLS ClientHello) and never answers, until the client
// gives up. That is a TLS server whose handshake never completes, which a
// real Dovecot cannot be made to be on cue.
type silentTLSProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	silent   bool
	unheard  int    // connections accepted while silent
	hello    []byte // the first bytes a client sent to a silent proxy
	forwards int    // connections forwarded
	conns    map[net.Conn]bool
	closed   bool
	wg       sync.WaitGroup
}

func newSilentTLSProxy(t *testing.T, target string) *silentTLSProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silentTLSProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *silentTLSProxy) Addr() string { return p.ln.Addr().String() }

func (p *silentTLSProxy) setSilent(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = on
}

// stats returns the connections met while silent, the first bytes one of
// them sent, and the connections forwarded.
func (p *silentTLSProxy) stats() (unheard int, hello []byte, forwards int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unheard, append([]byte(nil), p.hello...), p.forwards
}

// track registers c so that close can end it; false if closing.
func (p *silentTLSProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *silentTLSProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *silentTLSProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			continue
		}
		p.mu.Lock()
		silent := p.silent
		if silent {
			p.unheard++
		} else {
			p.forwards++
		}
		p.mu.Unlock()
		p.wg.Add(1)
		if silent {
			go func() {
				defer p.wg.Done()
				defer client.Close()
				buf := make([]byte, 4096)
				for first := true; ; first = false {
					n, err := client.Read(buf)
					if first && n > 0 {
						p.mu.Lock()
						if p.hello == nil {
							p.hello = append([]byte(nil), buf[:n]...)
						}
						p.mu.Unlock()
					}
					if err != nil {
						return
					}
				}
			}()
			continue
		}
		go func() {
			defer p.wg.Done()
			defer client.Close()
			server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil || !p.track(server) {
				return
			}
			defer server.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(server, client)
				server.Close()
				close(done)
			}()
			io.Copy(client, server)
			client.Close()
			<-done
		}()
	}
}

// The POP3 host (implicit TLS) accepts connections but never answers the
// ClientHello. Every poll gives up after the source's timeout with an error
// that says the TLS handshake timed out; IMAP serves on meanwhile; once the
// host answers again the mail arrives, once and byte for byte, and
// after_sync drains the host.
func TestFaultTLSHandshakeNeverCompletes(t *testing.T) {
	t.Parallel()
	const popPW = "pop-Hello-52"
	e := newP3Env(t, dovecottest.Options{TLS: true, Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	expected := map[string][]byte{}
	for i := 1; i <= 3; i++ {
		m := p3GenMessage("tlsstall", i, 2000+i*500)
		e.srv.Deliver("alice", m)
		expected[p3MessageID(m)] = dovecottest.ExpectedPOP3(m)
	}
	proxy := newSilentTLSProxy(t, e.srv.TLSAddr())
	proxy.setSilent(true)
	conf := e.config([]p3Source{{Name: "legacy", Address: proxy.Addr(), TLS: "implicit", SkipVerify: true,
		Timeout: time.Second, DeletePolicy: "after_sync"}}, []p3User{p3StaticUser(t, "alice", popPW, "legacy")})
	conf.LogLevel = "info"
	p := p3LaunchBridge(t, conf.write(t), e.imap, e.admin, e.logs)
	defer p.stop()

	p3WaitFor(t, 20*time.Second, "two polls failed on the silent TLS host", func() (bool, string) {
		n := p3MetricSum(e.admin, "imapbridge_source_polls_total", `source="legacy"`, `result="error"`)
		return n >= 2, fmt.Sprintf("%v failed polls", n)
	})
	unheard, hello, _ := proxy.stats()
	if unheard < 2 {
		t.Errorf("the silent host met %d connections, want at least 2", unheard)
	}
	// A TLS handshake record (0x16) of type ClientHello (1): the bridge
	// started TLS and waited for an answer that never came.
	if len(hello) < 6 || hello[0] != 0x16 || hello[5] != 1 {
		t.Errorf("the first bytes sent to the silent host are no TLS ClientHello: % x", hello[:min(len(hello), 8)])
	}
	// IMAP serves while the host is stuck.
	imapDuringOutage(t, e, "alice", nil, 0)
	if got := p3MetricSum(e.admin, "imapbridge_source_polls_total", `source="legacy"`, `result="success"`); got != 0 {
		t.Errorf("%v successful polls while the host never completed a handshake", got)
	}
	checkPollErrorLogged(t, e.logs.String(), "alice", "legacy", `open: .*tls handshake: .*(i/o timeout|deadline exceeded)`)
	if n := len(e.srv.Messages("alice")); n != 3 {
		t.Errorf("the host holds %d messages during the fault, want 3", n)
	}

	proxy.setSilent(false)
	_, msgs := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", 3, 20*time.Second)
	p3CheckMessages(t, "INBOX after the handshake fault", msgs, expected)
	p3WaitFor(t, 15*time.Second, "after_sync drains the host", func() (bool, string) {
		n := len(e.srv.Messages("alice"))
		return n == 0, fmt.Sprintf("host holds %d", n)
	})
	if _, _, fw := proxy.stats(); fw == 0 {
		t.Errorf("no connection was forwarded after the fault ended")
	}
	p3CheckNoSecrets(t, e.logs, popPW, p3IMAPPassword)
}

// tls: starttls against a POP3 host that offers no STLS fails closed: no
// credential is ever sent (neither the static source password nor a
// passthrough user's IMAP password), the poll fails with an error that says
// why, a passthrough LOGIN is answered NO [UNAVAILABLE] (the password was
// not refused), and IMAP serves on.
func TestFaultStartTLSNotOfferedFailsClosed(t *testing.T) {
	t.Parallel()
	const alicePOP, bobPOP = "pop-NoSTLS-31", "pop-NoSTLS-bob-8"
	// No TLS: Dovecot offers no STLS.
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: alicePOP}, {Name: "bob", Password: bobPOP}}})
	e.srv.Deliver("alice", p3GenMessage("nostls", 1, 1500))
	proxy := newFaultProxy(t, e.srv.Addr())
	conf := e.config([]p3Source{
		{Name: "static-src", Address: proxy.Addr(), TLS: "starttls", Timeout: 2 * time.Second},
		{Name: "pass-src", Address: proxy.Addr(), TLS: "starttls", Auth: "passthrough", Timeout: 2 * time.Second},
	}, []p3User{p3StaticUser(t, "alice", alicePOP, "static-src"), {Name: "bob", Sources: []string{"pass-src"}}})
	conf.LogLevel = "debug"
	p := p3LaunchBridge(t, conf.write(t), e.imap, e.admin, e.logs)
	defer p.stop()

	p3WaitFor(t, 20*time.Second, "two polls of alice failed", func() (bool, string) {
		n := p3MetricSum(e.admin, "imapbridge_source_polls_total", `source="static-src"`, `result="error"`)
		return n >= 2, fmt.Sprintf("%v failed polls", n)
	})
	err := p3LoginError(e.imap, "bob", bobPOP)
	var ierr *imap.Error
	if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeUnavailable {
		t.Errorf("passthrough LOGIN through a host without STLS: %v, want NO [UNAVAILABLE]", err)
	}
	imapDuringOutage(t, e, "alice", nil, 0)

	verbs := proxy.AllCommands()
	for _, v := range verbs {
		switch v {
		case "USER", "PASS", "APOP", "AUTH":
			t.Errorf("the bridge sent %s to a host that offered no STLS (tls: starttls must fail closed); commands: %v", v, verbs)
		}
	}
	if !slices.Contains(verbs, "CAPA") {
		t.Errorf("the bridge never asked for CAPA: %v", verbs)
	}
	logs := e.logs.String()
	checkPollErrorLogged(t, logs, "alice", "static-src", `tls is \\"starttls\\" but the server does not offer STLS.*refusing to log in without TLS`)
	if !strings.Contains(logs, "refusing to log in without TLS") {
		t.Errorf("the passthrough login's failure was not logged with the reason")
	}
	if n := p3MetricSum(e.admin, "imapbridge_source_messages_fetched_total"); n != 0 {
		t.Errorf("%v messages fetched without TLS", n)
	}
	p3CheckNoSecrets(t, e.logs, alicePOP, bobPOP, p3IMAPPassword)
}
