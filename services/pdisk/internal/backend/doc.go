// Package backend defines what every pdisk storage backend does: make blank
// volumes, copy-on-write snapshots of image-cache origins, atomic imports of
// downloaded images, standalone captures of snapshots, growth, deletion,
// listing for the reconciler, and telling a hypervisor where a volume lives.
// The Volume service is written against Backend only, so qcow2 files, LVM,
// Ceph RBD or an iSCSI export can sit behind it and pass one contract suite
// (package backendtest).
package backend
