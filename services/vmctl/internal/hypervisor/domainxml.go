package hypervisor

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"stratuslab.dev/platform/errs"
)

// The domain types Open accepts, and the test driver's own.
const (
	virtQEMU = "qemu"
	virtKVM  = "kvm"
	virtTest = "test"
)

// machineType is the x86 machine QEMU emulates. i440fx ("pc") hot-plugs
// virtio disks into slots of its root PCI bus through ACPI, with no
// PCIe root ports to plan ahead as q35 would need, and its IDE bus takes
// the context CD-ROM with no extra controller.
const machineType = "pc"

// domainXML returns the libvirt definition of d for a domain of type
// virtType.
func domainXML(d Domain, virtType string) (string, error) {
	if err := d.validate(); err != nil {
		return "", err
	}
	dom := &libvirtxml.Domain{
		Type:          virtType,
		Name:          d.Name,
		UUID:          strings.ToLower(d.UUID),
		Memory:        &libvirtxml.DomainMemory{Value: uint(d.MemoryMiB), Unit: "MiB"},
		CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: uint(d.MemoryMiB), Unit: "MiB"},
		VCPU:          &libvirtxml.DomainVCPU{Value: uint(d.CPU)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Type: "hvm"},
		},
		// ACPI lets Shutdown press the power button and lets the guest
		// take part in disk hot-plug.
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{},
	}
	if virtType != virtTest {
		dom.OS.Type.Arch = "x86_64"
		dom.OS.Type.Machine = machineType
	}
	if virtType == virtKVM {
		// The host's CPU as is: fastest, and machines do not migrate.
		dom.CPU = &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	}
	boot := false
	for _, disk := range d.Disks {
		x, err := diskXML(disk)
		if err != nil {
			return "", err
		}
		if !disk.CDROM && !boot {
			// Named rather than <os><boot dev='hd'/>, which leaves the
			// choice among several disks to the firmware.
			x.Boot = &libvirtxml.DomainDeviceBoot{Order: 1}
			boot = true
		}
		dom.Devices.Disks = append(dom.Devices.Disks, x)
	}
	for _, nic := range d.Interfaces {
		dom.Devices.Interfaces = append(dom.Devices.Interfaces, interfaceXML(nic))
	}
	if d.SerialLog != "" {
		port := uint(0)
		src := &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: d.SerialLog, Append: "on"}}
		dom.Devices.Serials = []libvirtxml.DomainSerial{{Source: src, Target: &libvirtxml.DomainSerialTarget{Port: &port}}}
		dom.Devices.Consoles = []libvirtxml.DomainConsole{{Source: src, Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port}}}
		// SeaBIOS writes to the serial port too, so a guest that never
		// boots still leaves a reason ("No bootable device") in the log.
		dom.OS.BIOS = &libvirtxml.DomainBIOS{UseSerial: "yes"}
	}
	s, err := dom.Marshal()
	if err != nil {
		return "", fmt.Errorf("write the definition of domain %s: %w", d.Name, err)
	}
	return s, nil
}

// validate checks what libvirt would refuse with a less helpful message,
// or would accept and get wrong.
func (d Domain) validate() error {
	if err := checkUUID(d.UUID); err != nil {
		return err
	}
	if d.Name == "" || strings.ContainsAny(d.Name, "/\x00") {
		return errs.Errorf(errs.Invalid, "The domain name %q is not valid: give a non-empty name without '/'.", d.Name)
	}
	if d.CPU < 1 || d.MemoryMiB < 1 {
		return errs.Errorf(errs.Invalid, "Domain %s needs at least 1 CPU and 1 MiB of memory (got %d CPU, %d MiB).", d.Name, d.CPU, d.MemoryMiB)
	}
	seen := map[string]bool{}
	for _, disk := range d.Disks {
		if seen[disk.Device] {
			return errs.Errorf(errs.Invalid, "Domain %s has two disks at device %s: give each disk its own device.", d.Name, disk.Device)
		}
		seen[disk.Device] = true
	}
	for _, nic := range d.Interfaces {
		if nic.MAC != "" {
			if hw, err := net.ParseMAC(nic.MAC); err != nil || len(hw) != 6 {
				return errs.Errorf(errs.Invalid, "The MAC address %q is not valid: write six hexadecimal bytes separated by ':'.", nic.MAC)
			}
		}
	}
	return nil
}

// checkUUID accepts the canonical 8-4-4-4-12 hexadecimal form that libvirt
// reports, in either case.
func checkUUID(u string) error {
	ok := len(u) == 36
	for i := 0; ok && i < len(u); i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			ok = c == '-'
		default:
			ok = '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
		}
	}
	if !ok {
		return errs.Errorf(errs.Invalid, "The machine uuid %q is not valid: write it as 8-4-4-4-12 hexadecimal digits.", u)
	}
	return nil
}

// diskXML returns the libvirt definition of one disk.
func diskXML(d Disk) (libvirtxml.DomainDisk, error) {
	bus, err := busOf(d.Device)
	if err != nil {
		return libvirtxml.DomainDisk{}, err
	}
	format := d.Format
	switch format {
	case "":
		format = "raw"
	case "raw", "qcow2":
	default:
		return libvirtxml.DomainDisk{}, errs.Errorf(errs.Invalid, "The disk format %q of device %s is not supported: use qcow2 or raw.", d.Format, d.Device)
	}
	src, err := diskSource(d.Source)
	if err != nil {
		return libvirtxml.DomainDisk{}, err
	}
	x := libvirtxml.DomainDisk{
		Device: "disk",
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: format},
		Source: src,
		Target: &libvirtxml.DomainDiskTarget{Dev: d.Device, Bus: bus},
	}
	if d.CDROM {
		if bus == "virtio" {
			return libvirtxml.DomainDisk{}, errs.Errorf(errs.Invalid, "A CD-ROM cannot be the virtio device %s: use an IDE (hdX) or SATA (sdX) device.", d.Device)
		}
		x.Device = "cdrom"
	}
	if d.ReadOnly || d.CDROM {
		x.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
	}
	return x, nil
}

