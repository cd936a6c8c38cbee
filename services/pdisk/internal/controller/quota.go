package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/pdisk/internal/settings"
)

// UsageKind is the store collection of per-user usage ledgers.
const UsageKind = "VolumeUsage"

// ledger is what one user holds: volume uuid → size in GiB. A set rather
// than counters, so that reserving or releasing one volume twice (a
// redelivered command) counts it once, and the reconciler can rebuild it.
type ledger struct {
	User    string           `json:"user"`
	Volumes map[string]int64 `json:"volumes"`
}

// quotas enforces per-user quotas atomically: every reservation is a
// revision-checked write of the user's ledger, so concurrent creates on
// any number of replicas cannot together exceed a quota. Within one
// process, writes for one user queue on a lock instead of racing.
type quotas struct {
	coll store.Collection
	// held lists what a user holds, from the Volume documents: how a
	// ledger starts when a quota begins to apply.
	held  func(ctx context.Context, user string) (map[string]int64, error)
	mu    sync.Mutex
	locks map[string]*userLock
}

type userLock struct {
	sync.Mutex
	users int
}

func newQuotas(coll store.Collection, held func(ctx context.Context, user string) (map[string]int64, error)) *quotas {
	return &quotas{coll: coll, held: held, locks: make(map[string]*userLock)}
}

// Only users under a quota have a ledger: keeping one for everybody would
// cost every create a write of a document that grows with the user's
// volumes. A ledger starts from the user's volumes when a quota first
// applies to them, and goes when no quota does.

// unlimited reports whether limit bounds nothing.
func unlimited(limit settings.Quota) bool { return limit.Volumes <= 0 && limit.GiB <= 0 }

// drop removes user's ledger, if any: nothing is counted while no quota
// applies, so it would only go stale.
func (q *quotas) drop(ctx context.Context, user string) error {
	doc, err := q.coll.Get(ctx, ledgerID(user))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pdisk: read the usage ledger of %s: %w", user, err)
	}
	if err := q.coll.Delete(ctx, doc.ID, doc.Revision); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("pdisk: remove the usage ledger of %s: %w", user, err)
	}
	return nil
}

// lock serialises the ledger writes of one user in this process.
func (q *quotas) lock(user string) func() {
	q.mu.Lock()
	l := q.locks[user]
	if l == nil {
		l = &userLock{}
		q.locks[user] = l
	}
	l.users++
	q.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		q.mu.Lock()
		if l.users--; l.users == 0 {
			delete(q.locks, user)
		}
		q.mu.Unlock()
	}
}

func ledgerID(user string) string { return UsageKind + "/" + user }

// Reserve counts volume uuid of sizeGiB against user's quota, or refuses
// with errs.Conflict... (quota exceeded is a client error: 409, with what
// is used and what the limit is).
func (q *quotas) Reserve(ctx context.Context, user, uuid string, sizeGiB int64, limit settings.Quota) error {
	return q.limited(ctx, user, limit, func(l *ledger) error {
		if _, ok := l.Volumes[uuid]; ok {
			return nil
		}
		var total int64
		for _, s := range l.Volumes {
			total += s
		}
		if limit.Volumes > 0 && len(l.Volumes)+1 > limit.Volumes {
			return errs.Errorf(errs.Conflict, "Quota exceeded: %s already has %d volumes, the limit is %d.", user, len(l.Volumes), limit.Volumes)
		}
		if limit.GiB > 0 && total+sizeGiB > limit.GiB {
			return errs.Errorf(errs.Conflict, "Quota exceeded: %s uses %d GiB, %d more would pass the limit of %d GiB.", user, total, sizeGiB, limit.GiB)
		}
		l.Volumes[uuid] = sizeGiB
		return nil
	})
}

