package scheduler_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"libvirt.org/go/libvirtxml"

	"stratuslab.dev/platform/cimi"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// TestCreateRuns creates a machine with every kind of disk and follows it
// to Running: the answer already carries the vmId and the address, pdisk
// is asked for each disk on the owner's behalf with the machine and the
// device, and the agent defines and starts the domain once.
func TestCreateRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	root, persistent, readonly := uuid.NewString(), uuid.NewString(), uuid.NewString()
	id := e.mustCreate(map[string]any{
		"image": root, "type": "m1.small", "name": "web", "volatileDisks": []int{2},
		"persistentDisks": []string{persistent}, "readonlyDisks": []string{readonly},
		"context": []map[string]string{{"key": "ROLE", "value": "web"}}, "sshKey": "ssh-ed25519 AAAAC3Nza alice@host",
	})

	// The answer: Pending, with its number and its address.
	m := e.machine(id)
	if m.VMID != 1 || m.Name != "web" || m.Owner != "alice" || m.Type != "m1.small" || m.CPU != 1 || m.Memory != 1536<<10 || m.SwapMiB != 1536 {
		t.Errorf("machine as created: %+v", m)
	}
	if !strings.HasPrefix(m.IP, "10.1.0.") || m.Hostname != "vm-"+m.IP[len("10.1.0."):]+".example.org" ||
		len(m.Interfaces) != 1 || m.Interfaces[0].IP != m.IP || m.Interfaces[0].Network != "public" || m.Interfaces[0].MAC == "" {
		t.Errorf("address as created: ip %q hostname %q interfaces %+v", m.IP, m.Hostname, m.Interfaces)
	}
	if !m.Access().Allows(cimi.Identity{User: "alice"}, cimi.All) || m.Access().Allows(cimi.Identity{User: "bob", Roles: []string{cimi.RoleUser}}, cimi.View) {
		t.Errorf("acl %+v: the owner must hold ALL, others nothing", m.Access())
	}
	if l := e.leasesOf(id); len(l) != 1 || l[0].IP != m.IP {
		t.Errorf("leases of the new machine: %+v", l)
	}

	m = e.waitState(id, machine.Running)
	if m.State != machine.Started || m.Host != "Host/"+hostID || m.StateMessage != "" {
		t.Errorf("running machine: state %s host %q message %q", m.State, m.Host, m.StateMessage)
	}
	if !e.reservation(id) {
		t.Error("a running machine holds no room on its host")
	}
	if st, err := e.hv.State(e.ctx, id); err != nil || st != hypervisor.Running {
		t.Errorf("domain state %v, %v", st, err)
	}
	if d := e.hv.count(id, "define"); d != 1 || e.hv.count(id, "start") != 1 {
		t.Errorf("the agent was asked %v", e.hv.callsOf(id))
	}

	// The disks: the root volume as vda, then the swap disk the agent
	// makes, a volatile disk pdisk creates for the machine, the
	// persistent and read-only volumes, each on its own virtio device.
	byRole := map[string]machine.Disk{}
	devices := map[string]bool{}
	for _, d := range m.Disks {
		byRole[d.Role] = d
		if devices[d.Device] || len(d.Device) != 3 || !strings.HasPrefix(d.Device, "vd") {
			t.Errorf("disk %+v: devices must be distinct vdX", d)
		}
		devices[d.Device] = true
	}
	if len(m.Disks) != 5 || byRole[machine.RoleRoot].Device != "vda" || byRole[machine.RoleRoot].Volume != "Volume/"+root ||
		byRole[machine.RoleSwap].SizeMiB != 1536 || byRole[machine.RoleSwap].Volume != "" ||
		byRole[machine.RoleVolatile].SizeMiB != 2048 || byRole[machine.RolePersistent].Volume != "Volume/"+persistent ||
		byRole[machine.RoleReadOnly].Volume != "Volume/"+readonly || !byRole[machine.RoleReadOnly].ReadOnly {
		t.Errorf("disks %+v", m.Disks)
	}
	volatile := strings.TrimPrefix(byRole[machine.RoleVolatile].Volume, "Volume/")
	if uuid.Validate(volatile) != nil {
		t.Errorf("the volatile disk's volume %q is not a uuid", volatile)
	}

	cmds := e.pdisk.commands(id)
	if len(cmds) != 4 {
		t.Fatalf("pdisk was asked: %s", e.pdisk.describe(id))
	}
	for _, c := range cmds {
		if c.delivery != 1 {
			t.Errorf("%s: delivered %d times", c, c.delivery)
		}
	}
	attach := func(i int, vol, dev string) {
		t.Helper()
		a, ok := cmds[i].msg.(*volumev1.AttachVolume)
		if !ok || a.GetUuid() != vol || a.GetMachineUuid() != id || a.GetDevice() != dev || a.GetHotPlugged() {
			t.Errorf("pdisk command %d = %s %v, want attach of %s as %s at launch", i, cmds[i].verb, cmds[i].msg, vol, dev)
		}
	}
	attach(0, root, "vda")
	if c, ok := cmds[1].msg.(*volumev1.CreateVolume); !ok || c.GetUuid() != volatile || c.GetSizeGib() != 2 || c.GetOwner() != "alice" ||
		c.GetVolatileForMachineUuid() != id {
		t.Errorf("pdisk command 1 = %s %v, want the creation of a 2 GiB volatile disk for the machine", cmds[1].verb, cmds[1].msg)
	}
	attach(2, persistent, byRole[machine.RolePersistent].Device)
	attach(3, readonly, byRole[machine.RoleReadOnly].Device)

	// The domain as defined: every pdisk volume at pdisk's path on its
	// device, the read-only one read-only, the context CD-ROM, the leased
	// MAC, the type's size.
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(persistentXML(t, id)); err != nil {
		t.Fatal(err)
	}
	sources := map[string]libvirtxml.DomainDisk{}
	for _, d := range dom.Devices.Disks {
		if d.Source != nil && d.Source.File != nil && d.Target != nil {
			sources[d.Target.Dev] = d
		}
	}
	for _, d := range m.Disks {
		if d.Volume == "" {
			continue
		}
		got, ok := sources[d.Device]
		if src := "/var/lib/pdisk/" + strings.TrimPrefix(d.Volume, "Volume/") + ".qcow2"; !ok || got.Source.File.File != src || (got.ReadOnly != nil) != d.ReadOnly {
			t.Errorf("the domain's %s is %+v, want %s (read-only %v)", d.Device, got.Source, src, d.ReadOnly)
		}
	}
	if cd, ok := sources["hdc"]; !ok || cd.Device != "cdrom" || !strings.HasSuffix(cd.Source.File.File, "/context.iso") {
		t.Errorf("the domain has no context CD-ROM: %+v", sources)
	}
	if len(dom.Devices.Interfaces) != 1 || dom.Devices.Interfaces[0].MAC == nil || dom.Devices.Interfaces[0].MAC.Address != m.Interfaces[0].MAC {
		t.Errorf("the domain's interfaces %+v, want the lease's MAC %s", dom.Devices.Interfaces, m.Interfaces[0].MAC)
	}
	if dom.Memory == nil || dom.Memory.Value != 1536<<10 || dom.VCPU == nil || dom.VCPU.Value != 1 {
		t.Errorf("the domain has memory %+v and vcpu %+v", dom.Memory, dom.VCPU)
	}

	// Billing hears of every state the scheduler wrote, with the owner,
	// the size and the host.
	e.eventually("a state event says the machine runs", func() bool {
		for _, ev := range e.tap.seen(subject.EvtMachineStateChanged) {
			var sc machinev1.MachineStateChanged
			if err := proto.Unmarshal(ev.data, &sc); err != nil {
				t.Fatal(err)
			}
			if mm := sc.GetMachine(); mm.GetUuid() == id && mm.GetDetailedState() == machinev1.DetailedState_DETAILED_STATE_RUNNING {
				if mm.GetOwner() != "alice" || mm.GetCpu() != 1 || mm.GetMemoryMib() != 1536 || mm.GetHostId() != hostID || mm.GetType() != "m1.small" {
					t.Errorf("state event %v", mm)
				}
				return true
			}
		}
		return false
	})

	// A second machine gets the next number and another address.
	id2 := e.mustCreate(map[string]any{"image": map[string]any{"url": "https://example.org/img.qcow2", "bytes": 1024, "sha1": strings.Repeat("0a", 20)}})
	m2 := e.waitState(id2, machine.Running)
	if m2.VMID != 2 || m2.IP == m.IP || m2.Name != "one-2" {
		t.Errorf("second machine: vmId %d ip %s name %s", m2.VMID, m2.IP, m2.Name)
	}
	cmds = e.pdisk.commands(id2)
	if len(cmds) != 1 {
		t.Fatalf("pdisk was asked for the second machine: %s", e.pdisk.describe(id2))
	}
	g, ok := cmds[0].msg.(*volumev1.GetImageVolume)
	if !ok || g.GetUrls()[0] != "https://example.org/img.qcow2" || g.GetBytes() != 1024 || g.GetSha1() != strings.Repeat("0a", 20) ||
		g.GetOwner() != "alice" || g.GetMachineUuid() != id2 || "Volume/"+g.GetUuid() != m2.Disks[0].Volume ||
		g.GetType() != volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_LIVE {
		t.Errorf("image from a URL: pdisk was asked %s %v; root disk %+v", cmds[0].verb, cmds[0].msg, m2.Disks[0])
	}
}
