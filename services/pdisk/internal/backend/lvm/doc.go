// Package lvm is the LVM storage backend: every volume is a thin logical
// volume named by its uuid in one thin pool, /dev/<vg>/<uuid>, handed to
// hypervisors as a raw block device. A snapshot is a thin snapshot
// (lvcreate --snapshot of a thin volume), which shares its origin's blocks
// and costs nothing whatever the origin's size; thin provisioning is why the
// backend needs a thin pool rather than plain logical volumes, whose
// snapshots must reserve space up front and break when it runs out. Exporting
// volumes over iSCSI to other hosts is a separate concern, not this package's.
//
// The backend drives the lvm2 tools, dmsetup and qemu-img through a
// tool.Runner, with argument vectors, never a shell. A site installs the
// Debian packages lvm2 (which brings dmsetup), thin-provisioning-tools (the
// thin_check that activating a thin pool runs) and qemu-utils, and creates
// the pool once, with zeroing of new blocks on (lvm2's default, which
// imports rely on to skip writing zeros):
//
//	lvcreate --type thin-pool --size 500G --zero y --name pdisk vg0
//
// and watches it fill: writes to a full pool fail inside the guests.
//
// # Atomicity and what a reconciler cleans
//
// Create and Snapshot are one lvcreate each, which lvm2 commits in one
// metadata update; a new thin volume reads as zeros, so there is nothing
// partial to hide. Import and Capture write into a temporary volume named
// pdisk-tmp-<unix seconds>-<8 hex>-<uuid>, tag it with the time, and rename
// it to the uuid with lvrename, which refuses to replace a volume. Delete
// renames the volume to such a temporary name before it looks for snapshots
// and removes it, so that a Snapshot running at the same time, even in
// another process, either shows up as a child (and the volume gets its name
// back, with errs.Conflict) or finds no origin (errs.NotFound). List skips
// every name that is not a uuid. A process that dies half-way leaves a
// temporary behind: RemoveTemp, which a reconciler runs with an age longer
// than the longest import (an hour, say), removes those older than the age,
// and gives its uuid back to one that still has snapshots, an interrupted
// Delete.
//
// # What the backend reports
//
// Created is when the volume appeared under its uuid: lv_time, in whole
// seconds and so rounded up, or for imports and captures the time tag set
// just before the rename. Allocated is the bytes the kernel reports mapped
// (dmsetup status) less those its origin maps, an estimate for snapshots
// that overwrite their origin's data (see Backend.volume); inactive volumes
// report 0. A Delete that runs while another Delete of the same volume holds
// it under its temporary name reports success even if the other then gives
// the name back because of a snapshot.
//
// The unit tests check command lines and the parsing of lvs and dmsetup
// output only; the contract suite (backendtest) runs against a real volume
// group when STRATUS_TEST_LVM_VG names one, and is skipped, saying so,
// otherwise.
package lvm
