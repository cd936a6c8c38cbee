package imagecache_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/pdisk/internal/imagecache"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// TestConcurrentGetDownloadsOnce asks two replicas for twenty snapshots of
// one large image at once: one download, twenty distinct copy-on-write
// snapshots backed by the origin, and the origin counts them.
func TestConcurrentGetDownloadsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := rawImage(t, 300<<20, 4<<20)
	srv := newServer(t)
	url := srv.file("/images/big.img", img)
	replicas := []*replica{e.replica("replica-a", nil), e.replica("replica-b", nil)}
	req := request("BigImage_0123456789abcdefgh", img, url)
	ou := volume.OriginUUID(req.ImageID)

	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	got := make([]*volume.Volume, n)
	snaps := make([]imagecache.Snap, n)
	fails := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		snaps[i] = snap()
		wg.Go(func() { got[i], fails[i] = replicas[i%2].cache.Get(ctx, req, snaps[i]) })
	}
	wg.Wait()

	if hits := srv.count("/images/big.img"); hits != 1 {
		t.Errorf("the image was requested %d times, want 1", hits)
	}
	seen := map[string]bool{}
	for i, v := range got {
		if fails[i] != nil {
			t.Fatalf("Get %d: %v", i, fails[i])
		}
		if v.UUID != snaps[i].UUID || seen[v.UUID] {
			t.Errorf("Get %d returned volume %s, want the new %s", i, v.UUID, snaps[i].UUID)
		}
		seen[v.UUID] = true
		want := volume.Volume{
			ID: volume.ID(v.UUID), UUID: v.UUID, Owner: "alice", Visibility: volume.Private, Type: volume.MachineImageLive,
			State: volume.Available, Origin: ou, Identifier: volume.SnapshotIdentifier(ou), Size: 1, Capacity: 1 << 20,
			Machine: snaps[i].Machine, Backend: "qcow2", Format: "qcow2",
		}
		if v.ID != want.ID || v.Owner != want.Owner || v.Visibility != want.Visibility || v.Type != want.Type ||
			v.State != want.State || v.Origin != want.Origin || v.Identifier != want.Identifier || v.Size != want.Size ||
			v.Capacity != want.Capacity || v.Machine != want.Machine || v.Backend != want.Backend || v.Format != want.Format {
			t.Errorf("live volume %d = %+v, want like %+v", i, v, want)
		}
		stored := replicas[0].doc(t, v.UUID)
		if stored == nil || stored.Origin != ou || stored.Path != v.Path {
			t.Errorf("stored live volume %s = %+v", v.UUID, stored)
		}
		acl := stored.Access()
		if !acl.Allows(cimi.Identity{User: "alice"}, cimi.All) || acl.Allows(cimi.Identity{User: "bob"}, cimi.View) {
			t.Errorf("live volume ACL %s: alice must own it, bob must not see it", stored.ACL)
		}
	}

	origin := replicas[1].doc(t, ou)
	if origin == nil {
		t.Fatal("no origin document")
	}
	if origin.Count != n || origin.State != volume.Available || origin.Type != volume.MachineImageOrigin ||
		origin.Identifier != req.ImageID || origin.Bytes != img.bytes || origin.SHA1 != img.sha1 ||
		origin.Visibility != volume.Public || origin.Owner != "" || origin.Size != 1 || origin.Holder != "" ||
		origin.LeaseUntil != "" || origin.LastUsed == "" || origin.Path == "" || origin.ResourceURI == "" || origin.Created == "" {
		t.Errorf("origin = %+v", origin)
	}
	acl := origin.Access()
	if !acl.Allows(cimi.Identity{User: "bob", Roles: []string{cimi.RoleUser}}, cimi.View) ||
		acl.Allows(cimi.Identity{User: "bob", Roles: []string{cimi.RoleUser}}, cimi.Modify) ||
		!acl.Allows(cimi.Identity{Roles: []string{cimi.RoleAdmin}}, cimi.All) {
		t.Errorf("origin ACL %s: users must view it, only administrators change it", origin.ACL)
	}

	in := info(t, got[0].Path)
	if in.Format != "qcow2" || in.VirtualSize != img.bytes || !strings.HasSuffix(in.FullBackingFilename, ou+".qcow2") {
		t.Errorf("qemu-img info %s = %+v, want a qcow2 of %d bytes backed by %s", got[0].Path, in, img.bytes, ou)
	}
	sameContent(t, got[7].Path, img.path)

	// A redelivered command gets the same volume, counted once.
	again, err := replicas[1].cache.Get(ctx, req, snaps[3])
	if err != nil || again.UUID != snaps[3].UUID || again.Path != got[3].Path {
		t.Errorf("repeated Get = %+v, %v; want volume %s again", again, err, snaps[3].UUID)
	}
	if c := replicas[0].doc(t, ou).Count; c != n {
		t.Errorf("after a repeated Get the origin counts %d, want %d", c, n)
	}
	// Announcements: the origin's creation and one creation per snapshot,
	// with the command's message id.
	e.waitEvent("evt.pdisk.volume.created", ou)
	for i := range snaps {
		ev := e.waitEvent("evt.pdisk.volume.created", snaps[i].UUID)
		if want := snaps[i].MsgID + "." + snaps[i].UUID + ".created"; ev.MsgID != want || ev.Body == nil || ev.Body.Origin != ou {
			t.Errorf("creation of %s announced as %+v, want message id %s", snaps[i].UUID, ev, want)
		}
	}
	if entries, _ := os.ReadDir(e.tempDir); len(entries) != 0 {
		t.Errorf("the download directory still holds %d files", len(entries))
	}
}

