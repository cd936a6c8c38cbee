// Package qcow2 is pdisk's default storage backend: one qcow2 file per volume
// in a data directory. Blank volumes and snapshots are written directly, byte
// for byte what `qemu-img create` would write (QEMU 7.2), without the cost of
// starting it; imports, captures and growth, which convert or move data, run
// qemu-img. Snapshots are qcow2 overlays whose backing file is their origin,
// so they cost the same whatever the origin's size. Every new file is
// written and flushed under a temporary dot-name and hard-linked to its final
// name, so a crash never leaves a partial volume where List or a hypervisor
// would find it. Several processes may share the directory: an flock on a
// per-volume lock file (".lock-<id>") keeps a Delete of an origin from
// overtaking a Snapshot of it.
package qcow2