// Resize changes the size counted for a volume already reserved.
func (q *quotas) Resize(ctx context.Context, user, uuid string, sizeGiB int64, limit settings.Quota) error {
	return q.limited(ctx, user, limit, func(l *ledger) error {
		var total int64
		for id, s := range l.Volumes {
			if id != uuid {
				total += s
			}
		}
		if limit.GiB > 0 && total+sizeGiB > limit.GiB {
			return errs.Errorf(errs.Conflict, "Quota exceeded: %s uses %d GiB elsewhere, %d GiB would pass the limit of %d GiB.", user, total, sizeGiB, limit.GiB)
		}
		l.Volumes[uuid] = sizeGiB
		return nil
	})
}

// limited changes user's ledger with f when limit sets a limit, and drops
// the ledger when it sets none. Volumes without an owner count for nobody.
func (q *quotas) limited(ctx context.Context, user string, limit settings.Quota, f func(*ledger) error) error {
	if user == "" {
		return nil
	}
	unlock := q.lock(user)
	defer unlock()
	if unlimited(limit) {
		return q.drop(ctx, user)
	}
	return q.update(ctx, user, true, f)
}

// Release stops counting volume uuid against user.
func (q *quotas) Release(ctx context.Context, user, uuid string) error {
	if user == "" {
		return nil
	}
	unlock := q.lock(user)
	defer unlock()
	return q.update(ctx, user, false, func(l *ledger) error {
		delete(l.Volumes, uuid)
		return nil
	})
}

// Set replaces user's ledger (the reconciler's repair); it reports
// whether anything changed.
func (q *quotas) Set(ctx context.Context, user string, volumes map[string]int64) (bool, error) {
	unlock := q.lock(user)
	defer unlock()
	changed := false
	err := q.update(ctx, user, true, func(l *ledger) error {
		if len(l.Volumes) == len(volumes) {
			same := true
			for id, s := range volumes {
				if got, ok := l.Volumes[id]; !ok || got != s {
					same = false
					break
				}
			}
			if same {
				return errUnchanged
			}
		}
		changed = true
		l.Volumes = volumes
		return nil
	})
	if errors.Is(err, errUnchanged) {
		err = nil
	}
	return changed, err
}

// Ledgers returns every user's ledger, for the reconciler.
func (q *quotas) Ledgers(ctx context.Context) (map[string]map[string]int64, error) {
	out := make(map[string]map[string]int64)
	err := scan(ctx, q.coll, func(doc store.Document) error {
		var l ledger
		if err := json.Unmarshal(doc.Body, &l); err != nil {
			return nil // not ours to judge: skipped
		}
		out[l.User] = l.Volumes
		return nil
	})
	return out, err
}

var errUnchanged = errors.New("unchanged")

// update applies fn to user's ledger with a revision-checked write. A
// missing ledger is started from the user's volumes when start is set,
// left missing otherwise. An error from fn leaves it as it was.
func (q *quotas) update(ctx context.Context, user string, start bool, fn func(*ledger) error) error {
	id := ledgerID(user)
	for attempt := 0; attempt < 100; attempt++ {
		doc, err := q.coll.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			if !start {
				return nil
			}
			held, err := q.held(ctx, user)
			if err != nil {
				return err
			}
			l := &ledger{User: user, Volumes: held}
			if err := fn(l); err != nil {
				return err
			}
			body, _ := json.Marshal(l)
			if _, err := q.coll.Create(ctx, id, body); errors.Is(err, store.ErrExists) {
				continue
			} else if err != nil {
				return fmt.Errorf("pdisk: create the usage ledger of %s: %w", user, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("pdisk: read the usage ledger of %s: %w", user, err)
		}
		var l ledger
		if err := json.Unmarshal(doc.Body, &l); err != nil {
			return fmt.Errorf("pdisk: the usage ledger of %s is not readable: %w", user, err)
		}
		if l.Volumes == nil {
			l.Volumes = map[string]int64{}
		}
		l.User = user
		if err := fn(&l); err != nil {
			return err
		}
		body, _ := json.Marshal(&l)
		if _, err := q.coll.Put(ctx, id, body, doc.Revision); errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("pdisk: write the usage ledger of %s: %w", user, err)
		}
		return nil
	}
	return errs.Errorf(errs.Unavailable, "The usage ledger of %s is too busy; try again.", user)
}
