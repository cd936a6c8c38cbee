package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Retry bounds of UpdateWithRetry: enough attempts for a few dozen writers
// contending for one document, with pauses short enough not to matter when
// there is no contention.
const (
	updateAttempts   = 100
	updateBackoffMin = 500 * time.Microsecond
	updateBackoffMax = 20 * time.Millisecond
)

// UpdateWithRetry implements Collection.Update on top of Get and Put: read,
// apply fn, write with the revision read, and start again after a short
// jittered pause when another writer got there first. An error from fn is
// returned unchanged and nothing is written. Adapters share it so that every
// one retries the same way.
func UpdateWithRetry(ctx context.Context, c Collection, id string, fn UpdateFunc) (Document, error) {
	for attempt := 0; ; attempt++ {
		cur, err := c.Get(ctx, id)
		if err != nil {
			return Document{}, err
		}
		body, err := fn(cur)
		if err != nil {
			return Document{}, err
		}
		body, _, err = PrepareBody(id, body)
		if err != nil {
			return Document{}, err
		}
		rev, err := c.Put(ctx, id, body, cur.Revision)
		if err == nil {
			return Document{ID: id, Revision: rev, Body: body}, nil
		}
		if !errors.Is(err, ErrConflict) {
			return Document{}, err
		}
		if attempt+1 >= updateAttempts {
			return Document{}, fmt.Errorf("update %q: gave up after %d attempts: %w", id, updateAttempts, err)
		}
		if err := pause(ctx, attempt); err != nil {
			return Document{}, fmt.Errorf("update %q: %w", id, err)
		}
	}
}

// pause sleeps before retry number attempt: exponential from
// updateBackoffMin, capped at updateBackoffMax, jittered by ±50% so that
// writers that collided do not collide again in step.
func pause(ctx context.Context, attempt int) error {
	d := updateBackoffMin << min(attempt, 10)
	d = min(d, updateBackoffMax)
	d = d/2 + rand.N(d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ExplainMismatch turns a failed revision check of op on id into the error
// callers test for, from what reading the document right after returned
// (readErr): ErrNotFound when it is gone, ErrConflict when it is at another
// revision, the read's own error otherwise.
func ExplainMismatch(op, id string, readErr error) error {
	switch {
	case readErr == nil:
		return fmt.Errorf("%s %q: %w", op, id, ErrConflict)
	case errors.Is(readErr, ErrNotFound):
		return fmt.Errorf("%s %q: %w", op, id, ErrNotFound)
	}
	return fmt.Errorf("%s %q: revision check failed, then: %w", op, id, readErr)
}
