package imagecache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// SweepReport says what a Sweep did, by origin uuid.
type SweepReport struct {
	// Evicted origins were AVAILABLE, counted no snapshot and had not been
	// used for longer than the idle time: storage and document removed.
	Evicted []string
	// Expired origins were FAILED for longer than FailureTTL: removed.
	Expired []string
	// Abandoned origins were DOWNLOADING by a replica that stopped
	// renewing its lease: whatever storage they had and their document
	// removed, so that the next request downloads afresh.
	Abandoned []string
	// Busy origins would have been evicted, but their storage still has
	// snapshots: their count is wrong (a reconciler should recount) and
	// they are kept.
	Busy []string
	// TempFiles are downloads left in TempDir by a replica that died,
	// removed (file names, not uuids).
	TempFiles []string
}

// Sweep evicts AVAILABLE origins that count no snapshot and were last used
// more than idle ago, removes FAILED origins older than FailureTTL, and
// removes DOWNLOADING origins whose downloader's lease expired. Each is
// first claimed with a revision-checked update (so that no snapshot can be
// counted in it meanwhile, and no two replicas sweep it at once), then its
// storage is deleted, then its document; every change is announced. It
// also removes the temporary files of downloads no replica is making. It
// goes on after a failure with one origin and returns all failures joined.
func (c *Cache) Sweep(ctx context.Context, idle time.Duration) (SweepReport, error) {
	var rep SweepReport
	page, err := c.cfg.Volumes.Query(ctx, cimi.Query{Filter: originFilter()}, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		return rep, errs.Wrap(errs.Unavailable, err, "image cache sweep: the volume store failed")
	}
	var failures []error
	downloading := map[string]bool{}
	for _, doc := range page.Docs {
		if v, err := volume.Decode(doc.Body); err == nil && v.State == volume.Downloading && !c.leaseExpired(v) {
			downloading[v.UUID] = true
		}
	}
	rep.TempFiles, err = c.removeTemp(downloading)
	if err != nil {
		failures = append(failures, err)
	}
	for _, doc := range page.Docs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		v, err := volume.Decode(doc.Body)
		if err != nil || !v.Type.Origin() || !volume.ValidUUID(v.UUID) {
			continue
		}
		now := c.cfg.Now()
		var list *[]string
		switch {
		case v.State == volume.Available && v.Count == 0 && !now.Before(lastUsed(v).Add(idle)):
			list = &rep.Evicted
		case v.State == volume.Failed && c.failureExpired(v):
			list = &rep.Expired
		case v.State == volume.Downloading && c.leaseExpired(v):
			list = &rep.Abandoned
		default:
			continue
		}
		done, err := c.remove(ctx, doc.Revision, v, idle)
		switch {
		case errors.Is(err, errBusy):
			rep.Busy = append(rep.Busy, v.UUID)
		case err != nil:
			failures = append(failures, fmt.Errorf("origin %s of image %s: %w", v.UUID, v.Identifier, err))
		case done:
			*list = append(*list, v.UUID)
		}
	}
	return rep, errors.Join(failures...)
}

// errBusy: an origin counting no snapshot still has some in the backend.
var errBusy = errors.New("the origin still has snapshots")

