package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
)

// MiB is a mebibyte, the unit of the images the suite imports.
const MiB = 1 << 20

// clockSlack is how far a volume's Created may stray from this process's
// clock around the call that made it: filesystem timestamps come from a
// coarse clock, and remote storage keeps its own.
const clockSlack = 5 * time.Second

// Run runs the contract suite; newBackend returns an empty backend for each
// subtest, which the subtest may fill and leaves for t.Cleanup to discard.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the backend contract suite needs %s (Debian package qemu-utils): %v", tool, err)
		}
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"BadIDs", testBadIDs},
		{"Create", testCreate},
		{"CreateRace", testCreateRace},
		{"Import", testImport},
		{"ImportRefused", testImportRefused},
		{"ImportAtomic", testImportAtomic},
		{"Snapshot", testSnapshot},
		{"SnapshotCostIndependentOfOriginSize", testSnapshotCost},
		{"Capture", testCapture},
		{"Grow", testGrow},
		{"Delete", testDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

// RunShared runs the part of the contract about instances sharing one
// storage, as pdisk replicas on several hosts or processes do. newPair
// returns two instances over the same empty storage, which the subtest may
// fill and leaves for t.Cleanup to discard.
func RunShared(t *testing.T, newPair func(t *testing.T) (backend.Backend, backend.Backend)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, a, b backend.Backend)
	}{
		{"SeeEachOther", testSeeEachOther},
		{"SnapshotDeleteRace", testSnapshotDeleteRace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newPair(t)
			tc.fn(t, a, b)
		})
	}
}