// TestBadDownloads serves wrong images: every request, on both replicas,
// fails with the reason; nothing is left in the backend or the download
// directory; the FAILED origin makes later requests fail fast until
// FailureTTL, then Sweep removes it.
func TestBadDownloads(t *testing.T) {
	t.Parallel()
	img := rawImage(t, 1<<20, 64<<10)
	data, err := os.ReadFile(img.path)
	if err != nil {
		t.Fatal(err)
	}
	other := rawImage(t, 1<<20, 64<<10)
	endless := func(w http.ResponseWriter, r *http.Request) {
		// Far more than expected, without end: only a download that stops
		// reading lets this test finish.
		for {
			if _, err := w.Write(data); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: 404
		second  http.HandlerFunc // a second location, if any
		code    errs.Code
		message string
	}{
		{name: "wrong SHA-1", handler: func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, other.path) },
			code: errs.Invalid, message: "expected SHA-1 " + img.sha1 + ", got " + other.sha1},
		{name: "more bytes, no length", handler: endless,
			code: errs.Invalid, message: fmt.Sprintf("more than %d bytes served, %d expected", img.bytes, img.bytes)},
		{name: "more bytes, with length", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
			_, _ = w.Write(append(data, 0))
		},
			code: errs.Invalid, message: fmt.Sprintf("%d bytes served, %d expected", img.bytes+1, img.bytes)},
		{name: "fewer bytes", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-1))
			_, _ = w.Write(data[:len(data)-1])
		},
			code: errs.Invalid, message: fmt.Sprintf("%d bytes served, %d expected", img.bytes-1, img.bytes)},
		{name: "fewer bytes, no length", handler: func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush() // no length: chunked
			_, _ = w.Write(data[:len(data)-1])
		}, code: errs.Invalid, message: fmt.Sprintf("%d bytes served, %d expected", img.bytes-1, img.bytes)},
		{name: "not found", code: errs.Unavailable, message: "every location failed: "},
		{name: "not found, then wrong SHA-1 elsewhere", second: func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, other.path) },
			code: errs.Unavailable, message: "404 Not Found; "},
		{name: "wrong SHA-1 everywhere", handler: func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, other.path) },
			second: func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, other.path) },
			code:   errs.Invalid, message: "every location failed: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			srv := newServer(t)
			a := e.replica("a", func(c *imagecache.Config) { c.FailureTTL = time.Hour })
			b := e.replica("b", func(c *imagecache.Config) { c.FailureTTL = time.Hour })
			urls := []string{srv.URL + "/missing"}
			if tt.handler != nil {
				urls[0] = srv.handle("/first", tt.handler)
			}
			if tt.second != nil {
				urls = append(urls, srv.handle("/second", tt.second))
			}
			req := request("bad-"+strings.ReplaceAll(tt.name, " ", "_"), img, urls...)
			req.ImageID = strings.NewReplacer(",", "", "-", "_").Replace(req.ImageID)
			ou := volume.OriginUUID(req.ImageID)

			var wg sync.WaitGroup
			fails := make([]error, 6)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			for i := range fails {
				r := []*replica{a, b}[i%2]
				wg.Go(func() { _, fails[i] = r.cache.Get(ctx, req, snap()) })
			}
			wg.Wait()
			for i, err := range fails {
				if err == nil || errs2code(err) != tt.code || !strings.Contains(err.Error(), tt.message) || !strings.Contains(err.Error(), "image "+req.ImageID+": ") {
					t.Errorf("request %d: error %v (code %s), want code %s and %q", i, err, errs2code(err), tt.code, tt.message)
				}
			}
			e.assertNothingLeft(a)
			origin := a.doc(t, ou)
			if origin == nil || origin.State != volume.Failed || !strings.Contains(origin.StateMessage, tt.message) {
				t.Fatalf("origin = %+v, want FAILED saying %q", origin, tt.message)
			}
			if hits := srv.count(urlPath(urls[0])); hits != 1 {
				t.Errorf("the first location was asked %d times, want 1", hits)
			}

			// Within FailureTTL a new request fails at once, and Sweep
			// keeps the failure.
			if _, err := b.cache.Origin(ctx, req); err == nil || errs2code(err) != tt.code || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("a later request: %v, want the same failure", err)
			}
			if hits := srv.count(urlPath(urls[0])); hits != 1 {
				t.Errorf("a later request downloaded again (%d requests)", hits)
			}
			rep, err := a.cache.Sweep(ctx, time.Hour)
			if err != nil || len(rep.Expired) != 0 {
				t.Errorf("early Sweep = %+v, %v; want nothing removed", rep, err)
			}
			e.advance(2 * time.Hour)
			rep, err = b.cache.Sweep(ctx, time.Hour)
			if err != nil || len(rep.Expired) != 1 || rep.Expired[0] != ou {
				t.Errorf("Sweep = %+v, %v; want %s expired", rep, err, ou)
			}
			// Replica a reads its own index, which sees b's delete a moment
			// later.
			deadline := time.Now().Add(10 * time.Second)
			v := a.doc(t, ou)
			for v != nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				v = a.doc(t, ou)
			}
			if v != nil {
				t.Errorf("the FAILED origin is still there: %+v", v)
			}
			e.waitEvent("evt.pdisk.volume.deleted", ou)
			e.assertNothingLeft(b)
		})
	}
}

