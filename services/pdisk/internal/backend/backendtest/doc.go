// Package backendtest is the contract every pdisk storage backend passes:
// Run exercises each Backend method and its failure cases (malformed ids,
// missing volumes, idempotent deletion, atomic imports, snapshots that do
// not copy their origin, creation times), and RunShared checks two
// instances over one storage, as pdisk replicas share it (a Delete racing
// Snapshots of its origin never leaves a snapshot without it). Both read
// and write volume content with qemu-img and qemu-io through Locate, so
// they check what a hypervisor would see, whatever the backend.
package backendtest
