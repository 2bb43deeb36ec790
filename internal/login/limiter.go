package login

import (
	"sync"
	"time"
)

// Limiter slows repeated failures per user name and per client address,
// and refuses after too many within the window. The zero value is not
// usable; make one with NewLimiter.
type Limiter struct {
	mu     sync.Mutex
	fails  map[string]*failCount
	window time.Duration
	max    int
	now    func() time.Time
}

type failCount struct {
	n     int
	first time.Time
}

// Limits of the Limiter NewLimiter makes.
const (
	limitWindow   = 15 * time.Minute // failures older than this are forgotten
	limitFailures = 10               // failures within the window before refusal
	failDelayStep = 500 * time.Millisecond
	maxFailDelay  = 5 * time.Second
	maxFailKeys   = 100000 // bound memory under a spray of names
)

// NewLimiter returns a Limiter that refuses a user name or an address
// after 10 failures within 15 minutes.
func NewLimiter() *Limiter {
	return &Limiter{fails: make(map[string]*failCount), window: limitWindow, max: limitFailures, now: time.Now}
}

func (l *Limiter) keys(user, host string) []string {
	return []string{"u:" + user, "a:" + host}
}

// Allow reports whether a login of user from host may be checked now.
func (l *Limiter) Allow(user, host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range l.keys(user, host) {
		if f, ok := l.fails[k]; ok {
			if now.Sub(f.first) > l.window {
				delete(l.fails, k)
				continue
			}
			if f.n >= l.max {
				return false
			}
		}
	}
	return true
}

// Fail records a failure and returns how long to hold the answer: half a
// second per failure so far, at most 5 seconds.
func (l *Limiter) Fail(user, host string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	worst := 0
	for _, k := range l.keys(user, host) {
		f, ok := l.fails[k]
		if !ok || now.Sub(f.first) > l.window {
			f = &failCount{first: now}
			l.fails[k] = f
		}
		f.n++
		worst = max(worst, f.n)
	}
	if len(l.fails) > maxFailKeys {
		for k, f := range l.fails {
			if now.Sub(f.first) > l.window {
				delete(l.fails, k)
			}
		}
	}
	d := time.Duration(worst) * failDelayStep
	return min(d, maxFailDelay)
}

// Succeed forgets the failures of user (not those of the address: one
// good password does not license guessing others from there).
func (l *Limiter) Succeed(user, host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, "u:"+user)
}
