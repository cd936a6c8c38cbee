package hypervisor

import (
	"errors"
	"strings"
	"testing"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"stratuslab.dev/platform/errs"
)

func TestDiskSource(t *testing.T) {
	tests := []struct {
		src  string
		want libvirtxml.DomainDiskSource // zero when invalid
	}{
		{"/var/lib/stratuslab/v.qcow2", libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: "/var/lib/stratuslab/v.qcow2"}}},
		{"/dev/vg0/v1", libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: "/dev/vg0/v1"}}},
		{"iscsi://10.1.2.3:3261/iqn.2026-01.dev.stratuslab:vol-1/1", libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{
			Protocol: "iscsi", Name: "iqn.2026-01.dev.stratuslab:vol-1/1", Hosts: []libvirtxml.DomainDiskSourceHost{{Name: "10.1.2.3", Port: "3261"}}}}},
		{"iscsi://[::1]/iqn.x:y/0", libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{
			Protocol: "iscsi", Name: "iqn.x:y/0", Hosts: []libvirtxml.DomainDiskSourceHost{{Name: "::1", Port: "3260"}}}}},
		{"rbd:pool/image", libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{Protocol: "rbd", Name: "pool/image"}}},
		{"rbd:pool/ns/image:conf=/etc/ceph/a\\:b.conf", libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{
			Protocol: "rbd", Name: "pool/ns/image", Config: &libvirtxml.DomainDiskSourceNetworkConfig{File: "/etc/ceph/a:b.conf"}}}},
		{"", libvirtxml.DomainDiskSource{}},
		{"relative.qcow2", libvirtxml.DomainDiskSource{}},
		{"nbd://host/export", libvirtxml.DomainDiskSource{}},
		{"iscsi://host/iqn.x:y", libvirtxml.DomainDiskSource{}},
		{"iscsi://host/iqn.x:y/lun", libvirtxml.DomainDiskSource{}},
		{"iscsi://host/iqn.x:y/1/2", libvirtxml.DomainDiskSource{}},
		{"iscsi://user:pw@host/iqn.x:y/1", libvirtxml.DomainDiskSource{}},
		{"iscsi:///iqn.x:y/1", libvirtxml.DomainDiskSource{}},
		{"rbd:image", libvirtxml.DomainDiskSource{}},
		{"rbd:pool/image@snap", libvirtxml.DomainDiskSource{}},
		{"rbd:pool//image", libvirtxml.DomainDiskSource{}},
		{"rbd:pool/image:id=admin", libvirtxml.DomainDiskSource{}},
	}
	for _, tc := range tests {
		got, err := diskSource(tc.src)
		invalid := tc.want == libvirtxml.DomainDiskSource{}
		if invalid {
			if errs.CodeOf(err) != errs.Invalid {
				t.Errorf("diskSource(%q) = %+v, %v; want an invalid error", tc.src, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("diskSource(%q): %v", tc.src, err)
			continue
		}
		gx, _ := (&libvirtxml.DomainDisk{Source: got}).Marshal()
		wx, _ := (&libvirtxml.DomainDisk{Source: &tc.want}).Marshal()
		if gx != wx {
			t.Errorf("diskSource(%q) =\n%s\nwant\n%s", tc.src, gx, wx)
		}
	}
}

func TestBusOf(t *testing.T) {
	for dev, want := range map[string]string{
		"vda": "virtio", "vdaa": "virtio", "sda": "sata", "hdc": "ide",
		"": "", "vd": "", "xvda": "", "vd1": "", "VDA": "", "sr0": "", "hdc1": "",
	} {
		got, err := busOf(dev)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("busOf(%q) = %q, %v; want %q", dev, got, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Domain{UUID: "6695EB01-F6A4-8304-79AA-97F2502E193F", Name: "one-1", CPU: 1, MemoryMiB: 512,
		Disks:      []Disk{{Device: "vda", Source: "/a"}, {Device: "hdc", Source: "/b", CDROM: true}},
		Interfaces: []Interface{{MAC: "52:54:00:AB:CD:EF"}, {}},
	}
	if err := ok.validate(); err != nil {
		t.Fatalf("validate(%+v): %v", ok, err)
	}
	for name, edit := range map[string]func(*Domain){
		"short uuid":        func(d *Domain) { d.UUID = d.UUID[1:] },
		"uuid without dash": func(d *Domain) { d.UUID = strings.ReplaceAll(d.UUID, "-", "x") },
		"uuid not hex":      func(d *Domain) { d.UUID = "g" + d.UUID[1:] },
		"no name":           func(d *Domain) { d.Name = "" },
		"slash in name":     func(d *Domain) { d.Name = "a/b" },
		"no CPU":            func(d *Domain) { d.CPU = 0 },
		"no memory":         func(d *Domain) { d.MemoryMiB = 0 },
		"two disks at vda":  func(d *Domain) { d.Disks = append(d.Disks, Disk{Device: "vda", Source: "/c"}) },
		"bad MAC":           func(d *Domain) { d.Interfaces = []Interface{{MAC: "52:54:00"}} },
		"8-byte MAC":        func(d *Domain) { d.Interfaces = []Interface{{MAC: "52:54:00:00:00:00:00:01"}} },
	} {
		d := ok
		d.Disks = append([]Disk(nil), ok.Disks...)
		edit(&d)
		if err := d.validate(); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("%s: validate = %v, want an invalid error", name, err)
		}
		if _, err := domainXML(d, virtQEMU); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("%s: domainXML = %v, want an invalid error", name, err)
		}
	}
}

// TestDomainXMLSchema checks what domainXML writes for each domain type
// against libvirt's own RNG schema (libvirt validates when asked to at
// define time), and the choices the XML carries.
func TestDomainXMLSchema(t *testing.T) {
	d := Domain{UUID: newUUID(t), Name: "one-7", CPU: 2, MemoryMiB: 1536, SerialLog: "/var/log/one-7.serial",
		Disks: []Disk{
			{Device: "hdc", Source: "/var/lib/one-7/context.iso", CDROM: true},
			{Device: "vda", Source: "/var/lib/one-7/root.qcow2", Format: "qcow2"},
			{Device: "vdb", Source: "iscsi://127.0.0.1/iqn.2026-01.dev.stratuslab:v/1", Format: "qcow2"},
			{Device: "vdc", Source: "rbd:pool/img:conf=/etc/ceph/ceph.conf", Format: "raw"},
			{Device: "sda", Source: "/dev/vg/data", ReadOnly: true},
		},
		Interfaces: []Interface{{MAC: "52:54:00:00:00:07", Network: "default"}, {}},
	}
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, vt := range []string{virtTest, virtQEMU, virtKVM} {
		s, err := domainXML(d, vt)
		if err != nil {
			t.Fatalf("%s: %v", vt, err)
		}
		// The test driver cannot run qemu or kvm domains and says so
		// after the schema check, which is all this test asks for.
		dom, err := conn.DomainDefineXMLFlags(s, libvirt.DOMAIN_DEFINE_VALIDATE)
		if isCode(err, libvirt.ERR_XML_INVALID_SCHEMA) {
			t.Errorf("%s: libvirt's schema refuses the XML: %v\n%s", vt, err, s)
		}
		if err == nil {
			_ = dom.Undefine()
			_ = dom.Free()
		}
		var x libvirtxml.Domain
		if err := x.Unmarshal(s); err != nil {
			t.Fatal(err)
		}
		if x.Type != vt {
			t.Errorf("%s: domain type %q", vt, x.Type)
		}
		if vt != virtTest && (x.OS.Type.Machine != "pc" || x.OS.Type.Arch != "x86_64") {
			t.Errorf("%s: machine %q arch %q, want pc x86_64", vt, x.OS.Type.Machine, x.OS.Type.Arch)
		}
		if (x.CPU != nil && x.CPU.Mode == "host-passthrough") != (vt == virtKVM) {
			t.Errorf("%s: CPU %+v; want host-passthrough on kvm only", vt, x.CPU)
		}
		if x.OS.BIOS == nil || x.OS.BIOS.UseSerial != "yes" || len(x.Devices.Consoles) != 1 {
			t.Errorf("%s: the firmware and the console do not use the serial port", vt)
		}
		for i, disk := range x.Devices.Disks {
			if boot := disk.Boot != nil && disk.Boot.Order == 1; boot != (disk.Target.Dev == "vda") {
				t.Errorf("%s: disk %d (%s) boot = %v; the first disk that is not a CD-ROM boots", vt, i, disk.Target.Dev, boot)
			}
		}
		if n := x.Devices.Interfaces; n[0].Source.Network == nil || n[0].Source.Network.Network != "default" || n[1].Source.User == nil || n[1].MAC != nil {
			t.Errorf("%s: interfaces %+v", vt, n)
		}
	}
}

// FuzzDiskSource: volume locations come from pdisk documents; whatever
// they hold, diskSource answers with a source or an invalid error and
// never panics.
func FuzzDiskSource(f *testing.F) {
	for _, s := range []string{"/a.qcow2", "/dev/sda", "iscsi://h:1/iqn.x:y/1", "rbd:p/i:conf=/c", "rbd:p/i:a\\:b", "iscsi://[::1]/t/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := diskSource(s)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("diskSource(%q): %v is not an invalid error", s, err)
			}
			return
		}
		if _, err := (&libvirtxml.DomainDisk{Source: src}).Marshal(); err != nil {
			t.Fatalf("diskSource(%q) gives a source that does not marshal: %v", s, err)
		}
	})
}

