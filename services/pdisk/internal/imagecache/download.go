package imagecache

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// download fetches, checks and imports the image of a claimed origin and
// marks the origin AVAILABLE. On failure it leaves nothing behind: no
// temporary file, no storage, and the document FAILED with the reason (or
// removed, when every caller gave up and the work was merely abandoned).
func (c *Cache) download(ctx context.Context, req Request, cl claim) (*volume.Volume, error) {
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopRenew := c.renew(dctx, cancel, req, cl)

	bv, loc, err := c.fetchAndImport(dctx, req, cl.uuid)
	stopRenew()
	if err != nil {
		if cause := context.Cause(dctx); errors.Is(cause, errLostClaim) {
			// The storage now belongs to the new holder: touch nothing.
			return nil, errs.Errorf(errs.Unavailable, "Image %s: this replica lost its claim on the download (it could not renew it in time); retry.", req.ImageID)
		}
		if ctx.Err() != nil {
			c.abandon(ctx, req, cl)
			return nil, fmt.Errorf("image %s: %w", req.ImageID, ctx.Err())
		}
		c.fail(ctx, req, cl, err)
		return nil, err
	}

	now := c.cfg.Now()
	v, rev, err := c.update(ctx, volume.ID(cl.uuid), func(v *volume.Volume) error {
		if v.Holder != cl.token || v.State != volume.Downloading {
			return errLostClaim
		}
		v.State, v.StateMessage = volume.Available, ""
		v.Holder, v.LeaseUntil = "", ""
		v.SetSize(max(1, (bv.Size+backend.GiB-1)/backend.GiB))
		v.Backend = c.cfg.Backend.Name()
		v.Format, v.Path = loc.Format, loc.Path
		v.Count = 0
		v.LastUsed = volume.Stamp(now)
		v.Updated = volume.Stamp(now)
		return nil
	})
	if errors.Is(err, errLostClaim) {
		return nil, errs.Errorf(errs.Unavailable, "Image %s: this replica lost its claim on the download (it could not renew it in time); retry.", req.ImageID)
	}
	if err != nil {
		if ctx.Err() != nil {
			c.abandon(ctx, req, cl)
			return nil, fmt.Errorf("image %s: %w", req.ImageID, ctx.Err())
		}
		err = storeError(ctx, req.ImageID, err)
		c.fail(ctx, req, cl, err)
		return nil, err
	}
	c.cfg.Log.Info("imagecache: image cached", "image", req.ImageID, "volume", cl.uuid, "bytes", req.Bytes, "size_gib", v.Size)
	c.announce(ctx, subject.EventUpdated, v, msgID(cl.uuid, rev))
	return v, nil
}

// renew extends the claim's lease every Lease/3 until stopped, and cancels
// the download (cause errLostClaim) if another replica took it over.
func (c *Cache) renew(ctx context.Context, cancel context.CancelCauseFunc, req Request, cl claim) (stop func()) {
	rctx, stopCtx := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			_, _, err := c.update(rctx, volume.ID(cl.uuid), func(v *volume.Volume) error {
				if v.Holder != cl.token || v.State != volume.Downloading {
					return errLostClaim
				}
				v.LeaseUntil = volume.Stamp(c.cfg.Now().Add(c.cfg.Lease))
				return nil
			})
			switch {
			case err == nil:
			case errors.Is(err, errLostClaim), errs.CodeOf(err) == errs.NotFound:
				c.cfg.Log.Warn("imagecache: another replica took over the download", "image", req.ImageID, "volume", cl.uuid)
				cancel(errLostClaim)
				return
			case rctx.Err() == nil:
				// Transient: the next tick tries again, and the lease
				// still covers two more.
				c.cfg.Log.Warn("imagecache: cannot renew the download's lease", "image", req.ImageID, "volume", cl.uuid, "error", err)
			}
		}
	})
	return func() { stopCtx(); wg.Wait() }
}

