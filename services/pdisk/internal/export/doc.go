// Package export makes pdisk volumes reachable from VM hosts other than the
// storage host. A backend says where a volume lives on the storage host (a
// file, a block device) or on the network; an Exporter turns that into the
// transport URL (turl) a hypervisor opens. Local hands out file:// URLs for
// hosts that mount the storage directory; package tgt serves volumes as
// iSCSI targets. Exporters keep no state of their own: List asks the
// transport what is exported, so a reconciler can withdraw what no volume
// document accounts for.
package export
