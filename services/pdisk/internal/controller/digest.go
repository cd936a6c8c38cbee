package controller

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/errs"
)

// digest reads the file or block device at path once and returns its
// size in bytes and its SHA-1 (lower-case hex): what a Marketplace entry
// of the volume says, since an image server or the image cache reading
// the volume sees these bytes. A block device's size is what was read:
// os.Stat reports none for it.
func digest(ctx context.Context, path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", errs.Wrap(errs.Internal, err, "the captured volume cannot be read to compute its SHA-1")
	}
	defer f.Close()
	h := sha1.New() // what the Marketplace publishes, weak as it is
	n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: f}, make([]byte, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", ctx.Err()
		}
		return 0, "", errs.Wrap(errs.Internal, fmt.Errorf("read %s: %w", path, err), "the captured volume cannot be read to compute its SHA-1")
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// marketplaceID is the Marketplace identifier of an image whose SHA-1 is
// sum (40 hex digits).
func marketplaceID(sum string) (string, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != sha1.Size {
		return "", fmt.Errorf("pdisk: %q is not a SHA-1", sum)
	}
	return metadata.Identifier([sha1.Size]byte(raw)), nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
