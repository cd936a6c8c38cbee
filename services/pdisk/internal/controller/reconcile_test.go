package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/controller"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// reconcile runs the first replica's reconciler.
func (e *env) reconcile() controller.Report {
	e.t.Helper()
	rep, err := e.r().ctl.Reconcile(context.Background())
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	return rep
}

// orphan makes storage no document names, as a create that crashed
// before storing its document leaves; it returns its birth time.
func (e *env) orphan(id string) time.Time {
	e.t.Helper()
	bv, err := e.disk.Create(context.Background(), id, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	return bv.Created
}

func TestReconcileOrphanStorage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	named := e.create(alice, `{"size": 1}`)
	old, young := uuid.NewString(), uuid.NewString()
	bornOld := e.orphan(old)
	var bornYoung time.Time
	for bornYoung.IsZero() || !bornYoung.After(bornOld) {
		if !bornYoung.IsZero() {
			if err := e.disk.Delete(context.Background(), young); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond) // distinct birth times
		bornYoung = e.orphan(young)
	}
	// The clock stands where old is just past the grace and young not yet.
	grace := e.settings.Load().OrphanGrace.D()
	e.clock.Freeze(bornOld.Add(grace).Add(bornYoung.Sub(bornOld) / 2))

	rep := e.reconcile()
	want := []string{fmt.Sprintf("removed storage %s (1 GiB) that no document names", old)}
	if !slices.Equal(rep.Repairs, want) || rep.Volumes != 1 || rep.Stored != 3 || rep.Foreign != 0 {
		t.Errorf("report: %+v; want repairs %q", rep, want)
	}
	if got, want := e.stored(), sortedOf(named, young); !slices.Equal(got, want) {
		t.Errorf("storage left: %v; want %v", got, want)
	}
	// Once old enough, young goes too; nothing else does.
	e.clock.Advance(bornYoung.Sub(bornOld))
	if rep := e.reconcile(); len(rep.Repairs) != 1 {
		t.Errorf("second reconciliation: %+v", rep)
	}
	if got := e.stored(); !slices.Equal(got, []string{named}) {
		t.Errorf("storage left: %v; want only %s", got, named)
	}
	if rep := e.reconcile(); len(rep.Repairs) != 0 {
		t.Errorf("third reconciliation repaired: %+v", rep)
	}
}

// TestReconcileCreateInFlight: a create between its reservation and its
// document (here: the create hook run alone) keeps both its young
// storage and its reservation, or its owner could pass the quota.
func TestReconcileCreateInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.create(alice, `{"size": 1}`)
	id := uuid.NewString()
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	if _, err := e.r().ctl.Kind().New(context.Background(), who, volume.ID(id), map[string]any{"size": json.Number("2")}); err != nil {
		t.Fatal(err)
	}
	if rep := e.reconcile(); len(rep.Repairs) != 0 {
		t.Errorf("repairs of a create in flight: %q", rep.Repairs)
	}
	if _, ok := e.storage(id); !ok {
		t.Error("the storage of a create in flight was removed")
	}
	if got := e.ledger("alice"); got[id] != 2 || len(got) != 2 {
		t.Errorf("alice's ledger: %v; want the create in flight counted", got)
	}
	// Never finished: once past the grace, storage and reservation go.
	e.clock.Advance(e.settings.Load().OrphanGrace.D())
	rep := e.reconcile()
	if len(rep.Repairs) != 2 {
		t.Errorf("repairs of an abandoned create: %q", rep.Repairs)
	}
	if _, ok := e.storage(id); ok {
		t.Error("the storage of an abandoned create is still there")
	}
	if got := e.ledger("alice"); len(got) != 1 {
		t.Errorf("alice's ledger: %v; want the abandoned create gone", got)
	}
}

func TestReconcileLostStorage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	lost := e.create(alice, `{"size": 2}`)
	kept := []string{e.create(alice, `{"size": 1}`), e.create(bob, `{"size": 1}`)}
	if o := e.cimi(alice, subject.VerbCimiEdit, lost, `{"tag": "LOST"}`, "tag"); !o.ok() {
		t.Fatal(o.message)
	}
	if err := os.Remove(filepath.Join(e.dataDir, lost+".qcow2")); err != nil {
		t.Fatal(err)
	}
	rep := e.reconcile()
	want := []string{fmt.Sprintf("removed document %s (owner %q, 2 GiB, AVAILABLE) whose storage is gone", lost, "alice")}
	if !slices.Equal(rep.Repairs, want) || rep.Foreign != 0 {
		t.Errorf("report: %+v; want repairs %q", rep, want)
	}
	if e.doc(lost) != nil {
		t.Error("the document of lost storage is still there")
	}
	if got := e.ledger("alice"); len(got) != 1 || got[kept[0]] != 1 {
		t.Errorf("alice's ledger: %v; want only %s", got, kept[0])
	}
	if got := e.usageOf(lost, subject.EvtVolumeDeleted); len(got) != 1 || got[0].size != 2 {
		t.Errorf("VolumeDeleted events: %+v", got)
	}
	for _, id := range kept {
		if e.doc(id) == nil {
			t.Errorf("%s was removed", id)
		}
	}
}

func TestReconcileOriginCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	img := serveImage(t, 2<<20, 64<<10)
	live := uuid.NewString()
	if o := e.typed(alice, subject.CmdVolumeGetImage, getImage(img, "IMG", live, "")); !o.ok() {
		t.Fatalf("get image: %s %q", o.code, o.message)
	}
	origin := volume.OriginUUID("IMG")
	// The count written wrong (a crash between the snapshot and its count).
	_, err := e.r().vols.Update(context.Background(), volume.ID(origin), func(d store.Document) (json.RawMessage, error) {
		v, err := volume.Decode(d.Body)
		if err != nil {
			return nil, err
		}
		v.Count = 5
		return v.Encode()
	})
	if err != nil {
		t.Fatal(err)
	}
	rep := e.reconcile()
	want := []string{fmt.Sprintf("set the snapshot count of origin %s from 5 to 1", origin)}
	if !slices.Equal(rep.Repairs, want) {
		t.Errorf("repairs: %q; want %q", rep.Repairs, want)
	}
	if o := e.mustDoc(origin); o.Count != 1 {
		t.Errorf("origin count: %d; want 1", o.Count)
	}
	if rep := e.reconcile(); len(rep.Repairs) != 0 {
		t.Errorf("second reconciliation repaired: %q", rep.Repairs)
	}
}

// TestReconcileForeignStorage: a replica looking at the wrong storage
// repairs nothing.
func TestReconcileForeignStorage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	var ids []string
	for range 5 {
		ids = append(ids, e.create(alice, `{"size": 1}`))
	}
	// The data directory is another one (an unmounted share, say).
	away := t.TempDir()
	move := func(from, to string) {
		t.Helper()
		for _, id := range ids {
			if err := os.Rename(filepath.Join(from, id+".qcow2"), filepath.Join(to, id+".qcow2")); err != nil {
				t.Fatal(err)
			}
		}
	}
	move(e.dataDir, away)
	rep := e.reconcile()
	if rep.Foreign != 5 || len(rep.Repairs) != 0 || rep.Volumes != 5 || rep.Stored != 0 {
		t.Errorf("report: %+v; want 5 foreign and no repairs", rep)
	}
	for _, id := range ids {
		if e.doc(id) == nil {
			t.Errorf("%s was removed", id)
		}
	}
	if got := e.ledger("alice"); len(got) != 5 {
		t.Errorf("alice's ledger: %v", got)
	}
	move(away, e.dataDir)
	if rep := e.reconcile(); rep.Foreign != 0 || len(rep.Repairs) != 0 {
		t.Errorf("report with the right storage: %+v", rep)
	}

	// Likewise storage that mostly no document names, however old.
	for range 6 {
		e.orphan(uuid.NewString())
	}
	e.clock.Advance(e.settings.Load().OrphanGrace.D() + time.Minute)
	if rep := e.reconcile(); rep.Foreign != 6 || len(rep.Repairs) != 0 {
		t.Errorf("report with mostly unnamed storage: %+v", rep)
	}
	if got := e.stored(); len(got) != 11 {
		t.Errorf("storage: %d volumes; want all 11 kept", len(got))
	}
}

func TestReconcileLedgers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	a1, a2 := e.create(alice, `{"size": 1}`), e.create(alice, `{"size": 3}`)
	b1 := e.create(bob, `{"size": 2}`)
	ctx := context.Background()
	put := func(user string, vols map[string]int64) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"user": user, "volumes": vols})
		id := controller.UsageKind + "/" + user
		if _, err := e.r().usage.Update(ctx, id, func(store.Document) (json.RawMessage, error) { return body, nil }); err == nil {
			return
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := e.r().usage.Create(ctx, id, body); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", map[string]int64{a1: 1, uuid.NewString(): 7})
	put("carol", map[string]int64{uuid.NewString(): 1})

	rep := e.reconcile()
	want := []string{"rebuilt the quota ledger of alice: 2 volumes", "rebuilt the quota ledger of carol: 0 volumes"}
	if !slices.Equal(rep.Repairs, want) {
		t.Errorf("repairs: %q; want %q", rep.Repairs, want)
	}
	for user, want := range map[string]map[string]int64{"alice": {a1: 1, a2: 3}, "bob": {b1: 2}, "carol": {}} {
		if got := e.ledger(user); !maps.Equal(got, want) {
			t.Errorf("%s's ledger: %v; want %v", user, got, want)
		}
	}
	if rep := e.reconcile(); len(rep.Repairs) != 0 {
		t.Errorf("second reconciliation repaired: %q", rep.Repairs)
	}
}

func sortedOf(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