// TestSecondLocation: a location that fails is skipped for the next one,
// and leaves nothing behind.
func TestSecondLocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	img := rawImage(t, 2<<20, 64<<10)
	r := e.replica("a", nil)
	req := request("second-location", img, srv.URL+"/gone", srv.file("/here", img))
	v, err := r.cache.Get(t.Context(), req, snap())
	if err != nil {
		t.Fatal(err)
	}
	if srv.count("/gone") != 1 || srv.count("/here") != 1 {
		t.Errorf("requests: /gone %d, /here %d; want 1 each", srv.count("/gone"), srv.count("/here"))
	}
	sameContent(t, v.Path, img.path)
	if entries, _ := os.ReadDir(e.tempDir); len(entries) != 0 {
		t.Errorf("the download directory still holds %d files", len(entries))
	}
}

// TestCompressedImage: the Marketplace's gzip images are checked as served
// and imported unpacked.
func TestCompressedImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	raw := rawImage(t, 3<<20, 1<<20)
	gz := gzipImage(t, raw)
	r := e.replica("a", nil)
	v, err := r.cache.Get(t.Context(), request("gzipped", gz, srv.file("/disk.img.gz", gz)), snap())
	if err != nil {
		t.Fatal(err)
	}
	if in := info(t, v.Path); in.VirtualSize != raw.bytes {
		t.Errorf("virtual size %d, want the unpacked %d", in.VirtualSize, raw.bytes)
	}
	sameContent(t, v.Path, raw.path)
	origin := r.doc(t, v.Origin)
	if origin.Bytes != gz.bytes || origin.SHA1 != gz.sha1 {
		t.Errorf("origin bytes/sha1 = %d/%s, want those of the file served, %d/%s", origin.Bytes, origin.SHA1, gz.bytes, gz.sha1)
	}
	if entries, _ := os.ReadDir(e.tempDir); len(entries) != 0 {
		t.Errorf("the download directory still holds %d files", len(entries))
	}
}

