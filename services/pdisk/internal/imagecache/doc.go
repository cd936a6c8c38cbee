// Package imagecache keeps the images machines boot from. An image is
// identified by its Marketplace id; the first request for it downloads it
// once (whatever the number of concurrent requests and of pdisk replicas),
// checks its byte count and SHA-1, and imports it into the storage backend as
// an origin volume (MACHINE_IMAGE_ORIGIN or DATA_IMAGE_ORIGIN). Each machine
// then gets a copy-on-write snapshot of the origin (MACHINE_IMAGE_LIVE, owned
// by the machine's owner), and the origin counts its snapshots so that Sweep
// can evict origins nobody has used for a while.
//
// Replicas agree through the Volume collection alone: an origin's document
// id is derived from the image id, so creating it decides who downloads, and
// the downloader keeps a renewed lease in it. Every later change of that
// document is a revision-checked update, which also orders snapshots against
// eviction: a snapshot is counted in the origin before it is made, and an
// origin is claimed for eviction only while its count is 0.
package imagecache
