package rbd

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/tool"
)

// Config says which Ceph pool holds the volumes and how to reach it.
type Config struct {
	// Pool is the RBD pool.
	Pool string
	// Namespace is an RBD namespace in Pool (rbd namespace create), or ""
	// for the pool's default one.
	Namespace string
	// User is the Ceph client id without "client." (rbd --id), or "" for
	// the tool's default, admin.
	User string
	// ConfFile is the ceph.conf to read (rbd --conf), or "" for the
	// tool's default, /etc/ceph/ceph.conf.
	ConfFile string
	// Runner runs rbd and qemu-img; nil runs the real programs.
	Runner tool.Runner
}

// Backend keeps volumes as RBD images in one pool (and namespace). It is
// safe for concurrent use, also by several processes or hosts sharing the
// pool: every step that must be atomic is one librbd operation, serialized
// by the cluster.
type Backend struct {
	cfg Config
	run tool.Runner
	now func() time.Time
}

var _ backend.Backend = (*Backend)(nil)

// The exit status of rbd is the errno of the failed operation.
const (
	enoent    = 2
	ebusy     = 16
	eexist    = 17
	enotempty = 39
	etimedout = 110
)

// metaWorkers bounds the rbd processes List runs at once to read each
// image's metadata.
const metaWorkers = 8

// New returns a backend for cfg. It runs nothing; Check tells whether the
// pool is reachable.
func New(cfg Config) (*Backend, error) {
	if !validName(cfg.Pool) {
		return nil, fmt.Errorf("rbd backend: %q is not a usable pool name", cfg.Pool)
	}
	if cfg.Namespace != "" && !validName(cfg.Namespace) {
		return nil, fmt.Errorf("rbd backend: %q is not a usable namespace name", cfg.Namespace)
	}
	if cfg.User != "" && !validName(cfg.User) {
		return nil, fmt.Errorf("rbd backend: %q is not a usable Ceph user name", cfg.User)
	}
	// QEMU's rbd: syntax separates options with ':' and escapes with '\'.
	if strings.ContainsAny(cfg.ConfFile, ":\\") {
		return nil, fmt.Errorf("rbd backend: the Ceph configuration file name %q holds ':' or '\\', which QEMU cannot take", cfg.ConfFile)
	}
	r := cfg.Runner
	if r == nil {
		r = tool.Exec{}
	}
	return &Backend{cfg: cfg, run: r, now: time.Now}, nil
}

// validName accepts names that need no quoting in an rbd image spec or a
// QEMU rbd: URL.
func validName(s string) bool { return tool.ValidName(s, 128, "_.-") }

// Name returns "rbd".
func (b *Backend) Name() string { return "rbd" }

// Check verifies that the pool (and namespace) can be listed, for a clear
// error at startup rather than at the first volume.
func (b *Backend) Check(ctx context.Context) error {
	if _, err := b.rbd(ctx, append([]string{"ls", "--format", "json"}, b.poolArgs()...)...); err != nil {
		if tool.Status(err) == enoent {
			return errs.Errorf(errs.Unavailable, "the Ceph pool %s does not exist: create it and run rbd pool init", b.where())
		}
		return b.failed(ctx, err)
	}
	return nil
}

// Create makes a blank image under a temporary name and publishes it.
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
	t := b.temp(id)
	defer t.cleanup(ctx)
	if err := t.create(ctx, sizeGiB*backend.GiB); err != nil {
		return backend.Volume{}, err
	}
	return t.publish(ctx)
}

// Snapshot clones origin: a protected snapshot of origin, named like the
// clone's temporary, and a clone of it, which shares origin's objects and
// costs nothing whatever origin's size. Each clone has its own snapshot, so
// that deleting the clone can remove it.
func (b *Backend) Snapshot(ctx context.Context, id, origin string) (backend.Volume, error) {
	if err := backend.CheckSnapshot(id, origin); err != nil {
		return backend.Volume{}, err
	}
	if _, err := b.info(ctx, origin); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(ctx, id); err != nil {
		return backend.Volume{}, err
	}
	t := b.temp(id)
	defer t.cleanup(ctx)
	if err := t.clone(ctx, origin); err != nil {
		return backend.Volume{}, err
	}
	return t.publish(ctx)
}