// TestTakeOverFromDeadReplica: a replica dies while downloading (its store
// connection goes, then its work); once its lease expires another replica
// takes the download over and completes it.
func TestTakeOverFromDeadReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	img := rawImage(t, 2<<20, 64<<10)
	started := make(chan struct{})
	var once sync.Once
	release := make(chan struct{})
	defer close(release)
	url := srv.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		first := false
		once.Do(func() { first = true; close(started) })
		if first {
			select { // hang: the dead replica never gets its image
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		http.ServeFile(w, r, img.path)
	})
	lease := func(c *imagecache.Config) { c.Lease = 600 * time.Millisecond }
	dead := e.replica("dead", lease)
	live := e.replica("live", lease)
	req := request("takeover", img, url)
	ou := volume.OriginUUID(req.ImageID)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := dead.cache.Get(ctx, req, snap()); done <- err }()
	select {
	case <-started:
	case <-time.After(waitLimit):
		t.Fatal("the first replica never started downloading")
	}
	// The process dies: first its connection, so that it cannot clean up.
	dead.nc.Close()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the dead replica's Get: %v, want context.Canceled", err)
	}
	held := live.doc(t, ou)
	if held == nil || held.State != volume.Downloading || !strings.HasPrefix(held.Holder, "dead#") {
		t.Fatalf("origin after the crash = %+v, want DOWNLOADING held by the dead replica", held)
	}

	lctx, lcancel := context.WithTimeout(context.Background(), waitLimit)
	defer lcancel()
	v, err := live.cache.Get(lctx, req, snap())
	if err != nil {
		t.Fatalf("the live replica's Get: %v", err)
	}
	if hits := srv.count("/slow"); hits != 2 {
		t.Errorf("the image was requested %d times, want 2 (the dead replica's, then the takeover's)", hits)
	}
	origin := live.doc(t, ou)
	if origin.State != volume.Available || origin.Count != 1 || origin.Holder != "" {
		t.Errorf("origin = %+v, want AVAILABLE with one snapshot", origin)
	}
	sameContent(t, v.Path, img.path)
}

// TestAbandonedDownload: when every caller gives up, a live replica stops
// the download and removes its trace at once, so the next request starts
// afresh without waiting for the lease.
func TestAbandonedDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	img := rawImage(t, 1<<20, 64<<10)
	started := make(chan struct{}, 1)
	url := srv.handle("/hang", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	})
	r := e.replica("a", func(c *imagecache.Config) { c.Lease = time.Hour })
	req := request("abandoned", img, url)
	ou := volume.OriginUUID(req.ImageID)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := r.cache.Origin(ctx, req); done <- err }()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Origin: %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(waitLimit)
	for r.doc(t, ou) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned origin is still there: %+v", r.doc(t, ou))
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.waitEvent("evt.pdisk.volume.deleted", ou)
	e.assertNothingLeft(r)
}

