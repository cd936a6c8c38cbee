package tool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
)

func TestExec(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	out, err := Exec{}.Run(ctx, "sh", "-c", "echo out; echo progress >&2")
	if err != nil || string(out) != "out\n" {
		t.Errorf("Run of a succeeding program = %q, %v", out, err)
	}
	_, err = Exec{}.Run(ctx, "sh", "-c", "echo 'first line' >&2; echo 'rbd: error opening image x: (2) No such file or directory' >&2; exit 2")
	var e *Error
	if !errors.As(err, &e) || e.Status != 2 || Status(err) != 2 {
		t.Fatalf("Run of a failing program = %v; want an *Error with status 2", err)
	}
	if e.Stderr != "first line | rbd: error opening image x: (2) No such file or directory" {
		t.Errorf("Stderr = %q", e.Stderr)
	}
	if !strings.Contains(err.Error(), "sh -c") || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("the error does not name the command and its complaint: %v", err)
	}
	_, err = Exec{}.Run(ctx, "pdisk-no-such-program")
	if Status(err) != -1 || !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Run of a missing program = %v (status %d); want exec.ErrNotFound, status -1", err, Status(err))
	}
	if Status(errors.New("plain")) != -1 {
		t.Errorf("Status of an error that is not an *Error must be -1")
	}
}

func TestExecStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Exec{}.Run(ctx, "sleep", "60")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run cancelled while the program ran = %v; want context.Canceled", err)
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxStderr) + "the end"
	if got := tail(long); !strings.HasSuffix(got, "the end") || len(got) > maxStderr+len("…") {
		t.Errorf("tail keeps %d bytes ending %q", len(got), got[len(got)-10:])
	}
}

func TestTempName(t *testing.T) {
	t.Parallel()
	id := "0b6f4f5e-2a7c-4d0e-9c1a-3f2e1d0c9b8a"
	now := time.Unix(1763757849, 0)
	a, b := TempName(id, now), TempName(id, now)
	if a == b {
		t.Errorf("two temporary names for one id are equal: %s", a)
	}
	gotID, made, ok := ParseTemp(a)
	if !ok || gotID != id || !made.Equal(now) {
		t.Errorf("ParseTemp(%q) = %q, %v, %v", a, gotID, made, ok)
	}
	for _, name := range []string{
		id,
		"pdisk-tmp-",
		"pdisk-tmp-1763757849-0011aabb-" + id + "x",
		"pdisk-tmp-1763757849-0011AABB-" + id,
		"pdisk-tmp-1763757849-0011aabg-" + id,
		"pdisk-tmp--1-0011aabb-" + id,
		"pdisk-tmp-x-0011aabb-" + id,
		"pdisk-tmp-1763757849-0011aabb-" + strings.ToUpper(id),
		"pdisk-tmp-1763757849-0011aabb" + id,
		"other-tmp-1763757849-0011aabb-" + id,
	} {
		if _, _, ok := ParseTemp(name); ok {
			t.Errorf("ParseTemp accepted %q", name)
		}
	}
}