// busOf derives the bus from the device name, as Linux names the disks it
// finds on each bus.
func busOf(dev string) (string, error) {
	bus := map[string]string{"vd": "virtio", "sd": "sata", "hd": "ide"}[prefix(dev)]
	rest := strings.TrimLeft(dev[len(prefix(dev)):], "abcdefghijklmnopqrstuvwxyz")
	if bus == "" || len(dev) < 3 || rest != "" {
		return "", errs.Errorf(errs.Invalid, "The disk device %q is not valid: use vdX (virtio), sdX (SATA) or hdX (IDE), e.g. vda.", dev)
	}
	return bus, nil
}

func prefix(dev string) string {
	if len(dev) < 2 {
		return ""
	}
	return dev[:2]
}

// diskSource maps a volume location to a libvirt disk source.
func diskSource(s string) (*libvirtxml.DomainDiskSource, error) {
	switch {
	case s == "":
		return nil, errs.New(errs.Invalid, "A disk has no source: give a file, a block device or a volume URL.")
	case strings.HasPrefix(s, "/dev/"):
		return &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: s}}, nil
	case strings.HasPrefix(s, "/"):
		return &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: s}}, nil
	case strings.HasPrefix(s, "iscsi://"):
		return iscsiSource(s)
	case strings.HasPrefix(s, "rbd:"):
		return rbdSource(s)
	}
	return nil, errs.Errorf(errs.Invalid, "The disk source %q is not supported: give an absolute path, an iscsi:// URL or an rbd: URL.", s)
}

// iscsiSource maps iscsi://host[:port]/<iqn>/<lun>, the form QEMU's own
// initiator and pdisk's tgt export use.
func iscsiSource(s string) (*libvirtxml.DomainDiskSource, error) {
	bad := errs.Errorf(errs.Invalid, "The iSCSI URL %q is not valid: write iscsi://host[:port]/<target iqn>/<lun>.", s)
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, bad
	}
	target, lun, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || target == "" || strings.Contains(lun, "/") {
		return nil, bad
	}
	if _, err := strconv.ParseUint(lun, 10, 16); err != nil {
		return nil, bad
	}
	host := libvirtxml.DomainDiskSourceHost{Name: u.Hostname(), Port: u.Port()}
	if host.Port == "" {
		host.Port = "3260"
	}
	return &libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{
		Protocol: "iscsi", Name: target + "/" + lun, Hosts: []libvirtxml.DomainDiskSourceHost{host},
	}}, nil
}

// rbdSource maps QEMU's rbd:<pool>[/<namespace>]/<image>[:opt=value...]
// where '\' escapes a ':' in a value. Only conf= is carried over: libvirt
// authenticates to Ceph with a secret object of its own rather than QEMU's
// id= option, and defining those secrets is not done here yet.
func rbdSource(s string) (*libvirtxml.DomainDiskSource, error) {
	fields := splitEscaped(strings.TrimPrefix(s, "rbd:"))
	name := fields[0]
	parts := strings.Split(name, "/")
	if len(parts) < 2 || len(parts) > 3 || slicesContain(parts, "") || strings.Contains(name, "@") {
		return nil, errs.Errorf(errs.Invalid, "The RBD URL %q is not valid: write rbd:<pool>/<image>.", s)
	}
	net := &libvirtxml.DomainDiskSourceNetwork{Protocol: "rbd", Name: name}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "conf":
			net.Config = &libvirtxml.DomainDiskSourceNetworkConfig{File: v}
		default:
			return nil, errs.Errorf(errs.Invalid, "The RBD URL %q has the option %q, which the agent cannot pass to libvirt: only conf= is supported.", s, k)
		}
	}
	return &libvirtxml.DomainDiskSource{Network: net}, nil
}

// splitEscaped splits s at ':' not preceded by '\' and removes the escapes.
func splitEscaped(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ':':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

func slicesContain(ss []string, v string) bool {
	for _, s := range ss {
		if s == v {
			return true
		}
	}
	return false
}

// interfaceXML returns the libvirt definition of a virtio network card.
func interfaceXML(n Interface) libvirtxml.DomainInterface {
	x := libvirtxml.DomainInterface{Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"}}
	if n.MAC != "" {
		x.MAC = &libvirtxml.DomainInterfaceMAC{Address: strings.ToLower(n.MAC)}
	}
	if n.Network != "" {
		x.Source = &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: n.Network}}
	} else {
		x.Source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
	}
	return x
}

// sameSource reports whether two disk sources name the same volume.
func sameSource(a, b *libvirtxml.DomainDiskSource) bool {
	switch {
	case a == nil || b == nil:
		return a == b
	case a.File != nil && b.File != nil:
		return a.File.File == b.File.File
	case a.Block != nil && b.Block != nil:
		return a.Block.Dev == b.Block.Dev
	case a.Network != nil && b.Network != nil:
		return a.Network.Protocol == b.Network.Protocol && a.Network.Name == b.Network.Name
	}
	return false
}
