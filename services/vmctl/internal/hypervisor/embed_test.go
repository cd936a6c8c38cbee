package hypervisor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/vmctl/internal/appliance"
)

// TestEmbedRealGuest runs a real QEMU process (TCG) through the embedded
// driver: a domain with no bootable disk still runs its firmware, which
// reports on the serial console, ignores the power button (so PowerOff
// times out), and takes hot-plugged disks.
func TestEmbedRealGuest(t *testing.T) {
	ctx := context.Background()
	const detachTimeout = 2 * time.Second
	h, err := Open(ctx, embedURI(t), Options{DetachTimeout: detachTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })

	in, err := h.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.Hypervisor != "QEMU" || in.HypervisorVersion == "" || in.CPUs <= 0 {
		t.Errorf("Info = %+v", in)
	}
	t.Logf("host: %+v", in)

	d := smallDomain(t)
	if err := h.Define(ctx, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = h.Destroy(ctx, d.UUID)
		_ = h.Undefine(ctx, d.UUID)
	})
	if err := h.Start(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
	if st, err := h.State(ctx, d.UUID); err != nil || st != Running {
		t.Fatalf("State after Start = %v, %v; want running", st, err)
	}
	waitSerial(t, d.SerialLog, "No bootable device", time.Minute)

	// No operating system answers the power button: PowerOff gives up
	// after its wait and leaves the machine running for a Destroy.
	off, err := PowerOff(ctx, h, d.UUID, time.Second)
	if err != nil || off {
		t.Fatalf("PowerOff of a guest with no OS = %v, %v; want still running", off, err)
	}
	if st, err := h.State(ctx, d.UUID); err != nil || st != Running {
		t.Fatalf("State after a PowerOff that timed out = %v, %v; want running", st, err)
	}

	disk := Disk{Device: "vdb", Source: filepath.Join(t.TempDir(), "data.qcow2"), Format: "qcow2"}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk.Source, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	missing := Disk{Device: "vdc", Source: filepath.Join(t.TempDir(), "missing.qcow2"), Format: "qcow2"}
	wantCode(t, "hot-plug a file that does not exist", h.Attach(ctx, d.UUID, missing), errs.Internal)
	if diskIndex(definition(t, h, d.UUID, true), "vdc") >= 0 {
		t.Fatal("a failed hot-plug left the disk in the persistent definition")
	}
	if err := h.Attach(ctx, d.UUID, disk); err != nil {
		t.Fatalf("hot-plug: %v", err)
	}
	if err := h.Attach(ctx, d.UUID, disk); err != nil {
		t.Fatalf("hot-plug again: %v", err)
	}
	for _, inactive := range []bool{false, true} {
		if diskIndex(definition(t, h, d.UUID, inactive), "vdb") < 0 {
			t.Fatalf("after Attach, the definition (inactive=%v) has no vdb", inactive)
		}
	}

	// The firmware does not answer ACPI hot-unplug requests, so the disk
	// stays: Detach must say so, not pretend, and leave both definitions
	// as they were.
	start := time.Now()
	err = h.Detach(ctx, d.UUID, "vdb")
	t.Logf("Detach with no guest OS returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	wantCode(t, "detach from a guest with no OS", err, errs.Timeout)
	for _, inactive := range []bool{false, true} {
		if diskIndex(definition(t, h, d.UUID, inactive), "vdb") < 0 {
			t.Fatalf("after a failed Detach, the definition (inactive=%v) lost vdb", inactive)
		}
	}
	// A retry meets QEMU's pending unplug and waits again.
	wantCode(t, "detach again", h.Detach(ctx, d.UUID, "vdb"), errs.Timeout)

	if err := h.Destroy(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
	if st, err := h.State(ctx, d.UUID); err != nil || st != Shutoff {
		t.Fatalf("State after Destroy = %v, %v; want shutoff", st, err)
	}
	if err := h.Detach(ctx, d.UUID, "vdb"); err != nil {
		t.Fatalf("detach from the stopped machine: %v", err)
	}
	if diskIndex(definition(t, h, d.UUID, true), "vdb") >= 0 {
		t.Fatal("after Detach from the stopped machine, the definition still has vdb")
	}
	if err := h.Undefine(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
}

// waitSerial waits until the serial log holds want.
func waitSerial(t *testing.T, path, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the serial log %s does not show %q after %v; it holds:\n%s", path, want, limit, strings.ToValidUTF8(string(b), "?"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEmbedAppliance boots the project's test appliance under the embedded
// driver from a qcow2 overlay, as machines boot, and checks what only a
// guest OS can show: a hot-plugged disk appears in the guest and leaves it
// when Detach returns, and PowerOff's power button stops the machine,
// which PowerOff waits for.
func TestEmbedAppliance(t *testing.T) {
	img := appliance.Image(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := open(t, embedURI(t))
	dir := t.TempDir()
	root := filepath.Join(dir, "root.qcow2")
	data := filepath.Join(dir, "data.qcow2")
	for _, args := range [][]string{
		{"create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.Path, root},
		{"create", "-q", "-f", "qcow2", data, "32M"},
	} {
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v: %s", args, err, out)
		}
	}
	d := smallDomain(t)
	d.MemoryMiB = 256
	d.Disks = []Disk{{Device: "vda", Source: root, Format: "qcow2"}}
	if err := h.Define(ctx, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = h.Destroy(context.Background(), d.UUID)
		_ = h.Undefine(context.Background(), d.UUID)
	})
	if err := h.Start(ctx, d.UUID); err != nil {
		t.Fatal(err)
	}
	wait := func(prefix, want string) {
		t.Helper()
		got, err := appliance.Wait(ctx, d.SerialLog, func(r string) bool {
			return strings.HasPrefix(r, prefix) && (want == "" || strings.TrimPrefix(r, prefix) == want)
		})
		if err != nil {
			t.Fatalf("waiting for %q%s: %v", prefix, want, err)
		}
		t.Logf("guest: %s", got)
	}
	wait("ready", "")

	if err := h.Attach(ctx, d.UUID, Disk{Device: "vdb", Source: data, Format: "qcow2"}); err != nil {
		t.Fatalf("hot-plug: %v", err)
	}
	wait("disk-added=vdb", "")
	start := time.Now()
	if err := h.Detach(ctx, d.UUID, "vdb"); err != nil {
		t.Fatalf("hot-unplug: %v", err)
	}
	t.Logf("Detach took %v", time.Since(start).Round(time.Millisecond))
	wait("disk-removed=", "vdb")
	for _, inactive := range []bool{false, true} {
		if diskIndex(definition(t, h, d.UUID, inactive), "vdb") >= 0 {
			t.Fatalf("after Detach, the definition (inactive=%v) still has vdb", inactive)
		}
	}

	// The appliance powers off when its power button is pressed.
	off, err := PowerOff(ctx, h, d.UUID, 2*time.Minute)
	if err != nil || !off {
		t.Fatalf("PowerOff of the appliance = %v, %v; want off", off, err)
	}
	wait("powering off", "")
	if st, err := h.State(ctx, d.UUID); err != nil || st != Shutoff {
		t.Fatalf("State after PowerOff = %v, %v; want shutoff", st, err)
	}
}
