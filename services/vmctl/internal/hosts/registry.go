package hosts

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
)

// DefaultStaleAfter is how old a host's last heartbeat may be for Place to
// still choose it, unless WithStaleAfter says otherwise: three missed
// heartbeats of an agent beating every ten seconds.
const DefaultStaleAfter = 30 * time.Second

// Bounds of the retry loops. A write to a host conflicts only with other
// processes (writes from this one are queued per host), and a lost race
// makes Place choose again from fresher data, so these are never reached
// in practice; they turn a livelock into an error.
const (
	writeAttempts = 100
	placeAttempts = 100
	// Place chooses at random among up to candidates of the least loaded
	// hosts, those whose load (the larger of the CPU and memory shares of
	// what the host may promise) is within slack of the least.
	candidates = 3
	slack      = 0.1
)

// Option configures New.
type Option func(*Registry)

// WithStaleAfter sets how old a host's last heartbeat may be for Place to
// choose it (DefaultStaleAfter by default). Expire, which marks such hosts
// unavailable, takes its own bound: pass it the same.
func WithStaleAfter(d time.Duration) Option {
	return func(r *Registry) { r.staleAfter = d }
}

// Registry reads and writes the host documents of one collection. It is
// safe for concurrent use, and any number of registries, in any number of
// processes, may share a collection.
type Registry struct {
	coll       store.Collection
	ratio      func() (cpu, mem float64)
	now        func() time.Time
	staleAfter time.Duration

	mu sync.Mutex
	// decoded caches each host document decoded, by document id: a
	// placement reads every host, most of which did not change since.
	decoded map[string]cached
	// queues holds the changes waiting to be written, by host id.
	queues map[string]*queue
}

// cached is a decoded host document at one revision. host is never
// modified: writers clone it.
type cached struct {
	rev   uint64
	host  *Host
	extra map[string]json.RawMessage
}

