package lvm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/tool"
)

// Config says where the backend keeps volumes.
type Config struct {
	// VG is the volume group.
	VG string
	// ThinPool is the thin pool logical volume in VG that holds every
	// volume; logical volumes outside it are not the backend's.
	ThinPool string
	// Runner runs lvm2, dmsetup and qemu-img; nil runs the real programs.
	Runner tool.Runner
}

// Backend keeps volumes as thin logical volumes in one thin pool. It is safe
// for concurrent use, also by several processes on the host sharing the
// pool: every step that must be atomic is one lvm2 command, which lvm2
// serializes with its volume group lock.
type Backend struct {
	vg, pool string
	run      tool.Runner
	now      func() time.Time
}

var _ backend.Backend = (*Backend)(nil)

// New returns a backend for the thin pool cfg.ThinPool in cfg.VG. It runs
// nothing; Check tells whether the pool is there.
func New(cfg Config) (*Backend, error) {
	if !validName(cfg.VG) {
		return nil, fmt.Errorf("lvm backend: %q is not a volume group name", cfg.VG)
	}
	if !validName(cfg.ThinPool) {
		return nil, fmt.Errorf("lvm backend: %q is not a thin pool name", cfg.ThinPool)
	}
	r := cfg.Runner
	if r == nil {
		r = tool.Exec{}
	}
	return &Backend{vg: cfg.VG, pool: cfg.ThinPool, run: r, now: time.Now}, nil
}

// validName accepts the names lvm2 accepts for volume groups and logical
// volumes, which are also safe inside an lvs selection and a device path.
func validName(s string) bool { return tool.ValidName(s, 127, "+_.-") }

// Name returns "lvm".
func (b *Backend) Name() string { return "lvm" }

// Check verifies that the thin pool exists, for a clear error at startup
// rather than at the first volume.
func (b *Backend) Check(ctx context.Context) error {
	out, err := b.run.Run(ctx, "lvs", "--reportformat", "json", "-o", "lv_name,segtype", "-S", `lv_name="`+b.pool+`"`, b.vg)
	if err != nil {
		return b.failed(ctx, err)
	}
	rows, err := parseReport(out)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "the lvm storage backend could not read lvs's report")
	}
	if len(rows) != 1 || rows[0]["segtype"] != "thin-pool" {
		return errs.Errorf(errs.Unavailable, "volume group %s has no thin pool %s: create it with lvcreate --type thin-pool", b.vg, b.pool)
	}
	return nil
}

// Create makes a blank thin volume directly under its id: lvcreate commits
// the volume in one metadata update, and a new thin volume reads as zeros
// from its first instant, so there is no partial state to hide.
func (b *Backend) Create(ctx context.Context, id string, sizeGiB int64) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := backend.CheckSize(sizeGiB); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(ctx, id); err != nil {
		return backend.Volume{}, err
	}
	if _, err := b.run.Run(ctx, "lvcreate", b.thinArgs(id, sizeGiB*backend.GiB)...); err != nil {
		return backend.Volume{}, b.createFailed(ctx, id, err)
	}
	return b.Get(ctx, id)
}

// Snapshot makes a thin snapshot of origin: it shares origin's blocks, so
// it costs nothing whatever origin's size. Thin snapshots are made with the
// activation-skip flag by default; it is cleared so that the volume comes up
// with its volume group like any other.
func (b *Backend) Snapshot(ctx context.Context, id, origin string) (backend.Volume, error) {
	if err := backend.CheckSnapshot(id, origin); err != nil {
		return backend.Volume{}, err
	}
	if _, err := b.find(ctx, origin); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(ctx, id); err != nil {
		return backend.Volume{}, err
	}
	if _, err := b.run.Run(ctx, "lvcreate", "--snapshot", "--setactivationskip", "n", "--name", id, b.vg+"/"+origin); err != nil {
		// A Delete may have renamed the origin away since find.
		if _, ferr := b.find(ctx, origin); errs.CodeOf(ferr) == errs.NotFound {
			return backend.Volume{}, ferr
		}
		return backend.Volume{}, b.createFailed(ctx, id, err)
	}
	return b.Get(ctx, id)
}

