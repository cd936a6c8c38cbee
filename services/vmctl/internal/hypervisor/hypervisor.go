package hypervisor

import (
	"context"
	"time"
)

// Disk is a block device of a domain.
type Disk struct {
	// Device is the guest target and chooses the bus: "vdX" is virtio,
	// "sdX" SATA and "hdX" IDE. A CD-ROM cannot be virtio: put the
	// context ISO on "hdc" (IDE, which every x86 guest kernel reads) or
	// on a SATA "sdX".
	Device string
	// Source is a local file, a block device under /dev, or a network
	// volume as pdisk hands it out: iscsi://host[:port]/<target iqn>/<lun>
	// or QEMU's rbd:<pool>/<image>[:conf=<file>].
	Source string
	// Format is "qcow2" or "raw"; empty means raw, because letting QEMU
	// probe the format would let a guest that writes a qcow2 header into
	// a raw disk make the host open other files.
	Format string
	// ReadOnly attaches the disk read-only.
	ReadOnly bool
	// CDROM makes the disk a CD-ROM (always read-only).
	CDROM bool
}

// Interface is a virtio network card.
type Interface struct {
	// MAC is the card's address; empty lets libvirt choose one.
	MAC string
	// Network is the libvirt network to plug the card into. Empty gives
	// the guest QEMU's user-mode network, which needs no host setup and
	// so suits the test and embedded drivers.
	Network string
}

// Domain is what Define needs to know about a machine.
type Domain struct {
	// UUID is the machine's uuid, which is also the domain's: every other
	// operation finds the domain by it.
	UUID string
	// Name is the domain's name, unique on the host (e.g. "one-42" or
	// "stratus-<uuid>").
	Name string
	// CPU is the number of virtual CPUs.
	CPU int
	// MemoryMiB is the guest's memory in MiB.
	MemoryMiB int
	// Disks are attached in this order; the first disk that is not a
	// CD-ROM is the boot disk.
	Disks []Disk
	// Interfaces are the network cards.
	Interfaces []Interface
	// SerialLog is a file on the host that the guest's serial console
	// (and the firmware's messages) are appended to; empty for none.
	SerialLog string
}

// State is the life-cycle state of a domain as the hypervisor reports it.
type State int

// The states of a domain. The zero value is Unknown, so that a State that
// was never filled in is not taken for a real one.
const (
	// Unknown is a state libvirt could not tell.
	Unknown State = iota
	// Missing means no domain has the uuid on this host.
	Missing
	// Shutoff is a defined domain that does not run.
	Shutoff
	// Running is a domain whose guest runs (or is blocked on I/O).
	Running
	// Paused is a domain whose CPUs are stopped, by an administrator or by
	// a suspend to memory.
	Paused
	// ShuttingDown is a domain whose guest is shutting down.
	ShuttingDown
	// Crashed is a domain whose guest crashed and was kept for inspection.
	Crashed
)

var stateNames = [...]string{
	Unknown:      "unknown",
	Missing:      "missing",
	Shutoff:      "shutoff",
	Running:      "running",
	Paused:       "paused",
	ShuttingDown: "shutting-down",
	Crashed:      "crashed",
}

// String returns the state's name in lower case, as logs and the agent's
// reports show it.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// DomainStatus is one domain as List reports it.
type DomainStatus struct {
	UUID  string
	Name  string
	State State
	// CPU and MemoryMiB are what the domain was given.
	CPU       int
	MemoryMiB int64
	// CPUTime is the processor time the domain has used since it started,
	// all its CPUs together.
	CPUTime time.Duration
}

// Info describes the host and its hypervisor.
type Info struct {
	// Hostname is the host's name as libvirt sees it.
	Hostname string
	// LibvirtVersion is the libvirt library's version, "major.minor.micro".
	LibvirtVersion string
	// Hypervisor is the driver's name: "QEMU" or "TEST".
	Hypervisor string
	// HypervisorVersion is the hypervisor's version, "major.minor.micro".
	HypervisorVersion string
	// CPUs is the number of the host's active CPUs.
	CPUs int
	// MemoryMiB is the host's memory.
	MemoryMiB int64
}

// Hypervisor is what the vmctl agent needs from a VM host. Methods that name
// a uuid fail with errs.NotFound when no domain has it, unless said
// otherwise; a method may be called from many goroutines at once.
type Hypervisor interface {
	// Info describes the host.
	Info(ctx context.Context) (Info, error)
	// Define creates the domain, or replaces the persistent definition of
	// the domain with the same uuid whole, disks attached since included
	// (a running domain picks the new definition up at its next start).
	// Another domain with the same name, or a new name for the uuid, is
	// errs.Conflict.
	Define(ctx context.Context, d Domain) error
	// Start boots a defined domain; a running or paused one is left alone.
	Start(ctx context.Context, uuid string) error
	// Shutdown asks the guest to power off, as the ACPI power button does,
	// and returns at once: poll State for Shutoff, or use PowerOff, which
	// waits. A domain that does not run is left alone.
	Shutdown(ctx context.Context, uuid string) error
	// Reboot asks the guest to reboot; errs.Conflict when it does not run.
	Reboot(ctx context.Context, uuid string) error
	// Destroy stops the domain at once, as pulling the plug does. A
	// domain that does not run, or does not exist, is not an error.
	Destroy(ctx context.Context, uuid string) error
	// Undefine removes the domain's definition; a missing domain is not an
	// error, a running one is errs.Conflict (Destroy it first).
	Undefine(ctx context.Context, uuid string) error
	// Attach plugs a disk into the domain, into the running guest and into
	// the persistent definition. Attaching the same source at the same
	// device again is not an error; another source there is errs.Conflict.
	Attach(ctx context.Context, uuid string, d Disk) error
	// Detach unplugs the disk at a guest device, from the running guest
	// (waiting, bounded, for the guest to release it) and then from the
	// persistent definition. A device that is not there, or a domain that
	// is not, is not an error.
	Detach(ctx context.Context, uuid, device string) error
	// State reports the domain's state; Missing, with no error, when no
	// domain has the uuid.
	State(ctx context.Context, uuid string) (State, error)
	// List reports every domain on the host.
	List(ctx context.Context) ([]DomainStatus, error)
	// Close releases the connection; later calls fail with
	// errs.Unavailable.
	Close() error
}

// Options tune Open.
type Options struct {
	// VirtType is the domain type on QEMU URIs: "qemu" (TCG software
	// emulation, the default, which runs anywhere) or "kvm" (hardware
	// virtualisation, for production hosts). The test driver ignores it.
	VirtType string
	// DetachTimeout bounds how long Detach waits for a running guest to
	// release a disk; zero means 30 seconds. libvirt's QEMU driver waits
	// 5 s itself before it reports a removal as pending, so Detach from
	// a guest that does not answer takes at least that long.
	DetachTimeout time.Duration
}
