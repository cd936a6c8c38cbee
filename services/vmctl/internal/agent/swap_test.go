package agent

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
)

// tool finds a util-linux program, which lives in /sbin, outside a user's
// PATH.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); exec.Command(p, "--version").Run() == nil {
			return p
		}
	}
	t.Fatalf("%s is missing: install util-linux (scripts/deps.sh)", name)
	return ""
}

// TestSwapHeader compares the header with the page util-linux's mkswap
// writes for the same size and uuid.
func TestSwapHeader(t *testing.T) {
	mkswap := tool(t, "mkswap")
	for _, mib := range []int64{1, 16, 100, 256} {
		id := uuid.New()
		path := filepath.Join(t.TempDir(), "swap.img")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, mib<<20); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(mkswap, "-U", id.String(), path).CombinedOutput(); err != nil {
			t.Fatalf("mkswap: %v: %s", err, out)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := swapHeader(mib<<20, id); !bytes.Equal(got, b[:swapPageSize]) {
			for i := range got {
				if got[i] != b[i] {
					t.Fatalf("%d MiB: byte %d of the header is %#x, mkswap wrote %#x", mib, i, got[i], b[i])
				}
			}
		}
	}
}

// TestWriteSwap writes a swap disk as the agent does and reads it with
// blkid: a sparse file that a guest can swapon, with a uuid derived from
// the machine's, left alone when it is there already.
func TestWriteSwap(t *testing.T) {
	blkid := tool(t, "blkid")
	machineUUID := uuid.NewString()
	path := filepath.Join(t.TempDir(), "swap.img")
	const mib = 512
	if err := writeSwap(path, mib, machineUUID); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != mib<<20 || fi.Mode().Perm() != 0o600 {
		t.Errorf("swap disk is %d bytes, mode %v; want %d bytes, 0600", fi.Size(), fi.Mode().Perm(), mib<<20)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 1<<20 {
		t.Errorf("swap disk uses %d bytes of the host's disk: it is not sparse", st.Blocks*512)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", path).CombinedOutput()
	if err != nil {
		t.Fatalf("blkid: %v: %s", err, out)
	}
	want := "UUID=" + uuid.NewSHA1(swapSpace, []byte(machineUUID)).String()
	for _, line := range []string{"TYPE=swap", "VERSION=1", want} {
		if !strings.Contains(string(out), line+"\n") {
			t.Errorf("blkid does not report %s:\n%s", line, out)
		}
	}

	// What a running guest wrote stays when the define comes again.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("guest page"), 2*swapPageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := writeSwap(path, mib, machineUUID); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 2*swapPageSize); err != nil || string(b) != "guest page" {
		t.Errorf("writing the swap disk again wiped it: %q %v", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the directory holds %d files, want the swap disk alone", len(entries))
	}
}