// Import makes an image of the image file's virtual size and has qemu-img
// write the image onto it through librbd.
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
	t := b.temp(id)
	defer t.cleanup(ctx)
	if err := t.create(ctx, img.Size); err != nil {
		return backend.Volume{}, err
	}
	if _, err := b.run.Run(ctx, "qemu-img", tool.ConvertArgs(img.Format, src, b.url(t.name))...); err != nil {
		return backend.Volume{}, b.failed(ctx, err)
	}
	return t.publish(ctx)
}

// Capture clones a snapshot of from and flattens the clone, which copies
// every object it still shares, so that it depends on nothing. The snapshot
// makes the copy a point-in-time one even if from is being written.
func (b *Backend) Capture(ctx context.Context, id, from string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := backend.CheckID(from); err != nil {
		return backend.Volume{}, err
	}
	if _, err := b.info(ctx, from); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(ctx, id); err != nil {
		return backend.Volume{}, err
	}
	t := b.temp(id)
	defer t.cleanup(ctx)
	if err := t.clone(ctx, from); err != nil {
		return backend.Volume{}, err
	}
	if _, err := b.rbd(ctx, "flatten", "--no-progress", b.spec(t.name)); err != nil {
		return backend.Volume{}, b.failed(ctx, err)
	}
	// The flattened clone no longer needs the snapshot.
	t.dropSnapshot(ctx)
	return t.publish(ctx)
}

// Grow resizes volume id; rbd resize refuses to shrink without
// --allow-shrink, which is never passed.
func (b *Backend) Grow(ctx context.Context, id string, sizeGiB int64) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := backend.CheckSize(sizeGiB); err != nil {
		return backend.Volume{}, err
	}
	inf, err := b.info(ctx, id)
	if err != nil {
		return backend.Volume{}, err
	}
	want, err := backend.GrowTo(id, inf.Size, sizeGiB)
	if err != nil {
		return backend.Volume{}, err
	}
	if want > inf.Size {
		if _, err := b.rbd(ctx, "resize", "--size", sizeArg(want), "--no-progress", b.spec(id)); err != nil {
			if tool.Status(err) == enoent {
				return backend.Volume{}, backend.NotFound(id)
			}
			return backend.Volume{}, b.failed(ctx, err)
		}
	}
	return b.Get(ctx, id)
}

// Delete removes image id, refusing while clones of it exist or while it is
// open (has watchers). It first renames the image to a temporary name, one
// librbd operation: a Snapshot that comes later, from any host, no longer
// finds the origin, and one that came earlier shows as a clone, and the
// image then gets its name back. Clones refer to their parent by image id,
// so the rename does not disturb them. Once the image is gone, the snapshot
// it was cloned from, if the backend made it, is removed from its origin.
func (b *Backend) Delete(ctx context.Context, id string) error {
	if err := backend.CheckID(id); err != nil {
		return err
	}
	inf, err := b.info(ctx, id)
	if errs.CodeOf(err) == errs.NotFound {
		return nil
	} else if err != nil {
		return err
	}
	tmp := tool.TempName(id, b.now())
	if _, err := b.rbd(ctx, "rename", b.spec(id), b.spec(tmp)); err != nil {
		switch tool.Status(err) {
		case enoent:
			return nil // deleted meanwhile
		case ebusy:
			return inUse(id)
		}
		return b.failed(ctx, err)
	}
	out, err := b.rbd(ctx, "children", "--format", "json", b.spec(tmp))
	if err != nil {
		return b.restore(ctx, tmp, id, b.failed(ctx, err))
	}
	var children []child
	if err := decode("children", out, &children); err != nil {
		return b.restore(ctx, tmp, id, errs.Wrap(errs.Internal, err, "the rbd storage backend could not read rbd's output"))
	}
	if len(children) > 0 {
		var names []string
		for _, c := range children[:min(len(children), 3)] {
			names = append(names, describe(c.Image))
		}
		return b.restore(ctx, tmp, id, errs.Errorf(errs.Conflict,
			"volume %s is the origin of %d snapshot(s) (%s) and cannot be deleted before them", id, len(children), strings.Join(names, ", ")))
	}
	if err := b.dropSnapshots(ctx, tmp); err != nil {
		if tool.Status(err) == ebusy { // a clone came after rbd children
			return b.restore(ctx, tmp, id, errs.Errorf(errs.Conflict, "volume %s got a snapshot while it was being deleted and stays", id))
		}
		return b.restore(ctx, tmp, id, b.failed(ctx, err))
	}
	if _, err := b.rbd(ctx, "rm", "--no-progress", b.spec(tmp)); err != nil {
		switch tool.Status(err) {
		case ebusy:
			return b.restore(ctx, tmp, id, inUse(id))
		case enotempty:
			return b.restore(ctx, tmp, id, errs.Errorf(errs.Conflict, "volume %s got a snapshot while it was being deleted and stays", id))
		}
		// The image is gone under its id; RemoveTemp finishes the job.
		return b.failed(ctx, err)
	}
	if p := inf.Parent; p != nil && b.ours(p) {
		if _, _, ok := tool.ParseTemp(p.Snapshot); ok {
			b.dropSnapshot(ctx, p.Image, p.Snapshot)
		}
	}
	return nil
}