// Import writes the image at src onto a new thin volume of the image's
// virtual size, which lvm2 rounds up to whole extents.
func (b *Backend) Import(ctx context.Context, id, src string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(ctx, id); err != nil {
		return backend.Volume{}, err
	}
	img, err := tool.InspectImage(ctx, b.run, src)
	if err != nil {
		return backend.Volume{}, err
	}
	return b.fill(ctx, id, img.Size, img.Format, src)
}

// Capture copies from's content, through its origin, onto a new thin
// volume. The copy skips zeros, so the capture is as thin as its data.
func (b *Backend) Capture(ctx context.Context, id, from string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := backend.CheckID(from); err != nil {
		return backend.Volume{}, err
	}
	f, err := b.find(ctx, from)
	if err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(ctx, id); err != nil {
		return backend.Volume{}, err
	}
	return b.fill(ctx, id, f.size, "raw", b.path(from))
}

// Grow extends volume id with lvextend.
func (b *Backend) Grow(ctx context.Context, id string, sizeGiB int64) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := backend.CheckSize(sizeGiB); err != nil {
		return backend.Volume{}, err
	}
	v, err := b.Get(ctx, id)
	if err != nil {
		return backend.Volume{}, err
	}
	want, err := backend.GrowTo(id, v.Size, sizeGiB)
	if err != nil {
		return backend.Volume{}, err
	}
	if want == v.Size {
		return v, nil
	}
	if _, err := b.run.Run(ctx, "lvextend", "--size", sizeArg(want), b.vg+"/"+id); err != nil {
		return backend.Volume{}, b.failed(ctx, err)
	}
	return b.Get(ctx, id)
}

// Delete removes volume id, refusing while snapshots of it exist (lvm2
// itself would let a thin origin go) or while its device is open. It first
// renames the volume to a temporary name, in one lvm2 command: a Snapshot
// that comes later, from this process or another, no longer finds the
// origin, and one that came earlier shows as a child of the renamed volume,
// which then gets its name back.
func (b *Backend) Delete(ctx context.Context, id string) error {
	if err := backend.CheckID(id); err != nil {
		return err
	}
	if _, err := b.find(ctx, id); errs.CodeOf(err) == errs.NotFound {
		return nil
	} else if err != nil {
		return err
	}
	tmp := tool.TempName(id, b.now())
	if _, err := b.run.Run(ctx, "lvrename", b.vg, id, tmp); err != nil {
		if _, ferr := b.find(ctx, id); errs.CodeOf(ferr) == errs.NotFound {
			return nil // deleted meanwhile
		}
		return b.failed(ctx, err)
	}
	lvs, err := b.query(ctx, `pool_lv="`+b.pool+`"`)
	if err != nil {
		return b.restore(ctx, tmp, id, err)
	}
	var children []string
	open := false
	for _, l := range lvs {
		switch {
		case l.name == tmp:
			open = l.open
		case l.origin == tmp:
			children = append(children, l.name)
		}
	}
	switch {
	case len(children) > 0:
		return b.restore(ctx, tmp, id, errs.Errorf(errs.Conflict,
			"volume %s is the origin of %d snapshot(s) (%s) and cannot be deleted before them",
			id, len(children), strings.Join(children[:min(len(children), 3)], ", ")))
	case open:
		return b.restore(ctx, tmp, id, errs.Errorf(errs.Conflict,
			"volume %s is open on this host (a machine may be using it) and cannot be deleted", id))
	}
	if _, err := b.run.Run(ctx, "lvremove", "--force", b.vg+"/"+tmp); err != nil {
		// The volume is gone under its id; RemoveTemp finishes the job.
		return b.failed(ctx, err)
	}
	return nil
}

// restore gives a volume that Delete renamed to tmp its name id back, and
// returns why Delete stopped.
func (b *Backend) restore(ctx context.Context, tmp, id string, why error) error {
	ctx, cancel := tool.CleanupContext(ctx)
	defer cancel()
	if _, err := b.run.Run(ctx, "lvrename", b.vg, tmp, id); err != nil {
		return errs.Wrap(errs.Internal, fmt.Errorf("%w; then renaming %s back to %s: %w", why, tmp, id, err),
			"the lvm storage backend stopped deleting a volume and could not restore its name; RemoveTemp restores it later")
	}
	return why
}

