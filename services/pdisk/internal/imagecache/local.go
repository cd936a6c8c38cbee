package imagecache

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"stratuslab.dev/platform/errs"
)

// fetchVolume copies the image kept in volume req.Volume (a capture's
// draft, a private image) into a new temporary file, hashing as it goes,
// and returns the file's name once size and checksum are right, exactly
// as fetchOne does for a download: what is imported is what was checked,
// even if the volume changes afterwards. Errors are errs.Invalid for
// wrong content, errs.Unavailable otherwise.
func (c *Cache) fetchVolume(ctx context.Context, req Request, ou string) (_ string, err error) {
	loc, err := c.cfg.Backend.Locate(ctx, req.Volume)
	if err != nil {
		if errs.CodeOf(err) == errs.NotFound {
			return "", errs.Errorf(errs.Unavailable, "the volume no longer exists")
		}
		return "", errs.Wrap(errs.Unavailable, err, "the storage backend cannot locate the volume")
	}
	if loc.Path == "" {
		return "", errs.Errorf(errs.Unavailable, "the %s storage backend keeps the volume where pdisk cannot read it directly", c.cfg.Backend.Name())
	}
	in, err := os.Open(loc.Path)
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "the volume cannot be read")
	}
	defer in.Close()
	f, err := os.CreateTemp(c.cfg.TempDir, tempPrefix+ou+"-*")
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, "no room for the copy")
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = errs.Wrap(errs.Internal, cerr, "the copy could not be written")
		}
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	h := sha1.New()
	out := &sparseWriter{f: f}
	n, err := io.CopyBuffer(io.MultiWriter(out, h), &ctxReader{ctx: ctx, r: io.LimitReader(in, req.Bytes+1)}, make([]byte, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var werr *writeError
		if errors.As(err, &werr) {
			return "", errs.Wrap(errs.Internal, err, "the copy could not be written")
		}
		return "", errs.Wrap(errs.Unavailable, err, fmt.Sprintf("the volume could not be read after %d bytes", n))
	}
	switch {
	case n > req.Bytes:
		return "", errs.Errorf(errs.Invalid, "the volume holds more than %d bytes, %d expected", req.Bytes, req.Bytes)
	case n < req.Bytes:
		return "", errs.Errorf(errs.Invalid, "the volume holds %d bytes, %d expected", n, req.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != req.SHA1 {
		return "", errs.Errorf(errs.Invalid, "expected SHA-1 %s, got %s", req.SHA1, got)
	}
	if err := out.finish(); err != nil {
		return "", errs.Wrap(errs.Internal, err, "the copy could not be written")
	}
	return f.Name(), nil
}
