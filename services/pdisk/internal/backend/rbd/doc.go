// Package rbd will be the Ceph RBD storage backend (images and clones in one
// pool, driven by the rbd tool). It holds only the contract test's hook for
// now: the adapter is not written yet.
package rbd
