package qcow2_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// snapshotterEnv, when set to a data directory, turns the test binary
// into the helper process of TestSnapshotDeleteAcrossProcesses.
const snapshotterEnv = "PDISK_QCOW2_TEST_SNAPSHOTTER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(snapshotterEnv); dir != "" {
		os.Exit(snapshotter(dir))
	}
	os.Exit(m.Run())
}

func TestContract(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend { return newBackend(t) })
}

// TestContractShared runs the shared-storage contract on two backends over
// one directory, as two pdisk processes would open it.
func TestContractShared(t *testing.T) {
	t.Parallel()
	backendtest.RunShared(t, func(t *testing.T) (backend.Backend, backend.Backend) {
		a := newBackend(t)
		b, err := qcow2.New(a.Dir())
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

// TestSnapshotDeleteAcrossProcesses races Deletes of origins in this
// process against Snapshots of them in another, the case flock guards.
func TestSnapshotDeleteAcrossProcesses(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), snapshotterEnv+"="+b.Dir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("snapshotter process: %v", err)
		}
	}()
	replies := bufio.NewScanner(stdout)
	ctx := t.Context()
	won := map[bool]int{}
	for round := range 40 {
		origin, snap := backendtest.NewID(t), backendtest.NewID(t)
		if _, err := b.Create(ctx, origin, 1); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(stdin, snap, origin)
		delErr := b.Delete(ctx, origin)
		if !replies.Scan() {
			t.Fatalf("the snapshotter process stopped: %v", replies.Err())
		}
		reply := replies.Text()
		switch {
		case delErr == nil && reply == string(errs.NotFound):
			won[true]++
		case errs.CodeOf(delErr) == errs.Conflict && reply == "ok":
			won[false]++
			for _, id := range []string{snap, origin} {
				if err := b.Delete(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
		default:
			t.Fatalf("round %d: Delete here = %v, Snapshot in the other process = %s; want a conflict or not-found", round, delErr, reply)
		}
	}
	t.Logf("the Delete won %d times, the Snapshot %d times", won[true], won[false])
	if names := dirNames(t, b.Dir()); len(names) != 0 {
		t.Errorf("after the rounds the directory holds %v; want nothing, not even lock files", names)
	}
}

// snapshotter serves TestSnapshotDeleteAcrossProcesses: for each line "id
// origin" on its input it snapshots origin as id and answers "ok" or the
// error's code.
func snapshotter(dir string) int {
	b, err := qcow2.New(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		id, origin, _ := strings.Cut(lines.Text(), " ")
		reply := "ok"
		if _, err := b.Snapshot(context.Background(), id, origin); err != nil {
			reply = string(errs.CodeOf(err))
			if reply == "" {
				reply = err.Error()
			}
		}
		fmt.Println(reply)
	}
	return 0
}

// TestLockFiles checks that per-volume lock files never show as volumes,
// go with their volume, and that strays are swept only when no process
// holds them and their volume is gone.
func TestLockFiles(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	ctx := t.Context()
	origin, snap := backendtest.NewID(t), backendtest.NewID(t)
	if _, err := b.Create(ctx, origin, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Snapshot(ctx, snap, origin); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir(), ".lock-"+origin)); err != nil {
		t.Errorf("Snapshot left no lock file for its origin: %v", err)
	}
	if vols, err := b.List(ctx); err != nil || len(vols) != 2 {
		t.Errorf("List = %+v, %v; want the origin and the snapshot only", vols, err)
	}
	if err := b.Delete(ctx, origin); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("Delete of an origin with a snapshot = %v; want a conflict", err)
	}
	for _, id := range []string{snap, origin} {
		if err := b.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if names := dirNames(t, b.Dir()); len(names) != 0 {
		t.Errorf("after deleting every volume the directory holds %v; want nothing", names)
	}

	live, gone, held := backendtest.NewID(t), backendtest.NewID(t), backendtest.NewID(t)
	if _, err := b.Create(ctx, live, 1); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{live, gone, held} {
		if err := os.WriteFile(filepath.Join(b.Dir(), ".lock-"+id), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(b.Dir(), ".lock-"+held))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	removed, err := b.RemoveTemp(ctx, time.Hour)
	if err != nil || len(removed) != 1 || removed[0] != ".lock-"+gone {
		t.Errorf("RemoveTemp = %v, %v; want only the lock file of the missing, unheld volume", removed, err)
	}
	want := []string{".lock-" + held, ".lock-" + live, live + ".qcow2"}
	slices.Sort(want)
	if names := dirNames(t, b.Dir()); !slices.Equal(names, want) {
		t.Errorf("after RemoveTemp the directory holds %v; want %v", names, want)
	}
	if vols, err := b.List(ctx); err != nil || len(vols) != 1 {
		t.Errorf("List = %+v, %v; want one volume", vols, err)
	}
}

// TestDeleteWaitsForSnapshotLock checks that a Delete does not go ahead
// while another process holds its volume's lock as a Snapshot would, and
// gives up when its context ends.
func TestDeleteWaitsForSnapshotLock(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	id := backendtest.NewID(t)
	if _, err := b.Create(t.Context(), id, 1); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(b.Dir(), ".lock-"+id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := b.Delete(ctx, id); err == nil || ctx.Err() == nil {
		t.Errorf("Delete while a snapshot lock is held = %v; want it to wait until its context ends", err)
	}
	if _, err := b.Get(t.Context(), id); err != nil {
		t.Errorf("the volume went while its lock was held: %v", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(t.Context(), id); err != nil {
		t.Errorf("Delete once the lock is free: %v", err)
	}
}

// TestCreatedIsBirthTime checks that Created does not move when the volume
// is written, where the filesystem records birth times.
func TestCreatedIsBirthTime(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, b.Dir(), 0, unix.STATX_BTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		t.Skipf("the filesystem of %s records no birth times, so Created is the modification time", b.Dir())
	}
	id := backendtest.NewID(t)
	v, err := b.Create(t.Context(), id, 1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // past the filesystem clock's tick
	if out, err := exec.CommandContext(t.Context(), "qemu-io", "-f", "qcow2", "-c", "write 0 64k", filepath.Join(b.Dir(), id+".qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	got, err := b.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(filepath.Join(b.Dir(), id+".qcow2"))
	if !got.Created.Equal(v.Created) || !st2.ModTime().After(v.Created) {
		t.Errorf("after a write Created is %v (modified %v); want %v, the time Create reported", got.Created, st2.ModTime(), v.Created)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
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
	for _, name := range []string{".tmp-" + id + "-0011223344556677", ".lock-" + id, "notes.txt", strings.ToUpper(id) + ".qcow2", id + ".raw"} {
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