// New returns a registry of the hosts in coll (the "Host" collection of
// vmctl's store). ratio returns the current over-commit ratios of CPUs and
// memory (1 promises exactly the capacity; a ratio that is not positive
// counts as 1); now is the clock.
func New(coll store.Collection, ratio func() (cpu, mem float64), now func() time.Time, opts ...Option) *Registry {
	r := &Registry{
		coll: coll, ratio: ratio, now: now, staleAfter: DefaultStaleAfter,
		decoded: map[string]cached{}, queues: map[string]*queue{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// ratios returns the over-commit ratios in force, made sane.
func (r *Registry) ratios() (cpu, mem float64) {
	cpu, mem = r.ratio()
	fix := func(x float64) float64 {
		if !(x > 0) || math.IsInf(x, 0) {
			return 1
		}
		return x
	}
	return fix(cpu), fix(mem)
}

// Register records the facts an agent reports when it starts: it creates
// the host's document or updates it, keeping the reservations, the
// maintenance flag and what administrators set (name, description). The
// host becomes AVAILABLE with a heartbeat now.
func (r *Registry) Register(ctx context.Context, h Host) error {
	if err := ValidID(h.ID); err != nil {
		return err
	}
	if h.CPUs <= 0 || h.MemoryMiB <= 0 {
		return errs.Errorf(errs.Invalid, "Host %s reports %d CPUs and %d MiB of memory: both must be positive.", h.ID, h.CPUs, h.MemoryMiB)
	}
	if h.FreeCPUPercent < 0 || h.FreeMemoryMiB < 0 || h.RunningMachines < 0 {
		return errs.Errorf(errs.Invalid, "Host %s reports a negative load (free CPU %d%%, free memory %d MiB, %d machines).", h.ID, h.FreeCPUPercent, h.FreeMemoryMiB, h.RunningMachines)
	}
	now := r.now()
	err := r.write(ctx, h.ID, true, func(cur *Host) bool {
		if cur.ACL.Owner.Principal == "" {
			cur.ACL = ACL()
		}
		if cur.Name == "" {
			cur.Name = h.Hostname
		}
		cur.Hostname, cur.LibvirtURI = h.Hostname, h.LibvirtURI
		cur.CPUs, cur.MemoryMiB = h.CPUs, h.MemoryMiB
		cur.LibvirtVersion, cur.Hypervisor, cur.HypervisorVersion, cur.AgentVersion = h.LibvirtVersion, h.Hypervisor, h.HypervisorVersion, h.AgentVersion
		cur.FreeCPUPercent, cur.FreeMemoryMiB, cur.RunningMachines = h.FreeCPUPercent, h.FreeMemoryMiB, h.RunningMachines
		cur.beat(now)
		return true
	})
	return err
}

// beat records a heartbeat at now.
func (h *Host) beat(now time.Time) {
	h.LastHeartbeat = now.UTC()
	h.State, h.StateMessage = Available, ""
}

// Heartbeat records an agent's periodic report: idle CPU (100 per core),
// free memory and running machines. A host marked UNAVAILABLE becomes
// AVAILABLE again, and revived says so: its agent then reconciles at once,
// for its machines shown Unknown meanwhile. A host never registered is an
// errs.NotFound error: the agent should Register.
func (r *Registry) Heartbeat(ctx context.Context, id string, freeCPU int, freeMem int64, running int) (revived bool, err error) {
	if err := ValidID(id); err != nil {
		return false, err
	}
	if freeCPU < 0 || freeMem < 0 || running < 0 {
		return false, errs.Errorf(errs.Invalid, "Host %s reports a negative load (free CPU %d%%, free memory %d MiB, %d machines).", id, freeCPU, freeMem, running)
	}
	now := r.now()
	err = r.write(ctx, id, false, func(cur *Host) bool {
		revived = cur.State == Unavailable
		cur.FreeCPUPercent, cur.FreeMemoryMiB, cur.RunningMachines = freeCPU, freeMem, running
		cur.beat(now)
		return true
	})
	if err != nil {
		return false, r.explain(id, err)
	}
	return revived, nil
}

// SetMaintenance puts the host in maintenance (on) or back in service.
// Machines already there stay, with their reservations.
func (r *Registry) SetMaintenance(ctx context.Context, id string, on bool) error {
	if err := ValidID(id); err != nil {
		return err
	}
	err := r.write(ctx, id, false, func(cur *Host) bool {
		if cur.Maintenance == on {
			return false
		}
		cur.Maintenance = on
		return true
	})
	return r.explain(id, err)
}

// Get returns the host with this id, or an errs.NotFound error.
func (r *Registry) Get(ctx context.Context, id string) (Host, error) {
	if err := ValidID(id); err != nil {
		return Host{}, err
	}
	doc, err := r.coll.Get(ctx, DocumentID(id))
	if err != nil {
		return Host{}, r.explain(id, err)
	}
	c, err := r.decode(doc)
	if err != nil {
		return Host{}, err
	}
	return *c.host.clone(), nil
}

// List returns every host, ordered by id.
func (r *Registry) List(ctx context.Context) ([]Host, error) {
	all, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Host, len(all))
	for i, h := range all {
		out[i] = *h.clone()
	}
	return out, nil
}

// Place reserves cpu CPUs and memMiB MiB for machine on a host and returns
// the host's id. The host is AVAILABLE, not in maintenance, has sent a
// heartbeat recently, and stays within its capacity times the over-commit
// ratio once the machine is added; among such hosts, one of the least
// loaded is chosen at random (see the package documentation). Placing a
// machine that already holds a reservation returns its host and changes
// nothing, so a retried placement is harmless; two placements of one
// machine must not run at the same time. When no host can take the
// machine, the errs.Conflict error says why. Hosts are read from this
// process's view of the store, which learns of other processes' writes
// within moments: capacity released elsewhere a moment ago may not be seen
// yet, but capacity is never promised twice, because every reservation is
// decided again on the document it is written to.
func (r *Registry) Place(ctx context.Context, machine string, cpu int, memMiB int64) (string, error) {
	if machine == "" || len(machine) > MaxIDLength {
		return "", errs.Errorf(errs.Invalid, "A machine to place is named by 1 to %d characters, not %q.", MaxIDLength, short(machine))
	}
	if cpu <= 0 || memMiB <= 0 {
		return "", errs.Errorf(errs.Invalid, "A machine of %d CPU and %d MiB cannot be placed: both must be positive.", cpu, memMiB)
	}
	for attempt := 0; attempt < placeAttempts; attempt++ {
		all, err := r.snapshot(ctx)
		if err != nil {
			return "", err
		}
		for _, h := range all {
			if _, ok := h.Reservations[machine]; ok {
				return h.ID, nil
			}
		}
		now := r.now()
		cpuRatio, memRatio := r.ratios()
		fit := r.fitting(all, cpu, memMiB, cpuRatio, memRatio, now)
		if len(fit) == 0 {
			return "", r.exhausted(all, cpu, memMiB, cpuRatio, memRatio, now)
		}
		target := r.choose(fit)
		placed := false
		err = r.write(ctx, target, false, func(cur *Host) bool {
			// Called again on a fresh copy when a write must be retried.
			placed = false
			if _, ok := cur.Reservations[machine]; ok {
				placed = true
				return false
			}
			// The snapshot may be older than cur: decide again on cur.
			cpuRatio, memRatio := r.ratios()
			if !r.inService(cur, r.now()) || !cur.fits(cpu, memMiB, cpuRatio, memRatio) {
				return false
			}
			cur.reserve(machine, cpu, memMiB)
			placed = true
			return true
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		if err == nil && placed {
			return target, nil
		}
		// The host filled up, left service or was deleted since the
		// snapshot, which now knows better: choose again.
	}
	return "", errs.Errorf(errs.Unavailable, "Could not reserve %d CPU and %d MiB for machine %s after %d attempts: the hosts kept changing under other placements. Retry.", cpu, memMiB, short(machine), placeAttempts)
}

// inService reports whether h may take new machines at now.
func (r *Registry) inService(h *Host, now time.Time) bool {
	return h.State == Available && !h.Maintenance && now.Sub(h.LastHeartbeat) <= r.staleAfter
}

// scored is a host that can take a machine, and its load once it has.
type scored struct {
	host *Host
	load float64
}

// fitting returns the hosts in service that can take the machine, least
// loaded first.
func (r *Registry) fitting(all []*Host, cpu int, memMiB int64, cpuRatio, memRatio float64, now time.Time) []scored {
	var fit []scored
	for _, h := range all {
		if r.inService(h, now) && h.fits(cpu, memMiB, cpuRatio, memRatio) {
			fit = append(fit, scored{h, h.load(cpu, memMiB, cpuRatio, memRatio)})
		}
	}
	slices.SortStableFunc(fit, func(a, b scored) int { return cmp.Compare(a.load, b.load) })
	return fit
}

// choose picks at random among the first few of fit (least loaded first)
// whose load is within slack of the least, so that concurrent placements
// spread over several documents without giving up spreading.
func (r *Registry) choose(fit []scored) string {
	n := 1
	for n < len(fit) && n < candidates && fit[n].load <= fit[0].load+slack {
		n++
	}
	return fit[rand.IntN(n)].host.ID
}

// exhausted explains why no host can take a machine of cpu and memMiB.
func (r *Registry) exhausted(all []*Host, cpu int, memMiB int64, cpuRatio, memRatio float64, now time.Time) error {
	var down, maintenance, inService, largeEnough int
	var freeCPU int
	var freeMem int64
	for _, h := range all {
		switch {
		case h.State != Available || now.Sub(h.LastHeartbeat) > r.staleAfter:
			down++
		case h.Maintenance:
			maintenance++
		default:
			inService++
			maxCPU, maxMem := h.limits(cpuRatio, memRatio)
			freeCPU = max(freeCPU, maxCPU-h.AllocatedCPUs)
			freeMem = max(freeMem, maxMem-h.AllocatedMemoryMiB)
			if cpu <= maxCPU && memMiB <= maxMem {
				largeEnough++
			}
		}
	}
	var why string
	switch {
	case len(all) == 0:
		why = "no host is registered; start the vmctl agent on a VM host"
	case inService == 0 && maintenance == 0:
		why = fmt.Sprintf("no host is available: %s registered but none has sent a heartbeat recently; check the vmctl agents", count(down, "host is", "hosts are"))
	case inService == 0 && down == 0:
		why = "all hosts are in maintenance; retry when an administrator puts one back in service"
	case inService == 0:
		why = fmt.Sprintf("no host is in service (%s); retry later", outOfService(maintenance, down))
	case largeEnough == 0:
		why = "no host in service is that large"
		if maintenance+down > 0 {
			why += fmt.Sprintf(" (out of service: %s)", outOfService(maintenance, down))
		}
		why += "; choose a smaller machine type"
	default:
		why = fmt.Sprintf("the %d hosts in service are full", inService)
		if inService == 1 {
			why = "the only host in service is full"
		}
		why += fmt.Sprintf(", with at most %d CPU and %d MiB free on any one", max(freeCPU, 0), max(freeMem, 0))
		if maintenance+down > 0 {
			why += fmt.Sprintf(" (out of service: %s)", outOfService(maintenance, down))
		}
		why += "; retry later or choose a smaller machine type"
	}
	return errs.Errorf(errs.Conflict, "No host can take a machine of %d CPU and %d MiB: %s.", cpu, memMiB, why)
}

// outOfService describes the hosts out of service, for exhausted.
func outOfService(maintenance, down int) string {
	var parts []string
	if maintenance > 0 {
		parts = append(parts, count(maintenance, "host", "hosts")+" in maintenance")
	}
	if down > 0 {
		parts = append(parts, count(down, "host", "hosts")+" unavailable with no recent heartbeat")
	}
	return strings.Join(parts, ", ")
}

// count writes n followed by the singular or the plural.
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Release gives back what machine holds on host hostID. Releasing a
// machine that holds nothing there, or on a host that no longer exists,
// does nothing.
func (r *Registry) Release(ctx context.Context, hostID, machine string) error {
	if err := ValidID(hostID); err != nil {
		return err
	}
	if machine == "" {
		return errs.New(errs.Invalid, "A machine must be named to release its reservation.")
	}
	err := r.write(ctx, hostID, false, func(cur *Host) bool {
		return cur.release(machine)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Expire marks UNAVAILABLE every host whose last heartbeat is older than
// after, and returns the ids of all such hosts, ordered, whether this call
// or an earlier one marked them: the caller shows their machines Unknown,
// and a caller that crashed before doing so gets them again next time.
func (r *Registry) Expire(ctx context.Context, after time.Duration) ([]string, error) {
	all, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	now := r.now()
	stale := func(h *Host) bool { return now.Sub(h.LastHeartbeat) > after }
	var ids []string
	for _, h := range all {
		if !stale(h) {
			continue
		}
		if h.State == Unavailable {
			ids = append(ids, h.ID)
			continue
		}
		still := false
		err := r.write(ctx, h.ID, false, func(cur *Host) bool {
			// A heartbeat may have arrived since the snapshot.
			if still = stale(cur); !still || cur.State == Unavailable {
				return false
			}
			cur.State = Unavailable
			cur.StateMessage = fmt.Sprintf("No heartbeat from the agent since %s.", cur.LastHeartbeat.UTC().Format(time.RFC3339))
			return true
		})
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return ids, err
		}
		if still {
			ids = append(ids, h.ID)
		}
	}
	return ids, nil
}

// explain turns a missing host into the error users see.
func (r *Registry) explain(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errs.Wrap(errs.NotFound, err, fmt.Sprintf("Host %s is not registered: its agent registers it when it starts", id))
	}
	return err
}

// snapshot returns every host as this process's view of the collection
// holds it, ordered by id. The hosts are shared: never modify them.
func (r *Registry) snapshot(ctx context.Context) ([]*Host, error) {
	// As an administrator, who sees every host.
	page, err := r.coll.Query(ctx, cimi.Query{}, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	all := make([]*Host, 0, len(page.Docs))
	for _, doc := range page.Docs {
		c, err := r.decode(doc)
		if err != nil {
			return nil, err
		}
		all = append(all, c.host)
	}
	slices.SortFunc(all, func(a, b *Host) int { return cmp.Compare(a.ID, b.ID) })
	r.forgetDeleted(page.Docs)
	return all, nil
}

// forgetDeleted drops from the cache the hosts no longer in docs, the
// whole collection.
func (r *Registry) forgetDeleted(docs []store.Document) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.decoded) <= len(docs) {
		return
	}
	keep := make(map[string]bool, len(docs))
	for _, d := range docs {
		keep[d.ID] = true
	}
	for id := range r.decoded {
		if !keep[id] {
			delete(r.decoded, id)
		}
	}
}

// decode returns doc decoded, from the cache when it holds that revision.
func (r *Registry) decode(doc store.Document) (cached, error) {
	r.mu.Lock()
	c, ok := r.decoded[doc.ID]
	r.mu.Unlock()
	if ok && c.rev == doc.Revision {
		return c, nil
	}
	h, extra, err := decode(doc.ID, doc.Body)
	if err != nil {
		return cached{}, err
	}
	c = cached{rev: doc.Revision, host: h, extra: extra}
	r.remember(doc.ID, c)
	return c, nil
}

// remember caches c unless a newer revision is cached already.
func (r *Registry) remember(docID string, c cached) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.decoded[docID]; !ok || old.rev < c.rev {
		r.decoded[docID] = c
	}
}

// op is one change to a host waiting to be written.
type op struct {
	ctx    context.Context
	create bool
	// apply changes cur and reports whether it changed anything. It is
	// called again, on a fresh copy, whenever a write must be retried.
	apply func(cur *Host) bool
	done  chan error // receives the outcome; buffered
}

// queue holds the changes to one host waiting for this process's writer.
type queue struct {
	pending  []*op
	draining bool // a writer goroutine is running
}

// write applies fn to a copy of host id's current document and stores the
// result with a revision check, reapplying fn to a fresh copy when another
// process wrote first; fn reports whether it changed anything, and nothing
// is written when no change did. A missing document is store.ErrNotFound,
// unless create is set: fn then starts from an empty host.
//
// Changes to one host are written by one goroutine per process, which
// applies every change queued while it was writing in its next write: a
// busy host takes many placements per round trip to the store, and the
// goroutines of one process never conflict with each other. A change
// whose caller gives up before its batch starts is dropped; one already in
// a batch may still be written, which is harmless because every change is
// idempotent.
func (r *Registry) write(ctx context.Context, id string, create bool, fn func(cur *Host) bool) error {
	o := &op{ctx: ctx, create: create, apply: fn, done: make(chan error, 1)}
	r.mu.Lock()
	q := r.queues[id]
	if q == nil {
		q = &queue{}
		r.queues[id] = q
	}
	q.pending = append(q.pending, o)
	start := !q.draining
	q.draining = true
	r.mu.Unlock()
	if start {
		// The writer serves other callers too: it must not end with
		// this one's context.
		go r.drain(context.WithoutCancel(ctx), id, q)
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain writes the changes queued for host id, a batch at a time, until
// none is left.
func (r *Registry) drain(ctx context.Context, id string, q *queue) {
	for {
		r.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.draining = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		live := batch[:0]
		for _, o := range batch {
			if err := o.ctx.Err(); err != nil {
				o.done <- err
				continue
			}
			live = append(live, o)
		}
		if len(live) > 0 {
			r.commit(ctx, id, live)
		}
	}
}

// commit applies a batch of changes to host id in one revision-checked
// write, retrying from a fresh read on conflict, and tells each change's
// caller the outcome.
func (r *Registry) commit(ctx context.Context, id string, batch []*op) {
	docID := DocumentID(id)
	outcome := make([]error, len(batch))
	finish := func(err error) {
		for i, o := range batch {
			if err != nil {
				o.done <- err
			} else {
				o.done <- outcome[i]
			}
		}
	}
	for attempt := 0; ; attempt++ {
		var cur cached
		doc, err := r.coll.Get(ctx, docID)
		missing := errors.Is(err, store.ErrNotFound)
		switch {
		case err == nil:
			if cur, err = r.decode(doc); err != nil {
				finish(err)
				return
			}
			cur.host = cur.host.clone()
		case missing:
			cur.host = &Host{ID: id}
		default:
			finish(err)
			return
		}
		changed := false
		for i, o := range batch {
			outcome[i] = nil
			if missing && !o.create {
				outcome[i] = fmt.Errorf("host %s: %w", id, store.ErrNotFound)
				continue
			}
			if o.apply(cur.host) {
				changed = true
			}
		}
		if !changed {
			finish(nil)
			return
		}
		now := r.now().UTC().Truncate(time.Millisecond)
		if missing {
			cur.host.Created = now
		}
		cur.host.Updated = now
		body, err := encode(cur.host, cur.extra)
		if err != nil {
			finish(fmt.Errorf("encode host %s: %w", id, err))
			return
		}
		var rev uint64
		if missing {
			rev, err = r.coll.Create(ctx, docID, body)
		} else {
			rev, err = r.coll.Put(ctx, docID, body, doc.Revision)
		}
		if err == nil {
			r.remember(docID, cached{rev: rev, host: cur.host, extra: cur.extra})
			finish(nil)
			return
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrNotFound) {
			finish(err)
			return
		}
		if attempt+1 >= writeAttempts {
			finish(errs.Wrap(errs.Unavailable, err, fmt.Sprintf("Host %s kept changing under other writers; retry", id)))
			return
		}
		// The failed check refreshed the store's view; pause only when
		// the document keeps changing, so that the writers of several
		// processes fall out of step.
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				finish(err)
				return
			}
		}
	}
}

// pause sleeps a random time that grows with attempt, up to 10 ms.
func pause(ctx context.Context, attempt int) error {
	d := min(time.Duration(attempt)*200*time.Microsecond, 10*time.Millisecond)
	t := time.NewTimer(d/2 + rand.N(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
