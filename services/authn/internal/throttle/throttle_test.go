package throttle

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLimiter(p Policy) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(p, c.now), c
}

func TestDelays(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{"under the threshold", 4, 0},
		{"fifth failure", 5, time.Second},
		{"sixth", 6, 2 * time.Second},
		{"seventh", 7, 4 * time.Second},
		{"capped", 30, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, _ := newLimiter(DefaultPolicy())
			for range tt.failures {
				l.Fail("user:alice")
			}
			if got := l.Wait("user:alice"); got != tt.want {
				t.Errorf("after %d failures wait %v, want %v", tt.failures, got, tt.want)
			}
			if got := l.Wait("user:bob"); got != 0 {
				t.Errorf("another key waits %v", got)
			}
		})
	}
}

func TestWindowAndSuccess(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(DefaultPolicy())
	// Four failures, then a long pause: the window forgets them.
	for range 4 {
		l.Fail("user:alice", "src:10.0.0.1")
	}
	c.add(16 * time.Minute)
	l.Fail("user:alice", "src:10.0.0.1")
	if w := l.Wait("user:alice", "src:10.0.0.1"); w != 0 {
		t.Fatalf("failures outside the window still count: wait %v", w)
	}
	// Four more within the window reach the threshold.
	for range 4 {
		c.add(time.Minute)
		l.Fail("user:alice", "src:10.0.0.1")
	}
	if w := l.Wait("user:alice"); w != time.Second {
		t.Fatalf("wait %v, want 1s", w)
	}
	c.add(500 * time.Millisecond)
	if w := l.Wait("user:carol", "src:10.0.0.1"); w != 500*time.Millisecond {
		t.Fatalf("the source is not slowed down: wait %v", w)
	}
	c.add(500 * time.Millisecond)
	if w := l.Wait("user:alice"); w != 0 {
		t.Fatalf("still waiting %v after the delay", w)
	}
	// A success clears the user but not the source.
	l.Fail("user:alice", "src:10.0.0.1")
	l.Succeed("user:alice")
	if w := l.Wait("user:alice"); w != 0 {
		t.Errorf("success did not clear the user: wait %v", w)
	}
	if w := l.Wait("src:10.0.0.1"); w != 2*time.Second {
		t.Errorf("source wait %v, want 2s", w)
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	p.MaxKeys = 100
	l, c := newLimiter(p)
	for range p.Failures {
		l.Fail("user:victim")
	}
	for i := range 1000 {
		c.add(time.Millisecond)
		l.Fail(fmt.Sprintf("user:u%d", i))
		if n := l.Len(); n > p.MaxKeys {
			t.Fatalf("%d keys tracked, limit %d", n, p.MaxKeys)
		}
	}
	// Stale entries go first: after the window every old key is stale.
	c.add(p.Window)
	l.Fail("user:new")
	if n := l.Len(); n != 1 {
		t.Errorf("%d keys after the window, want 1", n)
	}
}

func BenchmarkFail(b *testing.B) {
	l := New(DefaultPolicy(), nil)
	i := 0
	for b.Loop() {
		i++
		l.Fail(fmt.Sprintf("user:u%d", i%1000), "src:10.0.0.1")
	}
}