// TestInspectImage runs the real qemu-img on images of every kind an import
// meets.
func TestInspectImage(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("this test needs qemu-img (Debian package qemu-utils): %v", err)
	}
	ctx := t.Context()
	dir := t.TempDir()
	raw := filepath.Join(dir, "image.raw")
	if err := os.WriteFile(raw, make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	qemuImg := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, "qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v: %s", args, err, out)
		}
	}
	qcow := filepath.Join(dir, "image.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", qcow, "5M")
	backed := filepath.Join(dir, "backed.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, backed)
	vmdk := filepath.Join(dir, "image.vmdk")
	qemuImg("create", "-q", "-f", "vmdk", vmdk, "1M")
	garbage := filepath.Join(dir, "garbage.qcow2")
	if err := os.WriteFile(garbage, []byte("QFI\xfbnot really"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src string
		want      Image
		code      errs.Code
	}{
		{"raw", raw, Image{"raw", 3 << 20}, ""},
		{"qcow2", qcow, Image{"qcow2", 5 << 20}, ""},
		{"backing file", backed, Image{}, errs.Invalid},
		{"vmdk", vmdk, Image{}, errs.Invalid},
		{"damaged header", garbage, Image{}, errs.Invalid},
		{"missing", filepath.Join(dir, "missing"), Image{}, errs.NotFound},
	} {
		got, err := InspectImage(ctx, Exec{}, tc.src)
		if got != tc.want || errs.CodeOf(err) != tc.code {
			t.Errorf("%s: InspectImage = %+v, %v; want %+v, code %q", tc.name, got, err, tc.want, tc.code)
		}
	}
	if _, err := InspectImage(ctx, &Recorder{Answer: func([]string) ([]byte, error) {
		return nil, &Error{Program: "qemu-img", Status: -1, Err: exec.ErrNotFound}
	}}, raw); errs.CodeOf(err) != errs.Internal {
		t.Errorf("InspectImage without qemu-img = %v; want an internal error", err)
	}
}

func TestParseImageInfo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, json string
		code       errs.Code
	}{
		{"data file", `{"format":"qcow2","virtual-size":1048576,"format-specific":{"type":"qcow2","data":{"data-file":"/etc/shadow"}}}`, errs.Invalid},
		{"zero size", `{"format":"raw","virtual-size":0}`, errs.Invalid},
		{"too large", `{"format":"raw","virtual-size":1152921504606846976}`, errs.Invalid},
		{"not json", `qemu-img: oops`, errs.Internal},
	} {
		if _, err := ParseImageInfo([]byte(tc.json)); errs.CodeOf(err) != tc.code {
			t.Errorf("%s: ParseImageInfo = %v; want code %q", tc.name, err, tc.code)
		}
	}
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	r := &Recorder{Answer: func(argv []string) ([]byte, error) {
		if argv[0] == "fail" {
			return nil, &Error{Program: "fail", Status: 5}
		}
		return []byte(strings.Join(argv, ",")), nil
	}}
	out, err := r.Run(t.Context(), "echo", "a", "b")
	if err != nil || string(out) != "echo,a,b" {
		t.Errorf("Run = %q, %v", out, err)
	}
	if _, err := r.Run(t.Context(), "fail"); Status(err) != 5 {
		t.Errorf("Run of a failing answer = %v", err)
	}
	if calls := r.Calls(); len(calls) != 2 || strings.Join(calls[0], " ") != "echo a b" || calls[1][0] != "fail" {
		t.Errorf("Calls = %q", calls)
	}
}

// TestConvertArgs runs the real qemu-img with ConvertArgs onto an existing
// raw file standing in for a fresh block device or rbd image: the content
// arrives, and the zeros of the image are not written.
func TestConvertArgs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("this test needs qemu-img (Debian package qemu-utils): %v", err)
	}
	ctx := t.Context()
	dir := t.TempDir()
	if f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_RDWR|syscall.O_DIRECT, 0o600); err != nil {
		t.Skipf("the temporary directory's filesystem refuses O_DIRECT, which -t none needs: %v", err)
	} else {
		f.Close()
	}
	src := filepath.Join(dir, "image.qcow2")
	dst := filepath.Join(dir, "volume.raw")
	for _, args := range [][]string{
		{"qemu-img", "create", "-q", "-f", "qcow2", src, "8M"},
		{"qemu-io", "-f", "qcow2", "-c", "write -P 7 1M 64k", src},
		{"truncate", "-s", "8M", dst},
	} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	if _, err := (Exec{}).Run(ctx, "qemu-img", ConvertArgs("qcow2", src, dst)...); err != nil {
		t.Fatalf("qemu-img %v: %v", ConvertArgs("qcow2", src, dst), err)
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", src, dst).CombinedOutput(); err != nil {
		t.Errorf("the volume does not hold the image's content: %v: %s", err, out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("qemu-img wrote %d bytes onto the volume for 64 KiB of data: it wrote zeros", st.Blocks*512)
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"vg-0_a.b", true},
		{strings.Repeat("v", 8), true},
		{strings.Repeat("v", 9), false},
		{"", false},
		{"-vg", false},
		{".", false},
		{"..", false},
		{"vg+0", false},
		{"vg/0", false},
		{"vg 0", false},
		{"vgé", false},
	} {
		if got := ValidName(tc.name, 8, "_.-"); got != tc.want {
			t.Errorf("ValidName(%q, 8, %q) = %v, want %v", tc.name, "_.-", got, tc.want)
		}
	}
}

func TestCleanupContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "v"))
	cancel()
	c, stop := CleanupContext(ctx)
	defer stop()
	if c.Err() != nil || c.Value(key{}) != "v" {
		t.Errorf("the cleanup context of an ended context: Err %v, value %v; want no error and the value", c.Err(), c.Value(key{}))
	}
	if d, ok := c.Deadline(); !ok || time.Until(d) > CleanupTimeout {
		t.Errorf("the cleanup context ends at %v (%v); want within CleanupTimeout", d, ok)
	}
}