// Get describes volume id.
func (b *Backend) Get(ctx context.Context, id string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	l, err := b.find(ctx, id)
	if err != nil {
		return backend.Volume{}, err
	}
	mapped, err := b.thinMapped(ctx)
	if err != nil {
		return backend.Volume{}, err
	}
	return b.volume(l, mapped), nil
}

// List describes the volumes in the thin pool whose names are uuids;
// temporaries and foreign volumes are skipped.
func (b *Backend) List(ctx context.Context) ([]backend.Volume, error) {
	lvs, err := b.query(ctx, `pool_lv="`+b.pool+`"`)
	if err != nil {
		return nil, err
	}
	mapped, err := b.thinMapped(ctx)
	if err != nil {
		return nil, err
	}
	var out []backend.Volume
	for _, l := range lvs {
		if backend.ValidID(l.name) {
			out = append(out, b.volume(l, mapped))
		}
	}
	return out, nil
}

// Locate returns the volume's device, activating it first if it is not
// active on this host (after a reboot without autoactivation, say).
func (b *Backend) Locate(ctx context.Context, id string) (backend.Location, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Location{}, err
	}
	l, err := b.find(ctx, id)
	if err != nil {
		return backend.Location{}, err
	}
	if !l.active {
		if _, err := b.run.Run(ctx, "lvchange", "--activate", "y", "--ignoreactivationskip", b.vg+"/"+id); err != nil {
			return backend.Location{}, b.failed(ctx, err)
		}
	}
	return backend.Location{Format: "raw", Path: b.path(id)}, nil
}

// RemoveTemp cleans up after processes that died in the middle of an
// operation, and returns the names of the volumes it removed. Temporary
// volumes made more than age ago are removed, except one that has snapshots:
// that is an origin whose Delete was interrupted, and it gets its id back.
// The age keeps it from touching a volume that another process is filling
// right now: it must exceed the longest import.
func (b *Backend) RemoveTemp(ctx context.Context, age time.Duration) ([]string, error) {
	lvs, err := b.query(ctx, `pool_lv="`+b.pool+`"`)
	if err != nil {
		return nil, err
	}
	origins := map[string]bool{}
	for _, l := range lvs {
		origins[l.origin] = true
	}
	var removed []string
	for _, l := range lvs {
		id, made, ok := tool.ParseTemp(l.name)
		if !ok || b.now().Sub(made) < age {
			continue
		}
		if origins[l.name] {
			// If id was taken meanwhile, the volume stays a temporary
			// for a person to look at.
			_, _ = b.run.Run(ctx, "lvrename", b.vg, l.name, id)
			continue
		}
		if _, err := b.run.Run(ctx, "lvremove", "--force", b.vg+"/"+l.name); err != nil {
			return removed, b.failed(ctx, err)
		}
		removed = append(removed, l.name)
	}
	return removed, nil
}

// fill makes volume id of size bytes under a temporary name, writes the
// image at src (of the given format) onto it, and renames it to id only
// when the data is on the device. On failure it removes the temporary.
func (b *Backend) fill(ctx context.Context, id string, size int64, format, src string) (backend.Volume, error) {
	tmp := tool.TempName(id, b.now())
	if _, err := b.run.Run(ctx, "lvcreate", b.thinArgs(tmp, size)...); err != nil {
		return backend.Volume{}, b.failed(ctx, err)
	}
	published := false
	defer func() {
		if !published {
			b.discard(ctx, tmp)
		}
	}()
	if _, err := b.run.Run(ctx, "qemu-img", tool.ConvertArgs(format, src, b.path(tmp))...); err != nil {
		return backend.Volume{}, b.failed(ctx, err)
	}
	if _, err := b.run.Run(ctx, "lvchange", "--addtag", createdTag(b.now()), b.vg+"/"+tmp); err != nil {
		return backend.Volume{}, b.failed(ctx, err)
	}
	// lvrename refuses to replace an existing volume, so of two imports
	// under one id the second fails here rather than clobber the first.
	if _, err := b.run.Run(ctx, "lvrename", b.vg, tmp, id); err != nil {
		return backend.Volume{}, b.createFailed(ctx, id, err)
	}
	published = true
	return b.Get(ctx, id)
}

