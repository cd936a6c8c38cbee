package controller

import (
	"context"
	"fmt"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// admin is the identity the controller reads its own collections as.
var admin = cimi.Identity{Roles: []string{cimi.RoleAdmin}}

// scan calls fn for every document of coll, a page at a time.
func scan(ctx context.Context, coll store.Collection, fn func(store.Document) error) error {
	const page = 500
	for first := 1; ; first += page {
		p, err := coll.Query(ctx, cimi.Query{First: first, Last: first + page - 1}, admin)
		if err != nil {
			return fmt.Errorf("pdisk: list documents: %w", err)
		}
		for _, d := range p.Docs {
			if err := fn(d); err != nil {
				return err
			}
		}
		if len(p.Docs) < page {
			return nil
		}
	}
}

// volumes reads every Volume document with its revision.
func (c *Controller) volumes(ctx context.Context) (map[string]*volume.Volume, map[string]uint64, error) {
	docs := make(map[string]*volume.Volume)
	revs := make(map[string]uint64)
	err := scan(ctx, c.cfg.Volumes, func(d store.Document) error {
		v, err := volume.Decode(d.Body)
		if err != nil || !volume.ValidUUID(v.UUID) {
			c.log.Warn("a Volume document is not readable; left alone", "id", d.ID, "error", err)
			return nil
		}
		docs[v.UUID] = v
		revs[v.UUID] = d.Revision
		return nil
	})
	return docs, revs, err
}

// Tidy ends the quarantines that are over and evicts unused images from
// the cache; it returns how many volumes it deleted.
func (c *Controller) Tidy(ctx context.Context) (int, error) {
	docs, revs, err := c.volumes(ctx)
	if err != nil {
		return 0, err
	}
	now := c.now()
	n := 0
	for uuid, v := range docs {
		if v.State != volume.Quarantined || len(v.Attachments) > 0 {
			continue
		}
		if until := volume.ParseStamp(v.Quarantine); !until.IsZero() && until.After(now) {
			continue
		}
		if err := c.Delete(ctx, v, revs[uuid], uuid+".quarantine-over"); err != nil {
			return n, fmt.Errorf("pdisk: end the quarantine of %s: %w", uuid, err)
		}
		c.log.Info("quarantine over: volume deleted", "volume", uuid, "owner", v.Owner)
		n++
	}
	rep, err := c.cfg.Cache.Sweep(ctx, c.cfg.Settings().CacheIdle.D())
	if err != nil {
		return n, err
	}
	if len(rep.Evicted)+len(rep.Expired)+len(rep.Abandoned)+len(rep.Busy)+len(rep.TempFiles) > 0 {
		c.log.Info("image cache swept", "evicted", rep.Evicted, "failures_expired", rep.Expired,
			"downloads_abandoned", rep.Abandoned, "busy", rep.Busy, "temporary_files", rep.TempFiles)
	}
	return n, nil
}

// Run tidies every minute (or every ReconcileEvery, when shorter) and
// reconciles at start and then every ReconcileEvery, until ctx ends.
// Failures are logged and retried at the next turn: they must not stop
// the service.
func (c *Controller) Run(ctx context.Context) error {
	// The loop wakes every second to read the settings again, so that a
	// shorter period set by an administrator applies at once rather than
	// after the sleep in progress.
	lastReconcile, lastTidy := time.Time{}, time.Time{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		every := c.cfg.Settings().ReconcileEvery.D()
		if c.now().Sub(lastReconcile) >= every {
			if rep, err := c.Reconcile(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				c.log.Warn("reconciliation failed; retrying at the next turn", "error", err)
			} else {
				lastReconcile = c.now()
				rep.Log(c.log)
			}
		}
		if c.now().Sub(lastTidy) >= min(time.Minute, every) {
			if _, err := c.Tidy(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("tidying failed; retrying at the next turn", "error", err)
			}
			lastTidy = c.now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
