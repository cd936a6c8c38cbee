package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl0IGlzIG5vdCBhIHJlYWwga2V5IGF0IGFsbA test@stratuslab"

// TestBoot boots the appliance for real under QEMU (TCG) with a context
// CD-ROM made by xorriso, and checks what the guest reports: the context it
// read, a disk hot-plugged and unplugged through QMP, and that an ACPI power button press
// stops the machine.
func TestBoot(t *testing.T) {
	disk := Image(t)
	tests := []struct {
		name    string
		label   string
		files   map[string]string
		reports map[string]string // report prefix -> value
		absent  []string          // report prefixes that must not come before "ready"
		hotplug bool
	}{
		{
			name:  "HEPiX context.sh",
			label: "_STRATUSLAB",
			files: map[string]string{
				"context.sh": "SSH_PUBLIC_KEY=\"" + testKey + "\"\nSET_HOSTNAME=\"appliance-1\"\nETH0_IP=\"192.0.2.10\"\nUSER_KEY='a value with spaces'\n",
			},
			reports: map[string]string{
				"context=":      "_STRATUSLAB dev=/dev/sr0",
				"context-vars=": "SSH_PUBLIC_KEY,SET_HOSTNAME,ETH0_IP,USER_KEY",
				"hostname=":     "appliance-1",
				"key=":          testKey[:40],
				"ip=":           "192.0.2.10",
			},
			hotplug: true,
		},
		{
			// Powered down right after "ready": a press the guest is not
			// yet watching for would be lost.
			name:  "NoCloud seed",
			label: "cidata",
			files: map[string]string{
				"meta-data": "instance-id: i-0001\nlocal-hostname: appliance-2\n",
				"user-data": "#cloud-config\nssh_authorized_keys:\n  - " + testKey + "\n",
			},
			reports: map[string]string{
				"context=":     "cidata dev=/dev/sr0",
				"instance-id=": "i-0001",
				"hostname=":    "appliance-2",
				"key=":         testKey[:40],
			},
		},
		{
			// Only the labels the context methods define count: a CD-ROM
			// with another label is not read.
			name:  "unknown label",
			label: "OTHER",
			files: map[string]string{
				"context.sh": "SET_HOSTNAME=\"appliance-3\"\n",
			},
			reports: map[string]string{"context=": "none"},
			absent:  []string{"hostname=", "key="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			iso := contextISO(t, dir, tt.label, tt.files)
			vm := startQEMU(t, disk.Path, iso)

			ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
			defer cancel()
			if _, err := WaitFor(ctx, vm.serial, "booted"); err != nil {
				t.Fatal(err)
			}
			t.Logf("first report %.1fs after QEMU started", time.Since(vm.started).Seconds())
			for prefix, want := range tt.reports {
				got, err := WaitFor(ctx, vm.serial, prefix)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("report %s%q, want %q", prefix, got, want)
				}
			}
			var early []string
			_, err := Wait(ctx, vm.serial, func(r string) bool {
				for _, p := range tt.absent {
					if strings.HasPrefix(r, p) {
						early = append(early, r)
					}
				}
				return r == "ready"
			})
			if err != nil {
				t.Fatal(err)
			}
			if early != nil {
				t.Errorf("unexpected reports %q", early)
			}
			t.Logf("ready %.1fs after QEMU started", time.Since(vm.started).Seconds())
			if disks, _ := WaitFor(ctx, vm.serial, "disks="); disks != "sr0 vda" {
				t.Errorf("disks at boot = %q, want %q", disks, "sr0 vda")
			}

			if tt.hotplug {
				extra := filepath.Join(dir, "extra.raw")
				if err := os.WriteFile(extra, make([]byte, 8<<20), 0o644); err != nil {
					t.Fatal(err)
				}
				vm.qmp(t, "blockdev-add", map[string]any{
					"node-name": "extra",
					"driver":    "raw",
					"file":      map[string]any{"driver": "file", "filename": extra},
				})
				vm.qmp(t, "device_add", map[string]any{"driver": "virtio-blk-pci", "id": "extra-disk", "drive": "extra"})
				if got, err := WaitFor(ctx, vm.serial, "disk-added="); err != nil || got != "vdb bytes=8388608" {
					t.Fatalf("disk-added = %q, %v; want vdb bytes=8388608", got, err)
				}
				if got, err := Wait(ctx, vm.serial, func(r string) bool { return strings.Contains(r, "vdb") && strings.HasPrefix(r, "disks=") }); err != nil || got != "disks=sr0 vda vdb" {
					t.Fatalf("disks after hot-plug = %q, %v", got, err)
				}
				// Unplugging needs the guest's ACPI hot-plug driver to let go.
				vm.qmp(t, "device_del", map[string]any{"id": "extra-disk"})
				if got, err := WaitFor(ctx, vm.serial, "disk-removed="); err != nil || got != "vdb" {
					t.Fatalf("disk-removed = %q, %v; want vdb", got, err)
				}
			}

			vm.qmp(t, "system_powerdown", nil)
			if _, err := WaitFor(ctx, vm.serial, "powering off"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-vm.exited:
				if vm.exitErr != nil {
					t.Fatalf("QEMU exited with %v", vm.exitErr)
				}
			case <-ctx.Done():
				t.Fatal("QEMU still runs after the guest powered off")
			}
		})
	}
}