// dropSnapshots unprotects and removes every snapshot of image name; it
// fails with rbd's EBUSY when one has clones. Its errors are uncoded.
func (b *Backend) dropSnapshots(ctx context.Context, name string) error {
	out, err := b.rbd(ctx, "snap", "ls", "--format", "json", b.spec(name))
	if err != nil {
		return err
	}
	var snaps []snapInfo
	if err := decode("snap ls", out, &snaps); err != nil {
		return err
	}
	if len(snaps) == 0 {
		return nil
	}
	for _, s := range snaps {
		if s.Protected == "true" {
			if _, err := b.rbd(ctx, "snap", "unprotect", b.spec(name)+"@"+s.Name); err != nil {
				return err
			}
		}
	}
	_, err = b.rbd(ctx, "snap", "purge", "--no-progress", b.spec(name))
	return err
}

// dropSnapshot unprotects and removes one snapshot, as best it can: one
// left behind is found by RemoveTemp.
func (b *Backend) dropSnapshot(ctx context.Context, image, snap string) {
	ctx, cancel := tool.CleanupContext(ctx)
	defer cancel()
	spec := b.spec(image) + "@" + snap
	_, _ = b.rbd(ctx, "snap", "unprotect", spec)
	_, _ = b.rbd(ctx, "snap", "rm", "--no-progress", spec)
}

// restore gives an image that Delete renamed to tmp its name id back, and
// returns why Delete stopped.
func (b *Backend) restore(ctx context.Context, tmp, id string, why error) error {
	ctx, cancel := tool.CleanupContext(ctx)
	defer cancel()
	if _, err := b.rbd(ctx, "rename", b.spec(tmp), b.spec(id)); err != nil {
		return errs.Wrap(errs.Internal, fmt.Errorf("%w; then renaming %s back to %s: %w", why, tmp, id, err),
			"the rbd storage backend stopped deleting a volume and could not restore its name; RemoveTemp restores it later")
	}
	return why
}

// Get describes volume id: rbd info, image-meta list and du.
func (b *Backend) Get(ctx context.Context, id string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	inf, err := b.info(ctx, id)
	if err != nil {
		return backend.Volume{}, err
	}
	created, err := b.created(ctx, id)
	if err != nil {
		return backend.Volume{}, err
	}
	out, err := b.rbd(ctx, "du", "--format", "json", "--merge-snapshots", b.spec(id))
	if err != nil {
		if tool.Status(err) == enoent {
			return backend.Volume{}, backend.NotFound(id)
		}
		return backend.Volume{}, b.failed(ctx, err)
	}
	used, err := parseUsage(out)
	if err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, err, "the rbd storage backend could not read rbd's output")
	}
	return backend.Volume{ID: id, Size: inf.Size, Allocated: used[id], Origin: b.origin(inf.Parent), Created: created}, nil
}

