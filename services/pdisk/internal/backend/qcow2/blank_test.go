package qcow2

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"stratuslab.dev/services/pdisk/internal/backend"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = backend.GiB
)

// blankSizes are virtual sizes in bytes that the native writer is checked
// on: the backend's own (whole GiB, from the smallest to the largest), and
// sizes that are not whole L2 tables (512 MiB each), down to one sector.
var blankSizes = []int64{
	512,
	64 * kib,
	512*mib - 512,
	512 * mib,
	512*mib + 512,
	gib,
	1025 * mib,
	3*gib + 64*kib + 512,
	10 * gib,
	1024 * gib,
	1024*gib + 3*512*mib + 4096,
	backend.MaxSizeGiB * gib,
	maxBlankSize,
}

// TestBlankMatchesQemuImg checks that writeBlank writes, byte for byte, the
// file qemu-img create writes, plain and as an overlay.
func TestBlankMatchesQemuImg(t *testing.T) {
	t.Parallel()
	needTools(t)
	for _, size := range blankSizes {
		for _, backing := range []string{"", "0b6f4f5e-2a7c-4d0e-9c1a-3f2e1d0c9b8a.qcow2"} {
			compareWithQemuImg(t, size, backing)
		}
	}
}

// FuzzBlankMatchesQemuImg compares writeBlank with qemu-img create for any
// virtual size and backing file name the writer accepts.
func FuzzBlankMatchesQemuImg(f *testing.F) {
	needTools(f)
	f.Add(uint64(1), "")
	f.Add(uint64(1<<21), "origin.qcow2")
	f.Add(uint64(1<<21+1), "")
	f.Add(uint64(1<<41-1), "a")
	f.Add(uint64(maxBlankSize/512), strings.Repeat("n", maxBackingName))
	f.Fuzz(func(t *testing.T, sectors uint64, backing string) {
		size := int64(sectors%(maxBlankSize/512)+1) * 512
		// qemu-img takes the name from its command line and looks for the
		// file: keep to names it can take as they are.
		if len(backing) > maxBackingName || strings.ContainsAny(backing, "\x00:/,") || strings.HasPrefix(backing, "-") {
			t.Skip()
		}
		compareWithQemuImg(t, size, backing)
	})
}

func compareWithQemuImg(t *testing.T, size int64, backing string) {
	t.Helper()
	dir := t.TempDir()
	native := filepath.Join(dir, "native.qcow2")
	f, err := os.OpenFile(native, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	err = writeBlank(f, size, backing)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("writeBlank(%d, %q): %v", size, backing, err)
	}
	ref := filepath.Join(dir, "qemu-img.qcow2")
	args := []string{"create", "-q", "-f", "qcow2"}
	if backing != "" {
		// -u: do not look for the backing file, whose size is given.
		args = append(args, "-u", "-F", "qcow2", "-b", backing)
	}
	run(t, "qemu-img", append(args, ref, strconv.FormatInt(size, 10))...)
	got, want := readAll(t, native), readAll(t, ref)
	if !bytes.Equal(got, want) {
		t.Fatalf("size %d, backing %q: writeBlank wrote %d bytes differing from qemu-img's %d at offset %#x (%s)",
			size, backing, len(got), len(want), firstDifference(got, want), fieldAt(firstDifference(got, want)))
	}
}

func TestBlankRefusesBadSizes(t *testing.T) {
	t.Parallel()
	for _, size := range []int64{0, -512, 1, 511, 513, gib + 1, maxBlankSize + 512, 1<<63 - 1} {
		name := filepath.Join(t.TempDir(), "x.qcow2")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeBlank(f, size, ""); err == nil {
			t.Errorf("writeBlank accepted virtual size %d", size)
		}
		f.Close()
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "x.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeBlank(f, gib, strings.Repeat("n", maxBackingName+1)); err == nil {
		t.Errorf("writeBlank accepted a backing file name longer than qcow2 allows")
	}
}

// TestBlankImagesWork checks with QEMU's own tools that blank images are
// sound and usable at every size: qemu-img check finds no error or leak,
// qemu-img info reads the intended format and size, and data written with
// qemu-io at offsets across the disk, the last sector included, reads back,
// while what was not written reads as zeros.
func TestBlankImagesWork(t *testing.T) {
	t.Parallel()
	needTools(t)
	for _, size := range blankSizes {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			t.Parallel()
			name := filepath.Join(t.TempDir(), "v.qcow2")
			f, err := os.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeBlank(f, size, ""); err != nil {
				t.Fatal(err)
			}
			f.Close()
			checkImage(t, name, size, "")
			exerciseImage(t, name, size)
		})
	}
}

