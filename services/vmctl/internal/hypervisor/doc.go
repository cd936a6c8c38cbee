// Package hypervisor is the vmctl agent's port to the machines of one VM
// host: it defines, starts, stops and hot-plugs disks into libvirt domains,
// and lists what the host really runs so that the agent's reconciler can
// converge on the desired state.
//
// One adapter, Libvirt, serves every driver the project uses, chosen by the
// connection URI: test:///default (libvirt's in-process fake, no guests),
// qemu:///embed?root=DIR (libvirt's QEMU driver inside this process, TCG
// guests, used by the tests that need a real guest) and qemu:///system (a
// site's libvirtd, KVM). A machine's uuid is its domain's uuid, so every
// operation after Define is addressed by uuid and is idempotent where a
// retry after a crash needs it to be.
//
// libvirt's event loop is per process: the first Open of a URI other than
// test:///default registers libvirt's default implementation and runs it
// on a goroutine for the rest of the process, because the embedded QEMU
// driver talks to QEMU through it and connection keep-alives need it.
// Nothing else in the process may register one.
package hypervisor
