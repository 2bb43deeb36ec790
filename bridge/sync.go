package bridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// DeleteMode says when a message is removed from its source.
type DeleteMode string

const (
	// DeleteKeep leaves everything at the source (the default).
	DeleteKeep DeleteMode = "keep"
	// DeleteAfterDays deletes a message DeletePolicy.After after it was stored.
	DeleteAfterDays DeleteMode = "after_days"
	// DeleteOnExpunge deletes at the source what the user expunged in IMAP.
	DeleteOnExpunge DeleteMode = "on_expunge"
	// DeleteAfterSync takes each message off the source once it is stored:
	// the retirement mode.
	DeleteAfterSync DeleteMode = "after_sync"
)

// DeletePolicy is a source's delete policy.
type DeletePolicy struct {
	Mode  DeleteMode
	After time.Duration // for DeleteAfterDays
}

// Feed is one source feeding one user's INBOX.
type Feed struct {
	Source           Source
	Account          Account
	Policy           DeletePolicy
	PollInterval     time.Duration
	IdlePollInterval time.Duration // 0: same as PollInterval
	Timeout          time.Duration // bound on one whole poll; 0: 10 minutes
}

// origin states in the source-id map.
const (
	originLive     = 0 // stored, still wanted at the source as far as we know
	originExpunged = 1 // the user expunged every copy in IMAP
	originDeleted  = 2 // deleted at the source by us
)

// originRef is a source-id map row about to be written with its message.
type originRef struct {
	userID   int64
	source   string
	sourceID SourceID
	size     int64
	storedAt int64 // set by insert
}

const insertOrigin = `INSERT INTO origins(user_id, source, source_id, size, stored_at, state) VALUES (?,?,?,?,?,?) RETURNING id`

// insert records the row with stmt, a prepared insertOrigin.
func (o *originRef) insert(ctx context.Context, stmt *sql.Stmt) (int64, error) {
	var id int64
	o.storedAt = time.Now().Unix()
	err := stmt.QueryRowContext(ctx, o.userID, o.source, string(o.sourceID), o.size, o.storedAt, originLive).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record source id %s: %w", o.sourceID, err)
	}
	return id, nil
}

// KnownMessage is what the source-id map holds about one source message.
type KnownMessage struct {
	Size     int64
	StoredAt time.Time
	State    int
}

// PollPlan is what one poll will do: fetch what is new, delete what the
// policy allows.
type PollPlan struct {
	Fetch  []SourceMessage
	Delete []SourceID
}

// Plan is the sync diff, a pure function: the source's listing and the
// source-id map in, what to fetch and delete out. A message is deleted only
// if it is durably stored, still listed with the size recorded when it was
// stored, and the policy allows it.
func Plan(listing []SourceMessage, known map[SourceID]KnownMessage, policy DeletePolicy, now time.Time) PollPlan {
	var p PollPlan
	for _, m := range listing {
		k, ok := known[m.ID]
		if !ok {
			p.Fetch = append(p.Fetch, m)
			continue
		}
		if k.Size != m.Size {
			continue // not the message we stored: never delete it
		}
		if policyDeletes(k, policy, now) {
			p.Delete = append(p.Delete, m.ID)
		}
	}
	return p
}

// keepsAll tells whether the policy never deletes at the source: keep, or
// no policy given (which policyDeletes treats as keep).
func (p DeletePolicy) keepsAll() bool {
	return p.Mode == DeleteKeep || p.Mode == ""
}

// policyDeletes tells whether the policy deletes a stored message at the
// source now, if the source still lists it as stored.
func policyDeletes(k KnownMessage, policy DeletePolicy, now time.Time) bool {
	switch policy.Mode {
	case DeleteAfterSync:
		return true
	case DeleteAfterDays:
		// StoredAt is kept in whole seconds: the message was stored up to
		// a second after it, so count from the second's end.
		return !now.Before(k.StoredAt.Add(time.Second).Add(policy.After))
	case DeleteOnExpunge:
		return k.State == originExpunged
	}
	return false
}