// TestCreateMakesSoundImages does what TestBlankImagesWork does, on volumes
// made by Create.
func TestCreateMakesSoundImages(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t)
	for i, sizeGiB := range []int64{1, 3, 10, 1024} {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		v, err := b.Create(t.Context(), id, sizeGiB)
		if err != nil {
			t.Fatalf("Create %d GiB: %v", sizeGiB, err)
		}
		if v.Size != sizeGiB*gib || v.Origin != "" || v.Created.IsZero() {
			t.Errorf("Create %d GiB returned %+v", sizeGiB, v)
		}
		checkImage(t, b.path(id), sizeGiB*gib, "")
		exerciseImage(t, b.path(id), sizeGiB*gib)
	}
}

// TestSnapshotOverlays checks natively written overlays with QEMU's tools:
// they name their origin and its format, have its size, read its data
// everywhere, and take writes without changing it.
func TestSnapshotOverlays(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t)
	for i, sizeGiB := range []int64{1, 10} {
		size := sizeGiB * gib
		origin := fmt.Sprintf("00000000-0000-4000-8000-%012d", 2*i)
		snap := fmt.Sprintf("00000000-0000-4000-8000-%012d", 2*i+1)
		if _, err := b.Create(t.Context(), origin, sizeGiB); err != nil {
			t.Fatal(err)
		}
		offsets := probeOffsets(size)
		var cmds []string
		for j, off := range offsets {
			cmds = append(cmds, fmt.Sprintf("write -P %d %d 512", 0x10+j, off))
		}
		qemuIO(t, b.path(origin), cmds...)
		v, err := b.Snapshot(t.Context(), snap, origin)
		if err != nil {
			t.Fatal(err)
		}
		if v.Size != size || v.Origin != origin || v.Created.IsZero() {
			t.Errorf("Snapshot of a %d GiB origin returned %+v", sizeGiB, v)
		}
		checkImage(t, b.path(snap), size, origin+ext)

		cmds = cmds[:0]
		for j, off := range offsets {
			cmds = append(cmds, fmt.Sprintf("read -P %d %d 512", 0x10+j, off))
		}
		qemuIO(t, b.path(snap), cmds...)
		var writes, overlayReads []string
		for j, off := range offsets {
			writes = append(writes, fmt.Sprintf("write -P %d %d 512", 0x80+j, off))
			overlayReads = append(overlayReads, fmt.Sprintf("read -P %d %d 512", 0x80+j, off))
		}
		qemuIO(t, b.path(snap), writes...)
		qemuIO(t, b.path(snap), overlayReads...)
		qemuIO(t, b.path(origin), cmds...) // the origin still holds its own data
		checkImage(t, b.path(snap), size, origin+ext)
		checkImage(t, b.path(origin), size, "")
	}
}

// probeOffsets returns sector offsets spread over a disk of size bytes:
// the first sector, either side of L2 table boundaries, the middle and the
// last sector.
func probeOffsets(size int64) []int64 {
	offs := []int64{0, 512, l2Coverage - 512, l2Coverage, size / 2 &^ 511, (size/l2Coverage)*l2Coverage - 512, size - 1024, size - 512}
	offs = slices.DeleteFunc(offs, func(off int64) bool { return off < 0 || off > size-512 })
	slices.Sort(offs)
	return slices.Compact(offs)
}

