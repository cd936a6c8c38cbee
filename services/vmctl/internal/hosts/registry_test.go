package hosts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/vmctl/internal/hosts"
)

// Three scheduler replicas place 1000 machines at once on ten hosts whose
// capacity is exactly 1000 such machines (CPU binds on some, memory on
// others): every placement succeeds, every host ends exactly full and
// never over its limits, and each machine sits once, where Place said.
// Then the cloud is full: more placements fail, saying so.
func TestConcurrentPlacement(t *testing.T) {
	e := newEnv(t)
	e.setRatios(2, 1)
	regs := []*hosts.Registry{e.registry(), e.registry(), e.registry()}
	const cpu, mem = 1, 512
	slots := []int{60, 70, 80, 90, 100, 100, 110, 120, 130, 140} // sums to 1000
	total := 0
	for i, n := range slots {
		id := fmt.Sprintf("node-%d", i)
		if i%2 == 0 {
			e.register(regs[i%3], id, n/2, int64(n*mem)*4) // n CPU slots at ratio 2, memory to spare
		} else {
			e.register(regs[i%3], id, n, int64(n*mem)) // 2n CPU slots, n memory slots
		}
		total += n
	}
	// Each replica sees every host before placing, as one that has been
	// running a while would.
	for _, r := range regs {
		waitHosts(t, r, len(slots))
	}

	ctx := context.Background()
	var wg sync.WaitGroup
	placed := make([]string, total)
	failed := make([]error, total)
	start := time.Now()
	for i := range total {
		wg.Go(func() {
			placed[i], failed[i] = regs[i%3].Place(ctx, fmt.Sprintf("vm-%04d", i), cpu, mem)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d placements by %d replicas on %d hosts in %v (%.0f/s)", total, len(regs), len(slots), elapsed, float64(total)/elapsed.Seconds())
	for i, err := range failed {
		if err != nil {
			t.Fatalf("placing vm-%04d: %v", i, err)
		}
	}
	where := map[string]string{} // machine → host, from the documents
	for i, n := range slots {
		id := fmt.Sprintf("node-%d", i)
		s := e.checkCapacity(id, 2, 1)
		if len(s.Reservations) != n {
			t.Errorf("host %s holds %d machines, want %d (full)", id, len(s.Reservations), n)
		}
		for m := range s.Reservations {
			if other, ok := where[m]; ok {
				t.Errorf("machine %s is reserved on both %s and %s", m, other, id)
			}
			where[m] = id
		}
	}
	for i, h := range placed {
		if m := fmt.Sprintf("vm-%04d", i); where[m] != h {
			t.Errorf("Place(%s) = %s, but the documents put it on %q", m, h, where[m])
		}
	}

	// Full: every further placement fails, whichever replica tries.
	for _, r := range regs {
		waitAllocated(t, r, total)
	}
	for i := range 30 {
		wg.Go(func() {
			_, err := regs[i%3].Place(ctx, fmt.Sprintf("extra-%d", i), cpu, mem)
			if errs.CodeOf(err) != errs.Conflict || !strings.Contains(errs.MessageOf(err), "the 10 hosts in service are full") {
				t.Errorf("placing on a full cloud: %v, want a conflict saying the hosts are full", err)
			}
		})
	}
	wg.Wait()
}

// waitHosts waits until r lists n hosts (its index follows the bucket).
func waitHosts(t *testing.T, r *hosts.Registry, n int) {
	t.Helper()
	waitFor(t, func() bool {
		all, err := r.List(context.Background())
		return err == nil && len(all) == n
	})
}

// waitAllocated waits until r's view counts cpus allocated CPUs.
func waitAllocated(t *testing.T, r *hosts.Registry, cpus int) {
	t.Helper()
	waitFor(t, func() bool {
		all, err := r.List(context.Background())
		if err != nil {
			return false
		}
		n := 0
		for _, h := range all {
			n += h.AllocatedCPUs
		}
		return n == cpus
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// place places machine and fails the test on an error.
func place(t *testing.T, r *hosts.Registry, machine string, cpu int, mem int64) string {
	t.Helper()
	h, err := r.Place(context.Background(), machine, cpu, mem)
	if err != nil {
		t.Fatalf("Place(%s, %d CPU, %d MiB): %v", machine, cpu, mem, err)
	}
	return h
}

// refused checks that placing machine fails with a conflict whose message
// holds want.
func refused(t *testing.T, r *hosts.Registry, machine string, cpu int, mem int64, want string) {
	t.Helper()
	h, err := r.Place(context.Background(), machine, cpu, mem)
	if errs.CodeOf(err) != errs.Conflict || !strings.Contains(errs.MessageOf(err), want) {
		t.Fatalf("Place(%s, %d CPU, %d MiB) = %q, %v; want a conflict saying %q", machine, cpu, mem, h, err, want)
	}
}

func TestOverCommitRatio(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.registry()
	e.register(r, "node", 4, 4096)
	for i := range 4 {
		place(t, r, fmt.Sprintf("vm-%d", i), 1, 512)
	}
	refused(t, r, "vm-4", 1, 512, "No host can take a machine of 1 CPU and 512 MiB: the only host in service is full, with at most 0 CPU and 2048 MiB free on any one; retry later or choose a smaller machine type.")

	// The ratio is read at every placement: twice the CPUs now.
	e.setRatios(2, 1)
	for i := 4; i < 8; i++ {
		place(t, r, fmt.Sprintf("vm-%d", i), 1, 512)
	}
	refused(t, r, "vm-8", 1, 512, "full")
	e.checkCapacity("node", 2, 1)
	if s := e.stored("node"); s.AllocatedCPUs != 8 || s.AllocatedMemoryMiB != 4096 {
		t.Fatalf("allocated %d CPU and %d MiB, want 8 and 4096", s.AllocatedCPUs, s.AllocatedMemoryMiB)
	}

	// Memory over-commits the same way, rounding down.
	e.setRatios(3, 1.3) // 5324.8 MiB
	place(t, r, "vm-8", 1, 1228)
	refused(t, r, "vm-9", 1, 1, "at most 3 CPU and 0 MiB free")

	// Lowering a ratio below what is reserved keeps the machines and
	// refuses new ones.
	e.setRatios(1, 1)
	refused(t, r, "vm-9", 1, 1, "at most 0 CPU and 0 MiB free")
	if s := e.stored("node"); len(s.Reservations) != 9 {
		t.Fatalf("%d reservations after lowering the ratio, want 9", len(s.Reservations))
	}
	// A ratio that is not positive counts as 1.
	e.setRatios(0, -1)
	refused(t, r, "vm-9", 1, 1, "full")
}

func TestSpread(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.registry()
	e.register(r, "big", 16, 16384)
	e.register(r, "small", 4, 4096)
	// Least loaded first (as a share of each host's capacity), at random
	// only among hosts within 10 points of the least loaded: the 4-CPU
	// host gets its second machine only when the 16-CPU one holds 7 or 8.
	for i := range 10 {
		place(t, r, fmt.Sprintf("vm-%d", i), 1, 512)
	}
	big, small := len(e.stored("big").Reservations), len(e.stored("small").Reservations)
	if big+small != 10 || big < 8 || small < 1 {
		t.Errorf("spreading put %d machines on the 16-CPU host and %d on the 4-CPU one, want 8 and 2 or 9 and 1", big, small)
	}
}

func TestMaintenance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.registry()
	ctx := context.Background()
	e.register(r, "a", 64, 65536)
	e.register(r, "b", 64, 65536)
	onA := ""
	for i := 0; onA == ""; i++ {
		m := fmt.Sprintf("vm-%d", i)
		if place(t, r, m, 1, 512) == "a" {
			onA = m
		}
	}
	if err := r.SetMaintenance(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	before := e.stored("a")
	for i := range 6 {
		if h := place(t, r, fmt.Sprintf("new-%d", i), 1, 512); h != "b" {
			t.Fatalf("a machine went to %s, which is in maintenance", h)
		}
	}
	// The machines on a stay, and an agent restart keeps the flag.
	e.register(r, "a", 64, 65536)
	after := e.stored("a")
	if !after.Maintenance || !slices.Equal(slices.Sorted(maps.Keys(after.Reservations)), slices.Sorted(maps.Keys(before.Reservations))) {
		t.Fatalf("after maintenance and a new registration: %+v, want maintenance and the reservations of %+v", after, before)
	}
	// Placing a machine already on a is still answered with a.
	if h := place(t, r, onA, 1, 512); h != "a" {
		t.Fatalf("Place(%s) again = %s, want a", onA, h)
	}
	// Releasing from a host in maintenance works.
	if err := r.Release(ctx, "a", onA); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.stored("a").Reservations[onA]; ok {
		t.Fatalf("%s still reserved on a after Release", onA)
	}
	if err := r.SetMaintenance(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	refused(t, r, "vm-x", 1, 512, "all hosts are in maintenance")
	if err := r.SetMaintenance(ctx, "a", false); err != nil {
		t.Fatal(err)
	}
	if h := place(t, r, "vm-x", 1, 512); h != "a" {
		t.Fatalf("Place with b in maintenance = %s, want a", h)
	}
	// Setting the flag it already has writes nothing.
	_, rev := e.doc("b")
	if err := r.SetMaintenance(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	if _, again := e.doc("b"); again != rev {
		t.Errorf("SetMaintenance with no change wrote revision %d over %d", again, rev)
	}
	if err := r.SetMaintenance(ctx, "nowhere", true); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("SetMaintenance of an unknown host = %v, want not_found", err)
	}
}

func TestHeartbeatExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.registry()
	ctx := context.Background()
	e.register(r, "a", 8, 8192)
	e.register(r, "b", 8, 8192)
	// One machine on b, steered there by maintenance.
	maintain(e, r, "a")
	const onB = "vm-b"
	place(t, r, onB, 1, 512)
	if err := r.SetMaintenance(ctx, "a", false); err != nil {
		t.Fatal(err)
	}

	e.clock.Advance(20 * time.Second)
	if revived, err := r.Heartbeat(ctx, "a", 250, 3000, 2); err != nil || revived {
		t.Fatalf("a heartbeat of an available host: revived %v, %v", revived, err)
	}
	e.clock.Advance(20 * time.Second) // b silent for 40 s, a for 20 s
	// Place avoids b before anything marked it.
	for i := range 4 {
		if h := place(t, r, fmt.Sprintf("new-%d", i), 1, 256); h != "a" {
			t.Fatalf("a machine went to %s, whose last heartbeat is 40 s old", h)
		}
	}
	ids, err := r.Expire(ctx, 30*time.Second)
	if err != nil || !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("Expire = %v, %v; want [b]", ids, err)
	}
	s := e.stored("b")
	if s.State != hosts.Unavailable || !strings.Contains(s.StateMessage, "No heartbeat from the agent since 2026-03-01T12:00:00Z") {
		t.Fatalf("b after Expire: state %q, message %q", s.State, s.StateMessage)
	}
	if _, ok := s.Reservations[onB]; !ok {
		t.Fatalf("b lost the reservation of %s when it became unavailable", onB)
	}
	// Level-triggered: b is returned again while it stays silent, but not
	// written again.
	_, rev := e.doc("b")
	if ids, err := r.Expire(ctx, 30*time.Second); err != nil || !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("Expire again = %v, %v; want [b]", ids, err)
	}
	if _, again := e.doc("b"); again != rev {
		t.Errorf("a second Expire rewrote b (revision %d → %d)", rev, again)
	}
	all, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts.LoadTxt(all); !strings.Contains(got, "b.example.org") || !strings.HasSuffix(strings.TrimSpace(got), "err") {
		t.Errorf("load.txt does not show b in error:\n%s", got)
	}

	// Everything silent.
	e.clock.Advance(time.Minute)
	refused(t, r, "late", 1, 256, "no host is available: 2 hosts are registered but none has sent a heartbeat recently")
	if ids, err := r.Expire(ctx, 30*time.Second); err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("Expire = %v, %v; want [a b]", ids, err)
	}

	// b's agent comes back.
	if revived, err := r.Heartbeat(ctx, "b", 400, 4096, 1); err != nil || !revived {
		t.Fatalf("b's first heartbeat after it was lost: revived %v, %v; want revived", revived, err)
	}
	if s := e.stored("b"); s.State != hosts.Available || s.StateMessage != "" {
		t.Fatalf("b after a heartbeat: state %q, message %q", s.State, s.StateMessage)
	}
	if ids, err := r.Expire(ctx, 30*time.Second); err != nil || !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("Expire = %v, %v; want [a]", ids, err)
	}
	if h := place(t, r, "late", 1, 256); h != "b" {
		t.Fatalf("Place = %s, want b, the only host heart-beating", h)
	}
	got, err := r.Get(ctx, "b")
	if err != nil || got.FreeCPUPercent != 400 || got.FreeMemoryMiB != 4096 || got.RunningMachines != 1 || !got.LastHeartbeat.Equal(e.clock.Now()) {
		t.Fatalf("Get(b) = %+v, %v; want the last heartbeat's load at %v", got, err, e.clock.Now())
	}

	if _, err := r.Heartbeat(ctx, "unknown", 0, 0, 0); errs.CodeOf(err) != errs.NotFound || !strings.Contains(errs.MessageOf(err), "Host unknown is not registered") {
		t.Errorf("Heartbeat of an unknown host = %v, want not_found", err)
	}
	if _, err := r.Heartbeat(ctx, "a", -1, 0, 0); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("Heartbeat with a negative load = %v, want invalid", err)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	r1, r2 := e.registry(), e.registry()
	e.register(r1, "a", 4, 4096)
	e.register(r1, "b", 4, 4096)

	h := place(t, r1, "vm", 2, 1024)
	_, rev := e.doc(h)
	// Again, from this replica and from another one (a redelivered
	// command handled elsewhere).
	if again := place(t, r1, "vm", 2, 1024); again != h {
		t.Fatalf("Place again = %s, want %s", again, h)
	}
	waitAllocated(t, r2, 2)
	if again := place(t, r2, "vm", 2, 1024); again != h {
		t.Fatalf("Place again from another replica = %s, want %s", again, h)
	}
	if _, again := e.doc(h); again != rev {
		t.Errorf("placing a placed machine wrote revision %d over %d", again, rev)
	}
	if s := e.stored(h); s.AllocatedCPUs != 2 || s.AllocatedMemoryMiB != 1024 || len(s.Reservations) != 1 {
		t.Fatalf("after three placements of one machine: %+v", s)
	}

	// A restarted agent registers again: reservations stay.
	e.register(r2, h, 8, 8192)
	if s := e.stored(h); s.CPUs != 8 || s.AllocatedCPUs != 2 || len(s.Reservations) != 1 {
		t.Fatalf("after registering again: %+v", s)
	}

	for range 2 {
		if err := r1.Release(ctx, h, "vm"); err != nil {
			t.Fatal(err)
		}
		if s := e.stored(h); s.AllocatedCPUs != 0 || s.AllocatedMemoryMiB != 0 || len(s.Reservations) != 0 {
			t.Fatalf("after Release: %+v", s)
		}
	}
	_, rev = e.doc(h)
	if err := r2.Release(ctx, h, "vm"); err != nil {
		t.Fatal(err)
	}
	if _, again := e.doc(h); again != rev {
		t.Errorf("releasing a released machine wrote revision %d over %d", again, rev)
	}
	if err := r1.Release(ctx, "gone", "vm"); err != nil {
		t.Errorf("Release on a host that does not exist = %v, want nil", err)
	}
	if err := r1.Release(ctx, "bad/id", "vm"); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("Release on a malformed host id = %v, want invalid", err)
	}
}

func TestExhausted(t *testing.T) {
	t.Parallel()
	const prefix = "No host can take a machine of 4 CPU and 8192 MiB: "
	tests := []struct {
		name  string
		setup func(e *env, r *hosts.Registry)
		want  string
	}{
		{"no host", func(*env, *hosts.Registry) {}, "no host is registered; start the vmctl agent on a VM host."},
		{"all silent", func(e *env, r *hosts.Registry) {
			e.register(r, "a", 8, 16384)
			e.register(r, "b", 8, 16384)
			e.clock.Advance(time.Hour)
		}, "no host is available: 2 hosts are registered but none has sent a heartbeat recently; check the vmctl agents."},
		{"all in maintenance", func(e *env, r *hosts.Registry) {
			e.register(r, "a", 8, 16384)
			maintain(e, r, "a")
		}, "all hosts are in maintenance; retry when an administrator puts one back in service."},
		{"maintenance and silent", func(e *env, r *hosts.Registry) {
			e.register(r, "a", 8, 16384)
			e.register(r, "b", 8, 16384)
			e.register(r, "c", 8, 16384)
			maintain(e, r, "a")
			e.clock.Advance(time.Hour)
			if _, err := r.Heartbeat(context.Background(), "a", 0, 0, 0); err != nil {
				e.t.Fatal(err)
			}
		}, "no host is in service (1 host in maintenance, 2 hosts unavailable with no recent heartbeat); retry later."},
		{"too large", func(e *env, r *hosts.Registry) {
			e.register(r, "a", 2, 65536)
			e.register(r, "b", 8, 4096)
			e.register(r, "c", 16, 65536)
			maintain(e, r, "c")
		}, "no host in service is that large (out of service: 1 host in maintenance); choose a smaller machine type."},
		{"full", func(e *env, r *hosts.Registry) {
			// One host at a time, so that each machine has one place to go.
			e.register(r, "a", 8, 16384)
			place(e.t.(*testing.T), r, "x", 6, 1024)
			e.register(r, "b", 8, 16384)
			place(e.t.(*testing.T), r, "y", 6, 1024)
			e.register(r, "c", 8, 16384)
			e.clock.Advance(20 * time.Second)
			for _, h := range []string{"a", "b"} {
				if _, err := r.Heartbeat(context.Background(), h, 0, 0, 0); err != nil {
					e.t.Fatal(err)
				}
			}
			e.clock.Advance(20 * time.Second) // c is silent
		}, "the 2 hosts in service are full, with at most 2 CPU and 15360 MiB free on any one (out of service: 1 host unavailable with no recent heartbeat); retry later or choose a smaller machine type."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.registry()
			tt.setup(e, r)
			_, err := r.Place(context.Background(), "m", 4, 8192)
			if errs.CodeOf(err) != errs.Conflict || errs.MessageOf(err) != prefix+tt.want {
				t.Fatalf("Place = %v (%s)\nwant conflict %q", err, errs.CodeOf(err), prefix+tt.want)
			}
		})
	}
}

