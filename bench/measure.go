package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// slowBudget bounds the repetitions of the first syncs and imports (at
// least one run each): the whole default run must stay under 10 minutes.
const slowBudget = 60 * time.Second

// ingestLimit is how long a first sync or import of n messages may take
// before the bench gives up: 10 minutes, or 50 messages a second.
func ingestLimit(n int) time.Duration {
	return max(10*time.Minute, time.Duration(n/50)*time.Second)
}

// pop3Section: first sync of the maildrop vs a bare RETR loop; then, on the
// last synced instance, the no-new-mail poll vs one UIDL session, and the
// delivery → EXISTS latency vs the poll interval.
func (b *bench) pop3Section(ctx context.Context, n int) error {
	if b.o.skipPOP3 {
		return nil
	}
	ds := b.sets[n]
	user := popUser(n)
	reps := b.repsFor(n)

	base, err := repeat(ctx, reps, 2*time.Minute, func(int) (time.Duration, error) {
		t0 := time.Now()
		p, err := dialPOP3(ctx, b.dc.popAddr, user, benchPassword)
		if err != nil {
			return 0, err
		}
		defer p.quit()
		for i := 1; i <= n; i++ {
			if _, _, err := p.multi(fmt.Sprintf("RETR %d", i)); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	})
	if err != nil {
		return err
	}
	logf("pop3 %d: RETR loop %v", n, median(base))

	var (
		last    *bridgeProc
		lastDir string
	)
	syncs, err := repeat(ctx, reps, slowBudget, func(i int) (time.Duration, error) {
		// Only one imapbridge polls the maildrop at a time: the previous
		// run's (kept for the poll measurements below) stops first.
		if last != nil {
			last.stop()
			last = nil
			os.RemoveAll(lastDir)
		}
		dir := filepath.Join(b.tmp, fmt.Sprintf("bridge-pop%d-%d", n, i))
		lastDir = dir
		// The legacy host's maildrop (generated and indexed on this
		// same filesystem, unlike a real host's) is written out first:
		// otherwise the store's first syncfs pays for flushing it.
		syscall.Sync()
		p, err := startBridge(ctx, b.o.bin, dir, b.bridgeOpts(filepath.Join(dir, "data"), []bridgeUser{{user, "pop"}}))
		if err != nil {
			return 0, err
		}
		// With -profile, the first run's first sync is profiled (3 s,
		// from as soon as the admin listener answers).
		var prof sync.WaitGroup
		if b.o.profile != "" && i == 0 {
			prof.Go(func() { b.saveProfile(ctx, p, fmt.Sprintf("pop3-first-sync-%d", n), 3) })
		}
		done, err := p.waitSelectable(ctx, user, n, ingestLimit(n))
		prof.Wait()
		if err != nil {
			p.stop()
			return 0, err
		}
		last = p
		return done.Sub(p.started), nil
	})
	if last != nil {
		defer last.stop()
	}
	if err != nil {
		return err
	}
	d := median(syncs)
	logf("pop3 %d: imapbridge first sync %v", n, d)
	// Every message must be SELECTable, not only counted in the store.
	c, err := dialIMAP(ctx, last.imapAddr, user, benchPassword)
	if err != nil {
		return err
	}
	got, err := c.selectBox(ctx, "INBOX")
	c.logout()
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("imapbridge INBOX of %s has %d messages after the first sync, want %d", user, got, n)
	}
	b.add(timeRow(fmt.Sprintf("POP3 first sync, %d msgs", n), d, median(base),
		rate(n, ds.bytes, d), "bare RETR loop, 1 conn", rate(n, ds.bytes, median(base)), 1/0.9, len(syncs), len(base))) // the target: ≥ 0.9× the loop's rate

	// No-new-mail polls, read one by one from the poll duration histogram,
	// each followed by one bare UIDL session (in the second of quiet
	// before the next poll): the two alternate, so that both meet the
	// same machine (the write-back of the first sync is still going on
	// at the start).
	var polls, uidl []time.Duration
	for range b.o.reps {
		d, err := pollDurations(ctx, last, "pop", 1, 20*time.Second)
		if err != nil {
			return err
		}
		polls = append(polls, d...)
		t0 := time.Now()
		p, err := dialPOP3(ctx, b.dc.popAddr, user, benchPassword)
		if err != nil {
			return err
		}
		lines, _, err := p.multi("UIDL")
		p.quit()
		if err == nil && lines != n {
			err = fmt.Errorf("UIDL listed %d, want %d", lines, n)
		}
		if err != nil {
			return err
		}
		uidl = append(uidl, time.Since(t0))
	}
	b.add(timeRow(fmt.Sprintf("POP3 no-new-mail poll, %d msgs", n), median(polls), median(uidl),
		"", "connect+login+UIDL+QUIT", "", 1.2, len(polls), len(uidl)))

	// Delivery at the POP3 host → EXISTS at an IDLE client.
	lat, err := b.newMailLatency(ctx, last, user, b.o.reps, popPoll, func(seq int) error {
		msg, _, _ := genMessage(b.o.seed+1, seq, 1)
		return b.dc.deliver(user, msg)
	}, 1)
	if err != nil {
		return err
	}
	b.add(row{
		name:   fmt.Sprintf("POP3 new mail → EXISTS in IDLE, %d msgs", n),
		bridge: fmtDur(median(lat)), base: fmtDur(popPoll) + " (idle_poll_interval)",
		ratio: ratio(median(lat), popPoll), target: "≤ 1.00×", met: met(ratio(median(lat), popPoll) <= 1),
		runs: fmt.Sprintf("%d", len(lat)),
	})
	return nil
}