// List describes the images whose names are uuids: rbd ls -l and du for
// the pool, and image-meta list for each image (metaWorkers at a time),
// since nothing lists every image's metadata at once.
func (b *Backend) List(ctx context.Context) ([]backend.Volume, error) {
	entries, err := b.ls(ctx)
	if err != nil {
		return nil, err
	}
	out, err := b.rbd(ctx, append([]string{"du", "--format", "json", "--merge-snapshots"}, b.poolArgs()...)...)
	if err != nil {
		return nil, b.failed(ctx, err)
	}
	used, err := parseUsage(out)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "the rbd storage backend could not read rbd's output")
	}
	var vols []backend.Volume
	for _, e := range entries {
		if e.Snapshot == "" && backend.ValidID(e.Image) {
			vols = append(vols, backend.Volume{ID: e.Image, Size: e.Size, Allocated: used[e.Image], Origin: b.origin(e.Parent)})
		}
	}
	gone := make([]bool, len(vols))
	failures := make([]error, len(vols))
	sem := make(chan struct{}, metaWorkers)
	var wg sync.WaitGroup
	for i := range vols {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			vols[i].Created, failures[i] = b.created(ctx, vols[i].ID)
			gone[i] = errs.CodeOf(failures[i]) == errs.NotFound
		})
	}
	wg.Wait()
	var listed []backend.Volume
	for i, v := range vols {
		switch {
		case gone[i]: // deleted since rbd ls
		case failures[i] != nil:
			return nil, failures[i]
		default:
			listed = append(listed, v)
		}
	}
	return listed, nil
}

// Locate returns the QEMU rbd: URL of volume id.
func (b *Backend) Locate(ctx context.Context, id string) (backend.Location, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Location{}, err
	}
	if _, err := b.info(ctx, id); err != nil {
		return backend.Location{}, err
	}
	return backend.Location{Format: "raw", URL: b.url(id)}, nil
}

// RemoveTemp cleans up after processes that died in the middle of an
// operation, and returns what it removed (image names, and image@snapshot
// for snapshots). Of the temporaries made more than age ago, an image with
// clones is an origin whose Delete was interrupted, and gets its id back;
// other images are removed with their snapshots; and snapshots of other
// images that no clone uses any more are removed. The age keeps it from
// touching what another process is making right now: it must exceed the
// longest import or capture.
func (b *Backend) RemoveTemp(ctx context.Context, age time.Duration) ([]string, error) {
	entries, err := b.ls(ctx)
	if err != nil {
		return nil, err
	}
	old := func(name string) (string, bool) {
		id, made, ok := tool.ParseTemp(name)
		return id, ok && b.now().Sub(made) >= age
	}
	clones := map[string]int{}    // by parent image
	snapUsers := map[string]int{} // by parent image@snapshot
	for _, e := range entries {
		if e.Snapshot == "" && e.Parent != nil && b.ours(e.Parent) {
			clones[e.Parent.Image]++
			snapUsers[e.Parent.Image+"@"+e.Parent.Snapshot]++
		}
	}
	var removed []string
	gone := map[string]bool{}
	for _, e := range entries {
		id, ok := old(e.Image)
		if e.Snapshot != "" || !ok {
			continue
		}
		if clones[e.Image] > 0 {
			_, _ = b.rbd(ctx, "rename", b.spec(e.Image), b.spec(id))
			continue
		}
		if err := b.dropSnapshots(ctx, e.Image); err != nil {
			return removed, b.failed(ctx, err)
		}
		if _, err := b.rbd(ctx, "rm", "--no-progress", b.spec(e.Image)); err != nil {
			return removed, b.failed(ctx, err)
		}
		gone[e.Image] = true
		removed = append(removed, e.Image)
		if p := e.Parent; p != nil && b.ours(p) {
			snapUsers[p.Image+"@"+p.Snapshot]--
		}
	}
	for _, e := range entries {
		snap := e.Image + "@" + e.Snapshot
		if _, ok := old(e.Snapshot); !ok || gone[e.Image] || snapUsers[snap] > 0 {
			continue
		}
		if e.Protected == "true" {
			if _, err := b.rbd(ctx, "snap", "unprotect", b.spec(e.Image)+"@"+e.Snapshot); err != nil {
				return removed, b.failed(ctx, err)
			}
		}
		if _, err := b.rbd(ctx, "snap", "rm", "--no-progress", b.spec(e.Image)+"@"+e.Snapshot); err != nil {
			return removed, b.failed(ctx, err)
		}
		removed = append(removed, snap)
	}
	return removed, nil
}

// temporary is an image being made under a temporary name, and the
// snapshot of its source when it is a clone; cleanup removes whatever
// publish did not take.
type temporary struct {
	b         *Backend
	id, name  string
	made      bool   // the image exists
	source    string // the image the snapshot is of, if one was made
	published bool
}

