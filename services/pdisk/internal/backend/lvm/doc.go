// Package lvm will be the LVM storage backend (logical volumes and thin
// snapshots in one volume group, driven by the lvm2 tools). It holds only the
// contract test's hook for now: the adapter is not written yet.
package lvm
