package controller_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/controller"
	"stratuslab.dev/services/pdisk/internal/settings"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// TestQuotaVolumes: concurrent creates through two replicas never pass a
// quota of 5 volumes.
func TestQuotaVolumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	e.set(func(s *settings.Settings) { s.Quota = settings.Quota{Volumes: 5} })

	const n = 20
	ids := make([]string, n)
	cmds := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		cmds[i] = e.start(cimiCommand(alice, subject.VerbCimiCreate, ids[i], `{"size": 1}`))
	}
	var made []string
	for i, c := range cmds {
		switch o := e.wait(c); {
		case o.ok():
			made = append(made, ids[i])
		case o.code != errs.Conflict || !strings.Contains(o.message, "Quota exceeded"):
			t.Errorf("create %d: %s %q; want conflict, quota exceeded", i, o.code, o.message)
		}
	}
	t.Logf("commands handled: %s %d, %s %d", e.replicas[0].name, e.replicas[0].handled.Load(), e.replicas[1].name, e.replicas[1].handled.Load())
	if len(made) != 5 {
		t.Fatalf("%d creates succeeded; want 5", len(made))
	}
	slices.Sort(made)
	if got := slices.Sorted(maps.Keys(e.ledger("alice"))); !slices.Equal(got, made) {
		t.Errorf("alice's ledger: %v; want %v", got, made)
	}
	if got := e.stored(); !slices.Equal(got, made) {
		t.Errorf("storage: %v; want %v", got, made)
	}
	for _, id := range ids {
		if (e.doc(id) != nil) != slices.Contains(made, id) {
			t.Errorf("volume %s: document %v, created %v", id, e.doc(id) != nil, slices.Contains(made, id))
		}
	}

	// Other users have their own quota.
	e.create(bob, `{"size": 1}`)

	// One deleted frees one slot, once.
	if o := e.cimi(alice, subject.VerbCimiDelete, made[0], ""); !o.ok() {
		t.Fatalf("delete: %s %q", o.code, o.message)
	}
	e.create(alice, `{"size": 1}`)
	if o := e.cimi(alice, subject.VerbCimiCreate, uuid.NewString(), `{"size": 1}`); o.code != errs.Conflict {
		t.Errorf("a sixth volume: %s %q", o.code, o.message)
	}
	// Volatile disks count too.
	o := e.typed(alice, subject.CmdVolumeCreate, &volumev1.CreateVolume{Uuid: uuid.NewString(), SizeGib: 1, VolatileForMachineUuid: uuid.NewString()})
	if o.code != errs.Conflict || !strings.Contains(o.message, "Quota exceeded") {
		t.Errorf("a volatile disk past the quota: %s %q", o.code, o.message)
	}
}

// TestQuotaAcrossReplicas races the create hooks of two controllers,
// which share nothing but the store, on one user's quota.
func TestQuotaAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	e.set(func(s *settings.Settings) { s.Quota = settings.Quota{Volumes: 3, GiB: 100} })
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	const n = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		made []string
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := uuid.NewString()
			kind := e.replicas[i%2].ctl.Kind()
			body := map[string]any{"size": json.Number("2")}
			_, err := kind.New(context.Background(), who, volume.ID(id), body)
			switch {
			case err == nil:
				mu.Lock()
				made = append(made, id)
				mu.Unlock()
			case errs.CodeOf(err) != errs.Conflict:
				t.Errorf("create %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if len(made) != 3 {
		t.Fatalf("%d creates succeeded; want 3", len(made))
	}
	slices.Sort(made)
	if got := slices.Sorted(maps.Keys(e.ledger("alice"))); !slices.Equal(got, made) {
		t.Errorf("alice's ledger: %v; want %v", got, made)
	}
	if got := e.stored(); !slices.Equal(got, made) {
		t.Errorf("storage: %v; want %v", got, made)
	}
}

func TestQuotaGiB(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.set(func(s *settings.Settings) {
		s.Quota = settings.Quota{GiB: 3}
		s.Quotas = map[string]settings.Quota{"bob": {Volumes: 1}}
	})
	big := e.create(alice, `{"size": 2}`)
	if o := e.cimi(alice, subject.VerbCimiCreate, uuid.NewString(), `{"size": 2}`); o.code != errs.Conflict || !strings.Contains(o.message, "Quota exceeded") {
		t.Errorf("past the GiB quota: %s %q", o.code, o.message)
	}
	small := e.create(alice, `{"size": 1}`)
	three := uint32(3)
	if o := e.typed(alice, subject.CmdVolumeUpdate, &volumev1.UpdateVolume{Uuid: big, SizeGib: &three}); o.code != errs.Conflict {
		t.Errorf("growing past the GiB quota: %s %q", o.code, o.message)
	}
	if bv, _ := e.storage(big); bv.Size != 2<<30 {
		t.Errorf("a refused growth grew the storage to %d bytes", bv.Size)
	}
	if o := e.cimi(alice, subject.VerbCimiDelete, small, ""); !o.ok() {
		t.Fatalf("delete: %s %q", o.code, o.message)
	}
	if o := e.typed(alice, subject.CmdVolumeUpdate, &volumev1.UpdateVolume{Uuid: big, SizeGib: &three}); !o.ok() {
		t.Errorf("growing within the GiB quota: %s %q", o.code, o.message)
	}
	if got := e.ledger("alice"); len(got) != 1 || got[big] != 3 {
		t.Errorf("alice's ledger: %v", got)
	}
	// bob's own quota: one volume of any size.
	e.create(bob, `{"size": 10}`)
	if o := e.cimi(bob, subject.VerbCimiCreate, uuid.NewString(), `{"size": 1}`); o.code != errs.Conflict {
		t.Errorf("bob's second volume: %s %q", o.code, o.message)
	}
}

// TestLedgerOnlyUnderQuota: users without a quota have no ledger (so a
// create costs no ledger write); when a quota starts to apply, the ledger
// starts from what the user already holds, and the quota counts it.
func TestLedgerOnlyUnderQuota(t *testing.T) {
	e := newEnv(t, 1)
	hasLedger := func(user string) bool {
		_, err := e.usage.Get(context.Background(), controller.UsageKind+"/"+user)
		return err == nil
	}
	e.set(func(s *settings.Settings) { s.Quota = settings.Quota{} })
	for range 3 {
		e.create(alice, `{"size": 2}`)
	}
	if hasLedger("alice") {
		t.Fatalf("alice has no quota, yet a ledger: %v", e.ledger("alice"))
	}
	e.set(func(s *settings.Settings) { s.Quota = settings.Quota{Volumes: 4} })
	e.create(alice, `{"size": 1}`)
	if l := e.ledger("alice"); len(l) != 4 {
		t.Errorf("alice's ledger once a quota applies: %v, want her 4 volumes", l)
	}
	if o := e.cimi(alice, subject.VerbCimiCreate, uuid.NewString(), `{"size": 1}`); o.code != errs.Conflict || !strings.Contains(o.message, "Quota exceeded") {
		t.Errorf("a fifth volume under a quota of 4: %+v", o)
	}
	e.set(func(s *settings.Settings) { s.Quota = settings.Quota{} })
	e.create(alice, `{"size": 1}`)
	if hasLedger("alice") {
		t.Errorf("the quota is gone, the ledger stays: %v", e.ledger("alice"))
	}
}