// fail removes whatever the failed download left in the backend, then
// records the reason in the origin, which Sweep removes after FailureTTL.
func (c *Cache) fail(ctx context.Context, req Request, cl claim, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	log := c.cfg.Log.With("image", req.ImageID, "volume", cl.uuid)
	log.Warn("imagecache: download failed", "error", cause)
	if err := c.cfg.Backend.Delete(ctx, cl.uuid); err != nil && errs.CodeOf(err) != errs.NotFound {
		log.Error("imagecache: cannot remove the storage of a failed download", "error", err)
	}
	now := c.cfg.Now()
	v, rev, err := c.update(ctx, volume.ID(cl.uuid), func(v *volume.Volume) error {
		if v.Holder != cl.token || v.State != volume.Downloading {
			return errLostClaim
		}
		v.State, v.StateMessage = volume.Failed, failureMessage(cause)
		v.Holder, v.LeaseUntil = "", ""
		v.Format, v.Path = "", ""
		v.Updated = volume.Stamp(now)
		return nil
	})
	if err != nil {
		log.Error("imagecache: cannot record the failure of a download", "error", err)
		return
	}
	c.announce(ctx, subject.EventUpdated, v, msgID(cl.uuid, rev))
}

// abandon gives a download nobody waits for any more back: it removes the
// storage and the document, so that the next request starts at once
// instead of waiting for the lease to expire. If the store cannot be
// reached (the process is going down), the lease expires instead.
func (c *Cache) abandon(ctx context.Context, req Request, cl claim) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	log := c.cfg.Log.With("image", req.ImageID, "volume", cl.uuid)
	log.Info("imagecache: download abandoned: nobody waits for it")
	if err := c.cfg.Backend.Delete(ctx, cl.uuid); err != nil && errs.CodeOf(err) != errs.NotFound {
		log.Error("imagecache: cannot remove the storage of an abandoned download", "error", err)
		return
	}
	if err := c.deleteClaimed(ctx, cl); err != nil {
		log.Warn("imagecache: cannot remove the document of an abandoned download; its lease will expire", "error", err)
	}
}

// deleteClaimed removes the document of a claimed origin, if the claim is
// still ours.
func (c *Cache) deleteClaimed(ctx context.Context, cl claim) error {
	id := volume.ID(cl.uuid)
	doc, err := c.cfg.Volumes.Get(ctx, id)
	if err != nil {
		return err
	}
	v, err := volume.Decode(doc.Body)
	if err != nil {
		return err
	}
	if v.Holder != cl.token || v.State != volume.Downloading {
		return errLostClaim
	}
	if err := c.cfg.Volumes.Delete(ctx, id, doc.Revision); err != nil {
		return err
	}
	c.announce(ctx, subject.EventDeleted, v, msgID(cl.uuid, doc.Revision)+".deleted")
	return nil
}

// fetchAndImport downloads the image to a temporary file, checks it,
// unpacks it if it is compressed, and imports it as origin ou. Temporary
// files are always removed.
func (c *Cache) fetchAndImport(ctx context.Context, req Request, ou string) (backend.Volume, backend.Location, error) {
	tmp, err := c.fetch(ctx, req, ou)
	if err != nil {
		return backend.Volume{}, backend.Location{}, err
	}
	defer os.Remove(tmp)
	src, err := c.unpack(ctx, req, ou, tmp)
	if err != nil {
		return backend.Volume{}, backend.Location{}, err
	}
	if src != tmp {
		defer os.Remove(src)
	}
	bv, err := c.cfg.Backend.Import(ctx, ou, src)
	if err != nil {
		if ctx.Err() != nil {
			return backend.Volume{}, backend.Location{}, ctx.Err()
		}
		return backend.Volume{}, backend.Location{}, errs.Wrap(errs.CodeOf(err), err, fmt.Sprintf("image %s: the storage backend could not import it (%s)", req.ImageID, errs.MessageOf(err)))
	}
	loc, err := c.cfg.Backend.Locate(ctx, ou)
	if err != nil {
		return backend.Volume{}, backend.Location{}, errs.Wrap(errs.CodeOf(err), err, fmt.Sprintf("image %s: the storage backend cannot locate it", req.ImageID))
	}
	return bv, loc, nil
}

