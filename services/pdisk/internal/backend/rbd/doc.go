// Package rbd is the Ceph RBD storage backend: every volume is an RBD image
// named by its uuid in one pool (optionally in one RBD namespace of it),
// handed to hypervisors as the QEMU URL rbd:<pool>/<uuid>, format raw, with
// :id=<user>:conf=<file> when the backend is configured with them. A
// snapshot is a clone of a protected snapshot of its origin, which shares the
// origin's objects and costs nothing whatever the origin's size; each clone
// gets its own snapshot of the origin, removed when the clone is deleted. A
// capture is a clone of a fresh snapshot, flattened so that it depends on
// nothing.
//
// The backend drives the rbd tool and qemu-img through a tool.Runner, with
// argument vectors, never a shell, and relies on rbd's exit status being the
// errno of what failed (2 missing, 16 busy, 17 exists). A site installs the
// Debian packages ceph-common (rbd, Ceph 16 "Pacific" or later for
// du --merge-snapshots and rbd children of a whole image), qemu-utils and
// qemu-block-extra (QEMU's rbd driver, which imports write through), gives
// the backend a Ceph user allowed to manage images in the pool
// (profile rbd), and creates the pool once:
//
//	ceph osd pool create volumes && rbd pool init volumes
//
// The images' default features (layering, exclusive-lock, object-map,
// fast-diff) are needed: fast-diff keeps rbd du from reading every object.
//
// # Atomicity and what a reconciler cleans
//
// Every volume is made under a temporary name,
// pdisk-tmp-<unix seconds>-<8 hex>-<uuid>, given its creation time in the
// image metadata key pdisk.created, and renamed to its uuid with rbd rename,
// which refuses to replace an image. The snapshot a clone is made from
// carries the clone's temporary name. Delete renames the image to such a
// temporary name before it looks for clones and removes it, so that a
// Snapshot running at the same time on any host either shows up as a clone
// (and the image gets its name back, with errs.Conflict) or finds no origin
// (errs.NotFound). List skips every name that is not a uuid. A process that
// dies half-way leaves temporaries behind: RemoveTemp, which a reconciler
// runs with an age longer than the longest import or capture (an hour, say),
// removes temporary images and snapshots older than the age that no clone
// uses, and gives its uuid back to a temporary image that has clones, an
// interrupted Delete.
//
// # What the backend reports
//
// Created is the pdisk.created metadata, set just before the rename; an
// image without it, which the backend did not make, reports the present
// time. Allocated is rbd du's used size of the image and its snapshots,
// without its parent, counted in whole objects. List runs one rbd process
// per image to read its metadata, a few at a time, as no rbd command lists
// every image's metadata at once: a pool of thousands of volumes takes
// seconds to list. A Delete that runs while another Delete of the same volume
// holds it under its temporary name reports success even if the other then
// gives the name back because of a clone.
//
// The unit tests check command lines and the parsing of samples of rbd's
// output only; the contract suite (backendtest) runs against a real cluster
// when STRATUS_TEST_CEPH_POOL names a pool, and is skipped, saying so,
// otherwise.
package rbd
