//go:build linux

package imapfront_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/imapfront"
)

// The load test: many sessions on one account, most of them idling, some
// busy, while the source delivers. Every session keeps its own sequence
// number → UID map and its own idea of each message's flags, built only
// from what the server tells it; at the end each must equal what a fresh
// SELECT shows.
//
// The default run is small (it is in `go test`); IMAPBRIDGE_LOAD=full runs
// 1,000 idle and 50 active sessions (`make load`), and IMAPBRIDGE_LOAD_IDLE
// / IMAPBRIDGE_LOAD_ACTIVE set the counts directly.

type loadSize struct {
	idle, active int
	ops          int // commands per active session
	deliveries   int // messages the source delivers during the run
	budget       time.Duration
}

func loadSizeFromEnv(t *testing.T) loadSize {
	s := loadSize{idle: 100, active: 10, ops: 30, deliveries: 15, budget: 60 * time.Second}
	if os.Getenv("IMAPBRIDGE_LOAD") == "full" {
		s = loadSize{idle: 1000, active: 50, ops: 60, deliveries: 40, budget: 60 * time.Second}
	}
	for _, v := range []struct {
		env string
		n   *int
	}{{"IMAPBRIDGE_LOAD_IDLE", &s.idle}, {"IMAPBRIDGE_LOAD_ACTIVE", &s.active}} {
		if e := os.Getenv(v.env); e != "" {
			n, err := strconv.Atoi(e)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive number", v.env, e)
			}
			*v.n = n
		}
	}
	return s
}

// raiseNoFile makes room for both ends of every connection.
func raiseNoFile(t *testing.T, need uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		t.Fatalf("RLIMIT_NOFILE hard limit %d is below the %d descriptors the load needs (raise it with ulimit -Hn)", lim.Max, need)
	}
	old := lim
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit %d: %v", need, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// memSample is the process's memory at one moment.
type memSample struct {
	heapInuse, stackInuse, rss uint64
}

func sampleMem(gc bool) memSample {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, rss: readRSS()}
}

// readRSS is VmRSS from /proc/self/status, in bytes (0 if unreadable).
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

func perConn(after, before uint64, n int) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / float64(n)
}

// loadConn is a raw IMAP client that tracks its selected mailbox.
type loadConn struct {
	name string
	conn net.Conn
	r    *bufio.Reader
	tag  int
	ids  *msgIDs

	uids  []uint32            // sequence number - 1 → UID; 0 while unknown
	flags map[uint32][]string // UID → flags (sorted, without \Recent)

	// failed is set once a command failed: the session's state is then
	// unknown and it is left out of the final checks (the failure is
	// already reported).
	failed bool
}

var (
	reUID   = regexp.MustCompile(`[( ]UID (\d+)`)
	reFlags = regexp.MustCompile(`[( ]FLAGS \(([^)]*)\)`)
	reMsgID = regexp.MustCompile(`(?i)Message-ID: (<[^>]*>)`)
)

// msgIDs is what the sessions learnt about which message has which UID:
// one UID is one message, whichever session asks.
type msgIDs struct{ m sync.Map }

func (ids *msgIDs) check(uid uint32, id string) error {
	if prev, loaded := ids.m.LoadOrStore(uid, id); loaded && prev.(string) != id {
		return fmt.Errorf("UID %d is %s here but %s elsewhere", uid, id, prev)
	}
	return nil
}

func dialLoad(ctx context.Context, addr, name string, ids *msgIDs) (*loadConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: dial: %w", name, err)
	}
	c := &loadConn{name: name, conn: conn, r: bufio.NewReaderSize(conn, 1024), ids: ids, flags: map[uint32][]string{}}
	l, _, err := c.read()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.HasPrefix(l, "* OK ") {
		conn.Close()
		return nil, fmt.Errorf("%s: greeting %q", name, l)
	}
	return c, nil
}

// read returns one response with its literals taken out (the line keeps
// the {n} marker) and handed back separately.
func (c *loadConn) read() (string, [][]byte, error) {
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	var lits [][]byte
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", nil, fmt.Errorf("%s: read: %w (so far %q)", c.name, err, b.String()+l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		n, ok := literalSize(l)
		if !ok {
			return b.String(), lits, nil
		}
		buf := make([]byte, n)
		if _, err := ioReadFull(c.r, buf); err != nil {
			return "", nil, fmt.Errorf("%s: read literal: %w", c.name, err)
		}
		lits = append(lits, buf)
	}
}

