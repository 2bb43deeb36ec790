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

// Feed is one account at a source feeding one folder of a user (INBOX
// unless Folder says otherwise).
type Feed struct {
	Source  Source
	Account Account
	// AccountID tells apart two accounts of a user at one source: the
	// store keeps a source-id map, a feed record and a drain chart per
	// (user, source, AccountID). "" is the source's one account of the
	// user (the sources: form, and what stores written before accounts
	// hold); see FeedKey.
	AccountID string
	// AccountName is how Status names the account ("account" in the
	// status JSON; the login at the host for accounts of the accounts:
	// form, "" for the sources: form). Never a metric label.
	AccountName string
	// Folder is the mailbox the account's mail goes to, created if
	// missing; "" is INBOX.
	Folder string
	Policy DeletePolicy
	// Mode is serve (""/ModeServe) or shadow: in shadow the source is
	// never changed, whatever Policy says (see ModeShadow).
	Mode             FeedMode
	PollInterval     time.Duration
	IdlePollInterval time.Duration // 0: same as PollInterval
	Timeout          time.Duration // bound on one whole poll; 0: 10 minutes
}

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

// PollResult says what one poll did.
type PollResult struct {
	Listed       int
	Fetched      int
	FetchedBytes int64
	Deleted      int
	// WouldDelete: what the policy would have deleted (shadow mode).
	WouldDelete int
	// Gone: messages another client took off the source since the last
	// complete listing (foreign deletions found by this poll).
	Gone int
}

// Poll runs one poll of feed for user: one source session, fetch and store
// every unknown message, then delete what the policy allows, then close the
// session (which commits the deletions). Messages are committed in batches
// as they arrive (see ingester), each batch durable before the next poll
// step relies on it, so an interrupted first sync resumes after the last
// committed batch; nothing is deleted at the source that is not durable.
// What the poll found (counts at the host, foreign deletions, the error)
// is recorded for Status.
func (b *Bridge) Poll(ctx context.Context, u *User, feed Feed) (PollResult, error) {
	res, sum, err := b.poll(ctx, u, feed)
	b.recordPoll(ctx, u, feed, sum, err)
	return res, err
}

// pollSummary is what a poll tells the feed's record.
type pollSummary struct {
	at time.Time
	// listed: a complete listing was read (host counts are valid);
	// planned: the diff ran (pending and wouldDelete are valid).
	listed       bool
	planned      bool
	hostMessages int
	hostBytes    int64 // -1: unknown (an ids-only listing): keep the last
	pending      int
	wouldDelete  int
}

