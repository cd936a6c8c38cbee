package qcow2

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
)

const (
	ext        = ".qcow2"
	tempPrefix = ".tmp-"
)

// Backend keeps volumes as qcow2 files in one directory. It is safe for
// concurrent use, also by several processes (pdisk replicas) sharing the
// directory: a Delete of an origin waits for Snapshots of it in progress
// anywhere and then refuses, and a Snapshot that comes after the Delete
// finds no origin.
type Backend struct {
	dir     string
	qemuImg string
	// locks makes "origin has no snapshots, delete it" atomic against new
	// snapshots, in this process and in others.
	locks *volumeLocks
}

var _ backend.Backend = (*Backend)(nil)

// New returns a backend storing volumes in dir, which it creates if needed,
// using the qemu-img found on PATH.
func New(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("qcow2 data directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("qcow2 data directory: %w", err)
	}
	qi, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil, fmt.Errorf("the qcow2 backend needs qemu-img (Debian package qemu-utils): %w", err)
	}
	return &Backend{dir: abs, qemuImg: qi, locks: newVolumeLocks(abs)}, nil
}

// Name returns "qcow2".
func (b *Backend) Name() string { return "qcow2" }

// Dir returns the data directory.
func (b *Backend) Dir() string { return b.dir }

func (b *Backend) path(id string) string { return filepath.Join(b.dir, id+ext) }

// Create writes a blank qcow2 volume itself, the same file qemu-img create
// would write, without the cost of starting qemu-img.
func (b *Backend) Create(ctx context.Context, id string, sizeGiB int64) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := backend.CheckSize(sizeGiB); err != nil {
		return backend.Volume{}, err
	}
	return b.makeBlank(ctx, id, sizeGiB*backend.GiB, "")
}

// Snapshot writes a qcow2 overlay backed by origin, of origin's virtual
// size. The backing file is named relative to the directory ("<origin>.qcow2")
// so that the directory can be moved as a whole; QEMU resolves such a name
// against the overlay's own directory.
func (b *Backend) Snapshot(ctx context.Context, id, origin string) (backend.Volume, error) {
	if err := backend.CheckSnapshot(id, origin); err != nil {
		return backend.Volume{}, err
	}
	// Checked before locking too, so that no lock file is made for an
	// origin that never existed.
	if err := b.mustExist(origin); err != nil {
		return backend.Volume{}, err
	}
	unlock, err := b.locks.lockShared(ctx, origin)
	if err != nil {
		return backend.Volume{}, lockError(err)
	}
	v, err := b.snapshot(ctx, id, origin)
	unlock()
	if errs.CodeOf(err) == errs.NotFound {
		// The origin was deleted while this call waited for the lock,
		// which it may have made anew: remove it.
		_, _ = b.locks.removeStale(origin)
	}
	return v, err
}

// snapshot does Snapshot's work once the origin is locked.
func (b *Backend) snapshot(ctx context.Context, id, origin string) (backend.Volume, error) {
	f, err := os.Open(b.path(origin))
	if errors.Is(err, fs.ErrNotExist) {
		return backend.Volume{}, backend.NotFound(origin)
	}
	if err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, err, "the storage backend could not read the volume")
	}
	h, err := readHeader(f)
	_ = f.Close()
	if err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, fmt.Errorf("%s: %w", b.path(origin), err), "the storage backend found a damaged volume")
	}
	// qemu-img rounds an overlay's size up to whole sectors the same way.
	size := (h.size + sectorSize - 1) &^ (sectorSize - 1)
	return b.makeBlank(ctx, id, size, origin+ext)
}

// Import converts the image at src into origin id.
func (b *Backend) Import(ctx context.Context, id, src string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(id); err != nil {
		return backend.Volume{}, err
	}
	format, err := b.sourceFormat(ctx, src)
	if err != nil {
		return backend.Volume{}, err
	}
	return b.make(ctx, id, "convert", "-q", "-f", format, "-O", "qcow2", src, "{tmp}")
}

// Capture flattens from, with its origin's content, into a new standalone
// volume id.
func (b *Backend) Capture(ctx context.Context, id, from string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	if err := backend.CheckID(from); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustExist(from); err != nil {
		return backend.Volume{}, err
	}
	return b.make(ctx, id, "convert", "-q", "-f", "qcow2", "-O", "qcow2", b.path(from), "{tmp}")
}

// Grow enlarges volume id in place with qemu-img resize.
func (b *Backend) Grow(ctx context.Context, id string, sizeGiB int64) (backend.Volume, error) {
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
	if err := b.run(ctx, "resize", "-q", "-f", "qcow2", b.path(id), strconv.FormatInt(want, 10)); err != nil {
		return backend.Volume{}, err
	}
	return b.Get(ctx, id)
}

