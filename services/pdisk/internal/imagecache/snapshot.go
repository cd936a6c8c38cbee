package imagecache

import (
	"context"
	"errors"
	"fmt"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// getAttempts bounds how often Get starts again when the origin it found
// was evicted before the snapshot could be counted in it.
const getAttempts = 5

// Get returns a new live copy-on-write snapshot of the image of req for a
// machine: Origin, then the snapshot, stored as a document (state
// AVAILABLE, owned by snap.Owner) and counted in the origin. A repeated
// call with the same snap.UUID (a redelivered command) returns the same
// volume.
func (c *Cache) Get(ctx context.Context, req Request, snap Snap) (*volume.Volume, error) {
	req, err := req.check()
	if err != nil {
		return nil, err
	}
	ou := volume.OriginUUID(req.ImageID)
	if snap, err = snap.check(ou); err != nil {
		return nil, err
	}
	unlock, err := c.snaps.lock(ctx, snap.UUID)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", snap.UUID, err)
	}
	defer unlock()

	if v, err := c.existing(ctx, req, snap, ou); v != nil || err != nil {
		return v, err
	}
	for attempt := 1; ; attempt++ {
		origin, err := c.Origin(ctx, req)
		if err != nil {
			return nil, err
		}
		v, err := c.snapshot(ctx, req, snap, origin)
		if !errors.Is(err, errChanged) {
			return v, err
		}
		if attempt == getAttempts {
			return nil, errs.Errorf(errs.Unavailable, "Image %s: its cached copy kept being evicted while a snapshot of it was made; retry.", req.ImageID)
		}
	}
}

// existing returns the document of snap if it exists (nil if not), or an
// error if the uuid is taken by something else than a snapshot of ou.
func (c *Cache) existing(ctx context.Context, req Request, snap Snap, ou string) (*volume.Volume, error) {
	doc, err := c.cfg.Volumes.Get(ctx, volume.ID(snap.UUID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeError(ctx, req.ImageID, err)
	}
	v, err := volume.Decode(doc.Body)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "a volume document cannot be read")
	}
	if v.Origin != ou {
		return nil, errs.Errorf(errs.Conflict, "Volume %s already exists and is not a snapshot of image %s.", snap.UUID, req.ImageID)
	}
	return v, nil
}