func (c *loadConn) send(s string) error {
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write([]byte(s + "\r\n")); err != nil {
		return fmt.Errorf("%s: write %q: %w", c.name, s, err)
	}
	return nil
}

// cmd sends a command and reads up to its tagged OK, applying every
// untagged response to the model. Anything but OK is a protocol error.
func (c *loadConn) cmd(s string) ([]string, error) {
	c.tag++
	tag := "t" + strconv.Itoa(c.tag)
	if err := c.send(tag + " " + s); err != nil {
		return nil, err
	}
	return c.until(tag, s)
}

func (c *loadConn) until(tag, what string) ([]string, error) {
	var untagged []string
	for {
		l, lits, err := c.read()
		if err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return nil, fmt.Errorf("%s: %s: %s", c.name, what, rest)
			}
			return untagged, nil
		}
		if err := c.apply(l, lits); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", c.name, what, err)
		}
		untagged = append(untagged, l)
	}
}

// apply folds one untagged response into the model.
func (c *loadConn) apply(line string, lits [][]byte) error {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "*" {
		if strings.HasPrefix(line, "+") {
			return nil
		}
		return fmt.Errorf("unexpected response %q", line)
	}
	switch strings.ToUpper(f[1]) {
	case "NO", "BAD", "BYE":
		return fmt.Errorf("server says %q", line)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || len(f) < 3 {
		return nil // * OK [...], * FLAGS, * SEARCH, * CAPABILITY …
	}
	switch strings.ToUpper(f[2]) {
	case "EXISTS":
		if n < len(c.uids) {
			return fmt.Errorf("EXISTS %d shrinks %d without EXPUNGE", n, len(c.uids))
		}
		for len(c.uids) < n {
			c.uids = append(c.uids, 0)
		}
	case "EXPUNGE":
		if n < 1 || n > len(c.uids) {
			return fmt.Errorf("EXPUNGE %d out of range 1..%d", n, len(c.uids))
		}
		delete(c.flags, c.uids[n-1])
		c.uids = slices.Delete(c.uids, n-1, n)
	case "FETCH":
		if n < 1 || n > len(c.uids) {
			return fmt.Errorf("FETCH %d out of range 1..%d: %q", n, len(c.uids), line)
		}
		m := reUID.FindStringSubmatch(line)
		if m == nil {
			return fmt.Errorf("FETCH without UID: %q", line)
		}
		u, _ := strconv.ParseUint(m[1], 10, 32)
		uid := uint32(u)
		switch c.uids[n-1] {
		case 0:
			if i := slices.Index(c.uids, uid); i >= 0 {
				return fmt.Errorf("FETCH %d says UID %d, which is at %d: %q", n, uid, i+1, line)
			}
			c.uids[n-1] = uid
		case uid:
		default:
			return fmt.Errorf("FETCH %d says UID %d, model has %d: %q", n, uid, c.uids[n-1], line)
		}
		if m := reFlags.FindStringSubmatch(line); m != nil {
			c.flags[uid] = normFlags(m[1])
		}
		for _, lit := range lits {
			if m := reMsgID.FindSubmatch(lit); m != nil {
				if err := c.ids.check(uid, string(m[1])); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// normFlags sorts a flag list and drops \Recent, which is per session.
func normFlags(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// idle starts IDLE and returns the tag whose completion ends it.
func (c *loadConn) idle() (string, error) {
	c.tag++
	tag := "t" + strconv.Itoa(c.tag)
	if err := c.send(tag + " IDLE"); err != nil {
		return "", err
	}
	for {
		l, lits, err := c.read()
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, "+") {
			return tag, nil
		}
		if err := c.apply(l, lits); err != nil {
			return "", fmt.Errorf("%s: IDLE: %w", c.name, err)
		}
	}
}

// open logs in, selects INBOX and learns every UID.
func (c *loadConn) open() error {
	if _, err := c.cmd("LOGIN alice " + password); err != nil {
		return err
	}
	c.uids, c.flags = nil, map[uint32][]string{}
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		return err
	}
	if len(c.uids) > 0 {
		if _, err := c.cmd("FETCH 1:* (UID FLAGS)"); err != nil {
			return err
		}
	}
	return nil
}

// mailboxView is a session's final picture, or the fresh SELECT's.
type mailboxView struct {
	uids  []uint32
	flags map[uint32][]string
}

// compare checks what the session knows against want: its message count
// and every UID and flag list it has learnt. It returns how many of the
// UIDs it knew before asking.
func (c *loadConn) compare(want mailboxView) (int, error) {
	if len(c.uids) != len(want.uids) {
		return 0, fmt.Errorf("%s: has %d messages, a fresh SELECT %d", c.name, len(c.uids), len(want.uids))
	}
	known := 0
	for i, uid := range c.uids {
		if uid == 0 {
			continue
		}
		known++
		if uid != want.uids[i] {
			return known, fmt.Errorf("%s: message %d is UID %d, a fresh SELECT says %d", c.name, i+1, uid, want.uids[i])
		}
		if got, ok := c.flags[uid]; ok && !slices.Equal(got, want.flags[uid]) {
			return known, fmt.Errorf("%s: UID %d has flags %q, the server %q", c.name, uid, got, want.flags[uid])
		}
	}
	return known, nil
}

// verify compares, then fetches everything this session does not know and
// compares again: now every position must be filled and equal.
func (c *loadConn) verify(want mailboxView) (int, error) {
	known, err := c.compare(want)
	if err != nil {
		return known, err
	}
	if len(c.uids) > 0 {
		if _, err := c.cmd("FETCH 1:* (UID FLAGS)"); err != nil {
			return known, err
		}
	}
	if _, err := c.compare(want); err != nil {
		return known, err
	}
	if !slices.Equal(c.uids, want.uids) {
		return known, fmt.Errorf("%s: UIDs %v, a fresh SELECT %v", c.name, c.uids, want.uids)
	}
	return known, nil
}

// heapSides is the in-use heap split by who allocated it.
type heapSides struct{ client, server uint64 }

// heapBySide sums the in-use heap of the memory profile: allocations with
// a frame of the load test's clients on their stack (the test function,
// whose goroutines run the clients, dialLoad, loadConn) are the clients',
// all others the server's (its accept loop and connection goroutines run
// go-imap and imapfront code). Exact while runtime.MemProfileRate is 1.
func heapBySide() heapSides {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]runtime.MemProfileRecord, n+n/4+64)
	}
	var h heapSides
	for i := range recs {
		r := &recs[i]
		inUse := uint64(r.InUseBytes())
		if inUse == 0 {
			continue
		}
		client := false
		frames := runtime.CallersFrames(r.Stack())
		for {
			fr, more := frames.Next()
			if strings.Contains(fr.Function, "imapfront_test.TestLoadManySessionsOneAccount") || strings.Contains(fr.Function, "imapfront_test.(*loadConn)") || strings.Contains(fr.Function, "imapfront_test.dialLoad") {
				client = true
				break
			}
			if !more {
				break
			}
		}
		if client {
			h.client += inUse
		} else {
			h.server += inUse
		}
	}
	return h
}

// errLogWriter turns each line the server logs at ERROR into a failure.
type errLogWriter struct{ errs *errList }

func (w *errLogWriter) Write(p []byte) (int, error) {
	w.errs.add(fmt.Errorf("server logged: %s", strings.TrimSpace(string(p))))
	return len(p), nil
}

// errList gathers the errors of many goroutines.
type errList struct {
	mu   sync.Mutex
	errs []error
}

func (l *errList) add(err error) {
	if err != nil {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
}

func (l *errList) report(t *testing.T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, err := range l.errs {
		if i == 20 {
			t.Errorf("… and %d more", len(l.errs)-20)
			break
		}
		t.Error(err)
	}
}

// baselineConnCost measures n bare TCP connections, each with a reading
// goroutine and a small buffer at both ends: the floor any server pays.
func baselineConnCost(t *testing.T, n int) memSample {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	hold := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufio.NewReaderSize(c, 1024).ReadString('\n')
		}()
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for i := 0; i < n; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hold(c)
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	before := sampleMem(true)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("baseline dial: %v", err)
		}
		hold(c)
	}
	<-accepted
	after := sampleMem(true)
	return memSample{
		heapInuse:  uint64(perConn(after.heapInuse, before.heapInuse, n)),
		stackInuse: uint64(perConn(after.stackInuse, before.stackInuse, n)),
		rss:        uint64(perConn(after.rss, before.rss, n)),
	}
}

