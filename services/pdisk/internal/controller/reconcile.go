package controller

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// Report says what a reconciliation found and repaired.
type Report struct {
	// Volumes and Stored are the documents and backend volumes seen.
	Volumes, Stored int
	// Repairs describe each repair, e.g. "removed storage 8d0f… that no
	// document names".
	Repairs []string
	// Foreign counts the documents without storage when there were so many
	// that the storage looked like another cloud's; nothing was repaired.
	Foreign int
}

// Log writes the report: one line, and one warning per repair.
func (r Report) Log(log *slog.Logger) {
	if r.Foreign > 0 {
		log.Error("most volume documents have no storage here: is this replica using the right storage (data directory, share, volume group)? Nothing was repaired",
			"documents", r.Volumes, "without_storage", r.Foreign, "storage", r.Stored)
	}
	for _, s := range r.Repairs {
		log.Warn("reconciler repaired", "repair", s)
	}
	level := slog.LevelDebug
	if len(r.Repairs) > 0 {
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, "volumes reconciled", "documents", r.Volumes, "storage", r.Stored, "repairs", len(r.Repairs))
}

func (r *Report) add(format string, args ...any) {
	r.Repairs = append(r.Repairs, fmt.Sprintf(format, args...))
}

// Reconcile makes documents, storage, exports, origin counts and quota
// ledgers agree, in both directions: storage no document names (left by a
// crash between the two writes of a create) is removed once older than
// OrphanGrace; a document whose storage is gone (a crash during a delete,
// or storage lost under us) is removed; exports follow the documents;
// counts and ledgers are recomputed from the documents (a ledger also
// keeps the creates in flight: young storage, no document yet).
// Documents are read before storage, so that a create in flight shows as
// young storage, never as a document without storage.
func (c *Controller) Reconcile(ctx context.Context) (Report, error) {
	var rep Report
	docs, revs, err := c.volumes(ctx)
	if err != nil {
		return rep, err
	}
	stored, err := c.cfg.Backend.List(ctx)
	if err != nil {
		return rep, fmt.Errorf("pdisk: list the storage: %w", err)
	}
	rep.Volumes, rep.Stored = len(docs), len(stored)
	have := make(map[string]backend.Volume, len(stored))
	for _, s := range stored {
		have[s.ID] = s
	}

	// Documents without storage. When most documents have none, this
	// replica is probably looking at the wrong storage (another data
	// directory, an unmounted share): removing them would destroy the
	// cloud's records, so it only says so.
	missing := 0
	for uuid, v := range docs {
		if _, ok := have[uuid]; !ok && v.State != volume.Downloading && v.State != volume.Failed {
			missing++
		}
	}
	if missing >= 3 && missing*2 > len(docs) {
		rep.Foreign = missing
		return rep, nil
	}
	// Likewise storage that mostly no document names is someone else's.
	grace := c.cfg.Settings().OrphanGrace.D()
	unnamed := 0
	for _, s := range stored {
		if _, ok := docs[s.ID]; !ok && (s.Created.IsZero() || c.now().Sub(s.Created) >= grace) {
			unnamed++
		}
	}
	if unnamed >= 3 && unnamed*2 > len(stored) {
		rep.Foreign = unnamed
		return rep, nil
	}

	// Storage without a document: snapshots first, origins after.
	orphans := slices.DeleteFunc(slices.Clone(stored), func(s backend.Volume) bool {
		_, named := docs[s.ID]
		return named || (!s.Created.IsZero() && c.now().Sub(s.Created) < grace)
	})
	slices.SortFunc(orphans, func(a, b backend.Volume) int {
		return strings.Compare(b.Origin, a.Origin) // snapshots (Origin set) first
	})
	for _, s := range orphans {
		if c.cfg.Exporter != nil {
			if err := c.cfg.Exporter.Unexport(ctx, s.ID); err != nil {
				return rep, err
			}
		}
		if err := c.cfg.Backend.Delete(ctx, s.ID); err != nil {
			if errs.CodeOf(err) == errs.Conflict {
				continue // still has snapshots: a later turn
			}
			return rep, fmt.Errorf("pdisk: remove orphaned storage %s: %w", s.ID, err)
		}
		delete(have, s.ID)
		rep.add("removed storage %s (%d GiB) that no document names", s.ID, s.Size/backend.GiB)
	}

	for uuid, v := range docs {
		if _, ok := have[uuid]; ok || v.State == volume.Downloading || v.State == volume.Failed {
			continue // downloads are the image cache's to finish or sweep
		}
		cur, rev, err := c.load(ctx, uuid)
		if errs.CodeOf(err) == errs.NotFound {
			delete(docs, uuid)
			continue
		}
		if err != nil {
			return rep, err
		}
		if _, err := c.cfg.Backend.Get(ctx, uuid); err == nil {
			continue // made meanwhile
		}
		cur.Attachments = nil // its storage is gone: nothing can hold it
		if err := c.Delete(ctx, cur, rev, uuid+".reconciled"); err != nil {
			return rep, err
		}
		delete(docs, uuid)
		_ = revs
		rep.add("removed document %s (owner %q, %d GiB, %s) whose storage is gone", uuid, v.Owner, v.Size, v.State)
	}

	if err := c.reconcileExports(ctx, docs, &rep); err != nil {
		return rep, err
	}
	if err := c.reconcileCounts(ctx, docs, &rep); err != nil {
		return rep, err
	}
	if err := c.reconcileLedgers(ctx, docs, have, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// reconcileExports withdraws exports of volumes that are gone and exports
// again what lost its export (tgtd keeps its targets in memory only).
func (c *Controller) reconcileExports(ctx context.Context, docs map[string]*volume.Volume, rep *Report) error {
	if c.cfg.Exporter == nil {
		return nil
	}
	exported, err := c.cfg.Exporter.List(ctx)
	if err != nil {
		return fmt.Errorf("pdisk: list the exports: %w", err)
	}
	for _, uuid := range exported {
		if _, ok := docs[uuid]; ok {
			continue
		}
		if _, err := c.cfg.Backend.Get(ctx, uuid); err == nil {
			continue // a create in flight; its document comes next
		}
		if err := c.cfg.Exporter.Unexport(ctx, uuid); err != nil {
			return err
		}
		rep.add("withdrew the export of %s, which no longer exists", uuid)
	}
	for uuid, v := range docs {
		if v.Origin != "" || v.Type.Origin() || slices.Contains(exported, uuid) {
			continue
		}
		loc, err := c.cfg.Backend.Locate(ctx, uuid)
		if err != nil {
			continue
		}
		turl, err := c.cfg.Exporter.Export(ctx, uuid, loc)
		if err != nil {
			return fmt.Errorf("pdisk: export %s again: %w", uuid, err)
		}
		if turl != v.TURL {
			if _, _, err := c.write(ctx, uuid, "", func(v *volume.Volume) error { v.TURL = turl; return nil }); err != nil {
				return err
			}
		}
		rep.add("exported %s again at %s", uuid, turl)
	}
	return nil
}

// reconcileCounts sets each origin's count to its number of snapshots.
func (c *Controller) reconcileCounts(ctx context.Context, docs map[string]*volume.Volume, rep *Report) error {
	counts := make(map[string]int)
	for _, v := range docs {
		if v.Origin != "" {
			counts[v.Origin]++
		}
	}
	for uuid, v := range docs {
		if !v.Type.Origin() || v.State != volume.Available || v.Count == counts[uuid] {
			continue
		}
		want := counts[uuid]
		_, _, err := c.write(ctx, uuid, "", func(v *volume.Volume) error {
			if v.Count == want {
				return errNoChange
			}
			v.Count = want
			return nil
		})
		if err != nil && errs.CodeOf(err) != errs.NotFound {
			return err
		}
		rep.add("set the snapshot count of origin %s from %d to %d", uuid, v.Count, want)
	}
	return nil
}

// reconcileLedgers rebuilds every user's quota ledger from the documents
// and the creates in flight (young storage, no document yet).
func (c *Controller) reconcileLedgers(ctx context.Context, docs map[string]*volume.Volume, stored map[string]backend.Volume, rep *Report) error {
	want := make(map[string]map[string]int64)
	for uuid, v := range docs {
		if !counted(v) {
			continue
		}
		if want[v.Owner] == nil {
			want[v.Owner] = map[string]int64{}
		}
		want[v.Owner][uuid] = v.Size
	}
	have, err := c.quotas.Ledgers(ctx)
	if err != nil {
		return err
	}
	// A create between its reservation and its document keeps its
	// reservation, or creates meanwhile could pass the quota.
	grace := c.cfg.Settings().OrphanGrace.D()
	for user, vols := range have {
		for uuid, size := range vols {
			s, ok := stored[uuid]
			if _, named := docs[uuid]; named || !ok || s.Created.IsZero() || c.now().Sub(s.Created) >= grace {
				continue
			}
			if want[user] == nil {
				want[user] = map[string]int64{}
			}
			want[user][uuid] = size
		}
	}
	users := slices.Sorted(maps.Keys(want))
	for user := range have {
		if _, ok := want[user]; !ok && len(have[user]) > 0 {
			users = append(users, user)
		}
	}
	for _, user := range users {
		if unlimited(c.cfg.Settings().QuotaOf(user)) {
			// No quota, no ledger: it starts afresh when one applies.
			if _, ok := have[user]; ok {
				if err := c.quotas.drop(ctx, user); err != nil {
					return err
				}
			}
			continue
		}
		vols := want[user]
		if vols == nil {
			vols = map[string]int64{}
		}
		changed, err := c.quotas.Set(ctx, user, vols)
		if err != nil {
			return err
		}
		if changed {
			rep.add("rebuilt the quota ledger of %s: %d volumes", user, len(vols))
		}
	}
	return nil
}

// counted reports whether v counts against its owner's quota: the
// volumes users make (persistent, volatile, captured), not image disks
// (the cache's snapshots, read-only ones included).
func counted(v *volume.Volume) bool {
	return v.Owner != "" && !v.Type.Live() && !v.Type.Origin() && v.Origin == ""
}
