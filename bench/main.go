// Command bench measures the built imapbridge binary from the outside,
// against baselines measured in the same run on the same machine:
// Debian's Dovecot (POP3 over a Maildir as the legacy host; IMAP over the
// same mbox spool, with its mbox driver, for comparison), a bare POP3 RETR
// loop, a raw read of the spool, and the configured poll intervals.
//
// Run it with `make bench` (which builds bin/imapbridge first), or
//
//	go run ./bench -bin bin/imapbridge [-sizes 1000,10000] [-full] [-conns 1000]
//
// It generates, deterministically from -seed, an mbox spool and a POP3
// Maildir of each size under a temporary directory, starts Dovecot and
// imapbridge on 127.0.0.1 with configurations written there, runs every
// measurement several times and prints the medians as a table (also
// written as Markdown to -out). Every process it starts is stopped by PID
// at the end and on Ctrl-C, and the temporary directory is removed.
//
// -full adds the 100,000-message size and 10,000 idle connections.
//
// It drives the built binary from the outside and imports nothing of this
// module but the test harnesses (internal/dovecottest, internal/testtool).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var childMu sync.Mutex

type options struct {
	bin     string
	sizes   []int
	conns   int
	seed    uint64
	reps    int
	out     string
	profile string
	keep    bool
	// skipPOP3 leaves out the POP3 measurements (for quick profiling runs).
	skipPOP3 bool
	// onlyPOP3 stops after the POP3 measurements (the same, the other way).
	onlyPOP3 bool
}

