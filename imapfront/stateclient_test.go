package imapfront_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The state-checking stress client: N sessions of one user change and read
// two mailboxes at once (APPEND, STORE of flags and keywords, EXPUNGE,
// COPY, MOVE, FETCH, SEARCH), and observers IDLE in them. Each session
// keeps a model of its view, built only from what the server told it, and
// every response is checked against it:
//
//   - EXISTS never goes below the messages the session knows (they leave
//     only by EXPUNGE);
//   - EXPUNGE names a sequence number that exists, and never comes during
//     FETCH, STORE or SEARCH (RFC 3501 section 7.4.1);
//   - a FETCH names a sequence number that exists, and the UID there is
//     the one already seen there, ascending with the sequence numbers;
//   - a FETCH shows no keyword that a FLAGS response has not named
//     (section 7.2.6), and every FLAGS is followed by its PERMANENTFLAGS;
//   - a UID's ENVELOPE and RFC822.SIZE never change (one table for all
//     sessions);
//   - SEARCH names only sequence numbers that exist;
//   - no command is answered BAD (the session sends only numbers its model
//     says exist) and the connection never drops.
//
// At the end every session compares its model with the mailbox's UIDs.

// stressConfig is one run.
type stressConfig struct {
	sessions  int // changing sessions (each also reads)
	observers int // sessions that only IDLE
	duration  time.Duration
	seed      uint64
}

// stressResult counts a run.
type stressResult struct {
	ops       atomic.Int64
	no        atomic.Int64 // NO answers: an expunged message, the keyword cap
	pushed    atomic.Int64 // responses the observers got in IDLE
	byCommand sync.Map     // string → *atomic.Int64

	mu              sync.Mutex
	inconsistencies []string
}

func (r *stressResult) fail(session string, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.inconsistencies) < 50 {
		r.inconsistencies = append(r.inconsistencies, session+": "+fmt.Sprintf(format, args...))
	}
}

