package backend

import (
	"context"
	"time"

	"stratuslab.dev/platform/errs"
)

// GiB is the unit of volume sizes, as in the CIMI Volume's capacity.
const GiB int64 = 1 << 30

// MaxSizeGiB bounds sizes so that byte counts never overflow; policy limits
// (quotas, the largest volume a user may ask for) are the caller's and lower.
const MaxSizeGiB int64 = 1 << 20

// Volume is what a backend holds under one id.
type Volume struct {
	// ID is the volume's uuid, also its name in the backend.
	ID string
	// Size is the virtual size in bytes: what the guest sees.
	Size int64
	// Allocated is the space in bytes the volume itself takes on the
	// backend, excluding its origin; a fresh snapshot takes almost none.
	Allocated int64
	// Origin is the id of the volume this one is a copy-on-write snapshot
	// of, or "" for a standalone volume.
	Origin string
	// Created is when the backend made the volume, by the storage's clock,
	// so that a reconciler can leave alone volumes too young to have a
	// document yet. A backend that does not record creation reports a
	// later time, such as a file's last modification, never an earlier
	// one: a volume may look younger than it is, never older.
	Created time.Time
}

// Location tells a hypervisor (and qemu-img) how to reach a volume.
type Location struct {
	// Format is the disk format the hypervisor must be told: "qcow2" or "raw".
	Format string
	// Path is a local file or block device, for backends on the VM host.
	Path string
	// URL is a transport URL (iscsi://, rbd:) for backends reached over the
	// network; empty when Path is set.
	URL string
}

// Spec returns the Path, or the URL when there is no path: the string to
// hand to qemu-img or to a libvirt disk source.
func (l Location) Spec() string {
	if l.Path != "" {
		return l.Path
	}
	return l.URL
}

// Backend is a storage backend. Ids are volume uuids in canonical lowercase
// form (see ValidID); every method refuses others with errs.Invalid. Methods
// that name a missing volume fail with errs.NotFound, and creating under an
// id that exists fails with errs.Conflict. No method leaves a partial volume
// under its final id, even when the process dies half-way: a reconciler may
// trust that whatever List returns is complete.
type Backend interface {
	// Name is the backend's name in configuration and in volume documents
	// ("qcow2", "lvm", "rbd").
	Name() string
	// Create makes a blank standalone volume of sizeGiB GiB.
	Create(ctx context.Context, id string, sizeGiB int64) (Volume, error)
	// Snapshot makes a copy-on-write volume id whose content is origin's;
	// its cost does not depend on origin's size. The origin must not change
	// afterwards, which is why only image-cache origins are snapshotted.
	Snapshot(ctx context.Context, id, origin string) (Volume, error)
	// Import makes an origin id from the image file at src (raw or qcow2,
	// already checked for size and checksum by the caller, who still owns
	// and removes src). Images that refer to other files are refused with
	// errs.Invalid.
	Import(ctx context.Context, id, src string) (Volume, error)
	// Capture makes a standalone volume id holding the current content of
	// volume from (typically a machine's live snapshot), independent of any
	// origin: the rebase used to save a machine as a new image.
	Capture(ctx context.Context, id, from string) (Volume, error)
	// Grow enlarges volume id to sizeGiB GiB; shrinking is refused with
	// errs.Invalid because it would destroy guest data.
	Grow(ctx context.Context, id string, sizeGiB int64) (Volume, error)
	// Delete removes volume id. Deleting a volume that does not exist
	// succeeds; deleting an origin that still has snapshots fails with
	// errs.Conflict. A Delete racing a Snapshot of the same origin, even
	// from another instance (another process) over the same storage,
	// never leaves a snapshot without its origin: either the Delete fails
	// with errs.Conflict or the Snapshot with errs.NotFound.
	Delete(ctx context.Context, id string) error
	// Get describes volume id.
	Get(ctx context.Context, id string) (Volume, error)
	// List describes every volume, in no particular order.
	List(ctx context.Context) ([]Volume, error)
	// Locate tells where a hypervisor finds volume id.
	Locate(ctx context.Context, id string) (Location, error)
}

// ValidID reports whether id is a uuid in canonical lowercase form
// (8-4-4-4-12 hex digits). Backends build file and device names from ids,
// so anything else (slashes, dots, upper case that would alias) is refused.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// CheckID returns an errs.Invalid error naming what is wrong with id, or nil.
func CheckID(id string) error {
	if !ValidID(id) {
		return errs.Errorf(errs.Invalid, "volume id %q is not a lowercase uuid", truncate(id))
	}
	return nil
}

// CheckSize returns an errs.Invalid error when sizeGiB is not a usable
// volume size, or nil.
func CheckSize(sizeGiB int64) error {
	if sizeGiB < 1 || sizeGiB > MaxSizeGiB {
		return errs.Errorf(errs.Invalid, "volume size must be between 1 and %d GiB, not %d", MaxSizeGiB, sizeGiB)
	}
	return nil
}

// CheckSnapshot returns an errs.Invalid error when id or origin is not a
// valid id or when they are the same, or nil.
func CheckSnapshot(id, origin string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if err := CheckID(origin); err != nil {
		return err
	}
	if id == origin {
		return errs.New(errs.Invalid, "a volume cannot be a snapshot of itself")
	}
	return nil
}

// GrowTo returns the size in bytes that volume id, now of size bytes, is to
// have after a Grow to sizeGiB GiB, which may be size itself; a smaller
// size is refused with errs.Invalid because it would destroy guest data.
func GrowTo(id string, size, sizeGiB int64) (int64, error) {
	want := sizeGiB * GiB
	if want < size {
		return 0, errs.Errorf(errs.Invalid, "volume %s is %d bytes; it can grow but not shrink to %d GiB", id, size, sizeGiB)
	}
	return want, nil
}

// NotFound returns the errs.NotFound error for volume id, which the
// backend does not hold.
func NotFound(id string) error {
	return errs.Errorf(errs.NotFound, "volume %s does not exist on this storage backend", id)
}

// Exists returns the errs.Conflict error for making volume id, which the
// backend already holds.
func Exists(id string) error {
	return errs.Errorf(errs.Conflict, "volume %s already exists on this storage backend", id)
}

// Absent turns the outcome of looking volume id up before making it (nil
// when it was found) into the answer a maker needs: nil when the lookup
// found nothing (errs.NotFound), Exists when it found the volume, and the
// lookup's own error otherwise.
func Absent(id string, lookup error) error {
	switch {
	case lookup == nil:
		return Exists(id)
	case errs.CodeOf(lookup) == errs.NotFound:
		return nil
	default:
		return lookup
	}
}

// truncate keeps error messages short when an id is garbage.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