// discard removes a temporary volume after a failure, even when ctx has
// ended; if that fails too, RemoveTemp finds it later.
func (b *Backend) discard(ctx context.Context, name string) {
	ctx, cancel := tool.CleanupContext(ctx)
	defer cancel()
	_, _ = b.run.Run(ctx, "lvremove", "--force", b.vg+"/"+name)
}

// thinArgs returns the lvcreate arguments for a blank thin volume.
func (b *Backend) thinArgs(name string, size int64) []string {
	return []string{"--type", "thin", "--virtualsize", sizeArg(size), "--thinpool", b.pool, "--name", name, b.vg}
}

// sizeArg writes a size in bytes as lvm2 reads it; lvm2 rounds it up to
// whole extents.
func sizeArg(n int64) string { return strconv.FormatInt(n, 10) + "b" }

func (b *Backend) path(name string) string { return "/dev/" + b.vg + "/" + name }

// query runs lvs over the volume group with an lvs selection.
func (b *Backend) query(ctx context.Context, selection string) ([]lv, error) {
	out, err := b.run.Run(ctx, "lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", lvsFields, "-S", selection, b.vg)
	if err != nil {
		return nil, b.failed(ctx, err)
	}
	lvs, err := parseLVs(out)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "the lvm storage backend could not read lvs's report")
	}
	return lvs, nil
}

// find returns the pool's volume named name, or errs.NotFound.
func (b *Backend) find(ctx context.Context, name string) (lv, error) {
	lvs, err := b.query(ctx, `lv_name="`+name+`" && pool_lv="`+b.pool+`"`)
	if err != nil {
		return lv{}, err
	}
	if len(lvs) == 0 {
		return lv{}, backend.NotFound(name)
	}
	return lvs[0], nil
}

func (b *Backend) mustNotExist(ctx context.Context, id string) error {
	_, err := b.find(ctx, id)
	return backend.Absent(id, err)
}

// createFailed explains a failed lvcreate or lvrename of id. lvm2 says
// "already exists" only in prose, with the exit status it uses for every
// failure, so the volume group is asked instead.
func (b *Backend) createFailed(ctx context.Context, id string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if _, ferr := b.find(ctx, id); ferr == nil {
		return backend.Exists(id)
	}
	return b.failed(ctx, err)
}

// thinMapped returns the bytes mapped by every active thin device, by
// device-mapper name. lvs reports thin usage only as a percentage with two
// decimals, too coarse for a snapshot's few megabytes of a large volume.
func (b *Backend) thinMapped(ctx context.Context) (map[string]int64, error) {
	out, err := b.run.Run(ctx, "dmsetup", "status", "--target", "thin")
	if err != nil {
		return nil, b.failed(ctx, err)
	}
	return parseThinStatus(out), nil
}

// volume describes l. Allocated is what the device maps beyond what its
// origin maps: dm-thin counts shared blocks in both, and telling which
// blocks are shared needs the pool's metadata. So a snapshot that
// overwrites its origin's data in place is under-counted, while one that
// only writes where its origin had nothing, like a fresh snapshot, is exact.
// An inactive volume maps nothing that the kernel can report, so it shows 0.
//
// While a Delete of its origin holds the origin under a temporary name, a
// snapshot reports the id the temporary name carries.
func (b *Backend) volume(l lv, mapped map[string]int64) backend.Volume {
	own := mapped[dmName(b.vg, l.name)]
	origin := l.origin
	if origin != "" {
		own -= mapped[dmName(b.vg, origin)]
		if id, _, ok := tool.ParseTemp(origin); ok {
			origin = id
		}
	}
	return backend.Volume{ID: l.name, Size: l.size, Allocated: max(own, 0), Origin: origin, Created: l.created}
}

func (b *Backend) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errs.Wrap(errs.Internal, err, "the lvm storage backend failed")
}