// remove claims origin v (read at revision rev) if it is still what Sweep
// found, then deletes its storage and its document. It reports false when
// the origin changed meanwhile and was left alone.
func (c *Cache) remove(ctx context.Context, rev uint64, old *volume.Volume, idle time.Duration) (bool, error) {
	log := c.cfg.Log.With("volume", old.UUID, "image", old.Identifier, "state", old.State)
	now := c.cfg.Now()
	cl := claim{uuid: old.UUID, token: c.newToken()}
	v := *old
	v.State = volume.Downloading
	v.StateMessage = fmt.Sprintf("Being removed from the image cache (it was %s).", old.State)
	v.Holder = cl.token
	v.LeaseUntil = volume.Stamp(now.Add(c.cfg.Lease))
	v.Updated = volume.Stamp(now)
	body, err := v.Encode()
	if err != nil {
		return false, err
	}
	// The revision check makes the claim exclusive: a snapshot counted, a
	// takeover or another sweep since the read makes it fail.
	newRev, err := c.cfg.Volumes.Put(ctx, v.ID, body, rev)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, errs.Wrap(errs.Unavailable, err, "the volume store failed")
	}
	c.announce(ctx, subject.EventUpdated, &v, msgID(v.UUID, newRev))

	if err := c.cfg.Backend.Delete(ctx, v.UUID); err != nil && errs.CodeOf(err) != errs.NotFound {
		if errs.CodeOf(err) == errs.Conflict && old.State == volume.Available {
			log.Warn("imagecache: an origin counting no snapshot still has some; keeping it", "error", err)
			c.restore(ctx, cl, old)
			return false, errBusy
		}
		// The claim expires and the next sweep (or request) tries again.
		return false, fmt.Errorf("delete its storage: %w", err)
	}
	doc := store.Document{ID: v.ID, Revision: newRev}
	if err := c.cfg.Volumes.Delete(ctx, doc.ID, doc.Revision); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			// Our claim expired and someone took over: theirs now.
			return false, nil
		}
		return false, errs.Wrap(errs.Unavailable, err, "the volume store failed")
	}
	c.announce(ctx, subject.EventDeleted, &v, msgID(v.UUID, newRev)+".deleted")
	log.Info("imagecache: origin removed", "idle", idle)
	return true, nil
}

// removeTemp removes the temporary files of downloads whose origin is not
// being downloaded under a live lease, unless they are younger than a lease
// (a download claimed after the query may just have made its file).
func (c *Cache) removeTemp(downloading map[string]bool) ([]string, error) {
	ents, err := os.ReadDir(c.cfg.TempDir)
	if err != nil {
		return nil, fmt.Errorf("image cache sweep: list the download directory: %w", err)
	}
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix)
		if !ok || len(rest) < 36 || downloading[rest[:36]] || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || c.cfg.Now().Sub(info.ModTime()) < c.cfg.Lease {
			continue
		}
		if err := os.Remove(filepath.Join(c.cfg.TempDir, e.Name())); err == nil {
			c.cfg.Log.Info("imagecache: removed a download left behind", "file", e.Name())
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}

// restore gives back an origin claimed for eviction that must stay.
func (c *Cache) restore(ctx context.Context, cl claim, old *volume.Volume) {
	now := c.cfg.Now()
	v, rev, err := c.update(ctx, volume.ID(cl.uuid), func(v *volume.Volume) error {
		if v.Holder != cl.token {
			return errLostClaim
		}
		v.State, v.StateMessage = old.State, old.StateMessage
		v.Holder, v.LeaseUntil = "", ""
		v.LastUsed = volume.Stamp(now) // not a candidate again at once
		v.Updated = volume.Stamp(now)
		return nil
	})
	if err != nil {
		c.cfg.Log.Error("imagecache: cannot give back an origin that must stay; its claim will expire and it will be downloaded again", "volume", cl.uuid, "error", err)
		return
	}
	c.announce(ctx, subject.EventUpdated, v, msgID(cl.uuid, rev))
}

// lastUsed is when origin v last gained or lost a snapshot, or was made.
func lastUsed(v *volume.Volume) time.Time {
	for _, s := range []string{v.LastUsed, v.Updated, v.Created} {
		if t := volume.ParseStamp(s); !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// originFilter selects image-cache origins.
func originFilter() cimi.Expr {
	typ := func(t volume.Type) cimi.Expr {
		return &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"type"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: string(t)}}
	}
	return &cimi.Logical{Op: cimi.Or, Terms: []cimi.Expr{typ(volume.MachineImageOrigin), typ(volume.DataImageOrigin)}}
}
