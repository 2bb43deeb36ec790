package imapfront_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/imapfront"
)

// heapSampler records the largest HeapInuse seen while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak atomic.Uint64
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// settledHeap is HeapInuse after a full collection.
func settledHeap() uint64 {
	runtime.GC()
	runtime.GC()
	return heapInuse()
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := heapInuse(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) end() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

// TestJunkHeapBounded streams 200 MB at the server in each way a client
// can try to make it buffer, and checks that the server stops reading
// early and that the heap stays flat.
func TestJunkHeapBounded(t *testing.T) {
	const stream = 200 << 20
	const maxGrowth = 16 << 20
	e := newEnv(t, withServer(func(o *imapfront.Options) { o.AppendLimit = 1 << 20 }))
	e.deliver("alice", simpleMsg(1))

	xs := make([]byte, 64<<10)
	for i := range xs {
		xs[i] = 'x'
	}
	lines := []byte(strings.Repeat(strings.Repeat("junk ", 199)+"junk\r\n", 64))
	binary := make([]byte, 64<<10)
	for i := range binary {
		binary[i] = byte(i*7 + i/256)
	}

	for _, tc := range []struct {
		name   string
		login  bool
		prefix string // sent first, waiting for this response line
		want   string
		head   string
		fill   []byte
		bye    string
	}{
		{name: "long line", login: true, head: "a NOOP ", fill: xs,
			bye: fmt.Sprintf("* BYE Command line too long (limit %d bytes)", imapfront.MaxCommandLength)},
		{name: "1 GB non-synchronizing literal", login: true, head: "b APPEND INBOX {1073741824+}\r\n", fill: lines,
			bye: "* BYE Non-synchronizing literal of 1073741824 bytes refused (LITERAL- allows 4096)"},
		{name: "1 GB literal sent though refused", login: true, prefix: "c APPEND INBOX {1073741824}",
			want: "c NO [TOOBIG] Literals are limited to 1048576 bytes for this command", fill: lines,
			bye: "* BYE Too many invalid commands"},
		{name: "junk lines in IDLE", login: true, prefix: "i IDLE", want: "+ idling", fill: lines,
			bye: "* BYE Too many invalid commands"},
		{name: "binary before login", fill: binary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.raw()
			if tc.login {
				c.login("alice")
				c.ok("SELECT INBOX")
			}
			if tc.prefix != "" {
				c.send(tc.prefix)
				if got := c.line(); got != tc.want {
					t.Fatalf("%s: %q", tc.prefix, got)
				}
			}
			before := settledHeap()
			h := sampleHeap()
			done := make(chan int64, 1)
			go func() { done <- writeAll(c.conn, tc.head, tc.fill, stream) }()
			// Read everything the server says until it closes.
			var said []string
			c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				l, err := c.r.ReadString('\n')
				if l != "" {
					said = append(said, strings.TrimSuffix(l, "\r\n"))
				}
				if err != nil {
					break
				}
			}
			sent := <-done
			peak := h.end()
			after := settledHeap()
			growth := int64(peak) - int64(before)
			t.Logf("sent %d of %d bytes before the server closed; heap in use %d KiB before, peak %+d KiB, after %+d KiB (%d responses)",
				sent, stream, before>>10, growth>>10, (int64(after)-int64(before))>>10, len(said))
			if sent >= stream {
				t.Errorf("the server read all %d bytes", sent)
			}
			if growth > maxGrowth {
				t.Errorf("heap grew by %d bytes while streaming", growth)
			}
			if tc.bye != "" && (len(said) == 0 || !containsLine(said, tc.bye)) {
				t.Errorf("responses %q, want %q", said, tc.bye)
			}
		})
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// raiseFileLimit lifts the soft limit on open files to at least n (up to
// the hard limit) for the rest of the test binary's life.
func raiseFileLimit(t *testing.T, n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	rl.Cur = min(n, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < n {
		t.Fatalf("open files limited to %d, need %d", rl.Cur, n)
	}
}

// TestThousandsOfConnections opens 3,000 connections against
// MaxConnections 1,000: the 2,000 over it get BYE and leave nothing behind
// on the heap, and the 1,000 keep working.
func TestThousandsOfConnections(t *testing.T) {
	const limit, total = 1000, 3000
	raiseFileLimit(t, 2*total+256)
	var lc limitCounts
	e := newEnv(t, withLimitCounts(&lc, func(o *imapfront.Options) { o.MaxConnections = limit }))

	type conn struct {
		c net.Conn
		r *bufio.Reader
	}
	dial := func() (conn, string, error) {
		c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			return conn{}, "", err
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		l, err := r.ReadString('\n')
		return conn{c, r}, strings.TrimSuffix(l, "\r\n"), err
	}
	// parallel runs f(i) for i < n on 16 workers, stopping at the first error.
	parallel := func(n int, f func(i int) error) error {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					if err := f(i); err != nil {
						errs <- err
						next.Store(int64(n))
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}

	kept := make([]conn, limit)
	defer func() {
		for _, k := range kept {
			if k.c != nil {
				k.c.Close()
			}
		}
	}()
	start := time.Now()
	if err := parallel(limit, func(i int) error {
		c, greeting, err := dial()
		kept[i] = c
		if err != nil || !strings.HasPrefix(greeting, "* OK ") {
			return fmt.Errorf("connection %d: %q %v", i, greeting, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	before := settledHeap()
	if err := parallel(total-limit, func(i int) error {
		c, greeting, err := dial()
		if err != nil {
			return fmt.Errorf("connection %d over the limit: %v", i, err)
		}
		defer c.c.Close()
		if greeting != "* BYE Too many connections, try again later" {
			return fmt.Errorf("connection %d over the limit: %q", i, greeting)
		}
		if l, err := c.r.ReadString('\n'); err == nil {
			return fmt.Errorf("connection %d over the limit: then %q", i, l)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The server ends a refused connection's goroutine right after the BYE.
	deadline := time.Now().Add(10 * time.Second)
	for lc.get("max_connections") < total-limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	after := settledHeap()
	perConn := (int64(after) - int64(before)) / (total - limit)
	t.Logf("%d connections in %v; heap in use %d KiB with %d open, %+d bytes per refused connection",
		total, time.Since(start).Round(time.Millisecond), before>>10, limit, perConn)
	if perConn > 512 {
		t.Errorf("heap grew by %d bytes per refused connection", perConn)
	}
	if n := lc.get("max_connections"); n != total-limit {
		t.Errorf("max_connections counted %d times, want %d", n, total-limit)
	}

	if err := parallel(limit, func(i int) error {
		k := kept[i]
		if _, err := fmt.Fprintf(k.c, "n%d NOOP\r\n", i); err != nil {
			return err
		}
		l, err := k.r.ReadString('\n')
		if want := fmt.Sprintf("n%d OK NOOP completed\r\n", i); l != want {
			return fmt.Errorf("connection %d: NOOP: %q %v", i, l, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