// Delete removes volume id's file, refusing while snapshots depend on it,
// and its lock file.
func (b *Backend) Delete(ctx context.Context, id string) error {
	if err := backend.CheckID(id); err != nil {
		return err
	}
	unlock, err := b.locks.lockExclusive(ctx, id)
	if err != nil {
		return lockError(err)
	}
	defer unlock()
	vols, err := b.List(ctx)
	if err != nil {
		return err
	}
	var children []string
	for _, v := range vols {
		if v.Origin == id {
			children = append(children, v.ID)
		}
	}
	if len(children) > 0 {
		return errs.Errorf(errs.Conflict, "volume %s is the origin of %d snapshot(s) (%s) and cannot be deleted before them",
			id, len(children), strings.Join(children[:min(len(children), 3)], ", "))
	}
	if err := os.Remove(b.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errs.Wrap(errs.Internal, err, "the storage backend could not delete the volume")
	}
	return b.syncDir()
}

// Get reads volume id's qcow2 header.
func (b *Backend) Get(_ context.Context, id string) (backend.Volume, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Volume{}, err
	}
	v, err := readVolume(b.path(id), id)
	if errors.Is(err, fs.ErrNotExist) {
		return backend.Volume{}, backend.NotFound(id)
	}
	return v, err
}

// List reads the header of every volume file; temporary files are skipped.
func (b *Backend) List(ctx context.Context) ([]backend.Volume, error) {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "the storage backend could not list volumes")
	}
	var out []backend.Volume
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id, ok := strings.CutSuffix(e.Name(), ext)
		if !ok || !backend.ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		v, err := readVolume(b.path(id), id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Locate returns the volume's file.
func (b *Backend) Locate(_ context.Context, id string) (backend.Location, error) {
	if err := backend.CheckID(id); err != nil {
		return backend.Location{}, err
	}
	if err := b.mustExist(id); err != nil {
		return backend.Location{}, err
	}
	return backend.Location{Format: "qcow2", Path: b.path(id)}, nil
}

// RemoveTemp deletes temporary files older than age, left by a process that
// died while making a volume, and the lock files of volumes that no longer
// exist, and returns their names. The age keeps it from removing files
// another process is writing right now; lock files are removed only when
// no process holds them.
func (b *Backend) RemoveTemp(_ context.Context, age time.Duration) ([]string, error) {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "the storage backend could not list its directory")
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		if err := os.Remove(filepath.Join(b.dir, e.Name())); err == nil {
			removed = append(removed, e.Name())
		}
	}
	locks, err := b.locks.removeStale("")
	if err != nil {
		return removed, errs.Wrap(errs.Internal, err, "the storage backend could not list its directory")
	}
	return append(removed, locks...), nil
}

// tempName returns a fresh temporary name for making volume id.
func (b *Backend) tempName(id string) string {
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	return filepath.Join(b.dir, tempPrefix+id+"-"+hex.EncodeToString(suffix[:]))
}

// publish gives the finished file tmp its final name as volume id. A hard
// link, unlike rename, fails rather than replace a volume made under the
// same id meanwhile. The caller removes tmp.
func (b *Backend) publish(id, tmp string) error {
	if err := os.Link(tmp, b.path(id)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return backend.Exists(id)
		}
		return errs.Wrap(errs.Internal, err, "the storage backend could not publish the volume")
	}
	return b.syncDir()
}

// makeBlank writes a blank image of size bytes, an overlay of the file
// backing when that is not empty, and publishes it as volume id. The file
// is flushed before it is published so that a crash cannot leave a volume
// with a missing or partial header.
func (b *Backend) makeBlank(ctx context.Context, id string, size int64, backing string) (backend.Volume, error) {
	if err := ctx.Err(); err != nil {
		return backend.Volume{}, err
	}
	if err := b.mustNotExist(id); err != nil {
		return backend.Volume{}, err
	}
	tmp := b.tempName(id)
	defer os.Remove(tmp) // after the link, or after a failure
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, err, "the storage backend could not make the volume")
	}
	v, err := writeVolume(f, id, size, backing)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = errs.Wrap(errs.Internal, cerr, "the storage backend could not make the volume")
	}
	if err != nil {
		return backend.Volume{}, err
	}
	if err := b.publish(id, tmp); err != nil {
		return backend.Volume{}, err
	}
	return v, nil
}

// writeVolume fills and flushes f for makeBlank and describes it.
func writeVolume(f *os.File, id string, size int64, backing string) (backend.Volume, error) {
	if err := writeBlank(f, size, backing); err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, err, "the storage backend could not make the volume")
	}
	if err := f.Sync(); err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, err, "the storage backend could not flush the volume")
	}
	return describe(f, f.Name(), id)
}