// snapshot makes snap from origin. The origin counts the snapshot before
// it is made, so that Sweep, which evicts only origins counting none,
// cannot remove the origin under it; errChanged means the origin was no
// longer AVAILABLE and Get must start again.
func (c *Cache) snapshot(ctx context.Context, req Request, snap Snap, origin *volume.Volume) (*volume.Volume, error) {
	ou := origin.UUID
	reserved, made := false, false
	undo := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if made {
			if err := c.cfg.Backend.Delete(cctx, snap.UUID); err != nil && errs.CodeOf(err) != errs.NotFound {
				c.cfg.Log.Error("imagecache: cannot remove a snapshot that failed half-way", "volume", snap.UUID, "origin", ou, "error", err)
			}
		}
		if reserved {
			if err := c.Release(cctx, ou); err != nil {
				c.cfg.Log.Error("imagecache: cannot uncount a snapshot that failed half-way", "volume", snap.UUID, "origin", ou, "error", err)
			}
		}
	}

	bv, err := c.cfg.Backend.Get(ctx, snap.UUID)
	switch {
	case err == nil:
		// An earlier attempt at this command made (and so counted) it,
		// then stopped before storing its document.
		if bv.Origin != ou {
			return nil, errs.Errorf(errs.Conflict, "Volume %s already exists in the storage backend and is not a snapshot of image %s.", snap.UUID, req.ImageID)
		}
	case errs.CodeOf(err) == errs.NotFound:
		if err := c.reserve(ctx, req, snap, ou); err != nil {
			return nil, err
		}
		reserved = true
		bv, err = c.cfg.Backend.Snapshot(ctx, snap.UUID, ou)
		if err == nil {
			made = true
			break
		}
		// Made meanwhile by another replica handling the same command?
		if errs.CodeOf(err) == errs.Conflict {
			if cur, gerr := c.cfg.Backend.Get(ctx, snap.UUID); gerr == nil && cur.Origin == ou {
				bv = cur
				break
			}
		}
		undo()
		return nil, errs.Wrap(errs.CodeOf(err), err, fmt.Sprintf("Image %s: the storage backend could not make snapshot %s (%s).", req.ImageID, snap.UUID, errs.MessageOf(err)))
	default:
		return nil, errs.Wrap(errs.CodeOf(err), err, fmt.Sprintf("Image %s: the storage backend cannot tell whether snapshot %s exists.", req.ImageID, snap.UUID))
	}

	loc, err := c.cfg.Backend.Locate(ctx, snap.UUID)
	if err != nil {
		undo()
		return nil, errs.Wrap(errs.CodeOf(err), err, fmt.Sprintf("Image %s: the storage backend cannot locate snapshot %s.", req.ImageID, snap.UUID))
	}
	now := c.cfg.Now()
	v := &volume.Volume{
		ID:          volume.ID(snap.UUID),
		ResourceURI: cimi.ResourceURI(volume.Kind),
		Created:     volume.Stamp(now),
		Updated:     volume.Stamp(now),
		UUID:        snap.UUID,
		Owner:       snap.Owner,
		Visibility:  volume.Private,
		Identifier:  volume.SnapshotIdentifier(ou),
		Type:        snap.Type,
		State:       volume.Available,
		Machine:     snap.Machine,
		Backend:     c.cfg.Backend.Name(),
		Format:      loc.Format,
		Path:        loc.Path,
		Origin:      ou,
	}
	size := origin.Size
	if gib := (bv.Size + backend.GiB - 1) / backend.GiB; gib > size {
		size = gib
	}
	v.SetSize(size)
	v.SetACL(volume.ACLFor(snap.Owner, volume.Private))
	body, err := v.Encode()
	if err != nil {
		undo()
		return nil, errs.Wrap(errs.Internal, err, "the snapshot's document cannot be written")
	}
	rev, err := c.cfg.Volumes.Create(ctx, v.ID, body)
	if errors.Is(err, store.ErrExists) {
		// Stored meanwhile by another replica handling the same command,
		// which counted it too.
		made = false
		undo()
		return c.existing(ctx, req, snap, ou)
	}
	if err != nil {
		undo()
		return nil, storeError(ctx, req.ImageID, err)
	}
	id := msgID(snap.UUID, rev)
	if snap.MsgID != "" {
		id = snap.MsgID + "." + snap.UUID + ".created"
	}
	c.announce(ctx, subject.EventCreated, v, id)
	return v, nil
}

// reserve counts a snapshot about to be made in origin ou, if the origin
// is still AVAILABLE (errChanged if not).
func (c *Cache) reserve(ctx context.Context, req Request, snap Snap, ou string) error {
	now := c.cfg.Now()
	v, rev, err := c.update(ctx, volume.ID(ou), func(v *volume.Volume) error {
		if v.State != volume.Available {
			return errChanged
		}
		v.Count++
		v.LastUsed = volume.Stamp(now)
		v.Updated = volume.Stamp(now)
		return nil
	})
	switch {
	case errors.Is(err, errChanged), errors.Is(err, store.ErrNotFound):
		return errChanged
	case err != nil:
		return storeError(ctx, req.ImageID, err)
	}
	c.announce(ctx, subject.EventUpdated, v, msgID(ou, rev))
	return nil
}

// Release is called once a live snapshot's document and storage are
// deleted: the origin counts one snapshot less and was last used now. An
// origin that does not exist is an errs.NotFound error.
func (c *Cache) Release(ctx context.Context, originUUID string) error {
	ou, err := volume.UUIDOf(originUUID)
	if err != nil {
		return err
	}
	now := c.cfg.Now()
	v, rev, err := c.update(ctx, volume.ID(ou), func(v *volume.Volume) error {
		if !v.Type.Origin() {
			return errs.Errorf(errs.Invalid, "Volume %s is a %s, not an image-cache origin.", ou, v.Type)
		}
		v.Count = max(0, v.Count-1)
		v.LastUsed = volume.Stamp(now)
		v.Updated = volume.Stamp(now)
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errs.Errorf(errs.NotFound, "Image-cache origin %s does not exist.", ou)
	case errs.CodeOf(err) == errs.Invalid:
		return err
	case err != nil:
		if ctx.Err() != nil {
			return fmt.Errorf("origin %s: %w", ou, ctx.Err())
		}
		return errs.Wrap(errs.Unavailable, err, fmt.Sprintf("origin %s: the volume store failed", ou))
	}
	c.announce(ctx, subject.EventUpdated, v, msgID(ou, rev))
	return nil
}