func (b *Backend) temp(id string) *temporary {
	return &temporary{b: b, id: id, name: tool.TempName(id, b.now())}
}

// create makes the temporary as a blank image of size bytes.
func (t *temporary) create(ctx context.Context, size int64) error {
	if _, err := t.b.rbd(ctx, "create", "--size", sizeArg(size), "--no-progress", t.b.spec(t.name)); err != nil {
		return t.b.failed(ctx, err)
	}
	t.made = true
	return nil
}

// clone makes the temporary as a clone of a new protected snapshot of
// source, named like the temporary. A source that a Delete renamed away
// meanwhile is reported missing.
func (t *temporary) clone(ctx context.Context, source string) error {
	snap := t.b.spec(source) + "@" + t.name
	if _, err := t.b.rbd(ctx, "snap", "create", "--no-progress", snap); err != nil {
		return t.b.sourceFailed(ctx, source, err)
	}
	t.source = source
	if _, err := t.b.rbd(ctx, "snap", "protect", snap); err != nil {
		return t.b.sourceFailed(ctx, source, err)
	}
	if _, err := t.b.rbd(ctx, "clone", snap, t.b.spec(t.name)); err != nil {
		return t.b.sourceFailed(ctx, source, err)
	}
	t.made = true
	return nil
}

// dropSnapshot removes the snapshot clone made, once the temporary no
// longer depends on it.
func (t *temporary) dropSnapshot(ctx context.Context) {
	if t.source != "" {
		t.b.dropSnapshot(ctx, t.source, t.name)
		t.source = ""
	}
}

// publish records the time in the image's metadata and renames it to its
// id; rbd rename refuses to replace an image, so of two makers of one id
// the second fails here.
func (t *temporary) publish(ctx context.Context) (backend.Volume, error) {
	if _, err := t.b.rbd(ctx, "image-meta", "set", t.b.spec(t.name), createdKey, t.b.now().UTC().Format(time.RFC3339Nano)); err != nil {
		return backend.Volume{}, t.b.failed(ctx, err)
	}
	if _, err := t.b.rbd(ctx, "rename", t.b.spec(t.name), t.b.spec(t.id)); err != nil {
		if tool.Status(err) == eexist {
			return backend.Volume{}, backend.Exists(t.id)
		}
		return backend.Volume{}, t.b.failed(ctx, err)
	}
	t.published = true
	return t.b.Get(ctx, t.id)
}

// cleanup removes an unpublished temporary, then the snapshot it was
// cloned from, even when ctx has ended; what it cannot remove, RemoveTemp
// finds later.
func (t *temporary) cleanup(ctx context.Context) {
	if t.published {
		return
	}
	if t.made {
		c, cancel := tool.CleanupContext(ctx)
		_, _ = t.b.rbd(c, "rm", "--no-progress", t.b.spec(t.name))
		cancel()
	}
	t.dropSnapshot(ctx)
}

// rbd runs the rbd tool with the configured user and configuration file.
func (b *Backend) rbd(ctx context.Context, args ...string) ([]byte, error) {
	var global []string
	if b.cfg.User != "" {
		global = append(global, "--id", b.cfg.User)
	}
	if b.cfg.ConfFile != "" {
		global = append(global, "--conf", b.cfg.ConfFile)
	}
	return b.run.Run(ctx, "rbd", append(global, args...)...)
}

// spec returns the rbd image spec of an image: pool[/namespace]/name.
func (b *Backend) spec(name string) string {
	if b.cfg.Namespace != "" {
		return b.cfg.Pool + "/" + b.cfg.Namespace + "/" + name
	}
	return b.cfg.Pool + "/" + name
}

// poolArgs selects the pool and namespace for commands over all images.
func (b *Backend) poolArgs() []string {
	args := []string{"--pool", b.cfg.Pool}
	if b.cfg.Namespace != "" {
		args = append(args, "--namespace", b.cfg.Namespace)
	}
	return args
}

// where names the pool and namespace for people.
func (b *Backend) where() string {
	if b.cfg.Namespace != "" {
		return b.cfg.Pool + "/" + b.cfg.Namespace
	}
	return b.cfg.Pool
}

