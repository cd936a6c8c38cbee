package throttle

import (
	"sync"
	"time"
)

// Defaults of Policy.
const (
	DefaultFailures = 5
	DefaultWindow   = 15 * time.Minute
	DefaultFirst    = time.Second
	DefaultMaxDelay = 5 * time.Minute
	DefaultMaxKeys  = 100_000
)

// maxRemembered bounds the failure times kept per key; more than enough for
// the delays a window can hold before the cap is reached.
const maxRemembered = 64

// Policy says when and for how long attempts are refused.
type Policy struct {
	// Failures within Window after which attempts are refused.
	Failures int
	Window   time.Duration
	// First is the delay after the Failures-th failure; each further failure
	// doubles it, up to MaxDelay.
	First    time.Duration
	MaxDelay time.Duration
	// MaxKeys bounds the keys tracked; beyond it the stalest are forgotten.
	MaxKeys int
}

// DefaultPolicy is 5 failures within 15 minutes, then 1 s, 2 s, 4 s ... up
// to 5 minutes, for at most 100 000 keys.
func DefaultPolicy() Policy {
	return Policy{Failures: DefaultFailures, Window: DefaultWindow, First: DefaultFirst,
		MaxDelay: DefaultMaxDelay, MaxKeys: DefaultMaxKeys}
}

// entry is what is known of one key.
type entry struct {
	failures []time.Time // within the window, oldest first
	until    time.Time   // attempts are refused before this
}

// Limiter tracks failures. It is safe for concurrent use.
type Limiter struct {
	policy Policy
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

// New returns a limiter applying p, reading the time from now (time.Now
// when nil).
func New(p Policy, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{policy: p, now: now, entries: make(map[string]*entry)}
}

// Wait returns how long the caller must wait before an attempt on any of
// keys is considered: zero when it may go ahead. Empty keys are ignored.
func (l *Limiter) Wait(keys ...string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if e, ok := l.entries[k]; ok && k != "" {
			wait = max(wait, e.until.Sub(now))
		}
	}
	return wait
}

// Fail records a failed attempt on each of keys.
func (l *Limiter) Fail(keys ...string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if k == "" {
			continue
		}
		e, ok := l.entries[k]
		if !ok {
			l.makeRoom(now)
			e = &entry{}
			l.entries[k] = e
		}
		e.prune(now, l.policy.Window)
		if len(e.failures) == maxRemembered {
			e.failures = append(e.failures[:0], e.failures[1:]...)
		}
		e.failures = append(e.failures, now)
		if over := len(e.failures) - l.policy.Failures; over >= 0 {
			e.until = now.Add(l.delay(over))
		}
	}
}

// Succeed forgets the failures of keys, e.g. of a user who has just proved
// who they are.
func (l *Limiter) Succeed(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.entries, k)
	}
}

// Len returns the number of keys tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// delay returns the delay after `over` failures beyond the threshold.
func (l *Limiter) delay(over int) time.Duration {
	d := l.policy.First
	for range over {
		if d >= l.policy.MaxDelay {
			break
		}
		d *= 2
	}
	return min(d, l.policy.MaxDelay)
}

// prune drops the failures older than the window.
func (e *entry) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(e.failures) && now.Sub(e.failures[i]) >= window {
		i++
	}
	e.failures = append(e.failures[:0], e.failures[i:]...)
}

// stale reports whether the entry no longer matters: no failure within the
// window and no refusal in force.
func (e *entry) stale(now time.Time, window time.Duration) bool {
	return !now.Before(e.until) && (len(e.failures) == 0 || now.Sub(e.failures[len(e.failures)-1]) >= window)
}

// makeRoom keeps the map within MaxKeys before one more key is added: it
// forgets stale entries and, if that is not enough, the entry whose last
// failure is oldest. l.mu is held.
func (l *Limiter) makeRoom(now time.Time) {
	if l.policy.MaxKeys <= 0 || len(l.entries) < l.policy.MaxKeys {
		return
	}
	for k, e := range l.entries {
		if e.stale(now, l.policy.Window) {
			delete(l.entries, k)
		}
	}
	for len(l.entries) >= l.policy.MaxKeys {
		var oldest string
		var at time.Time
		for k, e := range l.entries {
			last := e.until
			if n := len(e.failures); n > 0 && e.failures[n-1].After(last) {
				last = e.failures[n-1]
			}
			if oldest == "" || last.Before(at) {
				oldest, at = k, last
			}
		}
		delete(l.entries, oldest)
	}
}