func (b *Bridge) poll(ctx context.Context, u *User, feed Feed) (PollResult, pollSummary, error) {
	var res PollResult
	now := b.now()
	sum := pollSummary{at: now}
	src := feed.Key()
	sess, err := feed.Source.Open(ctx, feed.Account)
	if err != nil {
		return res, sum, fmt.Errorf("poll %s: open: %w", src, err)
	}
	committed := false
	defer func() {
		if !committed {
			sess.Abort()
		}
	}()
	in := PlanInput{Policy: feed.Policy, Mode: feed.Mode, Now: now}
	if il, ok := sess.(SourceIDLister); ok {
		// The cheap listing first: with no new mail, nothing to delete
		// and nothing gone, the poll ends here.
		ids, ok, err := il.ListIDs(ctx)
		if err != nil {
			return res, sum, fmt.Errorf("poll %s: list: %w", src, err)
		}
		if ok {
			listing := make([]SourceMessage, len(ids))
			for i, id := range ids {
				listing[i].ID = id
			}
			in.Listing, in.IDsOnly = listing, true
			plan, err := b.plan(ctx, u, src, in)
			if err != nil {
				return res, sum, fmt.Errorf("poll %s: %w", src, err)
			}
			if plan.Idle() {
				res.Listed = len(ids)
				sum.planned = true
				committed = true
				if err := sess.Close(ctx); err != nil {
					return res, sum, fmt.Errorf("poll %s: close: %w", src, err)
				}
				sum.listed, sum.hostMessages, sum.hostBytes = true, len(ids), -1
				return res, sum, nil
			}
			in.IDsOnly = false
		}
	}
	listing, listErr := sess.List(ctx)
	if listErr != nil && len(listing) == 0 {
		return res, sum, fmt.Errorf("poll %s: list: %w", src, listErr)
	}
	res.Listed = len(listing)
	in.Listing, in.Partial = listing, listErr != nil
	// Under the keep policy the part of the listing the last poll left
	// all stored plans to nothing: only what follows it is diffed.
	if feed.Policy.keepsAll() {
		in.Quiet = b.known.quietPrefix(u.id, src, listing)
	}
	plan, err := b.plan(ctx, u, src, in)
	if err != nil {
		return res, sum, fmt.Errorf("poll %s: %w", src, err)
	}
	sum.planned, sum.pending = true, len(plan.Fetch)
	if len(plan.Fetch) > 0 {
		stored, err := b.fetchAll(ctx, u, sess, src, feed.folder(), plan.Fetch, &res)
		sum.pending -= len(stored)
		// What was committed is durable: eligible for deletion in this
		// same session where the policy says so (after_sync).
		if plan.DeleteFetched {
			if plan.Shadow {
				plan.WouldDelete += len(stored)
			} else {
				plan.Delete = append(plan.Delete, stored...)
			}
		}
		if err != nil {
			return res, sum, fmt.Errorf("poll %s: %w", src, err)
		}
	}
	res.WouldDelete, sum.wouldDelete = plan.WouldDelete, plan.WouldDelete
	if listErr != nil {
		// A partial listing: what could be read is stored; the deferred
		// Abort ends the session without deleting anything.
		return res, sum, fmt.Errorf("poll %s: list (stored the %d messages before the problem): %w", src, len(listing), listErr)
	}
	sum.listed, sum.hostMessages, sum.hostBytes = true, plan.HostMessages, plan.HostBytes
	if len(plan.Gone) > 0 || len(plan.Forget) > 0 {
		if err := b.recordGone(ctx, u, src, plan.Gone, plan.Forget, now); err != nil {
			return res, sum, fmt.Errorf("poll %s: %w", src, err)
		}
		res.Gone = len(plan.Gone)
	}
	if len(plan.Delete) > 0 {
		// Recorded as begun before the commit, so that a crash between
		// the commit and the record below is not taken for someone
		// else's deletion at the next poll.
		if err := b.setOriginState(ctx, u, src, plan.Delete, originDeleting); err != nil {
			return res, sum, fmt.Errorf("poll %s: %w", src, err)
		}
		if err := sess.Delete(ctx, plan.Delete); err != nil {
			return res, sum, fmt.Errorf("poll %s: delete: %w", src, err)
		}
	}
	committed = true
	if err := sess.Close(ctx); err != nil {
		return res, sum, fmt.Errorf("poll %s: close: %w", src, err)
	}
	if len(plan.Delete) > 0 {
		if err := b.setOriginState(ctx, u, src, plan.Delete, originDeleted); err != nil {
			return res, sum, fmt.Errorf("poll %s: %w", src, err)
		}
		res.Deleted = len(plan.Delete)
		// The host holds what it listed less what this session took.
		size := make(map[SourceID]int64, len(listing))
		for _, m := range listing {
			size[m.ID] = m.Size
		}
		sum.hostMessages -= len(plan.Delete)
		for _, id := range plan.Delete {
			sum.hostBytes -= size[id]
		}
	}
	if plan.KeepQuiet && sum.pending == 0 {
		b.known.setQuiet(u.id, src, listing, in.Quiet)
	}
	return res, sum, nil
}

// plan runs Plan against the source-id map of (u, src).
func (b *Bridge) plan(ctx context.Context, u *User, src string, in PlanInput) (PollPlan, error) {
	var p PollPlan
	err := b.withKnown(ctx, u, src, func(known map[SourceID]KnownMessage, expected int) {
		in.Known, in.Expected = known, expected
		p = Plan(in)
	})
	return p, err
}