// TestLoadManySessionsOneAccount: idle sessions (SELECT, learn every UID,
// IDLE) and active ones (FETCH, STORE, SEARCH, IDLE, now and then an
// EXPUNGE) on one account while the source delivers. No command may fail,
// no response contradict a session's model, the server log no error; at
// the end every session's UIDs and flags equal a fresh SELECT's, first
// as it knew them, then after FETCH 1:*. Prints memory per idle
// connection against a bare-TCP baseline.
func TestLoadManySessionsOneAccount(t *testing.T) {
	size := loadSizeFromEnv(t)
	raiseNoFile(t, uint64(2*(size.idle+size.active)+256))
	start := time.Now()

	base := baselineConnCost(t, size.idle)

	var errs errList
	// The server's own error log is part of the verdict: an internal
	// error behind a NO is a failure even if the client copes.
	serverLog := slog.New(slog.NewTextHandler(&errLogWriter{errs: &errs}, &slog.HandlerOptions{Level: slog.LevelError}))
	e := newEnv(t, withServer(func(o *imapfront.Options) {
		o.MaxConnections = 0
		o.Logger = serverLog
	}))
	for i := 1; i <= 30; i++ {
		e.deliver("alice", simpleMsg(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), size.budget)
	defer cancel()
	ids := &msgIDs{}

	// The idle sessions: select, learn, IDLE; a goroutine each applies
	// what is pushed until the IDLE ends.
	// Every allocation of the idle sessions' setup is recorded, so the
	// heap can be split between the clients and the server.
	oldRate := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	memBefore := sampleMem(true)
	sidesBefore := heapBySide()
	idlers := make([]*loadConn, size.idle)
	idleTags := make([]string, size.idle)
	var opened sync.WaitGroup
	next := atomic.Int64{}
	for w := 0; w < 16; w++ {
		opened.Add(1)
		go func() {
			defer opened.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= size.idle || ctx.Err() != nil {
					return
				}
				c, err := dialLoad(ctx, e.addr, fmt.Sprintf("idle-%d", i), ids)
				if err == nil {
					err = c.open()
				}
				var tag string
				if err == nil {
					tag, err = c.idle()
				}
				if err != nil {
					errs.add(err)
					return
				}
				idlers[i], idleTags[i] = c, tag
			}
		}()
	}
	opened.Wait()
	for _, c := range idlers {
		if c != nil {
			t.Cleanup(func() { c.conn.Close() })
		}
	}
	if len(errs.errs) > 0 {
		errs.report(t)
		t.FailNow()
	}
	memIdle := sampleMem(true)
	sidesIdle := heapBySide()
	runtime.MemProfileRate = oldRate
	e.metrics.mu.Lock()
	idleAtPeak := e.metrics.idle
	e.metrics.mu.Unlock()
	setupTook := time.Since(start)

	idleDone := make([]chan error, size.idle)
	for i, c := range idlers {
		idleDone[i] = make(chan error, 1)
		go func() { _, err := c.until(idleTags[i], "IDLE"); idleDone[i] <- err }()
	}

	// Peak heap while everything runs.
	var peak atomic.Uint64
	sampleStop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if m := sampleMem(false); m.heapInuse > peak.Load() {
				peak.Store(m.heapInuse)
			}
			select {
			case <-tick.C:
			case <-sampleStop:
				return
			}
		}
	}()

	// The source delivers while the active sessions work.
	var work sync.WaitGroup
	work.Add(1)
	go func() {
		defer work.Done()
		u, err := e.b.User(ctx, "alice")
		if err != nil {
			errs.add(err)
			return
		}
		feed := bridge.Feed{Source: e.src, Account: bridge.Account{User: "alice"}}
		for i := 0; i < size.deliveries && ctx.Err() == nil; i++ {
			e.src.Deliver("alice", []byte(simpleMsg(1000+i)), time.Now())
			if _, err := e.b.Poll(ctx, u, feed); err != nil {
				errs.add(fmt.Errorf("poll %d: %w", i, err))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	actives := make([]*loadConn, size.active)
	var opsDone atomic.Int64
	for a := range actives {
		work.Add(1)
		go func() {
			defer work.Done()
			c, err := dialLoad(ctx, e.addr, fmt.Sprintf("active-%d", a), ids)
			if err != nil {
				errs.add(err)
				return
			}
			actives[a] = c
			if err := c.open(); err != nil {
				c.failed = true
				errs.add(err)
				return
			}
			rng := rand.New(rand.NewPCG(uint64(a), 7))
			for i := 0; i < size.ops && ctx.Err() == nil; i++ {
				if err := c.randomOp(rng); err != nil {
					c.failed = true
					errs.add(fmt.Errorf("op %d: %w", i, err))
					return
				}
				opsDone.Add(1)
			}
		}()
	}
	work.Wait()
	close(sampleStop)
	<-sampled
	loadTook := time.Since(start) - setupTook
	if ctx.Err() != nil {
		t.Errorf("the load did not finish within %v (%d of %d operations done)", size.budget, opsDone.Load(), size.active*size.ops)
	}
	for _, c := range actives {
		if c != nil {
			t.Cleanup(func() { c.conn.Close() })
		}
	}

	// Everything has settled: a fresh SELECT is the truth. The checks get
	// their own time budget.
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fresh, err := dialLoad(ctx, e.addr, "fresh", ids)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.conn.Close()
	if err := fresh.open(); err != nil {
		t.Fatal(err)
	}
	want := mailboxView{uids: fresh.uids, flags: fresh.flags}
	if slices.Contains(want.uids, 0) {
		t.Fatalf("the fresh session did not learn every UID: %v", want.uids)
	}

	var knownBefore, positions atomic.Int64
	check := func(c *loadConn, stopIdle func() error) {
		if c == nil || c.failed {
			return
		}
		if stopIdle != nil {
			if err := stopIdle(); err != nil {
				errs.add(err)
				return
			}
		}
		if _, err := c.cmd("NOOP"); err != nil {
			errs.add(err)
			return
		}
		known, err := c.verify(want)
		knownBefore.Add(int64(known))
		positions.Add(int64(len(want.uids)))
		errs.add(err)
	}
	var checks sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, c := range idlers {
		checks.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; checks.Done() }()
			check(c, func() error {
				if err := c.send("DONE"); err != nil {
					return err
				}
				select {
				case err := <-idleDone[i]:
					return err
				case <-ctx.Done():
					return fmt.Errorf("%s: IDLE did not end after DONE: %w", c.name, ctx.Err())
				}
			})
		}()
	}
	for _, c := range actives {
		checks.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; checks.Done() }()
			check(c, nil)
		}()
	}
	checks.Wait()
	errs.report(t)

	if len(want.uids) < 30 {
		t.Errorf("the mailbox ends with %d messages; the run proves little", len(want.uids))
	}
	e.metrics.mu.Lock()
	idleAfter := e.metrics.idle
	e.metrics.mu.Unlock()
	if idleAtPeak != size.idle || idleAfter != 0 {
		t.Errorf("the server counted %d idling sessions with all idle sessions started (want %d) and %d after DONE (want 0)", idleAtPeak, size.idle, idleAfter)
	}
	heapPer := perConn(memIdle.heapInuse, memBefore.heapInuse, size.idle)
	stackPer := perConn(memIdle.stackInuse, memBefore.stackInuse, size.idle)
	rssPer := perConn(memIdle.rss, memBefore.rss, size.idle)
	ratio := func(v float64, b uint64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1fx", v/float64(b))
	}
	t.Logf("load: %d idle + %d active sessions on one account, %d deliveries, %d operations; setup %v, load %v, total %v",
		size.idle, size.active, size.deliveries, opsDone.Load(), setupTook.Round(time.Millisecond), loadTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	t.Logf("load: final mailbox %d messages; sessions knew %d of %d positions before the final FETCH",
		len(want.uids), knownBefore.Load(), positions.Load())
	t.Logf("load: per idle connection (client and server ends, one process): heap in-use %.1f KiB, stacks %.1f KiB, RSS %.1f KiB",
		heapPer/1024, stackPer/1024, rssPer/1024)
	serverPer := perConn(sidesIdle.server, sidesBefore.server, size.idle)
	t.Logf("load: heap per idle connection by side (memory profile): server %.1f KiB, test client %.1f KiB; server / one end of the bare pair: %s",
		serverPer/1024, perConn(sidesIdle.client, sidesBefore.client, size.idle)/1024, ratio(serverPer, base.heapInuse/2))
	t.Logf("load: baseline bare TCP pair with a reader each: heap %.1f KiB, stacks %.1f KiB, RSS %.1f KiB; IMAP idle / baseline: heap %s, stacks %s, RSS %s",
		float64(base.heapInuse)/1024, float64(base.stackInuse)/1024, float64(base.rss)/1024,
		ratio(heapPer, base.heapInuse), ratio(stackPer, base.stackInuse), ratio(rssPer, base.rss))
	t.Logf("load: peak heap in-use during the load %.1f MiB (%.1f KiB per session)",
		float64(peak.Load())/(1<<20), float64(peak.Load())/1024/float64(size.idle+size.active))
}