// nothingToDo tells whether a source listing only ids would give an empty
// Plan: every id is known and none is one the policy would delete (which
// needs the sizes List gives).
func nothingToDo(ids []SourceID, known map[SourceID]KnownMessage, policy DeletePolicy, now time.Time) bool {
	for _, id := range ids {
		k, ok := known[id]
		if !ok || policyDeletes(k, policy, now) {
			return false
		}
	}
	return true
}

// PollResult says what one poll did.
type PollResult struct {
	Listed       int
	Fetched      int
	FetchedBytes int64
	Deleted      int
}

// Poll runs one poll of feed for user: one source session, fetch and store
// every unknown message, then delete what the policy allows, then close the
// session (which commits the deletions). Messages are committed in batches
// as they arrive (see ingester), each batch durable before the next poll
// step relies on it, so an interrupted first sync resumes after the last
// committed batch; nothing is deleted at the source that is not durable.
func (b *Bridge) Poll(ctx context.Context, u *User, feed Feed) (PollResult, error) {
	var res PollResult
	src := feed.Source.Name()
	sess, err := feed.Source.Open(ctx, feed.Account)
	if err != nil {
		return res, fmt.Errorf("poll %s: open: %w", src, err)
	}
	committed := false
	defer func() {
		if !committed {
			sess.Abort()
		}
	}()
	now := time.Now()
	if il, ok := sess.(SourceIDLister); ok {
		// The cheap listing first: with no new mail and nothing to
		// delete, the poll ends here.
		ids, ok, err := il.ListIDs(ctx)
		if err != nil {
			return res, fmt.Errorf("poll %s: list: %w", src, err)
		}
		if ok {
			idle := false
			if err := b.withKnown(ctx, u, src, func(known map[SourceID]KnownMessage) {
				idle = nothingToDo(ids, known, feed.Policy, now)
			}); err != nil {
				return res, fmt.Errorf("poll %s: %w", src, err)
			}
			if idle {
				res.Listed = len(ids)
				committed = true
				if err := sess.Close(ctx); err != nil {
					return res, fmt.Errorf("poll %s: close: %w", src, err)
				}
				return res, nil
			}
		}
	}
	listing, listErr := sess.List(ctx)
	if listErr != nil && len(listing) == 0 {
		return res, fmt.Errorf("poll %s: list: %w", src, listErr)
	}
	res.Listed = len(listing)
	// Under the keep policy the part of the listing the last poll left
	// all stored plans to nothing: only what follows it is diffed.
	quiet := 0
	if feed.Policy.keepsAll() {
		quiet = b.known.quietPrefix(u.id, src, listing)
	}
	var plan PollPlan
	if err := b.withKnown(ctx, u, src, func(known map[SourceID]KnownMessage) {
		plan = Plan(listing[quiet:], known, feed.Policy, now)
	}); err != nil {
		return res, fmt.Errorf("poll %s: %w", src, err)
	}
	if len(plan.Fetch) > 0 {
		inbox, err := u.Mailbox(ctx, InboxName)
		if err != nil {
			return res, fmt.Errorf("poll %s: %w", src, err)
		}
		byID := make(map[SourceID]SourceMessage, len(plan.Fetch))
		ids := make([]SourceID, len(plan.Fetch))
		for i, m := range plan.Fetch {
			byID[m.ID] = m
			ids[i] = m.ID
		}
		// Messages are written to temp files here, as they arrive, and
		// committed in batches by the ingester (one blob sync and one
		// transaction per batch) while the next ones are fetched.
		fctx, cancel := context.WithCancel(ctx)
		g := b.startIngest(ctx, cancel, inbox)
		// Temp files are made ahead only for the messages that will
		// need one: those the source lists as too large to be inline.
		large := 0
		for _, m := range plan.Fetch {
			if m.Size >= inlineLimit {
				large++
			}
		}
		var temps *tempFiles
		if large > 1 {
			temps = b.startTempFiles(min(tempAhead, large), tempWorkers)
		}
		// A message too large to store inline goes to a temp file,
		// one made ahead of need where there is one.
		newTemp := func() (*os.File, error) {
			if temps != nil {
				if f := temps.get(); f != nil {
					return f, nil
				}
			}
			return b.createTemp()
		}
		// Both goroutines end before Poll returns, a panic included.
		stopped := false
		stop := func() error {
			if stopped {
				return nil
			}
			stopped = true
			if temps != nil {
				temps.close()
			}
			err := g.finish()
			cancel()
			return err
		}
		defer stop()
		store := func(id SourceID, r io.Reader) error {
			m := byID[id]
			blob, err := b.writeBlob(fctx, r, !b.syncfs, newTemp)
			if err != nil {
				return fmt.Errorf("store %s: %w", id, err)
			}
			date := m.Date
			if date.IsZero() {
				date = time.Now()
			}
			return g.put(fctx, newMessage{blob: blob, date: date, origin: &originRef{userID: u.id, source: src, sourceID: id, size: m.Size}})
		}
		if bf, ok := sess.(SourceBatchFetcher); ok {
			err = bf.FetchMany(fctx, ids, store)
		} else {
			for _, id := range ids {
				var r io.ReadCloser
				r, err = sess.Fetch(fctx, id)
				if err != nil {
					err = fmt.Errorf("fetch %s: %w", id, err)
					break
				}
				err = store(id, r)
				r.Close()
				if err != nil {
					break
				}
			}
		}
		commitErr := stop()
		res.Fetched, res.FetchedBytes = g.fetched, g.bytes
		// What was committed is durable: eligible for deletion in this
		// same session where the policy says so (after_sync).
		if feed.Policy.Mode == DeleteAfterSync {
			plan.Delete = append(plan.Delete, g.stored...)
		}
		if commitErr != nil {
			// The fetch error, if any, is the cancellation it caused.
			return res, fmt.Errorf("poll %s: %w", src, commitErr)
		}
		if err != nil {
			return res, fmt.Errorf("poll %s: %w", src, err)
		}
	}
	if listErr != nil {
		// A partial listing: what could be read is stored; the deferred
		// Abort ends the session without deleting anything.
		return res, fmt.Errorf("poll %s: list (stored the %d messages before the problem): %w", src, len(listing), listErr)
	}
	if len(plan.Delete) > 0 {
		if err := sess.Delete(ctx, plan.Delete); err != nil {
			return res, fmt.Errorf("poll %s: delete: %w", src, err)
		}
	}
	committed = true
	if err := sess.Close(ctx); err != nil {
		return res, fmt.Errorf("poll %s: close: %w", src, err)
	}
	if len(plan.Delete) > 0 {
		if err := b.markDeleted(ctx, u, src, plan.Delete); err != nil {
			return res, fmt.Errorf("poll %s: %w", src, err)
		}
		res.Deleted = len(plan.Delete)
	}
	if feed.Policy.keepsAll() && res.Fetched == len(plan.Fetch) {
		b.known.setQuiet(u.id, src, listing, quiet)
	}
	return res, nil
}

