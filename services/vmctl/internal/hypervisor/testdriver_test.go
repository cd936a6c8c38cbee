package hypervisor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
)

func TestInfoTestDriver(t *testing.T) {
	h := open(t, "test:///default")
	in, err := h.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The test driver describes a fixed fake host; libvirt's version is
	// the real library's.
	if in.Hypervisor != "TEST" || in.HypervisorVersion == "" || !strings.HasPrefix(in.LibvirtVersion, "9.") ||
		in.CPUs <= 0 || in.MemoryMiB <= 0 || in.Hostname == "" {
		t.Errorf("Info = %+v", in)
	}
}

// TestShutdownTestDriver: the test driver's guests obey the power button
// at once, so the state after Shutdown is observable without a guest OS.
func TestShutdownTestDriver(t *testing.T) {
	ctx := context.Background()
	h := open(t, "test:///default")
	d := smallDomain(t)
	if err := h.Define(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
	if err := h.Shutdown(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
	if st, err := h.State(ctx, d.UUID); err != nil || st != Shutoff {
		t.Fatalf("State after Shutdown = %v, %v; want shutoff", st, err)
	}
	if err := h.Start(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
	// An hour: PowerOff must return as soon as the guest is off.
	off, err := PowerOff(ctx, h, d.UUID, time.Hour)
	if err != nil || !off {
		t.Fatalf("PowerOff = %v, %v; want off", off, err)
	}
	if st, err := h.State(ctx, d.UUID); err != nil || st != Shutoff {
		t.Fatalf("State after PowerOff = %v, %v; want shutoff", st, err)
	}
}

// TestAttachRunningTestDriver: with no hot-plug in the test driver, Attach
// on a running domain changes the persistent definition only.
func TestAttachRunningTestDriver(t *testing.T) {
	ctx := context.Background()
	h := open(t, "test:///default")
	d := smallDomain(t)
	if err := h.Define(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
	if err := h.Attach(ctx, d.UUID, Disk{Device: "vdb", Source: "/volumes/v1", Format: "raw"}); err != nil {
		t.Fatal(err)
	}
	if diskIndex(definition(t, h, d.UUID, true), "vdb") < 0 {
		t.Error("the persistent definition has no vdb after Attach")
	}
	if diskIndex(definition(t, h, d.UUID, false), "vdb") >= 0 {
		t.Error("the live definition has vdb after Attach: the test driver hot-plugs now, Attach's documentation is out of date")
	}
	if err := h.Detach(ctx, d.UUID, "vdb"); err != nil {
		t.Fatal(err)
	}
	if diskIndex(definition(t, h, d.UUID, true), "vdb") >= 0 {
		t.Error("the persistent definition still has vdb after Detach")
	}
}

// TestManyDomainsConcurrently defines and starts 1000 domains from 50
// goroutines on one connection.
func TestManyDomainsConcurrently(t *testing.T) {
	const workers, each = 50, 20
	ctx := context.Background()
	h := open(t, "test:///default")
	before, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				d := Domain{UUID: newUUID(t), Name: fmt.Sprintf("one-%d", w*each+i), CPU: 1, MemoryMiB: 64}
				if err := h.Define(ctx, d); err != nil {
					errc <- err
					return
				}
				if err := h.Start(ctx, d.UUID); err != nil {
					errc <- err
					return
				}
				mu.Lock()
				want[d.UUID] = d.Name
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	after, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+workers*each {
		t.Fatalf("List has %d domains, want %d", len(after), len(before)+workers*each)
	}
	for _, d := range after {
		if name, ok := want[d.UUID]; ok && (d.Name != name || d.State != Running) {
			t.Errorf("List has %+v, want %s running", d, name)
		}
		delete(want, d.UUID)
	}
	if len(want) != 0 {
		t.Errorf("List lacks %d of the domains", len(want))
	}
}

// BenchmarkDefineStart is the floor a machine start is compared with:
// define and start one new domain on libvirt's in-process test driver,
// through this package ("adapter") and with the bare binding and the
// same XML ("bare").
func BenchmarkDefineStart(b *testing.B) {
	ctx := context.Background()
	b.Run("adapter", func(b *testing.B) {
		h := open(b, "test:///default")
		doms := benchDomains(b, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := h.Define(ctx, doms[i]); err != nil {
				b.Fatal(err)
			}
			if err := h.Start(ctx, doms[i].UUID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare", func(b *testing.B) {
		conn, err := libvirt.NewConnect("test:///default")
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		xs := make([]string, b.N)
		for i, d := range benchDomains(b, b.N) {
			if xs[i], err = domainXML(d, virtTest); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			dom, err := conn.DomainDefineXML(xs[i])
			if err != nil {
				b.Fatal(err)
			}
			if err := dom.Create(); err != nil {
				b.Fatal(err)
			}
			dom.Free()
		}
	})
}

func benchDomains(b *testing.B, n int) []Domain {
	doms := make([]Domain, n)
	for i := range doms {
		id := newUUID(b)
		doms[i] = Domain{UUID: id, Name: "stratus-" + id, CPU: 1, MemoryMiB: 512,
			Disks: []Disk{
				{Device: "vda", Source: "/var/lib/stratuslab/" + id + ".qcow2", Format: "qcow2"},
				{Device: "hdc", Source: "/var/lib/stratuslab/" + id + ".iso", CDROM: true},
			},
			Interfaces: []Interface{{MAC: "52:54:00:00:00:01"}},
			SerialLog:  "/var/log/stratuslab/" + id + ".log",
		}
	}
	return doms
}