// NewID returns a fresh volume id.
func NewID(t testing.TB) string {
	t.Helper()
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		t.Fatal(err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func testBadIDs(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	good := NewID(t)
	src := rawImage(t, MiB)
	for _, bad := range []string{"", "..", "../" + good, good + "/..", "A" + good[1:], good[:35], good + "0", "/etc/passwd"} {
		calls := map[string]func() error{
			"Create":          func() error { _, err := b.Create(ctx, bad, 1); return err },
			"Snapshot id":     func() error { _, err := b.Snapshot(ctx, bad, good); return err },
			"Snapshot origin": func() error { _, err := b.Snapshot(ctx, good, bad); return err },
			"Import":          func() error { _, err := b.Import(ctx, bad, src); return err },
			"Capture id":      func() error { _, err := b.Capture(ctx, bad, good); return err },
			"Capture from":    func() error { _, err := b.Capture(ctx, good, bad); return err },
			"Grow":            func() error { _, err := b.Grow(ctx, bad, 2); return err },
			"Delete":          func() error { return b.Delete(ctx, bad) },
			"Get":             func() error { _, err := b.Get(ctx, bad); return err },
			"Locate":          func() error { _, err := b.Locate(ctx, bad); return err },
		}
		for name, call := range calls {
			wantCode(t, fmt.Sprintf("%s(%q)", name, bad), call(), errs.Invalid)
		}
	}
	wantList(t, b)
}

func testCreate(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	id := NewID(t)
	for _, size := range []int64{0, -1, backend.MaxSizeGiB + 1} {
		_, err := b.Create(ctx, id, size)
		wantCode(t, fmt.Sprintf("Create size %d", size), err, errs.Invalid)
	}
	wantList(t, b)
	before := time.Now()
	v, err := b.Create(ctx, id, 3)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	wantCreated(t, "Create", v, before, time.Now())
	if v.ID != id || v.Size != 3*backend.GiB || v.Origin != "" {
		t.Errorf("Create returned %+v, want a standalone 3 GiB volume %s", v, id)
	}
	if got := get(t, b, id); got.Size != v.Size || got.Origin != "" || !got.Created.Equal(v.Created) {
		t.Errorf("Get = %+v, want %+v", got, v)
	}
	if vols, err := b.List(ctx); err != nil || len(vols) != 1 || !vols[0].Created.Equal(v.Created) {
		t.Errorf("List = %+v, %v; want the volume as Create described it, %+v", vols, err, v)
	}
	_, err = b.Create(ctx, id, 1)
	wantCode(t, "Create over an existing volume", err, errs.Conflict)
	if got := get(t, b, id); got.Size != 3*backend.GiB {
		t.Errorf("a refused Create changed the volume: %+v", got)
	}
	wantPattern(t, b, id, 0, 3*backend.GiB-MiB, MiB)
	wantList(t, b, v)
	_, err = b.Get(ctx, NewID(t))
	wantCode(t, "Get of a missing volume", err, errs.NotFound)
	_, err = b.Locate(ctx, NewID(t))
	wantCode(t, "Locate of a missing volume", err, errs.NotFound)
}

// testCreateRace checks that of several creates under one id exactly one
// wins and the others get a conflict, never a replaced volume.
func testCreateRace(t *testing.T, b backend.Backend) {
	const racers = 6
	id := NewID(t)
	results := make(chan error, racers)
	for i := range racers {
		go func() {
			_, err := b.Create(t.Context(), id, int64(i+1))
			results <- err
		}()
	}
	won := 0
	for range racers {
		switch err := <-results; errs.CodeOf(err) {
		case "":
			won++
		case errs.Conflict:
		default:
			t.Errorf("a losing Create failed with %v; want a conflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d creates under one id succeeded; want exactly 1", won, racers)
	}
	if vols, err := b.List(t.Context()); err != nil || len(vols) != 1 {
		t.Errorf("List after the race = %+v, %v; want one volume", vols, err)
	}
}

func testImport(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	raw := rawImage(t, 4*MiB)
	want := readFile(t, raw)
	qcow := filepath.Join(t.TempDir(), "image.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", raw, qcow)
	for name, src := range map[string]string{"raw": raw, "qcow2": qcow} {
		id := NewID(t)
		before := time.Now()
		v, err := b.Import(ctx, id, src)
		if err != nil {
			t.Fatalf("Import of a %s image: %v", name, err)
		}
		wantCreated(t, "Import", v, before, time.Now())
		if v.ID != id || v.Size != 4*MiB || v.Origin != "" {
			t.Errorf("Import of a %s image returned %+v", name, v)
		}
		if got := read(t, b, id); !bytes.Equal(got, want) {
			t.Errorf("the volume imported from a %s image does not hold the image's content", name)
		}
		_, err = b.Import(ctx, id, raw)
		wantCode(t, "Import over an existing volume", err, errs.Conflict)
	}
	if _, err := os.Stat(raw); err != nil {
		t.Errorf("Import must leave the source to its caller: %v", err)
	}
}

func testImportRefused(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, bytes.Repeat([]byte("host secret "), MiB/8), 0o600); err != nil {
		t.Fatal(err)
	}
	backed := filepath.Join(dir, "backed.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, backed)
	vmdk := filepath.Join(dir, "image.vmdk")
	qemuImg(t, "create", "-q", "-f", "vmdk", vmdk, "1M")
	for _, tc := range []struct {
		name, src string
		code      errs.Code
	}{
		{"an image with a backing file", backed, errs.Invalid},
		{"a vmdk image", vmdk, errs.Invalid},
		{"a missing file", filepath.Join(dir, "missing"), errs.NotFound},
	} {
		_, err := b.Import(ctx, NewID(t), tc.src)
		wantCode(t, "Import of "+tc.name, err, tc.code)
	}
	wantList(t, b)
}

// testImportAtomic checks that failed imports leave nothing under any id,
// and that an import watched while it runs is never seen half-made.
func testImportAtomic(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", rawImage(t, 4*MiB), corrupt)
	corruptL2(t, corrupt)
	id := NewID(t)
	_, err := b.Import(ctx, id, corrupt)
	if err == nil {
		t.Errorf("Import of a corrupt qcow2 image succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.Import(cancelled, id, rawImage(t, 4*MiB))
	if err == nil {
		t.Errorf("Import with a cancelled context succeeded")
	}
	_, err = b.Get(ctx, id)
	wantCode(t, "Get after failed imports", err, errs.NotFound)
	wantList(t, b)

	src := rawImage(t, 32*MiB)
	want := readFile(t, src)
	id = NewID(t)
	done := make(chan error, 1)
	go func() { _, err := b.Import(ctx, id, src); done <- err }()
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			finished = true
		default:
		}
		vols, err := b.List(ctx)
		if err != nil {
			t.Fatalf("List during Import: %v", err)
		}
		for _, v := range vols {
			if v.ID == id && !bytes.Equal(read(t, b, id), want) {
				t.Fatalf("List showed volume %s before its content was complete", id)
			}
		}
	}
	if !bytes.Equal(read(t, b, id), want) {
		t.Errorf("the imported volume does not hold the image's content")
	}
}

func testSnapshot(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	origin := NewID(t)
	src := rawImage(t, 4*MiB)
	want := readFile(t, src)
	if _, err := b.Import(ctx, origin, src); err != nil {
		t.Fatal(err)
	}
	_, err := b.Snapshot(ctx, NewID(t), NewID(t))
	wantCode(t, "Snapshot of a missing origin", err, errs.NotFound)
	_, err = b.Snapshot(ctx, origin, origin)
	wantCode(t, "Snapshot of itself", err, errs.Invalid)
	snaps := []string{NewID(t), NewID(t)}
	for _, s := range snaps {
		before := time.Now()
		v, err := b.Snapshot(ctx, s, origin)
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		wantCreated(t, "Snapshot", v, before, time.Now())
		if v.ID != s || v.Origin != origin || v.Size != 4*MiB {
			t.Errorf("Snapshot returned %+v, want a 4 MiB snapshot of %s", v, origin)
		}
		if got := read(t, b, s); !bytes.Equal(got, want) {
			t.Errorf("snapshot %s does not read as its origin", s)
		}
	}
	_, err = b.Snapshot(ctx, snaps[0], origin)
	wantCode(t, "Snapshot over an existing volume", err, errs.Conflict)

	// Writes to one snapshot reach neither the origin nor its siblings.
	write(t, b, snaps[0], 0x5a, 0, MiB)
	if got := read(t, b, origin); !bytes.Equal(got, want) {
		t.Errorf("writing to a snapshot changed its origin")
	}
	if got := read(t, b, snaps[1]); !bytes.Equal(got, want) {
		t.Errorf("writing to a snapshot changed its sibling")
	}
	if got := read(t, b, snaps[0]); !bytes.Equal(got[:MiB], bytes.Repeat([]byte{0x5a}, MiB)) || !bytes.Equal(got[MiB:], want[MiB:]) {
		t.Errorf("a snapshot does not read back what was written to it over its origin")
	}
	wantList(t, b, get(t, b, origin), get(t, b, snaps[0]), get(t, b, snaps[1]))
}

// testSnapshotCost checks by content, not by time, that snapshots do not
// copy their origin: a snapshot of a large, filled origin takes next to no
// space, the same as one of a small origin.
func testSnapshotCost(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	small, large := NewID(t), NewID(t)
	if _, err := b.Import(ctx, small, rawImage(t, 1*MiB)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, large, 10); err != nil {
		t.Fatal(err)
	}
	write(t, b, large, 0xa5, 0, 16*MiB)
	write(t, b, large, 0xa5, 10*backend.GiB-16*MiB, 16*MiB)
	if a := get(t, b, large).Allocated; a < 32*MiB {
		t.Fatalf("the large origin reports %d bytes allocated after 32 MiB were written; Allocated must count its data", a)
	}
	var alloc []int64
	for _, origin := range []string{small, large} {
		s := NewID(t)
		v, err := b.Snapshot(ctx, s, origin)
		if err != nil {
			t.Fatal(err)
		}
		if v.Allocated > MiB {
			t.Errorf("a snapshot of %d bytes takes %d bytes: it copied its origin", v.Size, v.Allocated)
		}
		alloc = append(alloc, v.Allocated)
		if origin == large {
			wantPattern(t, b, s, 0xa5, 10*backend.GiB-16*MiB, 16*MiB)
		}
	}
	if alloc[0] != alloc[1] {
		t.Errorf("snapshots of a 1 MiB and a 10 GiB origin take %d and %d bytes; they should take the same", alloc[0], alloc[1])
	}
}

func testCapture(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	origin, snap, captured := NewID(t), NewID(t), NewID(t)
	src := rawImage(t, 4*MiB)
	want := readFile(t, src)
	if _, err := b.Import(ctx, origin, src); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Snapshot(ctx, snap, origin); err != nil {
		t.Fatal(err)
	}
	write(t, b, snap, 0x77, 2*MiB, MiB)
	copy(want[2*MiB:3*MiB], bytes.Repeat([]byte{0x77}, MiB))

	_, err := b.Capture(ctx, NewID(t), NewID(t))
	wantCode(t, "Capture of a missing volume", err, errs.NotFound)
	_, err = b.Capture(ctx, origin, snap)
	wantCode(t, "Capture over an existing volume", err, errs.Conflict)
	before := time.Now()
	v, err := b.Capture(ctx, captured, snap)
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	wantCreated(t, "Capture", v, before, time.Now())
	if v.ID != captured || v.Origin != "" || v.Size != 4*MiB {
		t.Errorf("Capture returned %+v, want a standalone 4 MiB volume", v)
	}
	// The capture outlives the snapshot and the origin it came from.
	for _, id := range []string{snap, origin} {
		if err := b.Delete(ctx, id); err != nil {
			t.Fatalf("Delete %s after Capture: %v", id, err)
		}
	}
	if got := read(t, b, captured); !bytes.Equal(got, want) {
		t.Errorf("the captured volume does not hold the snapshot's content")
	}
	wantList(t, b, v)
}

func testGrow(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	id := NewID(t)
	if _, err := b.Create(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	write(t, b, id, 0x42, 0, MiB)
	v, err := b.Grow(ctx, id, 3)
	if err != nil {
		t.Fatalf("Grow: %v", err)
	}
	if v.Size != 3*backend.GiB || get(t, b, id).Size != 3*backend.GiB {
		t.Errorf("after Grow to 3 GiB the volume is %d bytes", v.Size)
	}
	wantPattern(t, b, id, 0x42, 0, MiB)
	if v, err := b.Grow(ctx, id, 3); err != nil || v.Size != 3*backend.GiB {
		t.Errorf("Grow to the current size = %+v, %v; want no change", v, err)
	}
	_, err = b.Grow(ctx, id, 2)
	wantCode(t, "Grow to a smaller size", err, errs.Invalid)
	_, err = b.Grow(ctx, id, 0)
	wantCode(t, "Grow to 0 GiB", err, errs.Invalid)
	_, err = b.Grow(ctx, NewID(t), 2)
	wantCode(t, "Grow of a missing volume", err, errs.NotFound)
	if got := get(t, b, id).Size; got != 3*backend.GiB {
		t.Errorf("refused Grows changed the size to %d", got)
	}
}

func testDelete(t *testing.T, b backend.Backend) {
	ctx := t.Context()
	origin, snap, plain := NewID(t), NewID(t), NewID(t)
	if _, err := b.Import(ctx, origin, rawImage(t, MiB)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Snapshot(ctx, snap, origin); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, plain, 1); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Delete of an origin with a snapshot", b.Delete(ctx, origin), errs.Conflict)
	if _, err := b.Get(ctx, origin); err != nil {
		t.Errorf("a refused Delete removed the origin: %v", err)
	}
	for _, id := range []string{snap, origin, plain} {
		if err := b.Delete(ctx, id); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := b.Delete(ctx, id); err != nil {
			t.Errorf("Delete of a deleted volume: %v; it must succeed", err)
		}
		_, err := b.Get(ctx, id)
		wantCode(t, "Get of a deleted volume", err, errs.NotFound)
		_, err = b.Locate(ctx, id)
		wantCode(t, "Locate of a deleted volume", err, errs.NotFound)
	}
	if err := b.Delete(ctx, NewID(t)); err != nil {
		t.Errorf("Delete of a volume that never existed: %v; it must succeed", err)
	}
	wantList(t, b)
	if _, err := b.Create(ctx, plain, 1); err != nil {
		t.Errorf("Create under the id of a deleted volume: %v", err)
	}
}

// testSeeEachOther checks that what one instance makes the other finds,
// described the same way.
func testSeeEachOther(t *testing.T, a, b backend.Backend) {
	ctx := t.Context()
	origin, snap := NewID(t), NewID(t)
	o, err := a.Import(ctx, origin, rawImage(t, MiB))
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Snapshot(ctx, snap, origin)
	if err != nil {
		t.Fatalf("Snapshot through the other instance: %v", err)
	}
	for _, want := range []backend.Volume{o, s} {
		got := get(t, a, want.ID)
		if got.Size != want.Size || got.Origin != want.Origin || !got.Created.Equal(want.Created) {
			t.Errorf("instance a sees %+v, instance b %+v", got, want)
		}
	}
	_, err = a.Create(ctx, snap, 1)
	wantCode(t, "Create over a volume the other instance made", err, errs.Conflict)
	wantCode(t, "Delete of an origin whose snapshot the other instance made", a.Delete(ctx, origin), errs.Conflict)
	for _, id := range []string{snap, origin} {
		if err := b.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	wantList(t, a)
}

// testSnapshotDeleteRace races a Delete of an origin against Snapshots of
// it, from both instances, and checks that no snapshot outlives its origin:
// either the Delete fails with a conflict and the origin stays, or every
// Snapshot fails with NotFound.
func testSnapshotDeleteRace(t *testing.T, a, b backend.Backend) {
	ctx := t.Context()
	const rounds = 40
	outcomes := map[string]int{}
	for round := range rounds {
		deleter, other := a, b
		if round%2 == 1 {
			deleter, other = b, a
		}
		origin := NewID(t)
		if _, err := other.Create(ctx, origin, 1); err != nil {
			t.Fatal(err)
		}
		// One snapshot from the deleting instance, two from the other.
		snappers := []backend.Backend{deleter, other, other}
		snaps := make([]string, len(snappers))
		snapErrs := make([]error, len(snappers))
		var delErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range snappers {
			snaps[i] = NewID(t)
			wg.Go(func() {
				<-start
				_, snapErrs[i] = s.Snapshot(ctx, snaps[i], origin)
			})
		}
		wg.Go(func() {
			<-start
			delErr = deleter.Delete(ctx, origin)
		})
		close(start)
		wg.Wait()

		var made []string
		for i, err := range snapErrs {
			switch errs.CodeOf(err) {
			case "":
				made = append(made, snaps[i])
			case errs.NotFound:
			default:
				t.Fatalf("round %d: Snapshot racing a Delete of its origin failed with %v; want success or NotFound", round, err)
			}
		}
		switch code := errs.CodeOf(delErr); {
		case delErr == nil && len(made) == 0:
			outcomes["delete won"]++
		case code == errs.Conflict && len(made) > 0:
			outcomes["snapshots won"]++
		case delErr == nil:
			t.Fatalf("round %d: Delete of the origin succeeded, and so did Snapshots %v of it, which are left without their origin", round, made)
		default:
			t.Fatalf("round %d: Delete = %v with snapshots %v made; want success with none made or a conflict with some", round, delErr, made)
		}
		for _, be := range []backend.Backend{a, b} {
			vols, err := be.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vols {
				if v.Origin == "" {
					continue
				}
				if _, err := be.Get(ctx, v.Origin); err != nil {
					t.Fatalf("round %d: snapshot %s has lost its origin %s: %v", round, v.ID, v.Origin, err)
				}
			}
		}
		for _, id := range append(made, origin) {
			if err := other.Delete(ctx, id); err != nil {
				t.Fatalf("cleaning up after round %d: %v", round, err)
			}
		}
	}
	wantList(t, a)
	wantList(t, b)
	var seen []string
	for k, n := range outcomes {
		seen = append(seen, fmt.Sprintf("%s %d times", k, n))
	}
	slices.Sort(seen)
	t.Logf("in %d rounds: %s", rounds, strings.Join(seen, ", "))
}

// wantCreated checks that v.Created lies between before and after, the
// times around the call that made v, give or take clockSlack.
func wantCreated(t *testing.T, what string, v backend.Volume, before, after time.Time) {
	t.Helper()
	if v.Created.Before(before.Add(-clockSlack)) || v.Created.After(after.Add(clockSlack)) {
		t.Errorf("%s: the volume's Created is %v; want a time between %v and %v, when it was made",
			what, v.Created, before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano))
	}
}

func wantCode(t *testing.T, what string, err error, code errs.Code) {
	t.Helper()
	if got := errs.CodeOf(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// wantList checks that List returns exactly want, compared on what a
// reconciler reads: id, size and origin.
func wantList(t *testing.T, b backend.Backend, want ...backend.Volume) {
	t.Helper()
	got, err := b.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	key := func(v backend.Volume) string { return fmt.Sprintf("%s/%d/%s", v.ID, v.Size, v.Origin) }
	var g, w []string
	for _, v := range got {
		g = append(g, key(v))
	}
	for _, v := range want {
		w = append(w, key(v))
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("List = %v, want %v", g, w)
	}
}

func get(t *testing.T, b backend.Backend, id string) backend.Volume {
	t.Helper()
	v, err := b.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return v
}

// rawImage returns a raw image file of n bytes of random data.
func rawImage(t *testing.T, n int) string {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "image.raw")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// read returns a volume's whole content as a hypervisor sees it. Volumes
// larger than a few GiB must be read with readRange instead.
func read(t *testing.T, b backend.Backend, id string) []byte {
	t.Helper()
	loc := locate(t, b, id)
	out := filepath.Join(t.TempDir(), "content.raw")
	qemuImg(t, "convert", "-U", "-f", loc.Format, "-O", "raw", loc.Spec(), out)
	return readFile(t, out)
}

// wantPattern checks that n bytes of a volume from offset off all hold
// pattern, reading only that range.
func wantPattern(t *testing.T, b backend.Backend, id string, pattern byte, off int64, n int) {
	t.Helper()
	qemuIO(t, locate(t, b, id), fmt.Sprintf("read -P %d %d %d", pattern, off, n))
}

// write fills n bytes at offset off of a volume with byte pattern.
func write(t *testing.T, b backend.Backend, id string, pattern byte, off int64, n int) {
	t.Helper()
	qemuIO(t, locate(t, b, id), fmt.Sprintf("write -P %d %d %d", pattern, off, n))
}

func locate(t *testing.T, b backend.Backend, id string) backend.Location {
	t.Helper()
	loc, err := b.Locate(t.Context(), id)
	if err != nil {
		t.Fatalf("Locate %s: %v", id, err)
	}
	if loc.Spec() == "" || loc.Format == "" {
		t.Fatalf("Locate %s = %+v: no path, URL or format", id, loc)
	}
	return loc
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(t.Context(), "qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v: %s", args, err, out)
	}
}

func qemuIO(t *testing.T, loc backend.Location, command string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "qemu-io", "-f", loc.Format, "-c", command, loc.Spec()).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("failed")) {
		t.Fatalf("qemu-io %q: %v: %s", command, err, out)
	}
}

// corruptL2 damages the second data cluster's entry in a qcow2 image's first
// L2 table: qemu-img info still accepts the image, but reading it fails
// half-way, after an import has started writing.
func corruptL2(t *testing.T, name string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf [8]byte
	readU64 := func(off int64) uint64 {
		if _, err := f.ReadAt(buf[:], off); err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint64(buf[:])
	}
	l1 := readU64(40) // l1_table_offset in the header
	l2 := readU64(int64(l1)) & 0x00fffffffffffe00
	binary.BigEndian.PutUint64(buf[:], 1<<63|0x12345) // "copied", unaligned
	if _, err := f.WriteAt(buf[:], int64(l2)+8); err != nil {
		t.Fatal(err)
	}
}
