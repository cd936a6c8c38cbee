// Package qcow2 is pdisk's default storage backend: one qcow2 file per volume
// in a data directory, made and changed by qemu-img. Snapshots are qcow2
// overlays whose backing file is their origin, so they cost the same whatever
// the origin's size. Every new file is written under a temporary dot-name and
// hard-linked to its final name, so a crash never leaves a partial volume
// where List or a hypervisor would find it.
package qcow2
