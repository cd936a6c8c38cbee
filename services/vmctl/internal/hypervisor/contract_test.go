package hypervisor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
)

// TestContract runs the behaviour every driver must share on libvirt's
// test driver and on the embedded QEMU driver with real QEMU processes.
func TestContract(t *testing.T) {
	for _, tc := range []struct{ name, uri string }{
		{"test", "test:///default"},
		{"embed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri := tc.uri
			if uri == "" {
				uri = embedURI(t)
			}
			contract(t, open(t, uri))
		})
	}
}

func contract(t *testing.T, h *Libvirt) {
	ctx := context.Background()

	t.Run("life cycle", func(t *testing.T) {
		d := smallDomain(t)
		steps := []struct {
			what  string
			do    func() error
			code  errs.Code
			state State
		}{
			{"define", func() error { return h.Define(ctx, d) }, "", Shutoff},
			{"define again", func() error { return h.Define(ctx, d) }, "", Shutoff},
			{"reboot a stopped machine", func() error { return h.Reboot(ctx, d.UUID) }, errs.Conflict, Shutoff},
			{"shut down a stopped machine", func() error { return h.Shutdown(ctx, d.UUID) }, "", Shutoff},
			{"power off a stopped machine", func() error {
				if off, err := PowerOff(ctx, h, d.UUID, time.Hour); err != nil || !off {
					return fmt.Errorf("PowerOff = %v, %w; want off at once", off, err)
				}
				return nil
			}, "", Shutoff},
			{"start", func() error { return h.Start(ctx, d.UUID) }, "", Running},
			{"start again", func() error { return h.Start(ctx, d.UUID) }, "", Running},
			{"define a running machine", func() error { return h.Define(ctx, d) }, "", Running},
			{"reboot", func() error { return h.Reboot(ctx, d.UUID) }, "", Running},
			{"undefine a running machine", func() error { return h.Undefine(ctx, d.UUID) }, errs.Conflict, Running},
			{"destroy", func() error { return h.Destroy(ctx, d.UUID) }, "", Shutoff},
			{"destroy again", func() error { return h.Destroy(ctx, d.UUID) }, "", Shutoff},
			{"undefine", func() error { return h.Undefine(ctx, d.UUID) }, "", Missing},
			{"undefine again", func() error { return h.Undefine(ctx, d.UUID) }, "", Missing},
			{"destroy a missing machine", func() error { return h.Destroy(ctx, d.UUID) }, "", Missing},
		}
		for _, s := range steps {
			wantCode(t, s.what, s.do(), s.code)
			st, err := h.State(ctx, d.UUID)
			if err != nil || st != s.state {
				t.Fatalf("after %s: State = %v, %v; want %v", s.what, st, err, s.state)
			}
		}
	})

	t.Run("missing machine", func(t *testing.T) {
		id := newUUID(t)
		for _, s := range []struct {
			what string
			err  error
			code errs.Code
		}{
			{"start", h.Start(ctx, id), errs.NotFound},
			{"shutdown", h.Shutdown(ctx, id), errs.NotFound},
			{"power off", func() error { _, err := PowerOff(ctx, h, id, time.Second); return err }(), errs.NotFound},
			{"reboot", h.Reboot(ctx, id), errs.NotFound},
			{"attach", h.Attach(ctx, id, Disk{Device: "vdb", Source: "/nonexistent.qcow2", Format: "qcow2"}), errs.NotFound},
			{"detach", h.Detach(ctx, id, "vdb"), ""},
			{"destroy", h.Destroy(ctx, id), ""},
			{"undefine", h.Undefine(ctx, id), ""},
		} {
			wantCode(t, s.what, s.err, s.code)
		}
		if st, err := h.State(ctx, id); err != nil || st != Missing {
			t.Errorf("State = %v, %v; want missing", st, err)
		}
	})

	t.Run("invalid arguments", func(t *testing.T) {
		good := smallDomain(t)
		for _, s := range []struct {
			what string
			err  error
		}{
			{"start with a bad uuid", h.Start(ctx, "not-a-uuid")},
			{"state with a bad uuid", func() error { _, err := h.State(ctx, "42"); return err }()},
			{"define with no name", h.Define(ctx, Domain{UUID: good.UUID, CPU: 1, MemoryMiB: 64})},
			{"define with no memory", h.Define(ctx, Domain{UUID: good.UUID, Name: good.Name, CPU: 1})},
			{"attach a virtio CD-ROM", h.Attach(ctx, good.UUID, Disk{Device: "vdc", Source: "/x.iso", CDROM: true})},
			{"detach a bad device", h.Detach(ctx, good.UUID, "eth0")},
		} {
			wantCode(t, s.what, s.err, errs.Invalid)
		}
	})

	t.Run("name and uuid conflicts", func(t *testing.T) {
		a, b := smallDomain(t), smallDomain(t)
		if err := h.Define(ctx, a); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Undefine(ctx, a.UUID) })
		sameName := b
		sameName.Name = a.Name
		wantCode(t, "define another uuid under a taken name", h.Define(ctx, sameName), errs.Conflict)
		renamed := a
		renamed.Name = b.Name
		wantCode(t, "rename a domain by defining it again", h.Define(ctx, renamed), errs.Conflict)
	})

	t.Run("list", func(t *testing.T) {
		running, stopped := smallDomain(t), smallDomain(t)
		for _, d := range []Domain{running, stopped} {
			if err := h.Define(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			_ = h.Destroy(ctx, running.UUID)
			_ = h.Undefine(ctx, running.UUID)
			_ = h.Undefine(ctx, stopped.UUID)
		})
		if err := h.Start(ctx, running.UUID); err != nil {
			t.Fatal(err)
		}
		doms, err := h.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]DomainStatus{}
		for _, d := range doms {
			got[d.UUID] = d
		}
		// A running domain has used some CPU (the test driver counts
		// the clock); how much is compared nowhere else.
		if got[running.UUID].CPUTime <= 0 {
			t.Errorf("the running domain has used %v of CPU, want some", got[running.UUID].CPUTime)
		}
		for id, d := range got {
			d.CPUTime = 0
			got[id] = d
		}
		for _, want := range []DomainStatus{
			{UUID: running.UUID, Name: running.Name, State: Running, CPU: running.CPU, MemoryMiB: int64(running.MemoryMiB)},
			{UUID: stopped.UUID, Name: stopped.Name, State: Shutoff, CPU: stopped.CPU, MemoryMiB: int64(stopped.MemoryMiB)},
		} {
			if got[want.UUID] != want {
				t.Errorf("List has %+v, want %+v", got[want.UUID], want)
			}
		}
	})

	t.Run("attach to a stopped machine", func(t *testing.T) {
		d := smallDomain(t)
		if err := h.Define(ctx, d); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Undefine(ctx, d.UUID) })
		disk := Disk{Device: "vdb", Source: t.TempDir() + "/data.qcow2", Format: "qcow2"}
		wantCode(t, "attach", h.Attach(ctx, d.UUID, disk), "")
		wantCode(t, "attach again", h.Attach(ctx, d.UUID, disk), "")
		other := disk
		other.Source += ".other"
		wantCode(t, "attach another volume at the same device", h.Attach(ctx, d.UUID, other), errs.Conflict)
		x := definition(t, h, d.UUID, true)
		if i := diskIndex(x, "vdb"); i < 0 || x.Devices.Disks[i].Source.File.File != disk.Source || x.Devices.Disks[i].Target.Bus != "virtio" {
			t.Fatalf("after Attach the definition has no virtio vdb on %s: %+v", disk.Source, x.Devices.Disks)
		}
		wantCode(t, "detach", h.Detach(ctx, d.UUID, "vdb"), "")
		wantCode(t, "detach again", h.Detach(ctx, d.UUID, "vdb"), "")
		if i := diskIndex(definition(t, h, d.UUID, true), "vdb"); i >= 0 {
			t.Fatal("after Detach the definition still has vdb")
		}
	})

	t.Run("definition", func(t *testing.T) {
		d := smallDomain(t)
		dir := t.TempDir()
		d.CPU, d.MemoryMiB = 2, 96
		d.Disks = []Disk{
			{Device: "hdc", Source: dir + "/context.iso", CDROM: true},
			{Device: "vda", Source: dir + "/root.qcow2", Format: "qcow2"},
			{Device: "vdb", Source: "iscsi://127.0.0.1:3260/iqn.2026-01.dev.stratuslab:vol/1", Format: "raw", ReadOnly: true},
		}
		d.Interfaces = []Interface{{MAC: "52:54:00:12:34:56"}}
		if err := h.Define(ctx, d); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Undefine(ctx, d.UUID) })
		x := definition(t, h, d.UUID, true)
		if x.UUID != d.UUID || x.Name != d.Name || x.VCPU.Value != 2 || x.Memory.Value != 96*1024 {
			t.Errorf("definition has uuid %s, name %s, %d CPUs, %d %s of memory", x.UUID, x.Name, x.VCPU.Value, x.Memory.Value, x.Memory.Unit)
		}
		if x.Features == nil || x.Features.ACPI == nil {
			t.Error("definition has no ACPI, which Shutdown and hot-plug need")
		}
		for _, want := range []struct{ dev, device, bus string }{{"hdc", "cdrom", "ide"}, {"vda", "disk", "virtio"}, {"vdb", "disk", "virtio"}} {
			i := diskIndex(x, want.dev)
			if i < 0 {
				t.Errorf("definition has no %s", want.dev)
				continue
			}
			got := x.Devices.Disks[i]
			if got.Device != want.device || got.Target.Bus != want.bus {
				t.Errorf("%s is a %s on %s, want a %s on %s", want.dev, got.Device, got.Target.Bus, want.device, want.bus)
			}
			if (got.ReadOnly != nil) != (want.dev != "vda") {
				t.Errorf("%s read-only = %v", want.dev, got.ReadOnly != nil)
			}
		}
		if i := diskIndex(x, "vdb"); i >= 0 {
			n := x.Devices.Disks[i].Source.Network
			if n == nil || n.Protocol != "iscsi" || n.Name != "iqn.2026-01.dev.stratuslab:vol/1" || len(n.Hosts) != 1 || n.Hosts[0].Port != "3260" {
				t.Errorf("vdb's source is %+v, want the iSCSI target", n)
			}
		}
		if len(x.Devices.Interfaces) != 1 || x.Devices.Interfaces[0].MAC.Address != "52:54:00:12:34:56" ||
			x.Devices.Interfaces[0].Model.Type != "virtio" || x.Devices.Interfaces[0].Source.User == nil {
			t.Errorf("interfaces are %+v, want one user-mode virtio card with the given MAC", x.Devices.Interfaces)
		}
		if len(x.Devices.Serials) != 1 || x.Devices.Serials[0].Source.File == nil || x.Devices.Serials[0].Source.File.Path != d.SerialLog {
			t.Errorf("serials are %+v, want one written to %s", x.Devices.Serials, d.SerialLog)
		}
	})

	t.Run("closed connection", func(t *testing.T) {
		c, err := Open(ctx, h.uri, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "close again", c.Close(), "")
		_, err = c.List(ctx)
		wantCode(t, "list after close", err, errs.Unavailable)
	})
}