func (r *stressResult) count(cmd string) {
	v, _ := r.byCommand.LoadOrStore(cmd, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// stressFacts are what every session must agree on: a UID's ENVELOPE and
// size in a mailbox.
type stressFacts struct {
	mu sync.Mutex
	m  map[string]string // "mailbox/uid" → "size|envelope"
}

func (f *stressFacts) check(mailbox string, uid uint32, item, value string) error {
	key := mailbox + "/" + strconv.FormatUint(uint64(uid), 10) + "/" + item
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.m[key]; ok && old != value {
		return fmt.Errorf("UID %d in %s: %s was %s, now %s", uid, mailbox, item, old, value)
	}
	f.m[key] = value
	return nil
}

// stressSession is one connection and its model.
type stressSession struct {
	name    string
	conn    net.Conn
	r       *bufio.Reader
	tag     int
	mailbox string
	other   string
	uids    []uint32 // by sequence number; 0: not told yet
	flags   *flagsModel
	facts   *stressFacts
	res     *stressResult
	// inCmd is the command being answered, for the EXPUNGE rule.
	inCmd string
	// searchHits are the numbers of the last SEARCH.
	searchHits []uint32
	log        []string // the last lines, for a failure's context
	tap        *tapConn
}

// tapConn keeps the last bytes read and written, for a failure's context.
type tapConn struct {
	net.Conn
	mu      sync.Mutex
	in, out []byte
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in = lastBytes(append(c.in, p[:n]...))
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.out = lastBytes(append(c.out, p[:n]...))
	c.mu.Unlock()
	return n, err
}

func lastBytes(b []byte) []byte {
	if len(b) > 600 {
		return b[len(b)-600:]
	}
	return b
}

func (c *tapConn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("last bytes read: %q\nlast bytes written: %q", c.in, c.out)
}

var errStressBroken = errors.New("session broken")

func dialStress(addr, name string, res *stressResult, facts *stressFacts) (*stressSession, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &tapConn{Conn: conn}
	s := &stressSession{name: name, conn: tc, tap: tc, r: bufio.NewReaderSize(tc, 64<<10), res: res, facts: facts}
	if l, err := s.readLine(); err != nil || !strings.HasPrefix(l, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("greeting %q: %v", l, err)
	}
	if _, err := s.cmd("LOGIN alice " + password); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// readLine reads one response line, literals inlined.
func (s *stressSession) readLine() (string, error) {
	s.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var b strings.Builder
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			return b.String() + l, err
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		if !strings.HasSuffix(l, "}") {
			break
		}
		i := strings.LastIndexByte(l, '{')
		n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
		if i < 0 || err != nil {
			break
		}
		buf := make([]byte, n)
		if _, err := ioReadFull(s.r, buf); err != nil {
			return b.String(), err
		}
		b.Write(buf)
	}
	line := b.String()
	if len(s.log) >= 40 {
		s.log = s.log[1:]
	}
	s.log = append(s.log, line)
	return line, nil
}

// cmd sends a command and reads to its completion, checking every untagged
// response. It returns the completion (without the tag). A BAD, or a
// broken connection, is an error.
func (s *stressSession) cmd(c string) (string, error) {
	s.tag++
	tag := "t" + strconv.Itoa(s.tag)
	s.inCmd = strings.Fields(c)[0]
	if s.inCmd == "UID" {
		s.inCmd += " " + strings.Fields(c)[1]
	}
	s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(s.conn, "%s %s\r\n", tag, c); err != nil {
		return "", fmt.Errorf("%w: write: %v", errStressBroken, err)
	}
	return s.readTo(tag)
}

func (s *stressSession) readTo(tag string) (string, error) {
	s.searchHits = s.searchHits[:0]
	for {
		l, err := s.readLine()
		if err != nil {
			return "", fmt.Errorf("%w: read during %s: %v", errStressBroken, s.inCmd, err)
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if strings.HasPrefix(rest, "BAD") {
				s.res.fail(s.name, "%s answered %q\n\tlast lines: %s", s.inCmd, rest, strings.Join(s.log, "\n\t"))
			}
			if strings.HasPrefix(rest, "NO") {
				s.res.no.Add(1)
			}
			return rest, nil
		}
		if strings.HasPrefix(l, "+") {
			continue // a continuation (APPEND's literal is sent non-synchronizing)
		}
		if s.inCmd == "IDLE" {
			s.res.pushed.Add(1)
		}
		if err := s.apply(l); err != nil {
			s.res.fail(s.name, "%v\n\tduring %s; last lines: %s", err, s.inCmd, strings.Join(s.log, "\n\t"))
		}
	}
}

// apply checks one untagged response against the model and updates it.
func (s *stressSession) apply(l string) error {
	if err := s.flags.apply(l); err != nil {
		return err
	}
	f := strings.Fields(l)
	if len(f) < 2 || f[0] != "*" {
		return nil
	}
	if f[1] == "SEARCH" {
		for _, v := range f[2:] {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("SEARCH result %q", l)
			}
			if s.inCmd == "SEARCH" && (n < 1 || int(n) > len(s.uids)) {
				return fmt.Errorf("SEARCH names message %d of %d", n, len(s.uids))
			}
			s.searchHits = append(s.searchHits, uint32(n))
		}
		return nil
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || len(f) < 3 {
		return nil
	}
	switch f[2] {
	case "EXISTS":
		if n < len(s.uids) {
			return fmt.Errorf("EXISTS %d goes back from %d", n, len(s.uids))
		}
		for len(s.uids) < n {
			s.uids = append(s.uids, 0)
		}
	case "EXPUNGE":
		if s.inCmd == "FETCH" || s.inCmd == "STORE" || s.inCmd == "SEARCH" {
			return fmt.Errorf("EXPUNGE %d during %s", n, s.inCmd)
		}
		if n < 1 || n > len(s.uids) {
			return fmt.Errorf("EXPUNGE %d of %d messages", n, len(s.uids))
		}
		s.uids = append(s.uids[:n-1], s.uids[n:]...)
	case "FETCH":
		return s.applyFetch(n, l)
	}
	return nil
}

func (s *stressSession) applyFetch(n int, l string) error {
	if n < 1 || n > len(s.uids) {
		return fmt.Errorf("FETCH %d of %d messages", n, len(s.uids))
	}
	items := fetchItems(l)
	if v, ok := items["UID"]; ok {
		u, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("FETCH UID %q", v)
		}
		uid := uint32(u)
		switch have := s.uids[n-1]; {
		case have == 0:
			for i := n - 2; i >= 0; i-- {
				if s.uids[i] != 0 {
					if s.uids[i] >= uid {
						return fmt.Errorf("UID %d at %d after UID %d at %d", uid, n, s.uids[i], i+1)
					}
					break
				}
			}
			for i := n; i < len(s.uids); i++ {
				if s.uids[i] != 0 {
					if s.uids[i] <= uid {
						return fmt.Errorf("UID %d at %d before UID %d at %d", uid, n, s.uids[i], i+1)
					}
					break
				}
			}
			s.uids[n-1] = uid
		case have != uid:
			return fmt.Errorf("FETCH %d says UID %d, it was UID %d", n, uid, have)
		}
	}
	uid := s.uids[n-1]
	for _, item := range []string{"RFC822.SIZE", "ENVELOPE"} {
		if v, ok := items[item]; ok {
			if uid == 0 {
				return fmt.Errorf("FETCH %d: %s without a known UID", n, item)
			}
			if err := s.facts.check(s.mailbox, uid, item, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetchItems splits "* n FETCH (NAME value …)" into its items; a value is
// an atom or a parenthesised list (quoted strings respected).
func fetchItems(l string) map[string]string {
	i := strings.Index(l, " FETCH (")
	if i < 0 {
		return nil
	}
	s := l[i+len(" FETCH (") : len(l)-1]
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			break
		}
		name := s[:sp]
		s = s[sp+1:]
		end := 0
		if strings.HasPrefix(s, "(") {
			depth, inQ := 0, false
			for end = 0; end < len(s); end++ {
				c := s[end]
				if inQ {
					if c == '\\' {
						end++
					} else if c == '"' {
						inQ = false
					}
					continue
				}
				if c == '"' {
					inQ = true
				} else if c == '(' {
					depth++
				} else if c == ')' {
					depth--
					if depth == 0 {
						end++
						break
					}
				}
			}
		} else {
			end = strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
		}
		out[name] = s[:min(end, len(s))]
		s = s[min(end, len(s)):]
	}
	return out
}

func (s *stressSession) selectBox(mailbox, other string) error {
	s.mailbox, s.other = mailbox, other
	s.uids = nil
	s.flags = newFlagsModel(nil)
	st, err := s.cmd("SELECT " + mailbox)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(st, "OK") {
		return fmt.Errorf("SELECT %s: %s", mailbox, st)
	}
	return nil
}

// seqSet picks a sequence set among the messages the session knows.
func (s *stressSession) seqSet(rng *rand.Rand) (string, bool) {
	n := len(s.uids)
	if n == 0 {
		return "", false
	}
	a := rng.IntN(n) + 1
	switch rng.IntN(4) {
	case 0:
		b := min(n, a+rng.IntN(5))
		return fmt.Sprintf("%d:%d", a, b), true
	case 1:
		return fmt.Sprintf("%d,%d", a, rng.IntN(n)+1), true
	}
	return strconv.Itoa(a), true
}

var stressKeywords = func() []string {
	k := make([]string, 12)
	for i := range k {
		k[i] = "$K" + strconv.Itoa(i)
	}
	return k
}()

func stressMessage(rng *rand.Rand, id string) string {
	pad := strings.Repeat("x", rng.IntN(2000))
	return "From: Stress <stress@example.org>\r\nTo: group: a@example.org, b@example.org;\r\n" +
		"Subject: stress " + id + "\r\nMessage-ID: <" + id + "@example.org>\r\n\r\nbody " + pad + "\r\n"
}

// step runs one random operation.
func (s *stressSession) step(rng *rand.Rand, id int) error {
	var c string
	switch op := rng.IntN(20); {
	case op < 3: // APPEND, here or to the other mailbox, with keywords
		box := s.mailbox
		if rng.IntN(3) == 0 {
			box = s.other
		}
		flags := []string{stressKeywords[rng.IntN(len(stressKeywords))]}
		if rng.IntN(2) == 0 {
			flags = append(flags, `\Seen`)
		}
		msg := stressMessage(rng, fmt.Sprintf("%s-%d", s.name, id))
		c = fmt.Sprintf("APPEND %s (%s) {%d+}\r\n%s", box, strings.Join(flags, " "), len(msg), msg)
	case op < 7: // STORE flags and keywords
		set, ok := s.seqSet(rng)
		if !ok {
			return nil
		}
		flag := []string{`\Seen`, `\Flagged`, `\Answered`, stressKeywords[rng.IntN(len(stressKeywords))], stressKeywords[rng.IntN(len(stressKeywords))]}[rng.IntN(5)]
		op := []string{"+FLAGS", "-FLAGS", "+FLAGS.SILENT"}[rng.IntN(3)]
		prefix := ""
		if rng.IntN(3) == 0 {
			prefix = "UID "
			set = "1:*"
			if u := s.knownUID(rng); u != 0 {
				set = strconv.FormatUint(uint64(u), 10)
			}
		}
		c = fmt.Sprintf("%sSTORE %s %s (%s)", prefix, set, op, flag)
	case op < 9: // EXPUNGE
		set, ok := s.seqSet(rng)
		if !ok {
			return nil
		}
		if st, err := s.cmd("STORE " + set + ` +FLAGS.SILENT (\Deleted)`); err != nil || !strings.HasPrefix(st, "OK") {
			return err
		}
		s.res.ops.Add(1)
		c = "EXPUNGE"
		if u := s.knownUID(rng); u != 0 && rng.IntN(2) == 0 {
			c = "UID EXPUNGE " + strconv.FormatUint(uint64(u), 10)
		}
	case op < 11: // COPY
		set, ok := s.seqSet(rng)
		if !ok {
			return nil
		}
		c = "COPY " + set + " " + []string{s.other, s.mailbox}[rng.IntN(2)]
	case op < 13: // MOVE
		set, ok := s.seqSet(rng)
		if !ok {
			return nil
		}
		c = "MOVE " + set + " " + s.other
	case op < 17: // FETCH
		set, ok := s.seqSet(rng)
		if !ok {
			set = "1:*"
			if len(s.uids) == 0 {
				c = "NOOP"
				break
			}
		}
		if rng.IntN(3) == 0 {
			set = "1:*"
		}
		c = "FETCH " + set + " (UID FLAGS RFC822.SIZE ENVELOPE)"
		if rng.IntN(4) == 0 {
			c = "UID FETCH 1:* (FLAGS RFC822.SIZE)"
		}
	case op < 19: // SEARCH
		c = []string{"SEARCH ALL", "SEARCH KEYWORD " + stressKeywords[rng.IntN(len(stressKeywords))], "SEARCH UNSEEN", "UID SEARCH FLAGGED", "SEARCH TO b@example.org"}[rng.IntN(5)]
	default:
		c = "NOOP"
	}
	name := strings.Fields(c)[0]
	if name == "UID" {
		name += " " + strings.Fields(c)[1]
	}
	s.res.count(name)
	_, err := s.cmd(c)
	s.res.ops.Add(1)
	return err
}

// knownUID is a UID the session has been told, or 0.
func (s *stressSession) knownUID(rng *rand.Rand) uint32 {
	if len(s.uids) == 0 {
		return 0
	}
	return s.uids[rng.IntN(len(s.uids))]
}

// reconcile: after the load, the session's view (after a NOOP and a FETCH
// of every UID) is the mailbox as stored.
func (s *stressSession) reconcile(want []uint32) {
	if _, err := s.cmd("NOOP"); err != nil {
		s.res.fail(s.name, "final NOOP: %v\n%s", err, s.tap)
		return
	}
	if len(s.uids) > 0 {
		if _, err := s.cmd("FETCH 1:* (UID)"); err != nil {
			s.res.fail(s.name, "final FETCH: %v", err)
			return
		}
	}
	if fmt.Sprint(s.uids) != fmt.Sprint(want) {
		s.res.fail(s.name, "final view of %s: %d messages %v, the store has %d: %v", s.mailbox, len(s.uids), s.uids, len(want), want)
	}
}

// runStress runs a configuration against a fresh environment and returns
// its counts.
func runStress(t *testing.T, cfg stressConfig) *stressResult {
	e := newEnv(t)
	for i := 1; i <= 10; i++ {
		e.deliver("alice", simpleMsg(i))
	}
	res := &stressResult{}
	facts := &stressFacts{m: map[string]string{}}
	boxes := [2]string{"INBOX", "Archive"}

	var sessions []*stressSession
	for i := 0; i < cfg.sessions+cfg.observers; i++ {
		s, err := dialStress(e.addr, fmt.Sprintf("s%d", i), res, facts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.conn.Close()
		if err := s.selectBox(boxes[i%2], boxes[(i+1)%2]); err != nil {
			t.Fatal(err)
		}
		if len(s.uids) > 0 {
			if _, err := s.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)"); err != nil {
				t.Fatal(err)
			}
		}
		sessions = append(sessions, s)
	}
	workers, observers := sessions[:cfg.sessions], sessions[cfg.sessions:]

	// Observers IDLE through the run; each push is checked as it comes.
	var obsWG sync.WaitGroup
	for _, o := range observers {
		o.inCmd = "IDLE"
		if _, err := fmt.Fprintf(o.conn, "idle IDLE\r\n"); err != nil {
			t.Fatal(err)
		}
		if l, err := o.readLine(); err != nil || !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q %v", l, err)
		}
		obsWG.Add(1)
		go func() {
			defer obsWG.Done()
			if _, err := o.readTo("idle"); err != nil {
				res.fail(o.name, "IDLE: %v\n%s", err, o.tap)
			}
		}()
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.seed, uint64(i)))
			for id := 0; ctx.Err() == nil; id++ {
				if err := s.step(rng, id); err != nil {
					res.fail(s.name, "%v\n\tlast lines: %s", err, strings.Join(s.log, "\n\t"))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, o := range observers {
		// A fresh write deadline: the last one was set before IDLE began.
		o.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(o.conn, "DONE\r\n"); err != nil {
			res.fail(o.name, "DONE: %v", err)
		}
	}
	if path := os.Getenv("IMAPFRONT_STRESS_STACKS"); path != "" {
		obsDone := make(chan struct{})
		go func() { obsWG.Wait(); close(obsDone) }()
		select {
		case <-obsDone:
		case <-time.After(5 * time.Second):
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("goroutine").WriteTo(f, 2)
				f.Close()
			}
		}
	}
	obsWG.Wait()

	stored := map[string][]uint32{}
	for _, name := range boxes {
		mb, err := e.user("alice").Mailbox(e.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range mb.UIDs() {
			stored[name] = append(stored[name], uint32(u))
		}
	}
	for _, s := range sessions {
		s.reconcile(stored[s.mailbox])
	}
	var cmds []string
	res.byCommand.Range(func(k, v any) bool {
		cmds = append(cmds, fmt.Sprintf("%s %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	sort.Strings(cmds)
	ops := res.ops.Load()
	t.Logf("stress (seed %d): %d sessions + %d in IDLE for %v: %d operations (%.0f/s), %d answered NO, %d responses pushed in IDLE, %d inconsistencies; INBOX %d, Archive %d messages; %s",
		cfg.seed, cfg.sessions, cfg.observers, elapsed.Round(time.Millisecond), ops, float64(ops)/elapsed.Seconds(), res.no.Load(), res.pushed.Load(), len(res.inconsistencies),
		len(stored["INBOX"]), len(stored["Archive"]), strings.Join(cmds, ", "))
	for _, inc := range res.inconsistencies {
		t.Errorf("inconsistency: %s", inc)
	}
	if ops < int64(cfg.sessions) {
		t.Errorf("only %d operations ran", ops)
	}
	return res
}

// TestStressStateChecking is the short run of the stress client (a few
// seconds); IMAPFRONT_STRESS=full (make stress) runs 5 and 20 sessions for
// 60 s each.
func TestStressStateChecking(t *testing.T) {
	if os.Getenv("IMAPFRONT_STRESS") == "full" {
		for _, n := range []int{5, 20} {
			t.Run(fmt.Sprintf("sessions=%d", n), func(t *testing.T) {
				runStress(t, stressConfig{sessions: n, observers: 2, duration: 60 * time.Second, seed: 1})
			})
		}
		return
	}
	cfg := stressConfig{sessions: 4, observers: 2, duration: 3 * time.Second, seed: uint64(time.Now().UnixNano())}
	// IMAPFRONT_STRESS=SESSIONSxDURATION (e.g. 10x20s) runs one other size.
	if v := os.Getenv("IMAPFRONT_STRESS"); v != "" {
		n, d, _ := strings.Cut(v, "x")
		var err error
		if cfg.sessions, err = strconv.Atoi(n); err != nil {
			t.Fatalf("IMAPFRONT_STRESS=%q: want full or SESSIONSxDURATION", v)
		}
		if cfg.duration, err = time.ParseDuration(d); err != nil {
			t.Fatalf("IMAPFRONT_STRESS=%q: want full or SESSIONSxDURATION", v)
		}
	}
	if v := os.Getenv("IMAPFRONT_STRESS_SEED"); v != "" {
		cfg.seed, _ = strconv.ParseUint(v, 10, 64)
	}
	runStress(t, cfg)
}
