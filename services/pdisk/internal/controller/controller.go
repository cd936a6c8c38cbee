// Package controller is pdisk's volume controller: the rules of the CIMI
// Volume kind (create, edit, delete with quotas and rights), the typed
// commands other services send (volatile disks, attach and detach, image
// volumes from the cache, capture, release at a machine's end), the
// janitor that ends quarantines and evicts unused images, and the
// reconciler that makes documents, storage and exports agree after a
// crash.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/imagecache"
	"stratuslab.dev/services/pdisk/internal/settings"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// Exporter makes volumes reachable from other hosts (internal/export).
type Exporter interface {
	Name() string
	Export(ctx context.Context, uuid string, loc backend.Location) (string, error)
	Unexport(ctx context.Context, uuid string) error
	List(ctx context.Context) ([]string, error)
}

// Config is what a Controller works with.
type Config struct {
	// Volumes holds the Volume documents, Usage the per-user ledgers.
	Volumes, Usage store.Collection
	Backend        backend.Backend
	// Exporter exports standalone volumes; nil: none (no turl).
	Exporter Exporter
	Cache    *imagecache.Cache
	Bus      *bus.Bus
	// Settings returns the live ServiceConfiguration/pdisk.
	Settings func() settings.Settings
	Log      *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Crash is called at the points where a crash test may stop the
	// process (daemon.Deps.Crash); nil: never.
	Crash func(point string)
}

// Controller carries out every change of a volume.
type Controller struct {
	cfg    Config
	quotas *quotas
	ann    volume.Announcer
	log    *slog.Logger
	now    func() time.Time
}

// New returns the controller of cfg.
func New(cfg Config) (*Controller, error) {
	if cfg.Volumes == nil || cfg.Usage == nil || cfg.Backend == nil || cfg.Bus == nil || cfg.Cache == nil {
		return nil, errors.New("pdisk: the controller needs its collections, a backend, a bus and an image cache")
	}
	if cfg.Settings == nil {
		cfg.Settings = settings.Defaults
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Crash == nil {
		cfg.Crash = func(string) {}
	}
	c := &Controller{
		cfg: cfg, log: cfg.Log,
		ann: volume.Announcer{Bus: cfg.Bus, Now: cfg.Now}, now: cfg.Now,
	}
	c.quotas = newQuotas(cfg.Usage, c.held)
	return c, nil
}

// held returns what user holds that counts against a quota: uuid → GiB.
func (c *Controller) held(ctx context.Context, user string) (map[string]int64, error) {
	out := map[string]int64{}
	owned := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"owner"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: user}}
	const page = 500
	for first := 1; ; first += page {
		p, err := c.cfg.Volumes.Query(ctx, cimi.Query{Filter: owned, First: first, Last: first + page - 1}, admin)
		if err != nil {
			return nil, fmt.Errorf("pdisk: list the volumes of %s: %w", user, err)
		}
		for _, d := range p.Docs {
			if v, err := volume.Decode(d.Body); err == nil && counted(v) {
				out[v.UUID] = v.Size
			}
		}
		if len(p.Docs) < page {
			return out, nil
		}
	}
}

// Announce publishes a document change (the image cache's hook too).
func (c *Controller) Announce(ctx context.Context, event, uuid string, after *volume.Volume, msgID string) error {
	return c.ann.Changed(ctx, event, uuid, after, msgID)
}

