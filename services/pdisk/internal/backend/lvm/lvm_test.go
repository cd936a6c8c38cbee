package lvm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/backendtest"
)

// TestContract runs the backend contract suite against thin pools made for
// the purpose in the volume group named by STRATUS_TEST_LVM_VG, which needs
// about 8 GiB free. Without it the suite is skipped, and says so rather than
// pass: the unit tests beside it check command lines and parsing only.
func TestContract(t *testing.T) {
	vg := os.Getenv("STRATUS_TEST_LVM_VG")
	if vg == "" {
		why := "STRATUS_TEST_LVM_VG is not set"
		// /dev/mapper/control may exist without the driver (lvm2 makes the
		// node), so ask the kernel.
		if misc, err := os.ReadFile("/proc/misc"); err == nil && !bytes.Contains(misc, []byte("device-mapper")) {
			why = "there is no device-mapper in this kernel (none in /proc/misc) and STRATUS_TEST_LVM_VG is not set"
		}
		t.Skipf("the backend contract suite did NOT run for lvm: %s; set STRATUS_TEST_LVM_VG=<volume group with 8 GiB free> "+
			"on a host with lvm2, dmsetup and device-mapper to run it", why)
	}
	for _, prog := range []string{"lvcreate", "lvs", "dmsetup"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("STRATUS_TEST_LVM_VG is set but %s is missing (Debian package lvm2): %v", prog, err)
		}
	}
	t.Run("Run", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backend.Backend { return newPool(t, vg)[0] })
	})
	t.Run("RunShared", func(t *testing.T) {
		backendtest.RunShared(t, func(t *testing.T) (backend.Backend, backend.Backend) {
			b := newPool(t, vg)
			return b[0], b[1]
		})
	})
}

// newPool makes a small thin pool in vg for one subtest, removed with its
// volumes when the subtest ends, and returns two backends over it, as two
// processes on one host would have.
func newPool(t *testing.T, vg string) [2]*Backend {
	t.Helper()
	var r [4]byte
	_, _ = rand.Read(r[:])
	pool := "pdisk-test-" + hex.EncodeToString(r[:])
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("lvcreate", "--type", "thin-pool", "--size", "512m", "--zero", "y", "--name", pool, vg)
	t.Cleanup(func() {
		// Volumes first: removing a pool with volumes in it asks first.
		_ = exec.Command("lvremove", "--force", "--yes", "-S", `pool_lv="`+pool+`"`, vg).Run()
		run("lvremove", "--force", "--yes", vg+"/"+pool)
	})
	var bs [2]*Backend
	for i := range bs {
		b, err := New(Config{VG: vg, ThinPool: pool})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Check(t.Context()); err != nil {
			t.Fatal(err)
		}
		bs[i] = b
	}
	return bs
}

func TestNewRefusesBadNames(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{VG: "", ThinPool: "pool"},
		{VG: "vg0", ThinPool: ""},
		{VG: "-vg", ThinPool: "pool"},
		{VG: "vg0", ThinPool: `po"ol`},
		{VG: "vg/0", ThinPool: "pool"},
		{VG: "..", ThinPool: "pool"},
		{VG: "vg0", ThinPool: "pool && lv_name=x"},
		{VG: "vg0", ThinPool: strings.Repeat("p", 128)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a name lvm2 would not, or one unsafe in an lvs selection", cfg)
		}
	}
	if _, err := New(Config{VG: "vg-0_a.b+", ThinPool: "pdisk"}); err != nil {
		t.Errorf("New refused valid names: %v", err)
	}
}