func maintain(e *env, r *hosts.Registry, id string) {
	e.t.Helper()
	if err := r.SetMaintenance(context.Background(), id, true); err != nil {
		e.t.Fatal(err)
	}
}

func TestPlaceInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.registry()
	e.register(r, "a", 8, 8192)
	for _, tt := range []struct {
		machine string
		cpu     int
		mem     int64
	}{
		{"", 1, 512},
		{strings.Repeat("x", 201), 1, 512},
		{"m", 0, 512},
		{"m", 1, 0},
		{"m", -1, 512},
	} {
		if _, err := r.Place(context.Background(), tt.machine, tt.cpu, tt.mem); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("Place(%q, %d, %d) = %v, want invalid", tt.machine, tt.cpu, tt.mem, err)
		}
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.registry()
	ctx := context.Background()
	for _, h := range []hosts.Host{
		{ID: "", CPUs: 1, MemoryMiB: 1},
		{ID: "a b", CPUs: 1, MemoryMiB: 1},
		{ID: "a/b", CPUs: 1, MemoryMiB: 1},
		{ID: strings.Repeat("a", hosts.MaxIDLength+1), CPUs: 1, MemoryMiB: 1},
		{ID: "a", CPUs: 0, MemoryMiB: 1},
		{ID: "a", CPUs: 1, MemoryMiB: 0},
		{ID: "a", CPUs: 1, MemoryMiB: 1, FreeMemoryMiB: -1},
	} {
		if err := r.Register(ctx, h); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("Register(%+v) = %v, want invalid", h, err)
		}
	}

	e.register(r, "node-1", 4, 8192)
	m, _ := e.doc("node-1")
	acl, _ := m["acl"].(map[string]any)
	owner, _ := acl["owner"].(map[string]any)
	if m["id"] != "Host/node-1" || m["resourceURI"] != cimi.ResourceURI(hosts.Kind) || owner["principal"] != cimi.RoleAdmin || owner["type"] != string(cimi.Role) ||
		m["name"] != "node-1.example.org" || m["state"] != hosts.Available || m["created"] == nil {
		t.Fatalf("registered document: %v", m)
	}
	// Only administrators see hosts through CIMI.
	who := map[string]cimi.Identity{
		"admin": {User: "root", Roles: []string{cimi.RoleAdmin}},
		"user":  {User: "alice", Roles: []string{cimi.RoleUser}},
		"anon":  {},
	}
	// The bucket's index follows the registry's write through a watch.
	waitFor(t, func() bool {
		p, err := e.bucket.Query(ctx, cimi.Query{}, who["admin"])
		return err == nil && p.Count == 1
	})
	for name, id := range who {
		p, err := e.bucket.Query(ctx, cimi.Query{}, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[name == "admin"]; p.Count != want {
			t.Errorf("%s sees %d hosts, want %d", name, p.Count, want)
		}
	}

	// What an administrator or the CIMI layer wrote survives the
	// registry's writes.
	_, err := e.bucket.Update(ctx, hosts.DocumentID("node-1"), func(cur store.Document) (json.RawMessage, error) {
		var m map[string]any
		if err := json.Unmarshal(cur.Body, &m); err != nil {
			return nil, err
		}
		m["name"] = "rack 4, node 1"
		m["description"] = "the one with the loud fan"
		m["properties"] = map[string]string{"rack": "4"}
		m["_command"] = "cmd-1"
		return json.Marshal(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		h, err := r.Get(ctx, "node-1")
		return err == nil && h.Name == "rack 4, node 1"
	})
	e.register(r, "node-1", 8, 8192)
	if _, err := r.Heartbeat(ctx, "node-1", 100, 100, 0); err != nil {
		t.Fatal(err)
	}
	place(t, r, "vm", 1, 512)
	m, _ = e.doc("node-1")
	props, _ := m["properties"].(map[string]any)
	if m["name"] != "rack 4, node 1" || m["description"] != "the one with the loud fan" || props["rack"] != "4" || m["_command"] != "cmd-1" || m["cpus"] != 8.0 {
		t.Fatalf("after the registry's writes: %v", m)
	}
}
