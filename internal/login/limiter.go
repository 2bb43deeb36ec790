package login

import (
	"container/list"
	"sync"
	"time"
)

// Limiter keeps count of failed logins, in three tables:
//
//   - per client address and user name: refused after
//     Limits.PerAddressUser failures (guessing one user's password from
//     one place);
//   - per client address: refused after Limits.PerAddress failures
//     (guessing many users' passwords from one place; an office behind
//     one NAT address shares it, so it is higher);
//   - per user name, from every address: never refused, only slowed
//     (Check's delay, before the password is checked). Refusing a user
//     name would let anyone lock its owner out with wrong passwords from
//     a few addresses; slowing it bounds how fast a spread-out attack can
//     guess, and how often it makes a passthrough host check a password.
//
// Failures older than Limits.Window are forgotten. Each table holds at
// most Limits.MaxEntries entries: past that the oldest is dropped, so a
// flood of made-up names from made-up addresses costs bounded memory.
// The zero value is not usable; make one with NewLimiter.
type Limiter struct {
	mu       sync.Mutex
	lim      Limits
	addrUser table
	addr     table
	user     table
	now      func() time.Time
}

// Limits configure a Limiter. A zero field takes its default (see
// DefaultLimits).
type Limits struct {
	Window         time.Duration // failures older than this are forgotten
	PerAddressUser int           // failures of one user from one address before refusal
	PerAddress     int           // failures from one address before refusal
	Step           time.Duration // delay added per failure
	MaxDelay       time.Duration // longest delay, before or after a check
	MaxEntries     int           // entries per table
}

// DefaultLimits are the limits of NewLimiter(Limits{}).
var DefaultLimits = Limits{
	Window:         15 * time.Minute,
	PerAddressUser: 10,
	PerAddress:     30,
	Step:           500 * time.Millisecond,
	MaxDelay:       5 * time.Second,
	MaxEntries:     1 << 16,
}

// userDelayFree is how many failures of a user name (from anywhere) cost
// the next login of that name nothing: a typo or two is not an attack.
const userDelayFree = 3

// NewLimiter returns a Limiter with lim's limits, DefaultLimits for each
// zero field.
func NewLimiter(lim Limits) *Limiter {
	d := DefaultLimits
	if lim.Window <= 0 {
		lim.Window = d.Window
	}
	if lim.PerAddressUser <= 0 {
		lim.PerAddressUser = d.PerAddressUser
	}
	if lim.PerAddress <= 0 {
		lim.PerAddress = d.PerAddress
	}
	if lim.Step <= 0 {
		lim.Step = d.Step
	}
	if lim.MaxDelay <= 0 {
		lim.MaxDelay = d.MaxDelay
	}
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = d.MaxEntries
	}
	l := &Limiter{lim: lim, now: time.Now}
	for _, t := range []*table{&l.addrUser, &l.addr, &l.user} {
		t.init(lim.MaxEntries)
	}
	return l
}

// Check reports whether a login of user from host may be checked, and,
// when it may, how long to wait first: nothing until the user name has
// failed a few times (from any address), then Step more per failure, at
// most MaxDelay. The wait is the same whether or not the user exists.
func (l *Limiter) Check(user, host string) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.addrUser.count(addrUserKey(host, user), now, l.lim.Window) >= l.lim.PerAddressUser ||
		l.addr.count(host, now, l.lim.Window) >= l.lim.PerAddress {
		return 0, false
	}
	n := l.user.count(user, now, l.lim.Window) - userDelayFree + 1
	return l.delay(n), true
}

// Fail records a failed login and returns how long to hold its answer:
// Step per failure of this user from this address so far, at most
// MaxDelay.
func (l *Limiter) Fail(user, host string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	n := l.addrUser.add(addrUserKey(host, user), now, l.lim.Window)
	l.addr.add(host, now, l.lim.Window)
	l.user.add(user, now, l.lim.Window)
	return l.delay(n)
}

// FailAddress records a failure of the address alone (a login refused
// before any user could be named, such as a malformed name).
func (l *Limiter) FailAddress(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addr.add(host, l.now(), l.lim.Window)
}

// Succeed forgets the failures of user, from host and from everywhere
// (not those of the address: one good password does not license
// guessing others' from there).
func (l *Limiter) Succeed(user, host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addrUser.remove(addrUserKey(host, user))
	l.user.remove(user)
}

// Len returns how many entries the Limiter holds, in all tables.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrUser.m) + len(l.addr.m) + len(l.user.m)
}

func (l *Limiter) delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return min(time.Duration(n)*l.lim.Step, l.lim.MaxDelay)
}

func addrUserKey(host, user string) string { return host + "\x00" + user }

// table counts failures per key within a window. Its entries are in a
// list by the time of their first failure, oldest first: expired ones are
// dropped from the front, and when the table is full the oldest goes.
type table struct {
	m     map[string]*list.Element
	order list.List // of *entry
	max   int
}

type entry struct {
	key   string
	n     int
	first time.Time
}

func (t *table) init(max int) {
	t.m = make(map[string]*list.Element)
	t.max = max
}

// count returns the failures of key within the window.
func (t *table) count(key string, now time.Time, window time.Duration) int {
	t.expire(now, window)
	if e, ok := t.m[key]; ok {
		return e.Value.(*entry).n
	}
	return 0
}

// add counts one failure of key and returns its failures so far.
func (t *table) add(key string, now time.Time, window time.Duration) int {
	t.expire(now, window)
	if e, ok := t.m[key]; ok {
		en := e.Value.(*entry)
		en.n++
		return en.n
	}
	for len(t.m) >= t.max {
		t.drop(t.order.Front())
	}
	t.m[key] = t.order.PushBack(&entry{key: key, n: 1, first: now})
	return 1
}

func (t *table) remove(key string) {
	if e, ok := t.m[key]; ok {
		t.drop(e)
	}
}

// expire drops the entries whose first failure is older than window.
func (t *table) expire(now time.Time, window time.Duration) {
	for e := t.order.Front(); e != nil && now.Sub(e.Value.(*entry).first) > window; e = t.order.Front() {
		t.drop(e)
	}
}

func (t *table) drop(e *list.Element) {
	delete(t.m, e.Value.(*entry).key)
	t.order.Remove(e)
}