func (b *Bridge) knownMessages(ctx context.Context, u *User, source string) (map[SourceID]KnownMessage, error) {
	rows, err := b.rd.QueryContext(ctx, `SELECT source_id, size, stored_at, state FROM origins WHERE user_id=? AND source=?`, u.id, source)
	if err != nil {
		return nil, fmt.Errorf("load source-id map: %w", err)
	}
	defer rows.Close()
	known := make(map[SourceID]KnownMessage)
	for rows.Next() {
		var id string
		var k KnownMessage
		var at int64
		if err := rows.Scan(&id, &k.Size, &at, &k.State); err != nil {
			return nil, fmt.Errorf("load source-id map: %w", err)
		}
		k.StoredAt = time.Unix(at, 0)
		known[SourceID(id)] = k
	}
	return known, rows.Err()
}

func (b *Bridge) markDeleted(ctx context.Context, u *User, source string, ids []SourceID) error {
	err := b.write(ctx, func(tx *wtx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE origins SET state=? WHERE user_id=? AND source=? AND source_id=?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, originDeleted, u.id, source, string(id)); err != nil {
				return fmt.Errorf("mark %s deleted: %w", id, err)
			}
		}
		return nil
	})
	if err == nil {
		b.known.deleted(u.id, source, ids)
	}
	return err
}