// TestSweepAndRelease: Release uncounts snapshots; Sweep evicts origins
// idle with no snapshot and keeps the others.
func TestSweepAndRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	r := e.replica("a", nil)
	ctx := t.Context()
	used, idle := rawImage(t, 1<<20, 64<<10), rawImage(t, 1<<20, 64<<10)
	usedReq := request("used", used, srv.file("/used", used))
	idleReq := request("idle", idle, srv.file("/idle", idle))
	usedOU, idleOU := volume.OriginUUID(usedReq.ImageID), volume.OriginUUID(idleReq.ImageID)

	if _, err := r.cache.Get(ctx, usedReq, snap()); err != nil {
		t.Fatal(err)
	}
	gone, err := r.cache.Get(ctx, idleReq, snap())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.cache.Get(ctx, idleReq, snap()); err != nil {
		t.Fatal(err)
	}
	if c := r.doc(t, idleOU).Count; c != 2 {
		t.Fatalf("count %d, want 2", c)
	}
	// One machine ends: its disk is deleted, then released.
	if err := r.backend.Delete(ctx, gone.UUID); err != nil {
		t.Fatal(err)
	}
	if err := r.cache.Release(ctx, idleOU); err != nil {
		t.Fatal(err)
	}
	if c := r.doc(t, idleOU).Count; c != 1 {
		t.Errorf("after Release, count %d, want 1", c)
	}
	// The other one too, later; the origin was last used then.
	e.advance(time.Hour)
	vols, _ := r.backend.List(ctx)
	for _, v := range vols {
		if v.Origin == idleOU {
			if err := r.backend.Delete(ctx, v.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.cache.Release(ctx, "Volume/"+idleOU); err != nil {
		t.Fatal(err)
	}
	released := r.doc(t, idleOU)
	if released.Count != 0 || volume.ParseStamp(released.LastUsed).Before(e.now().Add(-time.Minute)) {
		t.Errorf("after the last Release: %+v, want count 0, last used now", released)
	}
	if err := r.cache.Release(ctx, idleOU); err != nil || r.doc(t, idleOU).Count != 0 {
		t.Errorf("Release below zero: %v, count %d", err, r.doc(t, idleOU).Count)
	}

	rep, err := r.cache.Sweep(ctx, 30*time.Minute)
	if err != nil || len(rep.Evicted)+len(rep.Expired)+len(rep.Abandoned)+len(rep.Busy) != 0 {
		t.Errorf("Sweep right after the release = %+v, %v; want nothing done", rep, err)
	}
	e.advance(time.Hour)
	rep, err = r.cache.Sweep(ctx, 30*time.Minute)
	if err != nil || len(rep.Evicted) != 1 || rep.Evicted[0] != idleOU || len(rep.Busy) != 0 {
		t.Fatalf("Sweep = %+v, %v; want %s evicted", rep, err, idleOU)
	}
	if r.doc(t, idleOU) != nil {
		t.Error("the evicted origin's document is still there")
	}
	if _, err := r.backend.Get(ctx, idleOU); errs2code(err) != errs.NotFound {
		t.Errorf("the evicted origin's storage: %v, want not found", err)
	}
	if v := r.doc(t, usedOU); v == nil || v.State != volume.Available || v.Count != 1 {
		t.Errorf("the used origin = %+v, want kept with its snapshot", v)
	}
	ev := e.waitEvent("evt.pdisk.volume.deleted", idleOU)
	if ev.Body != nil || ev.MsgID == "" {
		t.Errorf("deletion announced as %+v", ev)
	}

	// An evicted image is downloaded again when asked for.
	if _, err := r.cache.Get(ctx, idleReq, snap()); err != nil {
		t.Fatal(err)
	}
	if hits := srv.count("/idle"); hits != 2 {
		t.Errorf("the evicted image was requested %d times, want 2", hits)
	}

	// A wrong count (0 while a snapshot exists) does not lose the origin.
	if _, err := r.coll.Update(ctx, volume.ID(usedOU), func(cur store.Document) (json.RawMessage, error) {
		v, err := volume.Decode(cur.Body)
		if err != nil {
			return nil, err
		}
		v.Count = 0
		return v.Encode()
	}); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	rep, err = r.cache.Sweep(ctx, 30*time.Minute)
	if err != nil || len(rep.Busy) != 1 || rep.Busy[0] != usedOU || len(rep.Evicted) != 0 {
		t.Errorf("Sweep with a wrong count = %+v, %v; want %s busy", rep, err, usedOU)
	}
	if v := r.doc(t, usedOU); v == nil || v.State != volume.Available || v.Holder != "" {
		t.Errorf("the busy origin = %+v, want given back AVAILABLE", v)
	}
	if _, err := r.backend.Get(ctx, usedOU); err != nil {
		t.Errorf("the busy origin's storage: %v", err)
	}

	// Release of what is not an origin.
	if err := r.cache.Release(ctx, uuid.NewString()); errs2code(err) != errs.NotFound {
		t.Errorf("Release of a missing origin: %v, want not found", err)
	}
	if err := r.cache.Release(ctx, gone.UUID); errs2code(err) != errs.Invalid {
		t.Errorf("Release of a live volume: %v, want invalid", err)
	}
	if err := r.cache.Release(ctx, "nope"); errs2code(err) != errs.Invalid {
		t.Errorf("Release of a bad uuid: %v, want invalid", err)
	}
}

// TestSweepAbandonedDownload: Sweep removes a download whose replica
// stopped renewing it, storage included.
func TestSweepAbandonedDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.replica("a", nil)
	ctx := t.Context()
	ou := volume.OriginUUID("stuck")
	v := volume.Volume{ID: volume.ID(ou), UUID: ou, Type: volume.MachineImageOrigin, State: volume.Downloading,
		Identifier: "stuck", Holder: "ghost#1", LeaseUntil: volume.Stamp(e.now().Add(time.Minute))}
	body, _ := v.Encode()
	if _, err := r.coll.Create(ctx, v.ID, body); err != nil {
		t.Fatal(err)
	}
	// What the ghost imported before it died.
	if _, err := r.backend.Create(ctx, ou, 1); err != nil {
		t.Fatal(err)
	}
	// And its download file, another dead replica's, and a stranger.
	for _, name := range []string{".image-" + ou + "-1", ".image-" + uuid.NewString() + "-2", "keep.txt"} {
		if err := os.WriteFile(filepath.Join(e.tempDir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := r.cache.Sweep(ctx, time.Hour)
	if err != nil || len(rep.Abandoned) != 0 || len(rep.TempFiles) != 0 {
		t.Errorf("Sweep within the lease = %+v, %v; want nothing done", rep, err)
	}
	e.advance(2 * time.Minute)
	rep, err = r.cache.Sweep(ctx, time.Hour)
	if err != nil || len(rep.Abandoned) != 1 || rep.Abandoned[0] != ou || len(rep.TempFiles) != 2 {
		t.Errorf("Sweep = %+v, %v; want %s abandoned, two files removed", rep, err, ou)
	}
	if r.doc(t, ou) != nil {
		t.Error("the abandoned origin's document is still there")
	}
	if err := os.Remove(filepath.Join(e.tempDir, "keep.txt")); err != nil {
		t.Errorf("a file not a download: %v", err)
	}
	e.assertNothingLeft(r)
}

// TestRepeatedGet: a command delivered again gets the volume it made, even
// if it died between making the snapshot and storing its document; a uuid
// taken by another volume is a conflict.
func TestRepeatedGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	img := rawImage(t, 1<<20, 64<<10)
	r := e.replica("a", nil)
	ctx := t.Context()
	req := request("repeat", img, srv.file("/img", img))
	ou := volume.OriginUUID(req.ImageID)
	s := snap()
	v1, err := r.cache.Get(ctx, req, s)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := r.cache.Get(ctx, req, s)
	if err != nil || v2.UUID != v1.UUID || v2.Created != v1.Created {
		t.Errorf("repeated Get = %+v, %v; want %+v", v2, err, v1)
	}
	if c := r.doc(t, ou).Count; c != 1 {
		t.Errorf("count %d, want 1", c)
	}

	// The first delivery made and counted the snapshot, then died.
	crashed := snap()
	if _, err := r.backend.Snapshot(ctx, crashed.UUID, ou); err != nil {
		t.Fatal(err)
	}
	if err := bump(ctx, r, ou); err != nil {
		t.Fatal(err)
	}
	v3, err := r.cache.Get(ctx, req, crashed)
	if err != nil || v3.UUID != crashed.UUID || v3.Origin != ou {
		t.Errorf("Get after a crash = %+v, %v", v3, err)
	}
	if c := r.doc(t, ou).Count; c != 2 {
		t.Errorf("count %d, want 2", c)
	}

	// A uuid already used by a volume that is not a snapshot of the image.
	other := request("other-image", img, srv.file("/other", img))
	if _, err := r.cache.Get(ctx, other, s); errs2code(err) != errs.Conflict {
		t.Errorf("Get of another image under a used uuid: %v, want conflict", err)
	}
	// The same uuid as a backend volume of something else.
	stranger := snap()
	if _, err := r.backend.Create(ctx, stranger.UUID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.cache.Get(ctx, req, stranger); errs2code(err) != errs.Conflict {
		t.Errorf("Get under the uuid of another backend volume: %v, want conflict", err)
	}
	if c := r.doc(t, ou).Count; c != 2 {
		t.Errorf("after refused Gets, count %d, want 2", c)
	}
	// A cached image asked for with another checksum.
	wrong := req
	wrong.SHA1 = strings.Repeat("0", 40)
	if _, err := r.cache.Get(ctx, wrong, snap()); errs2code(err) != errs.Conflict {
		t.Errorf("Get with another checksum: %v, want conflict", err)
	}
}

// bump counts one more snapshot in origin ou, as Get does.
func bump(ctx context.Context, r *replica, ou string) error {
	_, err := r.coll.Update(ctx, volume.ID(ou), func(cur store.Document) (json.RawMessage, error) {
		v, err := volume.Decode(cur.Body)
		if err != nil {
			return nil, err
		}
		v.Count++
		return v.Encode()
	})
	return err
}

// TestBadRequests: requests that cannot be right are refused before
// anything is written or downloaded.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	img := rawImage(t, 1<<20, 4<<10)
	good := request("good", img, srv.file("/img", img))
	r := e.replica("a", nil)
	tests := []struct {
		name string
		req  func(*imagecache.Request)
		snap func(*imagecache.Snap)
	}{
		{name: "empty image id", req: func(q *imagecache.Request) { q.ImageID = "" }},
		{name: "long image id", req: func(q *imagecache.Request) { q.ImageID = strings.Repeat("a", 129) }},
		{name: "image id with a slash", req: func(q *imagecache.Request) { q.ImageID = "../etc" }},
		{name: "no URLs", req: func(q *imagecache.Request) { q.URLs = nil }},
		{name: "volume not a uuid", req: func(q *imagecache.Request) { q.Volume = "Volume/x" }},
		{name: "file URL", req: func(q *imagecache.Request) { q.URLs = []string{"file://" + img.path} }},
		{name: "file URL second", req: func(q *imagecache.Request) { q.URLs = append(q.URLs, "file:///etc/passwd") }},
		{name: "ftp URL", req: func(q *imagecache.Request) { q.URLs = []string{"ftp://example.org/img"} }},
		{name: "relative URL", req: func(q *imagecache.Request) { q.URLs = []string{"/img"} }},
		{name: "no host", req: func(q *imagecache.Request) { q.URLs = []string{"http:///img"} }},
		{name: "zero bytes", req: func(q *imagecache.Request) { q.Bytes = 0 }},
		{name: "negative bytes", req: func(q *imagecache.Request) { q.Bytes = -1 }},
		{name: "short sha1", req: func(q *imagecache.Request) { q.SHA1 = q.SHA1[:39] }},
		{name: "sha1 not hex", req: func(q *imagecache.Request) { q.SHA1 = strings.Repeat("g", 40) }},
		{name: "live origin type", req: func(q *imagecache.Request) { q.Type = volume.MachineImageLive }},
		{name: "bad snapshot uuid", snap: func(s *imagecache.Snap) { s.UUID = "Volume/x" }},
		{name: "upper-case snapshot uuid", snap: func(s *imagecache.Snap) { s.UUID = strings.ToUpper(s.UUID) }},
		{name: "snapshot uuid of the origin", snap: func(s *imagecache.Snap) { s.UUID = volume.OriginUUID("good") }},
		{name: "no owner", snap: func(s *imagecache.Snap) { s.Owner = "" }},
		{name: "read-write snapshot", snap: func(s *imagecache.Snap) { s.Type = volume.DataImageRawReadWrite }},
	}
	for _, tt := range tests {
		req, s := good, snap()
		req.URLs = append([]string(nil), good.URLs...)
		if tt.req != nil {
			tt.req(&req)
			if _, err := r.cache.Origin(t.Context(), req); errs2code(err) != errs.Invalid {
				t.Errorf("%s: Origin: %v, want invalid", tt.name, err)
			}
		}
		if tt.snap != nil {
			tt.snap(&s)
		}
		if _, err := r.cache.Get(t.Context(), req, s); errs2code(err) != errs.Invalid {
			t.Errorf("%s: Get: %v, want invalid", tt.name, err)
		}
	}
	page, err := r.coll.Query(t.Context(), cimi.Query{}, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil || page.Count != 0 {
		t.Errorf("the store holds %d documents (%v), want none", page.Count, err)
	}
	if hits := srv.count("/img"); hits != 0 {
		t.Errorf("the image was requested %d times, want 0", hits)
	}
	e.assertNothingLeft(r)

	// The good request itself works, with a short id and a data type.
	req := good
	req.Type = volume.DataImageOrigin
	s := snap()
	s.Type = volume.DataImageLive
	v, err := r.cache.Get(t.Context(), req, s)
	if err != nil || v.Type != volume.DataImageLive || r.doc(t, v.Origin).Type != volume.DataImageOrigin {
		t.Errorf("good request: %+v, %v", v, err)
	}
}

// TestNew refuses incomplete configurations.
func TestNew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.replica("a", nil)
	tests := []struct {
		name string
		cfg  imagecache.Config
	}{
		{"no collection", imagecache.Config{Backend: r.backend, TempDir: t.TempDir()}},
		{"no backend", imagecache.Config{Volumes: r.coll, TempDir: t.TempDir()}},
		{"no temp dir", imagecache.Config{Volumes: r.coll, Backend: r.backend}},
		{"negative lease", imagecache.Config{Volumes: r.coll, Backend: r.backend, TempDir: t.TempDir(), Lease: -time.Second}},
		{"roots with a client", imagecache.Config{Volumes: r.coll, Backend: r.backend, TempDir: t.TempDir(), HTTP: http.DefaultClient, Roots: x509.NewCertPool()}},
	}
	for _, tt := range tests {
		if _, err := imagecache.New(tt.cfg); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
	if _, err := imagecache.New(imagecache.Config{Volumes: r.coll, Backend: r.backend, TempDir: t.TempDir()}); err != nil {
		t.Errorf("minimal configuration: %v", err)
	}
}

func errs2code(err error) errs.Code { return errs.CodeOf(err) }

func urlPath(u string) string {
	i := strings.Index(u[len("http://"):], "/")
	return u[len("http://")+i:]
}

// TestLeaseRenewed: a download lasting several leases is not taken over by
// a replica waiting for it, because its downloader renews its claim.
func TestLeaseRenewed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	img := rawImage(t, 1<<20, 1<<20)
	data, err := os.ReadFile(img.path)
	if err != nil {
		t.Fatal(err)
	}
	const lease = time.Second
	url := srv.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		const parts = 6 // three leases in all
		for i := range parts {
			if _, err := w.Write(data[i*len(data)/parts : (i+1)*len(data)/parts]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(lease / 2)
		}
	})
	tune := func(c *imagecache.Config) { c.Lease = lease }
	a, b := e.replica("a", tune), e.replica("b", tune)
	req := request("slow", img, url)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var wg sync.WaitGroup
	fails := make([]error, 2)
	for i, r := range []*replica{a, b} {
		wg.Go(func() { _, fails[i] = r.cache.Get(ctx, req, snap()) })
	}
	wg.Wait()
	for i, err := range fails {
		if err != nil {
			t.Errorf("Get %d: %v", i, err)
		}
	}
	if hits := srv.count("/slow"); hits != 1 {
		t.Errorf("the image was requested %d times, want 1: a waiter took over a live download", hits)
	}
	if c := a.doc(t, volume.OriginUUID(req.ImageID)).Count; c != 2 {
		t.Errorf("count %d, want 2", c)
	}
}

// TestStalledTransfer: a server that stops sending is given up after
// Config.Stall, and the next location is tried.
func TestStalledTransfer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newServer(t)
	img := rawImage(t, 1<<20, 1<<20)
	data, err := os.ReadFile(img.path)
	if err != nil {
		t.Fatal(err)
	}
	stalled := srv.handle("/stalled", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	r := e.replica("a", func(c *imagecache.Config) { c.Stall = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err = r.cache.Origin(ctx, request("stalled", img, stalled))
	if errs2code(err) != errs.Unavailable || !strings.Contains(err.Error(), "no data for 300ms") {
		t.Errorf("Origin: %v, want unavailable, no data", err)
	}
	e.assertNothingLeft(r)
	v, err := r.cache.Origin(ctx, request("stalled-then-fine", img, stalled, srv.file("/fine", img)))
	if err != nil || v.State != volume.Available {
		t.Errorf("Origin with a second location: %+v, %v", v, err)
	}
}