// pollDurations waits for want polls of source after now and returns their
// durations, read one at a time from the histogram's sum and count.
func pollDurations(ctx context.Context, p *bridgeProc, source string, want int, limit time.Duration) ([]time.Duration, error) {
	sumKey := fmt.Sprintf(`imapbridge_source_poll_duration_seconds_sum{source="%s"}`, source)
	cntKey := fmt.Sprintf(`imapbridge_source_poll_duration_seconds_count{source="%s"}`, source)
	m, err := p.metrics(ctx)
	if err != nil {
		return nil, err
	}
	sum, cnt := m[sumKey], m[cntKey]
	var out []time.Duration
	deadline := time.Now().Add(limit)
	for len(out) < want && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		m, err := p.metrics(ctx)
		if err != nil {
			return nil, err
		}
		if c := m[cntKey]; c > cnt {
			per := (m[sumKey] - sum) / (c - cnt)
			for k := 0; k < int(c-cnt); k++ {
				out = append(out, time.Duration(per*float64(time.Second)))
			}
			sum, cnt = m[sumKey], c
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no poll of %s within %v", source, limit)
	}
	return out, nil
}

// newMailLatency logs in as user, selects INBOX, enters IDLE and, reps
// times, waits a random part of interval (so deliveries fall at every
// phase of the poll cycle), calls deliver and measures until EXISTS has
// grown by per.
func (b *bench) newMailLatency(ctx context.Context, p *bridgeProc, user string, reps int, interval time.Duration, deliver func(seq int) error, per int) ([]time.Duration, error) {
	c, err := dialIMAP(ctx, p.imapAddr, user, benchPassword)
	if err != nil {
		return nil, err
	}
	defer c.logout()
	have, err := c.selectBox(ctx, "INBOX")
	if err != nil {
		return nil, err
	}
	if err := c.idleStart(ctx, nil); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(b.o.seed, 99))
	var out []time.Duration
	for i := 0; i < reps; i++ {
		time.Sleep(time.Duration(r.Int64N(int64(interval))))
		seq := int(time.Now().UnixNano() % 1e9)
		t0 := time.Now()
		if err := deliver(seq); err != nil {
			return nil, err
		}
		have += per
		wctx, cancel := context.WithTimeout(ctx, 10*interval+30*time.Second)
		at, err := c.waitExists(wctx, have)
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, at.Sub(t0))
	}
	return out, c.idleDone(ctx)
}

