package hosts_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	"stratuslab.dev/services/vmctl/internal/hosts"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is one test's NATS server, the clock and over-commit ratios every
// registry of the test reads, and a strict view of the host bucket to
// check what was really written.
type env struct {
	t      testing.TB
	srv    *natsserver.Server
	clock  *clock
	bucket store.Collection

	mu                 sync.Mutex
	cpuRatio, memRatio float64
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, srv: testkit.NATS(t, ""), clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, cpuRatio: 1, memRatio: 1}
	e.bucket = e.collection(embedded.WithStrictReads())
	return e
}

// collection opens the Host collection of vmctl's store on a connection of
// its own, as a separate process would.
func (e *env) collection(opts ...embedded.Option) store.Collection {
	e.t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := embedded.Open(ctx, js, "vmctl", append(opts, embedded.WithLogger(quiet()))...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	c, err := st.Collection(ctx, hosts.Kind)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// registry is one scheduler replica's registry: its own connection and
// store index on the shared bucket.
func (e *env) registry(opts ...hosts.Option) *hosts.Registry {
	e.t.Helper()
	return hosts.New(e.collection(), e.ratios, e.clock.Now, opts...)
}

func (e *env) ratios() (float64, float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cpuRatio, e.memRatio
}

func (e *env) setRatios(cpu, mem float64) {
	e.mu.Lock()
	e.cpuRatio, e.memRatio = cpu, mem
	e.mu.Unlock()
}

// register registers a host of cpus CPUs and memMiB MiB through r.
func (e *env) register(r *hosts.Registry, id string, cpus int, memMiB int64) {
	e.t.Helper()
	h := hosts.Host{
		ID: id, Hostname: id + ".example.org", LibvirtURI: "test:///default", CPUs: cpus, MemoryMiB: memMiB,
		FreeCPUPercent: cpus * 100, FreeMemoryMiB: memMiB,
		LibvirtVersion: "11.3.0", Hypervisor: "TEST", HypervisorVersion: "2.0.0", AgentVersion: "test",
	}
	if err := r.Register(context.Background(), h); err != nil {
		e.t.Fatalf("register %s: %v", id, err)
	}
}

// doc reads host id as the bucket holds it, with its revision.
func (e *env) doc(id string) (map[string]any, uint64) {
	e.t.Helper()
	d, err := e.bucket.Get(context.Background(), hosts.DocumentID(id))
	if err != nil {
		e.t.Fatalf("read host %s: %v", id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(d.Body, &m); err != nil {
		e.t.Fatal(err)
	}
	return m, d.Revision
}

// stored is host id as the bucket holds it, decoded independently of the
// package under test.
type stored struct {
	CPUs               int   `json:"cpus"`
	MemoryMiB          int64 `json:"memoryMiB"`
	AllocatedCPUs      int   `json:"allocatedCPUs"`
	AllocatedMemoryMiB int64 `json:"allocatedMemoryMiB"`
	Reservations       map[string]struct {
		CPU       int   `json:"cpu"`
		MemoryMiB int64 `json:"memoryMiB"`
	} `json:"reservations"`
	Maintenance  bool   `json:"maintenance"`
	State        string `json:"state"`
	StateMessage string `json:"stateMessage"`
}

func (e *env) stored(id string) stored {
	e.t.Helper()
	d, err := e.bucket.Get(context.Background(), hosts.DocumentID(id))
	if err != nil {
		e.t.Fatalf("read host %s: %v", id, err)
	}
	var s stored
	if err := json.Unmarshal(d.Body, &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// checkCapacity fails the test unless host id's document is consistent
// (the totals are the sums of the reservations) and within its capacity
// times the ratios; it returns the reservations.
func (e *env) checkCapacity(id string, cpuRatio, memRatio float64) stored {
	e.t.Helper()
	s := e.stored(id)
	var cpu int
	var mem int64
	for _, r := range s.Reservations {
		cpu += r.CPU
		mem += r.MemoryMiB
	}
	if cpu != s.AllocatedCPUs || mem != s.AllocatedMemoryMiB {
		e.t.Errorf("host %s: allocated %d CPU, %d MiB; its reservations sum to %d CPU, %d MiB", id, s.AllocatedCPUs, s.AllocatedMemoryMiB, cpu, mem)
	}
	if limit := int(math.Floor(float64(s.CPUs) * cpuRatio)); cpu > limit {
		e.t.Errorf("host %s: %d CPU reserved, more than %d × %v", id, cpu, s.CPUs, cpuRatio)
	}
	if limit := int64(math.Floor(float64(s.MemoryMiB) * memRatio)); mem > limit {
		e.t.Errorf("host %s: %d MiB reserved, more than %d × %v", id, mem, s.MemoryMiB, memRatio)
	}
	return s
}

// clock is the registries' clock, moved by the tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
