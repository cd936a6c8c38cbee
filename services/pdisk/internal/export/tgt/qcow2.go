package tgt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"stratuslab.dev/platform/errs"
)

// makeRoom checks that the qcow2 image at path stands alone and, when it is
// a regular file (st), lengthens it so that it never needs to grow past the
// end of the logical unit that will serve it; a block device's size is its
// owner's business. A qcow2 file lays out its clusters first-fit, so its
// content so far plus everything a fully allocated copy needs
// (qemu-img measure) bounds what it can ever use. The extra length is a hole
// that costs no disk space, and qemu ignores free space after an image.
func (e *Exporter) makeRoom(ctx context.Context, uuid, path string, st os.FileInfo) error {
	var info struct {
		VirtualSize     int64  `json:"virtual-size"`
		ClusterSize     int64  `json:"cluster-size"`
		BackingFilename string `json:"backing-filename"`
		FormatSpecific  struct {
			Data struct {
				RefcountBits int  `json:"refcount-bits"`
				ExtendedL2   bool `json:"extended-l2"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	// -U: a volume may be open in a local VM; only metadata is read.
	if err := e.qemuJSON(ctx, &info, "info", "-U", "--output=json", "-f", "qcow2", path); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errs.Wrap(errs.Internal, err, exporting(uuid)+": its qcow2 file cannot be read")
	}
	if info.BackingFilename != "" {
		return errs.Wrap(errs.Invalid, fmt.Errorf("%s has backing file %s", path, info.BackingFilename),
			exporting(uuid)+" over iSCSI: it is a copy-on-write snapshot whose origin only hosts that see the storage directory can open; "+
				"export a standalone volume (a capture of it) instead")
	}
	opts := "extended_l2=off"
	if info.FormatSpecific.Data.ExtendedL2 {
		opts = "extended_l2=on"
	}
	if info.ClusterSize > 0 {
		opts += ",cluster_size=" + strconv.FormatInt(info.ClusterSize, 10)
	}
	if info.FormatSpecific.Data.RefcountBits > 0 {
		opts += ",refcount_bits=" + strconv.Itoa(info.FormatSpecific.Data.RefcountBits)
	}
	var measure struct {
		FullyAllocated int64 `json:"fully-allocated"`
	}
	if err := e.qemuJSON(ctx, &measure, "measure", "--output=json", "-O", "qcow2", "-o", opts,
		"--size", strconv.FormatInt(info.VirtualSize, 10)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errs.Wrap(errs.Internal, err, exporting(uuid)+": the room its qcow2 file needs cannot be computed")
	}
	size := st.Size()
	if !st.Mode().IsRegular() || measure.FullyAllocated <= 0 || size >= measure.FullyAllocated {
		return nil // already lengthened by an earlier Export
	}
	if err := extend(path, size+measure.FullyAllocated); err != nil {
		return errs.Wrap(errs.Internal, err, exporting(uuid)+": its qcow2 file cannot be lengthened")
	}
	return nil
}

// extend makes the file at path at least length bytes long and never
// shorter: fallocate of its last byte only ever extends, whereas a
// truncate could cut off what a writer appended since the file was
// measured. File systems without fallocate get the truncate.
func extend(path string, length int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	err = syscall.Fallocate(int(f.Fd()), 0, length-1, 1)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() < length {
			err = f.Truncate(length)
		}
	}
	if err != nil {
		return fmt.Errorf("lengthen %s to %d bytes: %w", path, length, err)
	}
	return f.Close()
}

// qemuJSON runs qemu-img and decodes its JSON output into v.
func (e *Exporter) qemuJSON(ctx context.Context, v any, args ...string) error {
	cmd := exec.CommandContext(ctx, e.qemuImg, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("qemu-img %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("qemu-img %s printed unexpected JSON: %w", args[0], err)
	}
	return nil
}
