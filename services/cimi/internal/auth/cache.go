package auth

import (
	"sync"
	"time"
)

// bounded is a concurrent map of at most max entries, each valid until its
// deadline. It keeps what is expensive to redo (an Ed25519 verification, a
// bcrypt behind a login) without letting a flood of distinct keys grow
// memory without limit: on overflow it drops the expired entries, then
// arbitrary ones, which only costs their owners one more verification.
type bounded[K comparable, V any] struct {
	max int

	mu sync.RWMutex
	m  map[K]cached[V]
}

// cached is one value and the end of its validity.
type cached[V any] struct {
	v     V
	until time.Time
}

func newBounded[K comparable, V any](max int) *bounded[K, V] {
	return &bounded[K, V]{max: max, m: make(map[K]cached[V])}
}

// get returns the value of k when it is still valid at now.
func (c *bounded[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v under k until the deadline.
func (c *bounded[K, V]) put(k K, v V, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[k] = cached[V]{v: v, until: until}
}

// evict makes room: expired entries first, then arbitrary ones (map order
// is unspecified, which is good enough here) down to seven eighths of max,
// so that a full cache does not evict on every put.
func (c *bounded[K, V]) evict(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.until) {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) <= c.max-c.max/8-1 {
			break
		}
		delete(c.m, k)
	}
}

// remove forgets k.
func (c *bounded[K, V]) remove(k K) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

// removeIf forgets every entry for which drop is true.
func (c *bounded[K, V]) removeIf(drop func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if drop(k, e.v) {
			delete(c.m, k)
		}
	}
}

// prune forgets the entries expired at now.
func (c *bounded[K, V]) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if !now.Before(e.until) {
			delete(c.m, k)
		}
	}
}

// clear forgets everything.
func (c *bounded[K, V]) clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// len returns the number of entries, expired or not.
func (c *bounded[K, V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