// SyncerOptions configure the poll loops.
type SyncerOptions struct {
	Logger *slog.Logger
	// MaxConcurrent bounds how many polls run at once across all accounts.
	MaxConcurrent int
	// MaxBackoff caps the wait after repeated failures.
	MaxBackoff time.Duration
}

// Syncer runs one poll loop per (user, feed): at the poll interval with
// jitter, sooner when a session logs in or starts IDLE, at the idle
// interval while a session idles, backing off exponentially on failure.
// One slow or failing account never delays another beyond the concurrency
// bound.
type Syncer struct {
	b       *Bridge
	log     *slog.Logger
	sem     chan struct{}
	maxBack time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	loops map[string][]*feedLoop // by user name
}

// NewSyncer creates the poll loops' owner. Stop ends every loop.
func NewSyncer(b *Bridge, opts SyncerOptions) *Syncer {
	if opts.Logger == nil {
		opts.Logger = b.log
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 8
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Syncer{
		b:       b,
		log:     opts.Logger,
		sem:     make(chan struct{}, opts.MaxConcurrent),
		maxBack: opts.MaxBackoff,
		ctx:     ctx,
		cancel:  cancel,
		loops:   make(map[string][]*feedLoop),
	}
}

type feedLoop struct {
	s    *Syncer
	user *User
	feed Feed
	kick chan struct{}

	mu   sync.Mutex
	idle int
	// started counts polls begun; lastDone is the number of the last one
	// finished, with its error; polled is closed and replaced after every
	// poll (for PollAndWait).
	started  uint64
	lastDone uint64
	lastErr  error
	polled   chan struct{}
}

// Add starts poll loops for user's feeds. Calling it again for the same
// user replaces nothing: it is a no-op if the user already has loops.
func (s *Syncer) Add(u *User, feeds []Feed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	if _, ok := s.loops[u.name]; ok {
		return
	}
	var loops []*feedLoop
	for _, f := range feeds {
		if f.PollInterval <= 0 {
			f.PollInterval = time.Minute
		}
		if f.IdlePollInterval <= 0 || f.IdlePollInterval > f.PollInterval {
			f.IdlePollInterval = f.PollInterval
		}
		if f.Timeout <= 0 {
			f.Timeout = 10 * time.Minute
		}
		l := &feedLoop{s: s, user: u, feed: f, kick: make(chan struct{}, 1), polled: make(chan struct{})}
		loops = append(loops, l)
		s.wg.Add(1)
		go l.run()
	}
	s.loops[u.name] = loops
	u.setHooks(userHooks{
		pollNow: func() {
			for _, l := range loops {
				l.poke()
			}
		},
		idle: func(delta int) {
			for _, l := range loops {
				l.mu.Lock()
				l.idle += delta
				if l.idle < 0 {
					l.idle = 0
				}
				l.mu.Unlock()
				if delta > 0 {
					l.poke()
				}
			}
		},
	})
}

// SetPassword changes the source password the user's poll loops use for
// source (a passthrough user who changed it at the host and logged in with
// the new one) and asks for a poll now. It reports whether a loop of that
// user polls that source.
func (s *Syncer) SetPassword(user, source, password string) bool {
	s.mu.Lock()
	loops := s.loops[user]
	s.mu.Unlock()
	found := false
	for _, l := range loops {
		if l.feed.Source.Name() != source {
			continue
		}
		found = true
		l.mu.Lock()
		changed := l.feed.Account.Password != password
		l.feed.Account.Password = password
		l.mu.Unlock()
		if changed {
			l.poke()
		}
	}
	return found
}

// Has reports whether user already has poll loops.
func (s *Syncer) Has(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.loops[user]
	return ok
}

// PollAndWait asks every feed of user for a poll now and waits until each
// has completed a poll that started after the call (successful or not), or
// ctx ends. It returns the polls' errors joined. For tests and tools.
func (s *Syncer) PollAndWait(ctx context.Context, user string) error {
	s.mu.Lock()
	loops := s.loops[user]
	s.mu.Unlock()
	if len(loops) == 0 {
		return fmt.Errorf("sync: user %q has no sources", user)
	}
	var errs []error
	for _, l := range loops {
		l.mu.Lock()
		after := l.started
		l.mu.Unlock()
		l.poke()
		for {
			l.mu.Lock()
			done, ch, err := l.lastDone > after, l.polled, l.lastErr
			l.mu.Unlock()
			if done {
				errs = append(errs, err)
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return errors.Join(errs...)
}

// Stop ends every poll loop, aborting polls in flight, and waits for them
// (or for ctx).
func (s *Syncer) Stop(ctx context.Context) error {
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sync: stop: %w", ctx.Err())
	}
}

func (l *feedLoop) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *feedLoop) run() {
	defer l.s.wg.Done()
	log := l.s.log.With("user", l.user.name, "source", l.feed.Source.Name())
	failures := 0
	wait := time.Duration(0) // first poll at once
	for {
		timer := time.NewTimer(wait)
		select {
		case <-l.s.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-l.kick:
			timer.Stop()
		}
		err := l.pollOnce(log)
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		wait = l.nextWait(failures)
	}
}

func (l *feedLoop) nextWait(failures int) time.Duration {
	l.mu.Lock()
	interval := l.feed.PollInterval
	if l.idle > 0 {
		interval = l.feed.IdlePollInterval
	}
	l.mu.Unlock()
	if failures > 0 {
		back := interval
		for i := 1; i < failures && back < l.s.maxBack; i++ {
			back *= 2
		}
		if back > l.s.maxBack {
			back = l.s.maxBack
		}
		interval = back
	}
	// ±10% jitter so many accounts don't poll in lockstep.
	j := time.Duration(rand.Int64N(int64(interval)/5+1)) - interval/10
	return interval + j
}

func (l *feedLoop) pollOnce(log *slog.Logger) (err error) {
	l.mu.Lock()
	l.started++
	n := l.started
	l.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			l.s.b.metrics.Recovered.Inc()
			log.Error("sync: panic in poll", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
		l.mu.Lock()
		l.lastDone, l.lastErr = n, err
		close(l.polled)
		l.polled = make(chan struct{})
		l.mu.Unlock()
	}()
	select {
	case l.s.sem <- struct{}{}:
	case <-l.s.ctx.Done():
		return l.s.ctx.Err()
	}
	defer func() { <-l.s.sem }()
	l.mu.Lock()
	feed := l.feed
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(l.s.ctx, feed.Timeout)
	defer cancel()
	start := time.Now()
	res, err := l.s.b.Poll(ctx, l.user, feed)
	took := time.Since(start)
	result := "success"
	switch {
	case err == nil:
	case errors.Is(err, ErrSourceBusy):
		result = "busy"
	case errors.Is(err, ErrSourceAuth):
		result = "auth"
	default:
		result = "error"
	}
	l.s.b.metrics.PollDone(l.feed.Source.Name(), result, took, res.Fetched, res.FetchedBytes, res.Deleted)
	if err != nil {
		if l.s.ctx.Err() != nil {
			return err // shutting down
		}
		log.Warn("sync: poll failed", "err", err, "fetched", res.Fetched)
		return err
	}
	if res.Fetched > 0 || res.Deleted > 0 {
		log.Info("sync: polled", "listed", res.Listed, "fetched", res.Fetched, "bytes", res.FetchedBytes, "deleted", res.Deleted, "took", took.Round(time.Millisecond))
	} else {
		log.Debug("sync: polled", "listed", res.Listed, "took", took.Round(time.Millisecond))
	}
	return nil
}