func TestFail(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want errs.Code
	}{
		{libvirt.Error{Code: libvirt.ERR_NO_DOMAIN}, errs.NotFound},
		{libvirt.Error{Code: libvirt.ERR_OPERATION_INVALID}, errs.Conflict},
		{libvirt.Error{Code: libvirt.ERR_XML_ERROR}, errs.Invalid},
		{libvirt.Error{Code: libvirt.ERR_NO_SUPPORT}, errs.Unavailable},
		{libvirt.Error{Code: libvirt.ERR_OPERATION_TIMEOUT}, errs.Timeout},
		{libvirt.Error{Code: libvirt.ERR_INTERNAL_ERROR, Domain: libvirt.FROM_RPC}, errs.Unavailable},
		{libvirt.Error{Code: libvirt.ERR_SYSTEM_ERROR, Domain: libvirt.FROM_RPC}, errs.Unavailable},
		{libvirt.Error{Code: libvirt.ERR_SYSTEM_ERROR, Domain: libvirt.FROM_STORAGE}, errs.Internal},
		{libvirt.Error{Code: libvirt.ERR_INTERNAL_ERROR, Domain: libvirt.FROM_QEMU}, errs.Internal},
		{errors.New("not from libvirt"), errs.Internal},
	} {
		got := fail(tc.err, "start machine x")
		if errs.CodeOf(got) != tc.want || !errors.Is(got, tc.err) {
			t.Errorf("fail(%v) = %v with code %q, want code %q wrapping the cause", tc.err, got, errs.CodeOf(got), tc.want)
		}
		if m := errs.MessageOf(got); !strings.HasPrefix(m, "Cannot start machine x") || strings.Contains(m, "virError") {
			t.Errorf("fail(%v) tells people %q", tc.err, m)
		}
	}
}