func main() {
	var (
		o       options
		sizes   string
		full    bool
		timeout time.Duration
	)
	flag.StringVar(&o.bin, "bin", "bin/imapbridge", "the imapbridge binary to measure")
	flag.StringVar(&sizes, "sizes", "1000,10000", "message counts of the generated mailboxes, comma-separated")
	flag.BoolVar(&full, "full", false, "add 100000 messages to -sizes and raise -conns to 10000")
	flag.IntVar(&o.conns, "conns", 1000, "idle IMAP connections for the concurrency measurement")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated mail")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of the quick measurements (the slow ones run fewer)")
	flag.StringVar(&o.out, "out", "bench/results.md", "Markdown results file (\"\" for none)")
	flag.StringVar(&o.profile, "profile", "", "directory for CPU profiles of imapbridge during the IMAP measurements (\"\" for none)")
	flag.BoolVar(&o.skipPOP3, "skip-pop3", false, "leave out the POP3 measurements")
	flag.BoolVar(&o.onlyPOP3, "only-pop3", false, "run only the POP3 measurements")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data, configs, logs)")
	flag.DurationVar(&timeout, "timeout", 45*time.Minute, "give up after this long")
	flag.Parse()
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 {
			fmt.Fprintf(os.Stderr, "bench: -sizes: %q is not a message count of at least 10\n", f)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	if full {
		o.sizes = append(o.sizes, 100000)
		if o.conns < 10000 {
			o.conns = 10000
		}
	}
	slices.Sort(o.sizes)
	o.sizes = slices.Compact(o.sizes)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	err := run(ctx, o)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options) (err error) {
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	o.bin, _ = filepath.Abs(o.bin)
	raiseNoFile(o.conns)
	tmp, err := os.MkdirTemp("", "ibbench-")
	if err != nil {
		return err
	}
	// Dovecot's mail processes run as nobody and must reach the homes.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return err
	}
	defer func() {
		stopAll()
		if o.keep {
			logf("kept %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()
	b := &bench{o: o, tmp: tmp, started: time.Now(), load0: loadAvg()}
	if err := b.run(ctx); err != nil {
		return err
	}
	return nil
}

// bench is one run: the data sets, the servers and the rows measured.
type bench struct {
	o       options
	tmp     string
	started time.Time
	load0   string
	sets    map[int]*dataSet
	dc      *dovecot
	rows    []row
	notes   []string
}

func popUser(n int) string  { return "pop" + strconv.Itoa(n) }
func mboxUser(n int) string { return "mbox" + strconv.Itoa(n) }

func (b *bench) spoolDir() string { return filepath.Join(b.tmp, "spool") }

func (b *bench) run(ctx context.Context) error {
	var dusers []dovecotUser
	for _, n := range b.o.sizes {
		dusers = append(dusers, dovecotUser{name: popUser(n)}, dovecotUser{name: mboxUser(n), mbox: true})
	}
	if err := os.MkdirAll(b.spoolDir(), 0o700); err != nil {
		return err
	}
	dcDir := filepath.Join(b.tmp, "dovecot")
	if err := os.MkdirAll(dcDir, 0o711); err != nil {
		return err
	}
	dc, err := newDovecot(dcDir, dusers)
	if err != nil {
		return err
	}
	b.dc = dc

	b.sets = map[int]*dataSet{}
	for _, n := range b.o.sizes {
		t0 := time.Now()
		ds, err := generate(b.o.seed, n, filepath.Join(b.spoolDir(), mboxUser(n)), dc.maildir(popUser(n)))
		if err != nil {
			return err
		}
		if err := dc.freshMbox(mboxUser(n), ds.mbox); err != nil {
			return err
		}
		b.sets[n] = ds
		logf("generated %d messages, %.1f MB, in %v", n, mb(ds.bytes), time.Since(t0).Round(time.Millisecond))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := dc.start(ctx); err != nil {
		return err
	}
	logf("dovecot: pop3 %s imap %s", dc.popAddr, dc.imapAddr)
	// Dovecot indexes a Maildir at its first session; the baselines and
	// imapbridge both meet a warm Dovecot.
	for _, n := range b.o.sizes {
		p, err := dialPOP3(ctx, dc.popAddr, popUser(n), benchPassword)
		if err != nil {
			return err
		}
		lines, _, err := p.multi("UIDL")
		p.quit()
		if err != nil {
			return err
		}
		if lines != n {
			return fmt.Errorf("dovecot: %s has %d messages, want %d", popUser(n), lines, n)
		}
	}
	var all []bridgeUser
	for _, n := range b.o.sizes {
		all = append(all, bridgeUser{popUser(n), "pop"}, bridgeUser{mboxUser(n), "spool"})
	}
	out, err := checkConfig(ctx, b.o.bin, b.tmp, b.bridgeOpts(filepath.Join(b.tmp, "check-data"), all))
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		logf("imapbridge check: %s", strings.TrimSpace(out))
	}

	for _, n := range b.o.sizes {
		if err := b.pop3Section(ctx, n); err != nil {
			return fmt.Errorf("pop3 %d: %w", n, err)
		}
	}
	if b.o.onlyPOP3 {
		return b.report()
	}
	mainData := ""
	for _, n := range b.o.sizes {
		dir, err := b.mboxImportSection(ctx, n)
		if err != nil {
			return fmt.Errorf("mbox import %d: %w", n, err)
		}
		if mainData != "" {
			os.RemoveAll(mainData)
		}
		mainData = dir
	}
	if err := b.mainSection(ctx, mainData); err != nil {
		return err
	}
	return b.report()
}

func (b *bench) bridgeOpts(dataDir string, users []bridgeUser) bridgeOpts {
	return bridgeOpts{
		dataDir:  dataDir,
		spoolDir: b.spoolDir(),
		popAddr:  b.dc.popAddr,
		users:    users,
		maxConns: b.o.conns + 100,
	}
}

// repsFor is the repetitions of a measurement that takes about per-item
// time for n items: the slow ones run fewer times.
func (b *bench) repsFor(n int) int {
	switch {
	case n >= 100000:
		return 1
	case n >= 10000:
		return 3
	}
	return b.o.reps
}

// repeat runs fn reps times, or fewer once budget is spent (at least once),
// and returns the durations fn reported.
func repeat(ctx context.Context, reps int, budget time.Duration, fn func(i int) (time.Duration, error)) ([]time.Duration, error) {
	var ds []time.Duration
	t0 := time.Now()
	for i := 0; i < reps; i++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d, err := fn(i)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
		if time.Since(t0) > budget {
			break
		}
	}
	return ds, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// raiseNoFile raises RLIMIT_NOFILE for the bench and, by inheritance, for
// imapbridge: each idle connection is a descriptor in each of them. The
// hard limit is raised too when allowed (root with CAP_SYS_RESOURCE);
// otherwise the soft limit goes up to the hard one.
func raiseNoFile(conns int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(conns + 4096)
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return
		}
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		slog.Warn("could not raise RLIMIT_NOFILE", "err", err)
	}
	if lim.Cur < want {
		slog.Warn("RLIMIT_NOFILE is below what the idle connections need", "limit", lim.Cur, "want", want)
	}
}

// readAll reads path to the end (the "cat > /dev/null" baseline).
func readAll(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.CopyBuffer(io.Discard, f, make([]byte, 128<<10))
}

func runOutput(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// machine describes the machine for the report.
func machine() string {
	cpu := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseFloat(f[0], 64)
					mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s RAM, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
