package scheduler

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// clock is a settable time for the scheduler under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// janitorEnv is a scheduler on a real embedded store, with the
// collections it sweeps at hand.
type janitorEnv struct {
	t        *testing.T
	s        *Scheduler
	clock    *clock
	machines store.Collection
	leaseDoc store.Collection
	leases   *addresses.Leases
	hosts    *hosts.Registry
}

func newJanitorEnv(t *testing.T) *janitorEnv {
	t.Helper()
	ctx := context.Background()
	srv := testkit.NATS(t, "")
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := embedded.Open(ctx, js, "vmctl", embedded.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	coll := func(kind string) store.Collection {
		c, err := st.Collection(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	terminals, err := bus.FollowTerminals(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = terminals.Close() })
	e := &janitorEnv{t: t, clock: &clock{now: time.Now()}, machines: coll(machine.Kind), leaseDoc: coll(addresses.Kind)}
	e.leases = addresses.New(e.leaseDoc, func() []addresses.Pool { return settings.Defaults().Pools })
	// The registry keeps the real clock: heartbeats are recent.
	e.hosts = hosts.New(coll(hosts.Kind), func() (float64, float64) { return 1, 1 }, time.Now)
	e.s, err = New(Config{
		Machines: e.machines, Counters: coll(CounterKind), Leases: e.leases, Hosts: e.hosts,
		Bus: bus.New(nc, js, bus.Options{Service: "vmctl", Logger: log}), Terminals: terminals,
		Settings: settings.Defaults, Log: log, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// machine stores a machine in state d, placed on host (none when empty),
// using lease when it has an address.
func (e *janitorEnv) machine(id string, d machine.Detailed, host string, lease *addresses.Lease) {
	e.t.Helper()
	m := &machine.Machine{ID: machine.ID(id), UUID: id, Owner: "alice", Type: "m1.small", CPU: 1, Memory: 1536 << 10}
	if host != "" {
		m.Host = hosts.DocumentID(host)
	}
	if lease != nil {
		m.IP = lease.IP
		m.Interfaces = []machine.Interface{{Network: string(lease.Network), IP: lease.IP, MAC: lease.MAC}}
	}
	m.SetState(d, "", time.Now())
	body, err := m.Encode()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.machines.Create(context.Background(), m.ID, body); err != nil {
		e.t.Fatal(err)
	}
}

// lease allocates a public address for machine id.
func (e *janitorEnv) lease(id string) addresses.Lease {
	e.t.Helper()
	l, err := e.leases.Allocate(context.Background(), addresses.Public, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// twin gives machine id a second public address, as two replicas
// allocating for it at once may: an address leased for a stand-in, then
// handed to the machine.
func (e *janitorEnv) twin(id string) addresses.Lease {
	e.t.Helper()
	l := e.lease(uuid.NewString())
	_, err := e.leaseDoc.Update(context.Background(), addresses.ID(l.Network, l.IP), func(cur store.Document) (json.RawMessage, error) {
		var doc map[string]any
		if err := json.Unmarshal(cur.Body, &doc); err != nil {
			return nil, err
		}
		doc["machine"] = id
		return json.Marshal(doc)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	l.Machine = id
	return l
}

// place reserves room for machine id on host, the only host in service.
func (e *janitorEnv) place(id, host string) {
	e.t.Helper()
	got, err := e.hosts.Place(context.Background(), id, 1, 1536)
	if err != nil || got != host {
		e.t.Fatalf("place %s: on %q, %v; want %s", id, got, err, host)
	}
}

// held lists the addresses leased, as "machine ip".
func (e *janitorEnv) held() []string {
	e.t.Helper()
	all, err := e.leases.Held(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range all {
		out = append(out, l.Machine+" "+l.IP)
	}
	slices.Sort(out)
	return out
}

// reserved lists the reservations of host, as machine uuids.
func (e *janitorEnv) reserved(host string) []string {
	e.t.Helper()
	h, err := e.hosts.Get(context.Background(), host)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for id := range h.Reservations {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (e *janitorEnv) register(host string) {
	e.t.Helper()
	err := e.hosts.Register(context.Background(), hosts.Host{ID: host, Hostname: host, LibvirtURI: "test:///default", CPUs: 64, MemoryMiB: 1 << 20})
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestSweep leaves a store as crashes and races would, and checks what
// the janitor's sweep releases: the leases of machines that never got a
// document (once the grace has passed) or have ended, a second address
// of a live machine, and the host reservations of machines that are
// gone, ended, or placed on another host, and nothing a live machine
// uses.
func TestSweep(t *testing.T) {
	e := newJanitorEnv(t)
	ctx := context.Background()
	e.register("node-a")

	id := func() string { return uuid.NewString() }
	var (
		orphan    = id() // leased; the create crashed before the document
		done      = id()
		failed    = id()
		running   = id()
		doubled   = id() // holds a second address
		pending   = id() // holds a second address too, still young
		unknown   = id() // its host was lost: it keeps everything
		garbled   = id() // a document that does not decode
		gone      = id() // placed, then its document went (purged)
		elsewhere = id() // placed on node-a, recorded on node-b
	)
	leases := map[string]addresses.Lease{}
	for _, m := range []string{orphan, done, failed, running, doubled, pending, unknown, garbled} {
		leases[m] = e.lease(m)
	}
	second := map[string]addresses.Lease{doubled: e.twin(doubled), pending: e.twin(pending)}

	for _, m := range []string{done, failed, running, doubled, unknown, gone, elsewhere} {
		e.place(m, "node-a")
	}
	e.register("node-b")
	if err := e.hosts.SetMaintenance(ctx, "node-a", true); err != nil {
		t.Fatal(err)
	}
	e.place(pending, "node-b")

	for m, st := range map[string]machine.Detailed{done: machine.Done, failed: machine.Failed, running: machine.Running, doubled: machine.Running, unknown: machine.UnknownD} {
		l := leases[m]
		e.machine(m, st, "node-a", &l)
	}
	l := leases[pending]
	e.machine(pending, machine.Pending, "", &l)
	e.machine(elsewhere, machine.Running, "node-b", nil)
	if _, err := e.machines.Create(ctx, machine.ID(garbled), json.RawMessage(`{"id": "Machine/`+garbled+`", "detailedState": 7}`)); err != nil {
		t.Fatal(err)
	}

	entry := func(m string, l addresses.Lease) string { return m + " " + l.IP }
	sorted := func(s ...string) []string { slices.Sort(s); return s }

	// Within the grace: ended machines give back everything at once; a
	// lease without its machine, or a second one, may still be a create
	// in progress.
	if err := e.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	live := []string{entry(running, leases[running]), entry(doubled, leases[doubled]), entry(pending, leases[pending]),
		entry(unknown, leases[unknown]), entry(garbled, leases[garbled])}
	if got, want := e.held(), sorted(append(slices.Clone(live), entry(orphan, leases[orphan]),
		entry(doubled, second[doubled]), entry(pending, second[pending]))...); !slices.Equal(got, want) {
		t.Errorf("leases after a sweep within the grace:\n got %v\nwant %v", got, want)
	}
	if got, want := e.reserved("node-a"), sorted(running, doubled, unknown); !slices.Equal(got, want) {
		t.Errorf("reservations on node-a after a sweep:\n got %v\nwant %v", got, want)
	}
	if got, want := e.reserved("node-b"), []string{pending}; !slices.Equal(got, want) {
		t.Errorf("reservations on node-b after a sweep:\n got %v\nwant %v", got, want)
	}

	// After the grace: the orphan lease and the second addresses go.
	e.clock.set(time.Now().Add(SweepGrace + time.Second))
	if err := e.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := e.held(), sorted(live...); !slices.Equal(got, want) {
		t.Errorf("leases after a sweep past the grace:\n got %v\nwant %v", got, want)
	}
	// Those addresses are free again.
	for range 3 {
		e.lease(id())
	}
	if got := len(e.held()); got != len(live)+3 {
		t.Errorf("%d leases after 3 new ones, want %d", got, len(live)+3)
	}
	if got, want := e.reserved("node-a"), sorted(running, doubled, unknown); !slices.Equal(got, want) {
		t.Errorf("reservations on node-a after a sweep past the grace:\n got %v\nwant %v", got, want)
	}
}

// TestSweepQuiet checks that a sweep of a store where nothing leaked
// changes nothing: machines from Pending to Unknown keep their address
// and their reservation however old they are.
func TestSweepQuiet(t *testing.T) {
	e := newJanitorEnv(t)
	ctx := context.Background()
	e.register("node-a")
	var want []string
	for _, st := range []machine.Detailed{machine.Pending, machine.Prolog, machine.Boot, machine.Running, machine.Shutdown, machine.Epilog, machine.UnknownD, machine.StoppedD} {
		m := uuid.NewString()
		l := e.lease(m)
		host := ""
		if st != machine.Pending {
			host = "node-a"
			e.place(m, host)
		}
		e.machine(m, st, host, &l)
		want = append(want, m+" "+l.IP)
	}
	slices.Sort(want)
	before := e.reserved("node-a")
	e.clock.set(time.Now().Add(24 * time.Hour))
	if err := e.s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.held(); !slices.Equal(got, want) {
		t.Errorf("leases of live machines after a sweep:\n got %v\nwant %v", got, want)
	}
	if got := e.reserved("node-a"); !slices.Equal(got, before) || len(got) != 7 {
		t.Errorf("reservations of live machines after a sweep: %v, before %v", got, before)
	}
}
