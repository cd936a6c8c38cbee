package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
)

// deafGuests is libvirt's test driver with guests that ignore the power
// button, as a guest without ACPI support does.
type deafGuests struct{ *hypervisor.Libvirt }

func (deafGuests) Shutdown(context.Context, string) error { return nil }

// host runs an agent of host id on hv, served through a real bus, and
// sends it commands as the scheduler does.
type host struct {
	t         *testing.T
	id, dir   string
	b         *bus.Bus
	terminals *bus.Terminals
}

// startHosts runs one agent per hypervisor, named h1, h2..., on one bus
// and store until the test ends.
func startHosts(t *testing.T, hvs ...hypervisor.Hypervisor) []*host {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	nc, js := testkit.JetStream(t)
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(ctx, js, "vmctl", embedded.WithLogger(slog.New(slog.DiscardHandler)), embedded.WithStrictReads())
	if err != nil {
		t.Fatal(err)
	}
	hostColl, err := st.Collection(ctx, hosts.Kind)
	if err != nil {
		t.Fatal(err)
	}
	terminals, err := bus.FollowTerminals(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: "vmctl", Logger: slog.New(slog.DiscardHandler)})
	var out []*host
	done := make(chan error, len(hvs))
	for i, hv := range hvs {
		h := &host{t: t, id: "h" + string(rune('1'+i)), dir: t.TempDir(), b: b, terminals: terminals}
		a, err := New(Config{HostID: h.id, Hypervisor: hv, Dir: h.dir, Bus: b, Log: slog.New(slog.DiscardHandler),
			Hosts: hosts.New(hostColl, func() (float64, float64) { return 1, 1 }, time.Now)})
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- a.Run(ctx) }()
		out = append(out, h)
	}
	t.Cleanup(func() {
		cancel()
		for range hvs {
			if err := <-done; err != nil && ctx.Err() == nil {
				t.Errorf("agent: %v", err)
			}
		}
		_ = terminals.Close()
		_ = st.Close()
	})
	return out
}

// send sends a command to the agent and returns its outcome.
func (h *host) send(verb string, msg proto.Message) error {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := uuid.NewString()
	done, stop := h.terminals.Expect(id)
	defer stop()
	if err := h.b.Send(ctx, subject.HostCommand(h.id, verb), &commonv1.Meta{CommandId: id}, msg); err != nil {
		h.t.Fatal(err)
	}
	select {
	case o := <-done:
		return o.Err
	case <-ctx.Done():
		h.t.Fatalf("no answer to %s", verb)
		return nil
	}
}

// inactiveXML reads a domain's persistent definition through a libvirt
// connection of its own, as an operator's virsh dumpxml would.
func inactiveXML(t *testing.T, id string) *libvirtxml.Domain {
	t.Helper()
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dom, err := conn.LookupDomainByUUIDString(id)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	s, err := dom.GetXMLDesc(libvirt.DOMAIN_XML_INACTIVE)
	if err != nil {
		t.Fatal(err)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		t.Fatal(err)
	}
	return &x
}