// make runs qemu-img with "{tmp}" replaced by a fresh temporary file, then
// flushes that file and publishes it as volume id.
func (b *Backend) make(ctx context.Context, id string, args ...string) (backend.Volume, error) {
	if err := b.mustNotExist(id); err != nil {
		return backend.Volume{}, err
	}
	tmp := b.tempName(id)
	defer os.Remove(tmp) // after the link, or after a failure
	for i, a := range args {
		if a == "{tmp}" {
			args[i] = tmp
		}
	}
	if err := b.run(ctx, args...); err != nil {
		return backend.Volume{}, err
	}
	if err := syncFile(tmp); err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, err, "the storage backend could not flush the volume")
	}
	if err := b.publish(id, tmp); err != nil {
		return backend.Volume{}, err
	}
	return readVolume(b.path(id), id)
}

// sourceFormat inspects an image to import: qemu-img info does not open
// backing files, and images that name any other file are refused because a
// crafted image could otherwise expose host files to a guest.
func (b *Backend) sourceFormat(ctx context.Context, src string) (string, error) {
	if _, err := os.Stat(src); err != nil {
		return "", errs.Wrap(errs.NotFound, err, "the image file to import is missing")
	}
	out, err := b.output(ctx, "info", "--output=json", src)
	if err != nil {
		return "", err
	}
	var info struct {
		Format          string `json:"format"`
		BackingFilename string `json:"backing-filename"`
		FormatSpecific  struct {
			Data struct {
				DataFile string `json:"data-file"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return "", errs.Wrap(errs.Internal, err, "the storage backend could not read qemu-img's description of the image")
	}
	switch {
	case info.Format != "raw" && info.Format != "qcow2":
		return "", errs.Errorf(errs.Invalid, "images must be raw or qcow2, not %q", info.Format)
	case info.BackingFilename != "" || info.FormatSpecific.Data.DataFile != "":
		return "", errs.New(errs.Invalid, "the image refers to another file (a backing or data file) and cannot be imported")
	}
	return info.Format, nil
}

func (b *Backend) run(ctx context.Context, args ...string) error {
	_, err := b.output(ctx, args...)
	return err
}

func (b *Backend) output(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.qemuImg, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errs.Wrap(errs.Internal,
			fmt.Errorf("qemu-img %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String())),
			"the storage backend failed")
	}
	return stdout.Bytes(), nil
}

func (b *Backend) mustExist(id string) error {
	if _, err := os.Stat(b.path(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return backend.NotFound(id)
		}
		return errs.Wrap(errs.Internal, err, "the storage backend could not read the volume")
	}
	return nil
}

func (b *Backend) mustNotExist(id string) error {
	_, err := os.Stat(b.path(id))
	switch {
	case err == nil:
		return backend.Exists(id)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return errs.Wrap(errs.Internal, err, "the storage backend could not read the volume")
	}
}

func (b *Backend) syncDir() error {
	if err := syncFile(b.dir); err != nil {
		return errs.Wrap(errs.Internal, err, "the storage backend could not flush its directory")
	}
	return nil
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// readVolume describes the qcow2 file at name.
func readVolume(name, id string) (backend.Volume, error) {
	f, err := os.Open(name)
	if err != nil {
		return backend.Volume{}, err
	}
	defer f.Close()
	return describe(f, name, id)
}

// describe reads the qcow2 file f, named name, as volume id: its header,
// its allocated blocks and its creation time. Created is the file's birth
// time, which a hard link keeps: when the temporary file was made. Where
// the filesystem keeps no birth time (NFS, for one) it is the last
// modification time instead, which is later, never earlier.
func describe(f *os.File, name, id string) (backend.Volume, error) {
	h, err := readHeader(f)
	if err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, fmt.Errorf("%s: %w", name, err), "the storage backend found a damaged volume")
	}
	v := backend.Volume{ID: id, Size: h.size}
	if h.backing != "" {
		v.Origin = strings.TrimSuffix(filepath.Base(h.backing), ext)
	}
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BLOCKS|unix.STATX_MTIME|unix.STATX_BTIME, &st); err != nil {
		return backend.Volume{}, errs.Wrap(errs.Internal, fmt.Errorf("statx %s: %w", name, err), "the storage backend could not read the volume")
	}
	v.Allocated = int64(st.Blocks) * 512
	t := st.Mtime
	if st.Mask&unix.STATX_BTIME != 0 {
		t = st.Btime
	}
	v.Created = time.Unix(t.Sec, int64(t.Nsec))
	return v, nil
}