// provision makes the storage of a new standalone volume v (uuid, owner,
// size set): the quota reservation, the backend volume, its location and
// export. A redelivered command finds the storage it made and goes on.
// On failure nothing is left: neither storage nor reservation.
func (c *Controller) provision(ctx context.Context, v *volume.Volume) (err error) {
	if err := c.quotas.Reserve(ctx, v.Owner, v.UUID, v.Size, c.cfg.Settings().QuotaOf(v.Owner)); err != nil {
		return err
	}
	made := false
	defer func() {
		if err == nil {
			return
		}
		// Leave nothing behind: a later redelivery starts again from zero.
		ctx := context.WithoutCancel(ctx)
		if made {
			if derr := c.cfg.Backend.Delete(ctx, v.UUID); derr != nil {
				c.log.Warn("cannot remove the storage of a failed create; the reconciler will", "volume", v.UUID, "error", derr)
			}
		}
		if rerr := c.quotas.Release(ctx, v.Owner, v.UUID); rerr != nil {
			c.log.Warn("cannot release the quota of a failed create; the reconciler will", "volume", v.UUID, "error", rerr)
		}
	}()
	bv, err := c.cfg.Backend.Create(ctx, v.UUID, v.Size)
	if errs.CodeOf(err) == errs.Conflict {
		// Made by an earlier delivery of this command (ids are fresh uuids).
		bv, err = c.cfg.Backend.Get(ctx, v.UUID)
	} else if err == nil {
		made = true
	}
	if err != nil {
		return fmt.Errorf("pdisk: create the storage of %s: %w", v.UUID, err)
	}
	if bv.Size != v.Size*backend.GiB {
		return errs.Errorf(errs.Conflict, "Volume %s exists with another size.", v.UUID)
	}
	return c.locate(ctx, v)
}

// locate fills in where v is and, for standalone volumes, exports it.
func (c *Controller) locate(ctx context.Context, v *volume.Volume) error {
	loc, err := c.cfg.Backend.Locate(ctx, v.UUID)
	if err != nil {
		return fmt.Errorf("pdisk: locate %s: %w", v.UUID, err)
	}
	v.Backend, v.Format, v.Path = c.cfg.Backend.Name(), loc.Format, loc.Path
	v.TURL = loc.URL
	if v.TURL == "" && loc.Path != "" {
		v.TURL = "file://" + loc.Path
	}
	if c.cfg.Exporter != nil && v.Origin == "" && !v.Type.Origin() {
		turl, err := c.cfg.Exporter.Export(ctx, v.UUID, loc)
		if err != nil {
			return fmt.Errorf("pdisk: export %s: %w", v.UUID, err)
		}
		v.TURL = turl
	}
	return nil
}

// destroy removes the storage and bookkeeping of v, whose document is
// about to go: its export, its storage, its quota reservation and, when
// origin is set, its origin's snapshot count, then announces the end of
// its usage. Every step but the count succeeds when already done, so a
// redelivery can run it again.
func (c *Controller) destroy(ctx context.Context, v *volume.Volume, origin bool) error {
	if c.cfg.Exporter != nil {
		if err := c.cfg.Exporter.Unexport(ctx, v.UUID); err != nil {
			return fmt.Errorf("pdisk: withdraw the export of %s: %w", v.UUID, err)
		}
	}
	if err := c.cfg.Backend.Delete(ctx, v.UUID); err != nil {
		return fmt.Errorf("pdisk: delete the storage of %s: %w", v.UUID, err)
	}
	if err := c.quotas.Release(ctx, v.Owner, v.UUID); err != nil {
		return err
	}
	if origin {
		if err := c.releaseOrigin(ctx, v); err != nil {
			return err
		}
	}
	ev := &volumev1.VolumeDeleted{
		Uuid: v.UUID, Owner: v.Owner, SizeGib: uint32(v.Size), Type: volume.ProtoType(v.Type), DeletedAt: timestamppb.New(c.now()),
	}
	return c.cfg.Bus.Publish(ctx, subject.EvtVolumeDeleted, ev, v.UUID+".deleted")
}

// releaseOrigin counts the end of live snapshot v in its origin.
func (c *Controller) releaseOrigin(ctx context.Context, v *volume.Volume) error {
	if v.Origin == "" {
		return nil
	}
	if err := c.cfg.Cache.Release(ctx, v.Origin); err != nil && errs.CodeOf(err) != errs.NotFound {
		return fmt.Errorf("pdisk: count the end of snapshot %s of %s: %w", v.UUID, v.Origin, err)
	}
	return nil
}