// mboxImportSection: first import of the spool vs reading it raw and vs
// Dovecot's first SELECT + FETCH FLAGS with a fresh index. It returns the
// data directory of the last import (kept for the IMAP measurements).
func (b *bench) mboxImportSection(ctx context.Context, n int) (string, error) {
	ds := b.sets[n]
	user := mboxUser(n)
	reps := b.repsFor(n)

	raw, err := repeat(ctx, b.o.reps, time.Minute, func(int) (time.Duration, error) {
		t0 := time.Now()
		got, err := readAll(ds.mbox)
		if err == nil && got < ds.bytes {
			err = fmt.Errorf("read %d bytes of %s, less than its messages", got, ds.mbox)
		}
		return time.Since(t0), err
	})
	if err != nil {
		return "", err
	}

	dfirst, err := repeat(ctx, reps, slowBudget, func(int) (time.Duration, error) {
		if err := b.dc.freshMbox(user, ds.mbox); err != nil {
			return 0, err
		}
		c, err := dialIMAP(ctx, b.dc.imapAddr, user, benchPassword)
		if err != nil {
			return 0, err
		}
		defer c.logout()
		t0 := time.Now()
		if _, err := c.selectBox(ctx, "INBOX"); err != nil {
			return 0, err
		}
		got, err := c.fetchCount(ctx, "UID FETCH 1:* (FLAGS)")
		d := time.Since(t0)
		if err == nil && got != n {
			err = fmt.Errorf("dovecot fetched %d messages, want %d", got, n)
		}
		return d, err
	})
	if err != nil {
		return "", err
	}

	var lastDir string
	imports, err := repeat(ctx, reps, slowBudget, func(i int) (time.Duration, error) {
		dir := filepath.Join(b.tmp, fmt.Sprintf("bridge-mbox%d-%d", n, i))
		p, err := startBridge(ctx, b.o.bin, dir, b.bridgeOpts(filepath.Join(dir, "data"), []bridgeUser{{user, "spool"}}))
		if err != nil {
			return 0, err
		}
		done, err := p.waitSelectable(ctx, user, n, ingestLimit(n))
		p.stop()
		if err != nil {
			return 0, err
		}
		if lastDir != "" {
			os.RemoveAll(lastDir)
		}
		lastDir = dir
		return done.Sub(p.started), nil
	})
	if err != nil {
		return "", err
	}
	d := median(imports)
	logf("mbox %d: import %v, raw read %v, dovecot first open %v", n, d, median(raw), median(dfirst))
	b.add(timeRow(fmt.Sprintf("mbox first import, %d msgs", n), d, median(raw),
		rate(n, ds.bytes, d), "raw read of the spool", rate(n, ds.bytes, median(raw)), 0, len(imports), len(raw)))
	b.add(timeRow(fmt.Sprintf("mbox first import, %d msgs", n), d, median(dfirst),
		rate(n, ds.bytes, d), "Dovecot 1st SELECT+FETCH FLAGS, fresh index", rate(n, ds.bytes, median(dfirst)), 0, len(imports), len(dfirst))) // compared, no target: Dovecot indexes the spool in place, the bridge copies every message durably
	if n == b.o.sizes[0] {
		// The same import while something scrapes /metrics every 10 ms,
		// as an impatient monitoring setup would.
		dir := filepath.Join(b.tmp, fmt.Sprintf("bridge-mbox%d-scraped", n))
		p, err := startBridge(ctx, b.o.bin, dir, b.bridgeOpts(filepath.Join(dir, "data"), []bridgeUser{{user, "spool"}}))
		if err != nil {
			return "", err
		}
		sctx, stopScrape := context.WithCancel(ctx)
		scrapes := 0
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sctx.Err() == nil {
				if _, err := p.metrics(sctx); err == nil {
					scrapes++
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		done, err := p.waitSelectable(ctx, user, n, ingestLimit(n))
		stopScrape()
		wg.Wait()
		p.stop()
		os.RemoveAll(dir)
		if err != nil {
			return "", err
		}
		sd := done.Sub(p.started)
		b.add(timeRow(fmt.Sprintf("mbox first import, %d msgs, /metrics scraped every 10 ms (%d scrapes)", n, scrapes), sd, d,
			rate(n, ds.bytes, sd), "the same, not scraped", "", 1.1, 1, len(imports)))
	}
	return filepath.Join(lastDir, "data"), nil
}

// mainSection runs one imapbridge over every mbox user (on the data
// directory of the last import, so the big spool is already in) for the
// IMAP comparisons with Dovecot, the tail and the idle connections.
func (b *bench) mainSection(ctx context.Context, dataDir string) error {
	var users []bridgeUser
	total := 0
	for _, n := range b.o.sizes {
		users = append(users, bridgeUser{mboxUser(n), "spool"})
		total += n
	}
	p, err := startBridge(ctx, b.o.bin, filepath.Join(b.tmp, "bridge-main"), b.bridgeOpts(dataDir, users))
	if err != nil {
		return err
	}
	defer p.stop()
	if _, err := p.waitMessages(ctx, total, ingestLimit(total)); err != nil {
		return err
	}
	logf("main imapbridge up with %d messages", total)

	for _, n := range b.o.sizes {
		if err := b.imapSection(ctx, p, n); err != nil {
			return fmt.Errorf("imap %d: %w", n, err)
		}
	}
	if err := b.tailSection(ctx, p); err != nil {
		return fmt.Errorf("mbox tail: %w", err)
	}
	if err := b.idleSection(ctx, p, b.o.sizes[0]); err != nil {
		return fmt.Errorf("idle connections: %w", err)
	}
	return nil
}

// server is one side of an IMAP comparison.
type server struct {
	name string
	addr string
}

// timedIMAP runs, reps times on a fresh logged-in connection to srv, setup
// (not timed) and then op (timed).
func timedIMAP(ctx context.Context, srv server, user string, reps int, budget time.Duration, setup, op func(c *imapConn) error) ([]time.Duration, error) {
	return repeat(ctx, reps, budget, func(int) (time.Duration, error) {
		c, err := dialIMAP(ctx, srv.addr, user, benchPassword)
		if err != nil {
			return 0, err
		}
		defer c.logout()
		if setup != nil {
			if err := setup(c); err != nil {
				return 0, err
			}
		}
		t0 := time.Now()
		err = op(c)
		return time.Since(t0), err
	})
}

// clientShapes are the FETCHes mail clients send on opening a folder:
//   - Thunderbird desktop: its default header list, as issue 15 logged it;
//   - K-9 Mail / Thunderbird for Android: thunderbird-android's ImapFolder
//     (the UidFetchCommand test strings);
//   - mutt / neomutt: imap/message.c want_headers (neomutt's list);
//   - Geary: ENVELOPE plus the References header (its BASIC_FETCH_FIELDS);
//   - Outlook and Evolution (whole headers with size, flags, date) and
//     Apple Mail / iOS (a header-field list with size, flags, date): the
//     shapes protocol logs of them commonly show, not checked against a
//     source;
//   - mbsync, and any client resyncing on reconnect: UID FLAGS.
var clientShapes = []struct{ name, cmd, profile string }{
	{"Thunderbird: UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To … Reply-To)])",
		"UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])", "thunderbird"},
	{"K-9 / Thunderbird for Android: UID INTERNALDATE RFC822.SIZE FLAGS + header fields",
		"UID FETCH 1:* (UID INTERNALDATE RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (date subject from content-type to cc bcc reply-to message-id references in-reply-to list-post list-unsubscribe sender X-K9mail-Identity Chat-Version)])", ""},
	{"mutt / neomutt: UID FLAGS INTERNALDATE RFC822.SIZE + header fields",
		"UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SENDER SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION IN-REPLY-TO REPLY-TO LINES LIST-POST LIST-SUBSCRIBE LIST-UNSUBSCRIBE X-LABEL X-ORIGINAL-TO)])", ""},
	{"Apple Mail / iOS: UID FLAGS RFC822.SIZE INTERNALDATE + header fields",
		"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (DATE SUBJECT FROM TO CC MESSAGE-ID IN-REPLY-TO REFERENCES CONTENT-TYPE X-PRIORITY LIST-ID LIST-UNSUBSCRIBE)])", ""},
	{"Outlook / Evolution: BODY.PEEK[HEADER] + RFC822.SIZE FLAGS INTERNALDATE",
		"UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER])", "header"},
	{"Geary: UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE + References",
		"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODY.PEEK[HEADER.FIELDS (REFERENCES)])", ""},
	{"UID FETCH 1:* (UID FLAGS ENVELOPE)", "UID FETCH 1:* (UID FLAGS ENVELOPE)", "envelope"},
	{"mbsync / resync on reconnect: UID FETCH 1:* (UID FLAGS)", "UID FETCH 1:* (UID FLAGS)", ""},
}

// imapSection compares imapbridge and Dovecot on the n-message mailbox:
// warm open, FETCH BODY[] of everything, three SEARCHes.
func (b *bench) imapSection(ctx context.Context, p *bridgeProc, n int) error {
	user := mboxUser(n)
	servers := []server{{"imapbridge", p.imapAddr}, {"dovecot", b.dc.imapAddr}}
	sel := func(c *imapConn) error {
		got, err := c.selectBox(ctx, "INBOX")
		if err == nil && got != n {
			err = fmt.Errorf("SELECT: %d messages, want %d", got, n)
		}
		return err
	}

	// Opening a big mailbox, warm: one open first (Dovecot's index is
	// there from the import section; this one brings caches up).
	const openCmd = "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)"
	open := func(c *imapConn) error {
		if err := sel(c); err != nil {
			return err
		}
		got, err := c.fetchCount(ctx, openCmd)
		if err == nil && got != n {
			err = fmt.Errorf("FETCH: %d responses, want %d", got, n)
		}
		return err
	}
	res := map[string][]time.Duration{}
	for _, s := range servers {
		if _, err := timedIMAP(ctx, s, user, 1, time.Minute, nil, open); err != nil {
			return fmt.Errorf("%s: warm-up open: %w", s.name, err)
		}
		ds, err := timedIMAP(ctx, s, user, b.o.reps, time.Minute, nil, open)
		if err != nil {
			return fmt.Errorf("%s: open: %w", s.name, err)
		}
		res[s.name] = ds
	}
	b.profileIMAP(ctx, p, fmt.Sprintf("open-%d", n), servers[0], user, nil, open)
	b.add(timeRow(fmt.Sprintf("open: SELECT + UID FETCH 1:* (…ENVELOPE BODYSTRUCTURE), %d msgs, warm", n),
		median(res["imapbridge"]), median(res["dovecot"]), "", "Dovecot, index built", "", 1.0, len(res["imapbridge"]), len(res["dovecot"])))

	// What mail clients send when they open a folder (issue 15), each
	// against Dovecot on the same spool, selected first, warm.
	for _, shape := range clientShapes {
		for _, s := range servers {
			if _, err := timedIMAP(ctx, s, user, 1, time.Minute, sel, func(c *imapConn) error {
				_, err := c.fetchCount(ctx, shape.cmd)
				return err
			}); err != nil {
				return fmt.Errorf("%s: warm-up %s: %w", s.name, shape.name, err)
			}
			ds, err := timedIMAP(ctx, s, user, b.o.reps, time.Minute, sel, func(c *imapConn) error {
				got, err := c.fetchCount(ctx, shape.cmd)
				if err == nil && got != n {
					err = fmt.Errorf("%s: %d responses, want %d", shape.name, got, n)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %s: %w", s.name, shape.name, err)
			}
			res[s.name] = ds
		}
		if shape.profile != "" {
			b.profileIMAP(ctx, p, fmt.Sprintf("%s-%d", shape.profile, n), servers[0], user, sel, func(c *imapConn) error {
				_, err := c.fetchCount(ctx, shape.cmd)
				return err
			})
		}
		b.add(timeRow(fmt.Sprintf("%s, %d msgs", shape.name, n),
			median(res["imapbridge"]), median(res["dovecot"]), "", "Dovecot", "", 1.0, len(res["imapbridge"]), len(res["dovecot"])))
	}

	// FETCH BODY[] of every message.
	bodies := map[string]int64{}
	for _, s := range servers {
		ds, err := timedIMAP(ctx, s, user, b.repsFor(n), 2*time.Minute, sel, func(c *imapConn) error {
			c.litBytes = 0
			got, err := c.fetchCount(ctx, "UID FETCH 1:* (BODY.PEEK[])")
			if err == nil && got != n {
				err = fmt.Errorf("FETCH BODY[]: %d responses, want %d", got, n)
			}
			bodies[s.name] = c.litBytes
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: fetch bodies: %w", s.name, err)
		}
		res[s.name] = ds
	}
	if bodies["imapbridge"] != bodies["dovecot"] {
		b.notes = append(b.notes, fmt.Sprintf("FETCH BODY[] of %d messages: imapbridge sent %d bytes, Dovecot %d.", n, bodies["imapbridge"], bodies["dovecot"]))
	}
	bt, dt := median(res["imapbridge"]), median(res["dovecot"])
	b.add(timeRow(fmt.Sprintf("FETCH BODY[] of all, %d msgs", n), bt, dt,
		fmt.Sprintf("%.0f MB/s", mb(bodies["imapbridge"])/bt.Seconds()), "Dovecot",
		fmt.Sprintf("%.0f MB/s", mb(bodies["dovecot"])/dt.Seconds()), 1.0, len(res["imapbridge"]), len(res["dovecot"])))

	// SEARCH.
	searches := []struct{ name, cmd string }{
		{"SEARCH TEXT " + searchWord, `SEARCH TEXT "` + searchWord + `"`},
		{"SEARCH FROM " + searchFrom, `SEARCH FROM "` + searchFrom + `"`},
		{"SEARCH SINCE " + searchSince, `SEARCH SINCE ` + searchSince},
	}
	for _, q := range searches {
		hits := map[string]int{}
		for _, s := range servers {
			ds, err := timedIMAP(ctx, s, user, b.o.reps, time.Minute, sel, func(c *imapConn) error {
				h, err := c.search(ctx, q.cmd)
				hits[s.name] = h
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %s: %w", s.name, q.name, err)
			}
			res[s.name] = ds
		}
		if q.name != searches[2].name {
			b.profileIMAP(ctx, p, fmt.Sprintf("search-%s-%d", strings.Fields(q.name)[1], n), servers[0], user, sel, func(c *imapConn) error {
				_, err := c.search(ctx, q.cmd)
				return err
			})
		}
		if hits["imapbridge"] != hits["dovecot"] {
			b.notes = append(b.notes, fmt.Sprintf("%s on %d messages: imapbridge %d hits, Dovecot %d.", q.name, n, hits["imapbridge"], hits["dovecot"]))
		}
		b.add(timeRow(fmt.Sprintf("%s, %d msgs (%d hits)", q.name, n, hits["imapbridge"]),
			median(res["imapbridge"]), median(res["dovecot"]), "", fmt.Sprintf("Dovecot (%d hits)", hits["dovecot"]), "", 1.0,
			len(res["imapbridge"]), len(res["dovecot"])))
	}
	logf("imap %d done", n)
	return nil
}

// profileIMAP, with -profile, records a 5-second CPU profile of imapbridge
// while op runs in a loop.
func (b *bench) profileIMAP(ctx context.Context, p *bridgeProc, name string, srv server, user string, setup, op func(c *imapConn) error) {
	if b.o.profile == "" {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { b.saveProfile(ctx, p, name, 5) })
	timedIMAP(ctx, srv, user, 1000, 5*time.Second, setup, op)
	wg.Wait()
}

// saveProfile records a CPU profile of imapbridge for seconds into
// name.pprof in the -profile directory, and logs where (or why not).
func (b *bench) saveProfile(ctx context.Context, p *bridgeProc, name string, seconds int) {
	os.MkdirAll(b.o.profile, 0o755)
	path := filepath.Join(b.o.profile, name+".pprof")
	if err := p.profile(ctx, path, seconds); err != nil {
		logf("profile %s: %v", name, err)
		return
	}
	logf("profile: %s", path)
}

// profileIdle, with -profile, records a 5-second CPU profile of
// imapbridge while one client of user idles (the spool is polled at
// idle_poll_interval and nothing changes).
func (b *bench) profileIdle(ctx context.Context, p *bridgeProc, user, name string) {
	if b.o.profile == "" {
		return
	}
	c, err := dialIMAP(ctx, p.imapAddr, user, benchPassword)
	if err != nil {
		logf("profile %s: %v", name, err)
		return
	}
	defer c.logout()
	if _, err := c.selectBox(ctx, "INBOX"); err != nil {
		logf("profile %s: %v", name, err)
		return
	}
	if err := c.idleStart(ctx, nil); err != nil {
		logf("profile %s: %v", name, err)
		return
	}
	b.saveProfile(ctx, p, name, 5)
	c.idleDone(ctx)
}

// tailSection: 10 messages appended to each spool → EXISTS at an IDLE
// client; the time should not grow with the spool.
func (b *bench) tailSection(ctx context.Context, p *bridgeProc) error {
	med := map[int]time.Duration{}
	seq := 0
	for _, n := range b.o.sizes {
		user := mboxUser(n)
		b.profileIdle(ctx, p, user, fmt.Sprintf("idle-poll-%d", n))
		lat, err := b.newMailLatency(ctx, p, user, b.o.reps, mboxIdlePoll, func(int) error {
			var msgs [][]byte
			for k := 0; k < 10; k++ {
				m, _, _ := genMessage(b.o.seed+2, seq, 1)
				seq++
				msgs = append(msgs, m)
			}
			return appendMbox(filepath.Join(b.spoolDir(), user), msgs)
		}, 10)
		if err != nil {
			return err
		}
		med[n] = median(lat)
		logf("mbox tail %d: %v", n, med[n])
	}
	small, big := b.o.sizes[0], b.o.sizes[len(b.o.sizes)-1]
	for _, n := range b.o.sizes {
		if n == small {
			continue
		}
		b.add(row{
			name:   fmt.Sprintf("mbox tail: +10 msgs → EXISTS in IDLE, spool of %d", n),
			bridge: fmtDur(med[n]), base: fmtDur(med[small]) + fmt.Sprintf(" (spool of %d)", small),
			ratio: ratio(med[n], med[small]), target: "≤ 1.50× (size-independent)", met: met(ratio(med[n], med[small]) <= 1.5),
			runs: fmt.Sprintf("%d", b.o.reps),
		})
	}
	_ = big
	b.add(row{
		name:   fmt.Sprintf("mbox tail: +10 msgs → EXISTS in IDLE, spool of %d", small),
		bridge: fmtDur(med[small]), base: fmtDur(mboxIdlePoll) + " (idle_poll_interval)",
		ratio: ratio(med[small], mboxIdlePoll), target: "≤ 2.00×", met: met(ratio(med[small], mboxIdlePoll) <= 2),
		runs: fmt.Sprintf("%d", b.o.reps),
	})
	return nil
}

// idleSection opens b.o.conns IDLE sessions on one account: heap and RSS
// per connection over the figures with none, and the time until one new
// message reaches every session.
func (b *bench) idleSection(ctx context.Context, p *bridgeProc, n int) error {
	user := mboxUser(n)
	spool := filepath.Join(b.spoolDir(), user)
	seq := 100000
	deliverOne := func(int) error {
		m, _, _ := genMessage(b.o.seed+3, seq, 1)
		seq++
		return appendMbox(spool, [][]byte{m})
	}
	single, err := b.newMailLatency(ctx, p, user, b.o.reps, mboxIdlePoll, deliverOne, 1)
	if err != nil {
		return err
	}

	heap0, rss0, err := memory(ctx, p)
	if err != nil {
		return err
	}
	type sess struct {
		c    *imapConn
		have int
	}
	sessions := make([]*sess, b.o.conns)
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.c.c.Close()
			}
		}
	}()
	t0 := time.Now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	work := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := dialIMAP(ctx, p.imapAddr, user, benchPassword)
				if err == nil {
					var have int
					if have, err = c.selectBox(ctx, "INBOX"); err == nil {
						if err = c.idleStart(ctx, nil); err == nil {
							sessions[i] = &sess{c: c, have: have}
							continue
						}
					}
					c.c.Close()
				}
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("session %d: %w", i, err)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range sessions {
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		return first
	}
	opened := time.Since(t0)
	logf("%d IDLE sessions open in %v", b.o.conns, opened)
	time.Sleep(500 * time.Millisecond)
	heap1, rss1, err := memory(ctx, p)
	if err != nil {
		return err
	}
	m, _ := p.metrics(ctx)
	if idle := m["imapbridge_idle_sessions"]; int(idle) < b.o.conns {
		b.notes = append(b.notes, fmt.Sprintf("imapbridge_idle_sessions was %.0f with %d sessions in IDLE.", idle, b.o.conns))
	}
	perHeap := float64(heap1-heap0) / float64(b.o.conns)
	perRSS := float64(rss1-rss0) / float64(b.o.conns)
	b.add(row{
		name:   fmt.Sprintf("%d IDLE sessions: Go heap in use per session", b.o.conns),
		bridge: fmt.Sprintf("%.1f KiB", perHeap/1024), base: fmt.Sprintf("%.1f MiB with 0 → %.1f MiB", float64(heap0)/(1<<20), float64(heap1)/(1<<20)),
		ratio: -1, target: "≤ 64 KiB", met: met(perHeap <= 64<<10), runs: "1",
	})
	b.add(row{
		name:   fmt.Sprintf("%d IDLE sessions: RSS per session", b.o.conns),
		bridge: fmt.Sprintf("%.1f KiB", perRSS/1024), base: fmt.Sprintf("%.1f MiB with 0 → %.1f MiB", float64(rss0)/(1<<20), float64(rss1)/(1<<20)),
		ratio: -1, target: "≤ 128 KiB", met: met(perRSS <= 128<<10), runs: "1",
	})

	// Fan-out: one message → EXISTS at every session.
	r := rand.New(rand.NewPCG(b.o.seed, 7))
	var lastAll, firstAll []time.Duration
	for rep := 0; rep < 3; rep++ {
		time.Sleep(time.Duration(r.Int64N(int64(mboxIdlePoll))))
		arrivals := make([]time.Time, len(sessions))
		errs := make([]error, len(sessions))
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var wg sync.WaitGroup
		for i, s := range sessions {
			s.have++
			wg.Add(1)
			go func() {
				defer wg.Done()
				arrivals[i], errs[i] = s.c.waitExists(wctx, s.have)
			}()
		}
		t0 := time.Now()
		err := deliverOne(0)
		wg.Wait()
		cancel()
		if err != nil {
			return err
		}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for i, at := range arrivals {
			if errs[i] != nil {
				return fmt.Errorf("fan-out: session %d: %w", i, errs[i])
			}
			d := at.Sub(t0)
			lo, hi = min(lo, d), max(hi, d)
		}
		firstAll, lastAll = append(firstAll, lo), append(lastAll, hi)
	}
	ms := median(single)
	b.add(row{
		name:   fmt.Sprintf("new mail → EXISTS at the last of %d IDLE sessions (first: %s)", b.o.conns, fmtDur(median(firstAll))),
		bridge: fmtDur(median(lastAll)), base: fmtDur(ms) + " (one IDLE session)",
		ratio: ratio(median(lastAll), ms), target: "≤ 2.00×", met: met(ratio(median(lastAll), ms) <= 2),
		runs: fmt.Sprintf("%d / %d", len(lastAll), len(single)),
	})
	b.notes = append(b.notes, fmt.Sprintf("Opening %d IDLE sessions (LOGIN, SELECT, IDLE; 32 at a time) took %s.", b.o.conns, fmtDur(opened)))
	return nil
}

// memory returns imapbridge's Go heap in use (after a forced GC) and RSS.
func memory(ctx context.Context, p *bridgeProc) (heap, rss int64, err error) {
	if err := p.gc(ctx); err != nil {
		return 0, 0, err
	}
	m, err := p.metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	h, ok := m["go_memstats_heap_inuse_bytes"]
	if !ok {
		return 0, 0, fmt.Errorf("/metrics has no go_memstats_heap_inuse_bytes")
	}
	rss, err = p.rss()
	return int64(h), rss, err
}
