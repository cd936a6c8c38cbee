package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// sweepBatch is how many expired documents one query of a sweep returns.
const sweepBatch = 500

// sweeper is the identity retention queries run as: it must see every
// document.
func sweeper() cimi.Identity {
	return cimi.Identity{User: "cimi-jobs", Roles: []string{cimi.RoleAdmin}}
}

// sweep deletes the jobs not changed, and the events not happened, within
// the retention age.
func (j *Jobs) sweep(ctx context.Context) error {
	cutoff := j.now().Add(-j.retention).UTC()
	n, err := expire(ctx, j.jobs, "updated", cutoff)
	if err != nil {
		return fmt.Errorf("jobs: delete expired jobs: %w", err)
	}
	m, err := expire(ctx, j.events, "timestamp", cutoff)
	if err != nil {
		return fmt.Errorf("jobs: delete expired events: %w", err)
	}
	if n+m > 0 {
		j.log.Info("deleted expired jobs and events", "jobs", n, "events", m, "older_than", cutoff)
	}
	return nil
}

// expire deletes the documents of c whose date attribute attr is before
// cutoff and returns how many it deleted. A document changed meanwhile is
// left for the next sweep.
func expire(ctx context.Context, c store.Collection, attr string, cutoff time.Time) (int, error) {
	q := cimi.Query{
		Filter: &cimi.Comparison{Attr: cimi.Attribute{Path: []string{attr}}, Op: cimi.Lt, Value: cimi.Value{Kind: cimi.Date, Time: cutoff}},
		First:  1,
		Last:   sweepBatch,
	}
	total := 0
	for {
		page, err := c.Query(ctx, q, sweeper())
		if err != nil {
			return total, err
		}
		deleted := 0
		for _, d := range page.Docs {
			err := c.Delete(ctx, d.ID, d.Revision)
			switch {
			case err == nil:
				deleted++
			case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
			default:
				return total, err
			}
		}
		total += deleted
		// Stop when the last page is done, or when nothing could be
		// deleted (every document changed meanwhile): the next sweep
		// tries again.
		if len(page.Docs) < sweepBatch || deleted == 0 {
			return total, nil
		}
	}
}
