// Package exporttest is the contract every pdisk exporter passes: one suite,
// Run, that exports real qcow2 files, writes through the returned transport
// URL with qemu-io as a hypervisor would, reads the data back from the
// storage side, and checks idempotent Export and Unexport, List and the
// refusal of malformed ids.
package exporttest
