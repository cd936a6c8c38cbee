package imagecache_test

import (
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/imagecache"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// TestVolumeLocation: an image kept in a volume is copied into the cache
// from it, checked like a download; a volume whose content does not match
// is passed over for the next location, and alone it fails the request
// naming the SHA-1 it holds. Nothing is left behind.
func TestVolumeLocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	raw := rawImage(t, 2<<20, 64<<10)
	r := e.replica("a", nil)
	// A standalone volume holding the image, as a capture leaves it: its
	// file (qcow2) is the image, with that file's size and SHA-1.
	kept := uuid.NewString()
	if _, err := r.backend.Import(t.Context(), kept, raw.path); err != nil {
		t.Fatal(err)
	}
	loc, err := r.backend.Locate(t.Context(), kept)
	if err != nil {
		t.Fatal(err)
	}
	file := describe(t, loc.Path)

	v, err := r.cache.Get(t.Context(), imagecache.Request{ImageID: "kept", Volume: kept, Bytes: file.bytes, SHA1: file.sha1}, snap())
	if err != nil {
		t.Fatalf("image from a volume: %v", err)
	}
	sameContent(t, v.Path, raw.path)
	if o := r.doc(t, v.Origin); o.SHA1 != file.sha1 || o.Bytes != file.bytes || o.Identifier != "kept" {
		t.Errorf("origin: %+v", o)
	}

	// The volume does not hold what the request says: the URL does.
	v, err = r.cache.Get(t.Context(), imagecache.Request{ImageID: "served", Volume: kept, URLs: []string{srv.file("/raw", raw)},
		Bytes: raw.bytes, SHA1: raw.sha1}, snap())
	if err != nil {
		t.Fatalf("fallback to the URL: %v", err)
	}
	sameContent(t, v.Path, raw.path)
	if srv.count("/raw") != 1 {
		t.Errorf("the URL was fetched %d times, want once", srv.count("/raw"))
	}

	// Alone, a wrong volume fails the request with the SHA-1 it holds.
	bad := strings.Repeat("0", 40)
	_, err = r.cache.Get(t.Context(), imagecache.Request{ImageID: "wrong", Volume: kept, Bytes: file.bytes, SHA1: bad}, snap())
	if errs.CodeOf(err) != errs.Invalid || !strings.Contains(errs.MessageOf(err), "expected SHA-1 "+bad+", got "+file.sha1) {
		t.Errorf("wrong SHA-1: %v", err)
	}
	// A volume that is gone is no location.
	_, err = r.cache.Get(t.Context(), imagecache.Request{ImageID: "gone", Volume: uuid.NewString(), Bytes: file.bytes, SHA1: file.sha1}, snap())
	if errs.CodeOf(err) != errs.Unavailable || !strings.Contains(errs.MessageOf(err), "no longer exists") {
		t.Errorf("missing volume: %v", err)
	}
	if entries, _ := os.ReadDir(e.tempDir); len(entries) != 0 {
		t.Errorf("the download directory still holds %d files", len(entries))
	}
	if o := r.doc(t, volume.OriginUUID("wrong")); o == nil || o.State != volume.Failed {
		t.Errorf("the failed origin: %+v", o)
	}
}