// fetch tries the locations in order (the volume holding the image
// first, when there is one: it is local) and returns the temporary file
// holding the first whole, correct copy. When all fail, the error names
// each location's failure; it is errs.Invalid when every location served
// wrong content, errs.Unavailable when some could not be read at all.
func (c *Cache) fetch(ctx context.Context, req Request, ou string) (string, error) {
	type location struct {
		name string
		get  func() (string, error)
	}
	var locs []location
	if req.Volume != "" {
		locs = append(locs, location{"volume " + req.Volume, func() (string, error) { return c.fetchVolume(ctx, req, ou) }})
	}
	for _, loc := range req.URLs {
		locs = append(locs, location{redact(loc), func() (string, error) { return c.fetchOne(ctx, req, ou, loc) }})
	}
	var reasons []string
	content := true
	var only error
	for _, loc := range locs {
		tmp, err := loc.get()
		if err == nil {
			return tmp, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		c.cfg.Log.Warn("imagecache: location failed", "image", req.ImageID, "location", loc.name, "error", err)
		if errs.CodeOf(err) != errs.Invalid {
			content = false
		}
		only = err
		reasons = append(reasons, loc.name+": "+errs.MessageOf(err))
	}
	if len(reasons) == 1 && content {
		return "", errs.Errorf(errs.Invalid, "image %s: %s", req.ImageID, errs.MessageOf(only))
	}
	code := errs.Unavailable
	if content {
		code = errs.Invalid
	}
	return "", errs.Errorf(code, "image %s: every location failed: %s", req.ImageID, strings.Join(reasons, "; "))
}

// tempPrefix starts the names of downloads in TempDir, followed by the
// origin's uuid, so that Sweep can tell which are still being made.
const tempPrefix = ".image-"

// errStalled ends a transfer that sent nothing for Config.Stall.
var errStalled = errors.New("stalled")

// fetchOne downloads one location into a new temporary file, hashing as it
// goes, and returns the file's name once size and checksum are right. It
// stops as soon as the server sends more than the expected byte count.
// Errors are errs.Invalid for wrong content, errs.Unavailable otherwise;
// their messages do not repeat the image id or the URL.
func (c *Cache) fetchOne(ctx context.Context, req Request, ou, loc string) (_ string, err error) {
	f, err := os.CreateTemp(c.cfg.TempDir, tempPrefix+ou+"-*")
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, "no room for the download")
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = errs.Wrap(errs.Internal, cerr, "the download could not be written")
		}
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hreq, err := http.NewRequestWithContext(rctx, http.MethodGet, loc, nil)
	if err != nil {
		return "", errs.Wrap(errs.Invalid, err, "not a usable URL")
	}
	resp, err := c.cfg.HTTP.Do(hreq)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", errs.Wrap(errs.Unavailable, err, err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", errs.Errorf(errs.Unavailable, "the server answered %s", resp.Status)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != req.Bytes {
		return "", errs.Errorf(errs.Invalid, "%d bytes served, %d expected", resp.ContentLength, req.Bytes)
	}

	stall := time.AfterFunc(c.cfg.Stall, func() { cancel(errStalled) })
	defer stall.Stop()
	h := sha1.New() // what the Marketplace publishes, weak as it is
	out := &sparseWriter{f: f}
	body := &progressReader{r: io.LimitReader(resp.Body, req.Bytes+1), t: stall, d: c.cfg.Stall}
	n, err := io.CopyBuffer(io.MultiWriter(out, h), body, make([]byte, 1<<20))
	if err != nil {
		if errors.Is(context.Cause(rctx), errStalled) {
			return "", errs.Errorf(errs.Unavailable, "no data for %s after %d bytes", c.cfg.Stall, n)
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return "", errs.Errorf(errs.Unavailable, "the transfer broke off after %d of %d bytes", n, req.Bytes)
		}
		var werr *writeError
		if errors.As(err, &werr) {
			return "", errs.Wrap(errs.Internal, err, "the download could not be written")
		}
		return "", errs.Wrap(errs.Unavailable, err, fmt.Sprintf("the transfer failed after %d bytes: %v", n, err))
	}
	switch {
	case n > req.Bytes:
		return "", errs.Errorf(errs.Invalid, "more than %d bytes served, %d expected", req.Bytes, req.Bytes)
	case n < req.Bytes:
		return "", errs.Errorf(errs.Invalid, "%d bytes served, %d expected", n, req.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != req.SHA1 {
		return "", errs.Errorf(errs.Invalid, "expected SHA-1 %s, got %s", req.SHA1, got)
	}
	if err := out.finish(); err != nil {
		return "", errs.Wrap(errs.Internal, err, "the download could not be written")
	}
	return f.Name(), nil
}

// Compression formats, by the magic bytes that start them.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// unpack returns the name of the disk image in the checked download tmp:
// tmp itself, or a new temporary file holding its decompressed content
// (the Marketplace lists images compressed with gzip or bzip2, with the
// size and checksum of the compressed file). A backend would otherwise
// take a compressed file for a raw disk.
func (c *Cache) unpack(ctx context.Context, req Request, ou, tmp string) (_ string, err error) {
	in, err := os.Open(tmp)
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, "the download cannot be read")
	}
	defer in.Close()
	br := bufio.NewReaderSize(in, 1<<20)
	head, _ := br.Peek(8)
	var r io.Reader
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", errs.Errorf(errs.Invalid, "image %s looks gzip-compressed but is not: %v", req.ImageID, err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(head, magicBzip2):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(head, magicXz), bytes.HasPrefix(head, magicZstd):
		return "", errs.Errorf(errs.Invalid, "image %s is compressed with xz or zstd, which pdisk cannot unpack; publish it uncompressed or compressed with gzip or bzip2", req.ImageID)
	default:
		return tmp, nil
	}

	f, err := os.CreateTemp(c.cfg.TempDir, tempPrefix+ou+"-unpacked-*")
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, "no room to unpack the image")
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = errs.Wrap(errs.Internal, cerr, "the unpacked image could not be written")
		}
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	// A disk larger than any volume is a decompression bomb.
	limit := volume.MaxSizeGiB * backend.GiB
	out := &sparseWriter{f: f}
	n, err := io.CopyBuffer(out, &ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1)}, make([]byte, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var werr *writeError
		if errors.As(err, &werr) {
			return "", errs.Wrap(errs.Internal, err, "the unpacked image could not be written")
		}
		return "", errs.Errorf(errs.Invalid, "image %s cannot be unpacked: %v", req.ImageID, err)
	}
	if n > limit {
		return "", errs.Errorf(errs.Invalid, "image %s unpacks to more than %d GiB, the largest volume", req.ImageID, volume.MaxSizeGiB)
	}
	if err := out.finish(); err != nil {
		return "", errs.Wrap(errs.Internal, err, "the unpacked image could not be written")
	}
	return f.Name(), nil
}