// TestBuildCached checks that a second build with unchanged inputs reuses
// the image instead of rebuilding it.
func TestBuildCached(t *testing.T) {
	disk := Image(t)
	before, err := os.Stat(disk.Path)
	if err != nil {
		t.Fatal(err)
	}
	again := Image(t)
	after, err := os.Stat(again.Path)
	if err != nil {
		t.Fatal(err)
	}
	if again != disk || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("second build = %+v (modified %v), want %+v untouched (modified %v)", again, after.ModTime(), disk, before.ModTime())
	}
	if after.Size() >= 64<<20 {
		t.Errorf("image is %d bytes, want under 64 MiB", after.Size())
	}
}

// contextISO writes files onto an ISO 9660 image labelled label, as a
// context CD-ROM.
func contextISO(t *testing.T, dir, label string, files map[string]string) string {
	t.Helper()
	root := filepath.Join(dir, "iso")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(dir, "context.iso")
	out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", label, "-J", "-R", "-o", iso, root).CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v: %s", err, out)
	}
	return iso
}

type qemu struct {
	serial  string
	started time.Time
	exited  chan struct{} // closed when QEMU has exited, with exitErr set
	exitErr error
	mon     net.Conn
	replies *bufio.Scanner
}

// startQEMU boots the appliance from a read-only virtio disk with the
// context ISO on the IDE CD-ROM, as libvirt would on a pc machine, and
// connects to its QMP monitor.
func startQEMU(t *testing.T, image, iso string) *qemu {
	t.Helper()
	// A short folder: a unix socket's path is limited to 108 bytes.
	sockDir, err := os.MkdirTemp("", "appliance")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "qmp")
	vm := &qemu{serial: filepath.Join(t.TempDir(), "serial.log"), exited: make(chan struct{})}
	cmd := exec.Command("qemu-system-x86_64",
		"-accel", "tcg", "-machine", "pc", "-m", "256", "-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:"+vm.serial,
		"-qmp", "unix:"+sock+",server=on,wait=off",
		"-drive", "file="+image+",if=virtio,format=raw,readonly=on",
		"-drive", "file="+iso+",media=cdrom,if=ide,readonly=on",
	)
	// A file, not a buffer: it is read while QEMU may still write.
	stderr, err := os.Create(filepath.Join(t.TempDir(), "qemu.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	said := func() string {
		b, _ := os.ReadFile(stderr.Name())
		return strings.TrimSpace(string(b))
	}
	vm.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu-system-x86_64 (scripts/deps.sh installs it): %v", err)
	}
	go func() {
		if err := cmd.Wait(); err != nil {
			vm.exitErr = fmt.Errorf("%w: %s", err, said())
		}
		close(vm.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-vm.exited
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		vm.mon, err = net.Dial("unix", sock)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("QMP: %v (QEMU said %q)", err, said())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { vm.mon.Close() })
	vm.replies = bufio.NewScanner(vm.mon)
	if !vm.replies.Scan() {
		t.Fatalf("QMP: no greeting: %v", vm.replies.Err())
	}
	vm.qmp(t, "qmp_capabilities", nil)
	return vm
}

// qmp runs a QMP command and fails the test if QEMU refuses it.
func (vm *qemu) qmp(t *testing.T, command string, args map[string]any) {
	t.Helper()
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	if err := json.NewEncoder(vm.mon).Encode(req); err != nil {
		t.Fatalf("QMP %s: %v", command, err)
	}
	vm.mon.SetReadDeadline(time.Now().Add(30 * time.Second))
	for vm.replies.Scan() {
		var reply struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(vm.replies.Bytes(), &reply); err != nil {
			t.Fatalf("QMP %s: %v in %q", command, err, vm.replies.Text())
		}
		if reply.Error != nil {
			t.Fatalf("QMP %s: %s", command, reply.Error.Desc)
		}
		if reply.Return != nil {
			return
		}
		// An asynchronous event: keep reading for the reply.
	}
	t.Fatalf("QMP %s: no reply: %v", command, vm.replies.Err())
}