// TestDomainCommands drives a machine's domain through the agent's
// commands on libvirt's test driver: its swap disk is made and plugged in
// after the root disk, a shutdown waits for the guest, and the end of the
// machine takes its files away.
func TestDomainCommands(t *testing.T) {
	ctx := context.Background()
	hv, err := hypervisor.Open(ctx, "test:///default", hypervisor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hv.Close() })
	h := startHosts(t, hv)[0]
	id := uuid.NewString()
	t.Cleanup(func() { _ = hv.Destroy(ctx, id); _ = hv.Undefine(ctx, id) })
	spec := &machinev1.DomainSpec{Cpu: 1, MemoryMib: 64, SwapMib: 64, SwapDevice: "vdb", Disks: []*machinev1.DomainDisk{
		{Device: "vda", Turl: "file:///volumes/root.qcow2", Format: machinev1.DiskFormat_DISK_FORMAT_QCOW2},
		{Device: "vdc", Turl: "file:///volumes/data", Format: machinev1.DiskFormat_DISK_FORMAT_RAW},
	}}
	if err := h.send(subject.VerbDefineDomain, &machinev1.DefineDomain{MachineUuid: id, Spec: spec}); err != nil {
		t.Fatalf("define: %v", err)
	}
	swap := filepath.Join(h.dir, id, "swap.img")
	x := inactiveXML(t, id)
	var got []string
	for _, d := range x.Devices.Disks {
		src := ""
		if d.Source != nil && d.Source.File != nil {
			src = d.Source.File.File
		}
		got = append(got, d.Target.Dev+" "+d.Target.Bus+" "+d.Driver.Type+" "+src)
	}
	want := []string{"vda virtio qcow2 /volumes/root.qcow2", "vdb virtio raw " + swap, "vdc virtio raw /volumes/data"}
	if len(got) != len(want) {
		t.Fatalf("the domain's disks are %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("disk %d is %q, want %q", i, got[i], want[i])
		}
	}
	if x.Devices.Disks[0].Boot == nil || x.Devices.Disks[0].Boot.Order != 1 || x.Devices.Disks[1].Boot != nil {
		t.Errorf("the root disk must stay the boot disk: %+v, %+v", x.Devices.Disks[0].Boot, x.Devices.Disks[1].Boot)
	}
	b, err := os.ReadFile(swap)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 64<<20 || !bytes.Equal(b[swapPageSize-10:swapPageSize], []byte(swapMagic)) {
		t.Errorf("the swap disk is %d bytes and ends its first page with %q", len(b), b[swapPageSize-10:swapPageSize])
	}

	if err := h.send(subject.VerbStartDomain, &machinev1.StartDomain{MachineUuid: id}); err != nil {
		t.Fatalf("start: %v", err)
	}
	// The test driver's guests power off at once: the wait ends with them,
	// not with the hour.
	if err := h.send(subject.VerbShutdownDomain, &machinev1.ShutdownDomain{MachineUuid: id, Timeout: durationpb.New(time.Hour)}); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if st, err := hv.State(ctx, id); err != nil || st != hypervisor.Shutoff {
		t.Fatalf("after the shutdown the domain is %v, %v; want shutoff", st, err)
	}
	if err := h.send(subject.VerbDestroyDomain, &machinev1.DestroyDomain{MachineUuid: id, Undefine: true}); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if st, _ := hv.State(ctx, id); st != hypervisor.Missing {
		t.Errorf("after the destroy the domain is %v", st)
	}
	if _, err := os.Stat(filepath.Dir(swap)); !os.IsNotExist(err) {
		t.Errorf("the domain's directory and its swap disk are still there: %v", err)
	}
}

// TestShutdownTimeout: a guest that ignores the power button fails the
// shutdown with the code "timeout" once the command's wait is over, and
// keeps running for the sender to destroy; a shutdown without a wait only
// presses the button.
func TestShutdownTimeout(t *testing.T) {
	ctx := context.Background()
	lv, err := hypervisor.Open(ctx, "test:///default", hypervisor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lv.Close() })
	h := startHosts(t, deafGuests{lv})[0]
	id := uuid.NewString()
	t.Cleanup(func() { _ = lv.Destroy(ctx, id); _ = lv.Undefine(ctx, id) })
	if err := h.send(subject.VerbDefineDomain, &machinev1.DefineDomain{MachineUuid: id, Spec: &machinev1.DomainSpec{Cpu: 1, MemoryMib: 64}}); err != nil {
		t.Fatalf("define: %v", err)
	}
	if err := h.send(subject.VerbStartDomain, &machinev1.StartDomain{MachineUuid: id}); err != nil {
		t.Fatalf("start: %v", err)
	}
	for _, tt := range []struct {
		name    string
		timeout *durationpb.Duration
		code    errs.Code
	}{
		{"wait", durationpb.New(300 * time.Millisecond), errs.Timeout},
		{"no wait", nil, ""},
	} {
		err := h.send(subject.VerbShutdownDomain, &machinev1.ShutdownDomain{MachineUuid: id, Timeout: tt.timeout})
		if errs.CodeOf(err) != tt.code {
			t.Errorf("%s: shutdown of a guest that ignores it: %v (code %q), want code %q", tt.name, err, errs.CodeOf(err), tt.code)
		}
		if st, err := lv.State(ctx, id); err != nil || st != hypervisor.Running {
			t.Errorf("%s: after the shutdown the domain is %v, %v; want running", tt.name, st, err)
		}
	}
}