// fetchAll fetches msgs from sess into u's folder (created if missing)
// and returns the ids stored, in commit order. Messages are written to temp files as they
// arrive and committed in batches by the ingester (one blob sync and one
// transaction per batch) while the next ones are fetched.
func (b *Bridge) fetchAll(ctx context.Context, u *User, sess SourceSession, src, folder string, msgs []SourceMessage, res *PollResult) ([]SourceID, error) {
	inbox, err := u.Mailbox(ctx, folder)
	if errors.Is(err, ErrNoSuchMailbox) {
		if err = u.CreateMailbox(ctx, folder, ""); err == nil || errors.Is(err, ErrMailboxExists) {
			inbox, err = u.Mailbox(ctx, folder)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("target folder %q: %w", folder, err)
	}
	byID := make(map[SourceID]SourceMessage, len(msgs))
	ids := make([]SourceID, len(msgs))
	for i, m := range msgs {
		byID[m.ID] = m
		ids[i] = m.ID
	}
	fctx, cancel := context.WithCancel(ctx)
	g := b.startIngest(ctx, cancel, inbox)
	// Temp files are made ahead only for the messages that will need
	// one: those the source lists as too large to be inline.
	large := 0
	for _, m := range msgs {
		if m.Size >= inlineLimit {
			large++
		}
	}
	var temps *tempFiles
	if large > 1 {
		temps = b.startTempFiles(min(tempAhead, large), tempWorkers)
	}
	// A message too large to store inline goes to a temp file, one made
	// ahead of need where there is one.
	newTemp := func() (*os.File, error) {
		if temps != nil {
			if f := temps.get(); f != nil {
				return f, nil
			}
		}
		return b.createTemp()
	}
	// Both goroutines end before fetchAll returns, a panic included.
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
	if commitErr != nil {
		// The fetch error, if any, is the cancellation it caused.
		return g.stored, commitErr
	}
	return g.stored, err
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

// setOriginState records a state of source ids of (u, source).
func (b *Bridge) setOriginState(ctx context.Context, u *User, source string, ids []SourceID, state int) error {
	err := b.writeRecord(ctx, func(tx *wtx) error {
		return setOrigins(ctx, tx, u.id, source, ids, state)
	})
	if err == nil {
		b.known.setState(u.id, source, ids, state)
	}
	return err
}

func setOrigins(ctx context.Context, tx *wtx, userID int64, source string, ids []SourceID, state int) error {
	stmt, err := tx.PrepareContext(ctx, `UPDATE origins SET state=? WHERE user_id=? AND source=? AND source_id=?`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, id := range ids {
		if _, err := stmt.ExecContext(ctx, state, userID, source, string(id)); err != nil {
			return fmt.Errorf("mark %s state %d: %w", id, state, err)
		}
	}
	return nil
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
//
// A user's feeds change live: Update replaces their settings (policy,
// mode, intervals, credentials, folder, the source itself), starts loops
// for new accounts (Feed.Key) and stops those of accounts no longer given; Remove stops every
// loop of a user. Neither touches another user's loops nor any session,
// and the user's mail stays in the store.
type Syncer struct {
	b       *Bridge
	log     *slog.Logger
	sem     chan struct{}
	maxBack time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	users map[string]*userLoops // by user name
}

// userLoops are the poll loops of one user.
type userLoops struct {
	user  *User
	loops []*feedLoop // guarded by Syncer.mu

	mu   sync.Mutex
	idle int // sessions of the user in IDLE
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
		users:   make(map[string]*userLoops),
	}
}

type feedLoop struct {
	s    *Syncer
	ul   *userLoops
	kick chan struct{}
	// ctx ends the loop alone (Update, Remove) or with the syncer (Stop);
	// done is closed when run has returned.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	feed Feed
	// started counts polls begun; lastDone is the number of the last one
	// finished, with its error; polled is closed and replaced after every
	// poll (for PollAndWait).
	started  uint64
	lastDone uint64
	lastErr  error
	polled   chan struct{}
}

// withDefaults fills in a feed's unset intervals and timeout.
func (f Feed) withDefaults() Feed {
	if f.PollInterval <= 0 {
		f.PollInterval = time.Minute
	}
	if f.IdlePollInterval <= 0 || f.IdlePollInterval > f.PollInterval {
		f.IdlePollInterval = f.PollInterval
	}
	if f.Timeout <= 0 {
		f.Timeout = 10 * time.Minute
	}
	if f.Mode == "" {
		f.Mode = ModeServe
	}
	return f
}

// startLoop starts the poll loop of one feed. Called with s.mu held.
func (s *Syncer) startLoop(ul *userLoops, f Feed) *feedLoop {
	ctx, cancel := context.WithCancel(s.ctx)
	l := &feedLoop{s: s, ul: ul, feed: f.withDefaults(), kick: make(chan struct{}, 1), polled: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.wg.Add(1)
	go l.run()
	return l
}

// Add starts poll loops for user's feeds. Calling it again for the same
// user replaces nothing: it is a no-op if the user already has loops (see
// Update).
func (s *Syncer) Add(u *User, feeds []Feed) {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	if _, ok := s.users[u.name]; ok {
		s.mu.Unlock()
		return
	}
	s.addLocked(u, feeds)
	s.mu.Unlock()
	s.recordFeeds(s.ctx, u, feeds)
}

// addLocked starts the loops of a user who has none. Called with s.mu held.
func (s *Syncer) addLocked(u *User, feeds []Feed) {
	ul := &userLoops{user: u}
	for _, f := range feeds {
		ul.loops = append(ul.loops, s.startLoop(ul, f))
	}
	s.users[u.name] = ul
	name := u.name
	u.setHooks(userHooks{
		pollNow: func() {
			for _, l := range s.loopsOf(name) {
				l.poke()
			}
		},
		idle: func(delta int) {
			ul.mu.Lock()
			ul.idle = max(ul.idle+delta, 0)
			ul.mu.Unlock()
			if delta > 0 {
				for _, l := range s.loopsOf(name) {
					l.poke()
				}
			}
		},
	})
}

// recordFeeds records the user's feeds for Status; a failure is logged
// (polling goes on; Status shows the settings of the last poll).
func (s *Syncer) recordFeeds(ctx context.Context, u *User, feeds []Feed) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordingTimeout)
	defer cancel()
	if err := s.b.setFeeds(ctx, u, feeds); err != nil {
		s.log.Warn("sync: could not record the feeds", "user", u.name, "err", err)
	}
}

// Update makes feeds the user's feeds from now on, without a restart: a
// loop whose feed key (Feed.Key: source and account) is in feeds keeps
// running with the new settings and polls at once (a new policy, mode,
// folder or password applies from that poll; a poll in flight finishes
// with the old ones); accounts new to the user get a loop; loops of
// accounts not in feeds are stopped, and Update
// waits for them (or ctx). A user without loops gets them, as with Add.
// Other users' loops and every session are left alone.
func (s *Syncer) Update(ctx context.Context, u *User, feeds []Feed) error {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return errors.New("sync: update: the syncer is stopped")
	}
	ul, ok := s.users[u.name]
	if !ok {
		s.addLocked(u, feeds)
		s.mu.Unlock()
		s.recordFeeds(ctx, u, feeds)
		return nil
	}
	byName := make(map[string]Feed, len(feeds))
	for _, f := range feeds {
		byName[f.Key()] = f
	}
	var kept, stopped []*feedLoop
	have := make(map[string]bool)
	for _, l := range ul.loops {
		name := l.key()
		f, ok := byName[name]
		if !ok || have[name] {
			l.cancel()
			stopped = append(stopped, l)
			continue
		}
		have[name] = true
		l.mu.Lock()
		l.feed = f.withDefaults()
		l.mu.Unlock()
		l.poke()
		kept = append(kept, l)
	}
	for _, f := range feeds {
		if name := f.Key(); !have[name] {
			have[name] = true
			kept = append(kept, s.startLoop(ul, f))
		}
	}
	ul.loops = kept
	s.mu.Unlock()
	// Recorded once the dropped loops are done: a poll of theirs ending
	// meanwhile would record its feed as active again.
	err := waitLoops(ctx, stopped)
	s.recordFeeds(ctx, u, feeds)
	return err
}

// Remove stops every poll loop of user (polls in flight are aborted;
// nothing they stored is lost) and waits for them, or ctx. The user's
// mail, flags and sessions stay; the feeds are marked inactive for Status.
// Removing a user without loops does nothing.
func (s *Syncer) Remove(ctx context.Context, user string) error {
	s.mu.Lock()
	ul, ok := s.users[user]
	delete(s.users, user)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	ul.user.setHooks(userHooks{})
	for _, l := range ul.loops {
		l.cancel()
	}
	err := waitLoops(ctx, ul.loops)
	s.recordFeeds(ctx, ul.user, nil)
	return err
}

func waitLoops(ctx context.Context, loops []*feedLoop) error {
	for _, l := range loops {
		select {
		case <-l.done:
		case <-ctx.Done():
			return fmt.Errorf("sync: wait for the poll loop of %s: %w", l.sourceName(), ctx.Err())
		}
	}
	return nil
}

func (s *Syncer) loopsOf(user string) []*feedLoop {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ul := s.users[user]; ul != nil {
		return ul.loops
	}
	return nil
}

func (l *feedLoop) key() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.feed.Key()
}

