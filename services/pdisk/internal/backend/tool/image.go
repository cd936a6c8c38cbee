package tool

import (
	"context"
	"encoding/json"
	"os"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
)

// Image describes an image file about to be imported.
type Image struct {
	// Format is "raw" or "qcow2".
	Format string
	// Size is the virtual size in bytes.
	Size int64
}

// InspectImage reads src's format and virtual size with qemu-img info, run
// through r. qemu-img info does not open backing files; images that name any
// other file are refused with errs.Invalid, because a crafted image could
// otherwise expose host files to a guest.
func InspectImage(ctx context.Context, r Runner, src string) (Image, error) {
	if _, err := os.Stat(src); err != nil {
		return Image{}, errs.Wrap(errs.NotFound, err, "the image file to import is missing")
	}
	out, err := r.Run(ctx, "qemu-img", "info", "--output=json", src)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return Image{}, ctx.Err()
		case Status(err) > 0: // qemu-img ran and could not open the image
			return Image{}, errs.Wrap(errs.Invalid, err, "qemu-img cannot read the image to import")
		default:
			return Image{}, errs.Wrap(errs.Internal, err, "the storage backend could not run qemu-img")
		}
	}
	return ParseImageInfo(out)
}

// ParseImageInfo reads the JSON that qemu-img info --output=json prints for
// an image to import, and refuses what cannot be imported.
func ParseImageInfo(out []byte) (Image, error) {
	var info struct {
		Format          string `json:"format"`
		VirtualSize     int64  `json:"virtual-size"`
		BackingFilename string `json:"backing-filename"`
		FormatSpecific  struct {
			Data struct {
				DataFile string `json:"data-file"`
			} `json:"data"`
		} `json:"format-specific"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return Image{}, errs.Wrap(errs.Internal, err, "the storage backend could not read qemu-img's description of the image")
	}
	switch {
	case info.Format != "raw" && info.Format != "qcow2":
		return Image{}, errs.Errorf(errs.Invalid, "images must be raw or qcow2, not %q", info.Format)
	case info.BackingFilename != "" || info.FormatSpecific.Data.DataFile != "":
		return Image{}, errs.New(errs.Invalid, "the image refers to another file (a backing or data file) and cannot be imported")
	case info.VirtualSize <= 0 || info.VirtualSize > backend.MaxSizeGiB*backend.GiB:
		return Image{}, errs.Errorf(errs.Invalid, "the image's virtual size of %d bytes is not a usable volume size", info.VirtualSize)
	}
	return Image{Format: info.Format, Size: info.VirtualSize}, nil
}

// ConvertArgs returns the qemu-img arguments that write the image src, of
// the given format, onto dst, an existing raw volume (a block device or an
// rbd: URL) that reads as zeros. -n keeps qemu-img from trying to create
// dst; --target-is-zero lets it skip the zero parts of the image, so a thin
// or sparse volume stays thin; -t none writes past the page cache and
// flushes before qemu-img exits, so a rename that follows publishes only
// data that is on the storage.
func ConvertArgs(format, src, dst string) []string {
	return []string{"convert", "-q", "-n", "--target-is-zero", "-t", "none", "-f", format, "-O", "raw", src, dst}
}