// exerciseImage writes a distinct pattern at each probe offset, reads every
// one back and reads zeros between them.
func exerciseImage(t *testing.T, name string, size int64) {
	t.Helper()
	offs := probeOffsets(size)
	var writes, reads []string
	for i, off := range offs {
		writes = append(writes, fmt.Sprintf("write -P %d %d 512", i+1, off))
		reads = append(reads, fmt.Sprintf("read -P %d %d 512", i+1, off))
		if i > 0 && off-offs[i-1] > 512 {
			reads = append(reads, fmt.Sprintf("read -P 0 %d 512", off-512))
		}
	}
	qemuIO(t, name, writes...)
	qemuIO(t, name, reads...)
	out, err := exec.CommandContext(t.Context(), "qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("read %d 512", size), name).CombinedOutput()
	if err == nil && !bytes.Contains(out, []byte("failed")) {
		t.Errorf("qemu-io read past the end of a %d-byte image succeeded: %s", size, out)
	}
	checkImage(t, name, size, "")
}

// checkImage runs qemu-img check and info on the qcow2 image name.
func checkImage(t *testing.T, name string, size int64, backing string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "qemu-img", "check", "--output=json", "-f", "qcow2", name)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qemu-img check %s (exit status %d; 2 means corruption, 3 leaked clusters): %v: %s", name, cmd.ProcessState.ExitCode(), err, out)
	}
	var check map[string]any
	if err := json.Unmarshal(out, &check); err != nil {
		t.Fatalf("qemu-img check output: %v: %s", err, out)
	}
	for _, key := range []string{"check-errors", "corruptions", "leaks", "corruptions-fixed", "leaks-fixed"} {
		if n, ok := check[key]; ok && n != float64(0) {
			t.Errorf("qemu-img check %s: %s = %v", name, key, n)
		}
	}
	out = run(t, "qemu-img", "info", "--output=json", "-f", "qcow2", name)
	var info struct {
		Format         string `json:"format"`
		VirtualSize    int64  `json:"virtual-size"`
		ClusterSize    int64  `json:"cluster-size"`
		Backing        string `json:"backing-filename"`
		BackingFormat  string `json:"backing-filename-format"`
		Dirty          bool   `json:"dirty-flag"`
		FormatSpecific struct {
			Data struct {
				Compat        string `json:"compat"`
				LazyRefcounts bool   `json:"lazy-refcounts"`
				RefcountBits  int    `json:"refcount-bits"`
				Corrupt       bool   `json:"corrupt"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info output: %v: %s", err, out)
	}
	d := info.FormatSpecific.Data
	if info.Format != "qcow2" || info.VirtualSize != size || info.ClusterSize != clusterSize || info.Dirty ||
		d.Compat != "1.1" || d.LazyRefcounts || d.RefcountBits != 16 || d.Corrupt {
		t.Errorf("qemu-img info %s: %s; want a clean qcow2 v3 image of %d bytes", name, out, size)
	}
	wantFormat := ""
	if backing != "" {
		wantFormat = "qcow2"
	}
	if info.Backing != backing || info.BackingFormat != wantFormat {
		t.Errorf("qemu-img info %s: backing file %q format %q, want %q format %q", name, info.Backing, info.BackingFormat, backing, wantFormat)
	}
}

func qemuIO(t *testing.T, name string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "qcow2"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out := run(t, "qemu-io", append(args, name)...)
	if bytes.Contains(out, []byte("failed")) || bytes.Contains(out, []byte("error")) {
		t.Fatalf("qemu-io %s %v: %s", name, cmds, out)
	}
}

func run(t *testing.T, prog string, args ...string) []byte {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), prog, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("%s %v: %v", prog, args, err)
	}
	return out
}

func readAll(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// fieldAt names what lies at offset off of a blank image, for messages.
func fieldAt(off int) string {
	fields := []struct {
		end  int
		name string
	}{
		{4, "magic"}, {8, "version"}, {16, "backing file offset"}, {20, "backing file size"},
		{24, "cluster bits"}, {32, "virtual size"}, {36, "encryption"}, {40, "L1 size"},
		{48, "L1 offset"}, {56, "refcount table offset"}, {60, "refcount table clusters"},
		{64, "snapshot count"}, {72, "snapshots offset"}, {80, "incompatible features"},
		{88, "compatible features"}, {96, "autoclear features"}, {100, "refcount order"},
		{104, "header length"}, {headerLength, "compression type"},
		{refcountTableOffset, "header extensions or backing file name"},
		{refcountBlockOffset, "refcount table"}, {l1Offset, "refcount block"},
	}
	for _, f := range fields {
		if off < f.end {
			return f.name
		}
	}
	return "L1 table or file length"
}

func needTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("these tests need %s (Debian package qemu-utils): %v", tool, err)
		}
	}
}

func newTestBackend(t *testing.T) *Backend {
	t.Helper()
	needTools(t)
	b, err := New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