func (l *feedLoop) sourceName() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.feed.Source.Name()
}

// Feeds returns the feeds user's loops poll now (with defaults filled in),
// nil if the user has none.
func (s *Syncer) Feeds(user string) []Feed {
	var out []Feed
	for _, l := range s.loopsOf(user) {
		l.mu.Lock()
		out = append(out, l.feed)
		l.mu.Unlock()
	}
	return out
}

// SetPassword changes the source password the user's poll loops use for
// source (a passthrough user who changed it at the host and logged in with
// the new one; only the source's one account, AccountID "") and asks for a poll now. It reports whether a loop of that
// user polls that source.
func (s *Syncer) SetPassword(user, source, password string) bool {
	found := false
	for _, l := range s.loopsOf(user) {
		l.mu.Lock()
		if l.feed.Source.Name() != source || l.feed.AccountID != "" {
			l.mu.Unlock()
			continue
		}
		found = true
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
	_, ok := s.users[user]
	return ok
}

// PollAndWait asks every feed of user for a poll now and waits until each
// has completed a poll that started after the call (successful or not), or
// ctx ends. It returns the polls' errors joined. For tests and tools.
func (s *Syncer) PollAndWait(ctx context.Context, user string) error {
	loops := s.loopsOf(user)
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
			case <-l.done:
				return fmt.Errorf("sync: the poll loop of %s stopped", l.sourceName())
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
	defer close(l.done)
	failures := 0
	wait := time.Duration(0) // first poll at once
	for {
		timer := time.NewTimer(wait)
		select {
		case <-l.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-l.kick:
			timer.Stop()
		}
		err := l.pollOnce()
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		wait = l.nextWait(failures)
	}
}

func (l *feedLoop) nextWait(failures int) time.Duration {
	l.ul.mu.Lock()
	idle := l.ul.idle > 0
	l.ul.mu.Unlock()
	l.mu.Lock()
	interval := l.feed.PollInterval
	if idle {
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

func (l *feedLoop) pollOnce() (err error) {
	l.mu.Lock()
	l.started++
	n := l.started
	feed := l.feed
	l.mu.Unlock()
	user := l.ul.user
	log := l.s.log.With("user", user.name, "source", feed.Source.Name())
	if feed.AccountName != "" {
		log = log.With("account", feed.AccountName)
	}
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
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
	defer func() { <-l.s.sem }()
	ctx, cancel := context.WithTimeout(l.ctx, feed.Timeout)
	defer cancel()
	start := time.Now()
	res, err := l.s.b.Poll(ctx, user, feed)
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
	l.s.b.metrics.PollDone(feed.Source.Name(), result, took, res.Fetched, res.FetchedBytes, res.Deleted)
	if err != nil {
		if l.ctx.Err() != nil {
			return err // shutting down, or the loop was stopped
		}
		log.Warn("sync: poll failed", "err", err, "fetched", res.Fetched)
		return err
	}
	if res.Fetched > 0 || res.Deleted > 0 || res.Gone > 0 {
		log.Info("sync: polled", "listed", res.Listed, "fetched", res.Fetched, "bytes", res.FetchedBytes, "deleted", res.Deleted, "would_delete", res.WouldDelete, "gone", res.Gone, "took", took.Round(time.Millisecond))
	} else {
		log.Debug("sync: polled", "listed", res.Listed, "took", took.Round(time.Millisecond))
	}
	return nil
}