// url returns the QEMU rbd: URL of an image, with the user and
// configuration file as QEMU's id= and conf= options.
func (b *Backend) url(name string) string {
	u := "rbd:" + b.spec(name)
	if b.cfg.User != "" {
		u += ":id=" + b.cfg.User
	}
	if b.cfg.ConfFile != "" {
		u += ":conf=" + b.cfg.ConfFile
	}
	return u
}

// sizeArg writes a size in bytes as rbd reads it.
func sizeArg(n int64) string { return strconv.FormatInt(n, 10) + "B" }

// ours reports whether a parent image is in the backend's pool and
// namespace.
func (b *Backend) ours(p *parentSpec) bool {
	return p.Pool == b.cfg.Pool && p.Namespace == b.cfg.Namespace
}

// origin returns the volume id of a clone's parent, or "" for an image
// with no parent in the backend's pool. While a Delete holds the parent
// under a temporary name, the id the name carries is returned.
func (b *Backend) origin(p *parentSpec) string {
	if p == nil || !b.ours(p) {
		return ""
	}
	if id, _, ok := tool.ParseTemp(p.Image); ok {
		return id
	}
	if backend.ValidID(p.Image) {
		return p.Image
	}
	return ""
}

func (b *Backend) ls(ctx context.Context) ([]lsEntry, error) {
	out, err := b.rbd(ctx, append([]string{"ls", "-l", "--format", "json"}, b.poolArgs()...)...)
	if err != nil {
		return nil, b.failed(ctx, err)
	}
	var entries []lsEntry
	if err := decode("ls", out, &entries); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "the rbd storage backend could not read rbd's output")
	}
	return entries, nil
}

// info runs rbd info on an image, or fails with errs.NotFound.
func (b *Backend) info(ctx context.Context, name string) (imageInfo, error) {
	out, err := b.rbd(ctx, "info", "--format", "json", b.spec(name))
	if err != nil {
		if tool.Status(err) == enoent {
			return imageInfo{}, backend.NotFound(name)
		}
		return imageInfo{}, b.failed(ctx, err)
	}
	var inf imageInfo
	if err := decode("info", out, &inf); err != nil {
		return imageInfo{}, errs.Wrap(errs.Internal, err, "the rbd storage backend could not read rbd's output")
	}
	return inf, nil
}

// created returns when image id was published, from its metadata. An image
// the backend did not make has no such record, and gets the present time:
// it may look younger than it is, never older.
func (b *Backend) created(ctx context.Context, id string) (time.Time, error) {
	out, err := b.rbd(ctx, "image-meta", "list", "--format", "json", b.spec(id))
	if err != nil {
		if tool.Status(err) == enoent {
			return time.Time{}, backend.NotFound(id)
		}
		return time.Time{}, b.failed(ctx, err)
	}
	t, ok, err := parseCreated(out)
	if err != nil {
		return time.Time{}, errs.Wrap(errs.Internal, err, "the rbd storage backend could not read an image's metadata")
	}
	if !ok {
		t = b.now().UTC()
	}
	return t, nil
}

func (b *Backend) mustNotExist(ctx context.Context, id string) error {
	_, err := b.info(ctx, id)
	return backend.Absent(id, err)
}

// sourceFailed explains a failed snapshot or clone of source: missing if a
// Delete renamed it away meanwhile. librbd may say so with ENOENT, or, when
// the Delete unprotected the snapshot under a clone being made, with
// EINVAL, so the pool is asked.
func (b *Backend) sourceFailed(ctx context.Context, source string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if tool.Status(err) == enoent {
		return backend.NotFound(source)
	}
	if _, ierr := b.info(ctx, source); errs.CodeOf(ierr) == errs.NotFound {
		return ierr
	}
	return b.failed(ctx, err)
}

func (b *Backend) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if tool.Status(err) == etimedout {
		return errs.Wrap(errs.Unavailable, err, "the Ceph cluster did not answer in time")
	}
	return errs.Wrap(errs.Internal, err, "the rbd storage backend failed")
}

// describe names an image in a message for people.
func describe(name string) string {
	if id, _, ok := tool.ParseTemp(name); ok {
		return "volume " + id + ", being made"
	}
	return name
}

func inUse(id string) error {
	return errs.Errorf(errs.Conflict, "volume %s is open (a machine may be using it) and cannot be deleted", id)
}
