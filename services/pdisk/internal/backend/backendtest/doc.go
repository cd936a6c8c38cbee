// Package backendtest is the contract every pdisk storage backend passes: one
// suite, Run, that exercises each Backend method and its failure cases
// (malformed ids, missing volumes, idempotent deletion, atomic imports,
// snapshots that do not copy their origin). It reads and writes volume
// content with qemu-img and qemu-io through Locate, so it checks what a
// hypervisor would see, whatever the backend.
package backendtest