// randomOp is one of the active session's commands: FETCH, STORE, SEARCH,
// IDLE, and now and then an EXPUNGE.
func (c *loadConn) randomOp(rng *rand.Rand) error {
	n := len(c.uids)
	if n == 0 {
		_, err := c.cmd("NOOP")
		return err
	}
	pickUID := func() uint32 {
		for range 5 {
			if u := c.uids[rng.IntN(n)]; u != 0 {
				return u
			}
		}
		return c.uids[n-1]
	}
	switch op := rng.IntN(20); {
	case op < 4:
		lo := 1 + rng.IntN(n)
		_, err := c.cmd(fmt.Sprintf("FETCH %d:* (UID FLAGS)", lo))
		return err
	case op < 7:
		_, err := c.cmd(fmt.Sprintf("FETCH %d (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", 1+rng.IntN(n)))
		return err
	case op < 13:
		uid := pickUID()
		if uid == 0 {
			_, err := c.cmd("FETCH 1:* (UID FLAGS)")
			return err
		}
		flag := []string{`\Seen`, `\Flagged`, `\Answered`, "$Label1", "$Label2"}[rng.IntN(5)]
		sign := "+-"[rng.IntN(2)]
		_, err := c.cmd(fmt.Sprintf("UID STORE %d %cFLAGS (%s)", uid, sign, flag))
		return err
	case op < 16:
		query := []string{"SEARCH UNSEEN", "SEARCH FLAGGED", "UID SEARCH KEYWORD $Label1", "SEARCH SUBJECT note", "UID SEARCH ALL"}[rng.IntN(5)]
		untagged, err := c.cmd(query)
		if err != nil {
			return err
		}
		return c.checkSearch(query, untagged)
	case op < 19:
		tag, err := c.idle()
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(10+rng.IntN(60)) * time.Millisecond)
		if err := c.send("DONE"); err != nil {
			return err
		}
		_, err = c.until(tag, "IDLE")
		return err
	default:
		uid := pickUID()
		if uid == 0 || n < 40 || rng.IntN(2) == 0 { // keep the mailbox from draining
			_, err := c.cmd("NOOP")
			return err
		}
		if _, err := c.cmd(fmt.Sprintf(`UID STORE %d +FLAGS (\Deleted)`, uid)); err != nil {
			return err
		}
		_, err := c.cmd(fmt.Sprintf("UID EXPUNGE %d", uid))
		return err
	}
}

// checkSearch: sequence numbers must be ones the client knows of, UIDs
// ones that exist or existed (never above the highest seen).
func (c *loadConn) checkSearch(query string, untagged []string) error {
	for _, l := range untagged {
		rest, ok := strings.CutPrefix(l, "* SEARCH")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			v, err := strconv.Atoi(f)
			if err != nil || v < 1 {
				return fmt.Errorf("%s: %s: bad number %q in %q", c.name, query, f, l)
			}
			if !strings.HasPrefix(query, "UID ") && v > len(c.uids) {
				return fmt.Errorf("%s: %s: sequence number %d beyond the %d known: %q", c.name, query, v, len(c.uids), l)
			}
		}
		return nil
	}
	return fmt.Errorf("%s: %s: no SEARCH response in %q", c.name, query, untagged)
}
