package exporttest

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/backendtest"
	"stratuslab.dev/services/pdisk/internal/export"
)

// Run runs the contract suite; newExporter returns the exporter under test
// for each subtest. lists tells whether the exporter's List reports what it
// exported (the local exporter exports nothing it could withdraw).
func Run(t *testing.T, newExporter func(t *testing.T) export.Exporter, lists bool) {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the exporter contract suite needs %s (Debian package qemu-utils): %v", tool, err)
		}
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e export.Exporter, lists bool)
	}{
		{"BadIDs", testBadIDs},
		{"WriteThrough", testWriteThrough},
		{"UnexportUnknown", testUnexportUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newExporter(t), lists)
		})
	}
}

// NewVolume makes a blank 64 MiB qcow2 file in a temporary directory, as
// the qcow2 backend would, and returns a fresh uuid and its location.
func NewVolume(t testing.TB) (string, backend.Location) {
	t.Helper()
	id := backendtest.NewID(t)
	path := filepath.Join(t.TempDir(), id+".qcow2")
	Run1(t, "qemu-img", "create", "-q", "-f", "qcow2", path, "64M")
	return id, backend.Location{Format: "qcow2", Path: path}
}

// Run1 runs a command and fails the test, showing its output, when it
// fails; it returns the standard output.
func Run1(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Cmd(t.Context(), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Cmd runs a command and returns its standard output, or an error holding
// the command line and everything it printed.
func Cmd(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &cmdError{line: append([]string{name}, args...), err: err, out: stdout.String() + stderr.String()}
	}
	return stdout.String(), nil
}

type cmdError struct {
	line []string
	err  error
	out  string
}

func (e *cmdError) Error() string { return shellLine(e.line) + ": " + e.err.Error() + "\n" + e.out }
func (e *cmdError) Unwrap() error { return e.err }

func shellLine(args []string) string {
	var b bytes.Buffer
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if bytes.ContainsAny([]byte(a), " '\"") {
			b.WriteString("'" + a + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// WriteThrough writes 1 MiB of the byte 0x5a at offset 0 through turl, as a
// hypervisor opening it with format would, and checks that the volume's
// file at path holds it afterwards.
func WriteThrough(t testing.TB, turl, format, path string) {
	t.Helper()
	Run1(t, "qemu-io", "-f", format, turl, "-c", "write -P 0x5a 0 1M")
	Run1(t, "qemu-io", "-f", format, path, "-c", "read -P 0x5a 0 1M")
	// The rest of the volume must be untouched: the write landed where the
	// guest put it, not somewhere in the container's metadata.
	Run1(t, "qemu-io", "-f", format, path, "-c", "read -P 0 1M 1M")
}

func testBadIDs(t *testing.T, e export.Exporter, _ bool) {
	_, loc := NewVolume(t)
	good := backendtest.NewID(t)
	for _, bad := range []string{"", "..", "../" + good, "A" + good[1:], good[:35], good + "0", "/etc/passwd"} {
		if _, err := e.Export(t.Context(), bad, loc); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("Export(%q) = %v; want an invalid error", bad, err)
		}
		if err := e.Unexport(t.Context(), bad); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("Unexport(%q) = %v; want an invalid error", bad, err)
		}
	}
}

func testWriteThrough(t *testing.T, e export.Exporter, lists bool) {
	ctx := t.Context()
	id, loc := NewVolume(t)
	turl, err := e.Export(ctx, id, loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Unexport(context.WithoutCancel(ctx), id) })
	WriteThrough(t, turl, loc.Format, loc.Path)

	again, err := e.Export(ctx, id, loc)
	if err != nil || again != turl {
		t.Errorf("second Export = %q, %v; want %q as the first", again, err, turl)
	}
	checkListed(t, e, id, lists)
	if err := e.Unexport(ctx, id); err != nil {
		t.Fatal(err)
	}
	checkListed(t, e, id, false)
	if err := e.Unexport(ctx, id); err != nil {
		t.Errorf("second Unexport = %v; want success", err)
	}
	// Withdrawing an export leaves the volume itself alone.
	Run1(t, "qemu-io", "-f", loc.Format, loc.Path, "-c", "read -P 0x5a 0 1M")
}

func testUnexportUnknown(t *testing.T, e export.Exporter, _ bool) {
	if err := e.Unexport(t.Context(), backendtest.NewID(t)); err != nil {
		t.Errorf("Unexport of a volume never exported = %v; want success", err)
	}
}

func checkListed(t *testing.T, e export.Exporter, id string, want bool) {
	t.Helper()
	ids, err := e.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Contains(ids, id); got != want {
		t.Errorf("List = %v; contains %s = %v, want %v", ids, id, got, want)
	}
}