// created announces the start of v's usage, once per volume.
func (c *Controller) created(ctx context.Context, v *volume.Volume) error {
	return c.cfg.Bus.Publish(ctx, subject.EvtVolumeCreated, &volumev1.VolumeCreated{Volume: v.Proto()}, v.UUID+".created")
}

// load reads a volume document.
func (c *Controller) load(ctx context.Context, uuid string) (*volume.Volume, uint64, error) {
	doc, err := c.cfg.Volumes.Get(ctx, volume.ID(uuid))
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, errs.Errorf(errs.NotFound, "Volume %s does not exist.", uuid)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("pdisk: read %s: %w", uuid, err)
	}
	v, err := volume.Decode(doc.Body)
	if err != nil {
		return nil, 0, err
	}
	return v, doc.Revision, nil
}

// errNoChange tells write that fn found nothing to do.
var errNoChange = errors.New("no change")

// write applies fn to volume uuid with a revision check, retrying on a
// race, on behalf of command cmdID: a redelivered command that finds its
// own write (v.Command) returns the volume as it is, done reports false
// then. fn returning errNoChange also leaves the document alone.
func (c *Controller) write(ctx context.Context, uuid, cmdID string, fn func(v *volume.Volume) error) (v *volume.Volume, done bool, err error) {
	for attempt := 0; attempt < 50; attempt++ {
		v, rev, err := c.load(ctx, uuid)
		if err != nil {
			return nil, false, err
		}
		if cmdID != "" && v.Command == cmdID {
			return v, false, nil
		}
		if err := fn(v); errors.Is(err, errNoChange) {
			return v, false, nil
		} else if err != nil {
			return nil, false, err
		}
		v.Command = cmdID
		v.Updated = volume.Stamp(c.now())
		body, err := v.Encode()
		if err != nil {
			return nil, false, err
		}
		_, err = c.cfg.Volumes.Put(ctx, volume.ID(uuid), body, rev)
		switch {
		case err == nil:
			return v, true, nil
		case errors.Is(err, store.ErrConflict):
			continue
		case errors.Is(err, store.ErrNotFound):
			return nil, false, errs.Errorf(errs.NotFound, "Volume %s does not exist.", uuid)
		default:
			return nil, false, fmt.Errorf("pdisk: write %s: %w", uuid, err)
		}
	}
	return nil, false, errs.Errorf(errs.Unavailable, "Volume %s is changing too often; try again.", uuid)
}

// store writes a new volume document for command cmdID; a redelivery
// that finds its own document returns it.
func (c *Controller) store(ctx context.Context, v *volume.Volume, cmdID string) (*volume.Volume, error) {
	now := volume.Stamp(c.now())
	v.ID, v.ResourceURI = volume.ID(v.UUID), cimi.ResourceURI(volume.Kind)
	if v.Created == "" {
		v.Created = now
	}
	v.Updated = now
	v.Command = cmdID
	body, err := v.Encode()
	if err != nil {
		return nil, err
	}
	_, err = c.cfg.Volumes.Create(ctx, v.ID, body)
	if errors.Is(err, store.ErrExists) {
		got, _, lerr := c.load(ctx, v.UUID)
		if lerr != nil {
			return nil, lerr
		}
		if cmdID == "" || got.Command != cmdID {
			return nil, errs.Errorf(errs.Conflict, "Volume %s already exists.", v.UUID)
		}
		return got, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pdisk: store %s: %w", v.UUID, err)
	}
	return v, nil
}

// who is the identity of a command's actor; none is the system itself.
func who(a interface {
	GetUser() string
	GetRoles() []string
}) cimi.Identity {
	if a == nil || (a.GetUser() == "" && len(a.GetRoles()) == 0) {
		return cimi.Identity{Roles: []string{cimi.RoleAdmin}}
	}
	return cimi.Identity{User: a.GetUser(), Roles: a.GetRoles()}
}