// sparseBlock is the unit sparseWriter checks for zeros.
const sparseBlock = 64 << 10

// sparseWriter writes to a file, leaving holes where whole blocks are zero:
// raw images are mostly empty, and the backend's import detects holes.
type sparseWriter struct {
	f   *os.File
	off int64
}

// writeError marks a failure to write the local file, as opposed to one
// reading the network.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

func (s *sparseWriter) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		k := min(len(p), sparseBlock)
		if !zero(p[:k]) {
			if _, err := s.f.WriteAt(p[:k], s.off); err != nil {
				return done, &writeError{err}
			}
		}
		s.off += int64(k)
		done += k
		p = p[k:]
	}
	return done, nil
}

// finish gives the file its full length, trailing holes included.
func (s *sparseWriter) finish() error {
	if err := s.f.Truncate(s.off); err != nil {
		return &writeError{err}
	}
	return nil
}

// zero reports whether p holds only zero bytes: p[0] is zero and every
// byte equals the next.
func zero(p []byte) bool {
	return len(p) == 0 || p[0] == 0 && bytes.Equal(p[1:], p[:len(p)-1])
}

// progressReader postpones the stall timer whenever data arrives.
type progressReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.t.Reset(p.d)
	}
	return n, err
}

// ctxReader stops a local copy when ctx ends.
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

// redact hides credentials a location may hold.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return short(s)
	}
	return u.Redacted()
}
