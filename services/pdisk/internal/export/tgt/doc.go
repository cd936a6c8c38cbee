// Package tgt exports pdisk volumes over iSCSI with tgt, the Linux SCSI
// target framework (Debian package tgt): each volume becomes the target
// iqn.2011-01.eu.stratuslab:<uuid>, as in the original StratusLab, with one
// logical unit, number 1, backed by the volume's file or block device. The
// exporter drives a running tgtd through tgtadm and keeps no state of its
// own: tgtd's target list is the truth, so several pdisk replicas may share
// one tgtd and a crash half-way through an export is completed by the next
// Export or withdrawn by Unexport.
//
// iSCSI carries blocks, not formats: a qcow2 file exported this way is still
// qcow2 to QEMU, which opens the turl with format=qcow2 over the iscsi
// protocol. Two consequences follow. A logical unit's size is fixed when it
// is created, while a qcow2 file grows as the guest writes, so Export first
// lengthens a qcow2 file (sparsely, costing no disk space) to the largest
// size its content can need; a volume grown with qemu-img resize must be
// unexported and exported again for VM hosts to see the new room. And a
// copy-on-write snapshot, a qcow2 overlay whose backing file is its origin
// in the storage directory, can only be opened by a VM host that sees that
// directory: live snapshots of image-cache origins are for such hosts (the
// local exporter), while iSCSI is for standalone volumes (blank volumes,
// captures, raw devices). Export refuses qcow2 files with a backing file.
package tgt
