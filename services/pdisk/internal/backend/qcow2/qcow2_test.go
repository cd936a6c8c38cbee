package qcow2_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/backendtest"
	"stratuslab.dev/services/pdisk/internal/backend/qcow2"
)

func newBackend(t testing.TB) *qcow2.Backend {
	t.Helper()
	b, err := qcow2.New(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContract(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend { return newBackend(t) })
}

// TestListIgnoresStrangers checks that files a reconciler must not take for
// volumes (temporaries, foreign names, damaged files) stay out of List, and
// that damaged volume files are reported rather than skipped.
func TestListIgnoresStrangers(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	id := backendtest.NewID(t)
	if _, err := b.Create(t.Context(), id, 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".tmp-" + id + "-0011223344556677", "notes.txt", strings.ToUpper(id) + ".qcow2", id + ".raw"} {
		if err := os.WriteFile(filepath.Join(b.Dir(), name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vols, err := b.List(t.Context())
	if err != nil || len(vols) != 1 || vols[0].ID != id {
		t.Fatalf("List = %+v, %v; want only %s", vols, err, id)
	}
	damaged := backendtest.NewID(t)
	if err := os.WriteFile(filepath.Join(b.Dir(), damaged+".qcow2"), []byte("not qcow2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.List(t.Context()); errs.CodeOf(err) != errs.Internal {
		t.Errorf("List with a damaged volume file = %v; want an internal error", err)
	}
	if _, err := b.Get(t.Context(), damaged); errs.CodeOf(err) != errs.Internal {
		t.Errorf("Get of a damaged volume file = %v; want an internal error", err)
	}
}

func TestRemoveTemp(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	old := filepath.Join(b.Dir(), ".tmp-old")
	fresh := filepath.Join(b.Dir(), ".tmp-fresh")
	for _, name := range []string{old, fresh} {
		if err := os.WriteFile(name, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, time.Time{}, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	removed, err := b.RemoveTemp(t.Context(), time.Hour)
	if err != nil || len(removed) != 1 || removed[0] != ".tmp-old" {
		t.Errorf("RemoveTemp = %v, %v; want [.tmp-old]", removed, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("RemoveTemp removed a file being written: %v", err)
	}
}

// TestSnapshotBackingIsRelative checks that overlays name their origin
// relative to the directory, so a data directory can be moved or mounted
// elsewhere on a VM host.
func TestSnapshotBackingIsRelative(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	origin, snap := backendtest.NewID(t), backendtest.NewID(t)
	if _, err := b.Create(t.Context(), origin, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Snapshot(t.Context(), snap, origin); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(b.Dir(), snap+".qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data[:4096]), b.Dir()) || !strings.Contains(string(data[:4096]), origin+".qcow2") {
		t.Errorf("the snapshot's header does not name its origin by a relative name")
	}
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(b.Dir(), moved); err != nil {
		t.Fatal(err)
	}
	m, err := qcow2.New(moved)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := m.Get(t.Context(), snap); err != nil || v.Origin != origin {
		t.Errorf("after moving the directory Get = %+v, %v", v, err)
	}
}
