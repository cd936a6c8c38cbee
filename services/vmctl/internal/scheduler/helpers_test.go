package scheduler_test

import (
	"context"
	sha1sum "crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/agent"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// waitLimit bounds every wait of these tests; reaching it is a failure,
// not a timing assertion.
const waitLimit = 15 * time.Second

// hostID is the one host of a test cloud.
const hostID = "h1"

// Identities of the tests.
var (
	alice = &commonv1.Actor{User: "alice", Roles: []string{cimi.RoleUser}}
	bob   = &commonv1.Actor{User: "bob", Roles: []string{cimi.RoleUser}}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// options shape a test cloud.
type options struct {
	// cpus and memMiB are what the host offers; 4 and 8192 when zero.
	cpus   int
	memMiB int64
	// stepWait bounds the scheduler's wait for pdisk and the agent; 5 s
	// when zero.
	stepWait time.Duration
	// backoff is the redelivery delay of vmctl's commands; 50 ms when
	// zero.
	backoff time.Duration
	// crashAt are the crash points (scheduler.Config.Crash) where the
	// scheduler "dies" the first time it gets there: the handler panics,
	// and the bus redelivers the command as after a real crash.
	crashAt []string
	// noAgent starts no agent: the host is registered by the test.
	noAgent bool
}

// env is a test cloud: a NATS server, vmctl's store, its scheduler served
// on the bus as vmctl serves it, the real agent on libvirt's test driver,
// a stand-in for pdisk (another module), and a tap on every command and
// event.
type env struct {
	t     *testing.T
	ctx   context.Context
	opts  options
	nc    *nats.Conn
	js    jetstream.JetStream
	truth store.Collection // Machine, read strictly
	// counters is MachineCounter, read strictly.
	counters store.Collection
	hosts    *hosts.Registry
	leases   *addresses.Leases
	sched    *scheduler.Scheduler
	provider *resource.Provider
	client   *bus.Bus
	terms    *bus.Terminals
	hv       *countingHV
	pdisk    *pdisk
	market   *market
	tap      *tap

	// set is ServiceConfiguration/vmctl as the scheduler reads it.
	setMu sync.Mutex
	set   settings.Settings

	mu         sync.Mutex
	crashAt    map[string]bool
	hold       func(subject, id string) <-chan struct{}
	failAfter  map[string]bool       // vmctl command ids whose first delivery fails after its work
	deliveries map[string][]delivery // vmctl command id → what each delivery did
}

// delivery is one delivery of a vmctl command: its number, its outcome,
// and the machine's state right after it.
type delivery struct {
	n     int
	err   error
	state machine.Detailed
}

// pools are the address pools of a test cloud: a small public network and
// a local one, no private one.
func pools() []addresses.Pool {
	return []addresses.Pool{
		{Network: addresses.Public, Subnet: "10.1.0.0/24", Gateway: "10.1.0.1", DNS: []string{"10.1.0.2"},
			Domain: "example.org", Hostname: "vm-{last}", Range: "10.1.0.10-10.1.0.40"},
		{Network: addresses.Local, Subnet: "10.2.0.0/24", Gateway: "10.2.0.1", Domain: "local.example.org", Range: "10.2.0.10-10.2.0.20"},
	}
}

func newEnv(t *testing.T, opts options) *env {
	t.Helper()
	if opts.cpus == 0 {
		opts.cpus = 4
	}
	if opts.memMiB == 0 {
		opts.memMiB = 8192
	}
	if opts.stepWait == 0 {
		opts.stepWait = 5 * time.Second
	}
	if opts.backoff == 0 {
		opts.backoff = 50 * time.Millisecond
	}
	ctx := context.Background()
	srv := testkit.NATS(t, "")
	e := &env{t: t, ctx: ctx, opts: opts, crashAt: map[string]bool{}, failAfter: map[string]bool{}, deliveries: map[string][]delivery{}}
	for _, p := range opts.crashAt {
		e.crashAt[p] = true
	}
	connect := func() (*nats.Conn, jetstream.JetStream) {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	e.nc, e.js = connect()
	// The streams as every service declares them: the default two-minute
	// window in which a command id is remembered.
	if err := bus.EnsureStreams(ctx, e.js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e.tap = newTap(t, connect)

	// vmctl: its store, registry, leases, scheduler and provider, on its
	// own connection, as vmctl.go wires them.
	nc, js := connect()
	st, err := embedded.Open(ctx, js, "vmctl", embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	coll := func(st store.Store, kind string) store.Collection {
		c, err := st.Collection(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.set = settings.Defaults()
	e.set.Pools, e.set.CPURatio, e.set.MemoryRatio, e.set.HostLostAfter = pools(), 1, 1, config.Duration(time.Minute)
	e.hosts = hosts.New(coll(st, hosts.Kind), func() (float64, float64) { s := e.settings(); return s.CPURatio, s.MemoryRatio }, time.Now)
	e.leases = addresses.New(coll(st, addresses.Kind), func() []addresses.Pool { return e.settings().Pools })
	terms, err := bus.FollowTerminals(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = terms.Close() })
	vbus := bus.New(nc, js, bus.Options{Service: "vmctl", Logger: quiet()})
	e.sched, err = scheduler.New(scheduler.Config{
		Machines: coll(st, machine.Kind), Counters: coll(st, scheduler.CounterKind), Leases: e.leases, Hosts: e.hosts,
		Bus: vbus, Terminals: terms, Settings: e.settings, Log: quiet(),
		StepWait: opts.stepWait, Crash: e.crash,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.provider, err = resource.New(vbus, "vmctl", quiet(), e.sched.Kind())
	if err != nil {
		t.Fatal(err)
	}
	run(t, func(ctx context.Context) error {
		return vbus.Consume(ctx, bus.ConsumerSpec{Durable: "vmctl", Subjects: e.provider.Subjects(), Concurrency: 64,
			Backoff: []time.Duration{opts.backoff}, AckWait: 10 * time.Second, MaxRun: time.Minute}, e.handle)
	})

	// What the test reads: the bucket itself, not an index.
	strict, err := embedded.Open(ctx, e.js, "vmctl", embedded.WithLogger(quiet()), embedded.WithStrictReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = strict.Close() })
	e.truth, e.counters = coll(strict, machine.Kind), coll(strict, scheduler.CounterKind)

	e.pdisk = newPdisk(t, connect)
	e.market = newMarket(t, connect)
	seedMarket(e.market)

	// The gateway: sends commands and waits for their outcome.
	cnc, cjs := connect()
	e.client = bus.New(cnc, cjs, bus.Options{Service: "cimi", Logger: quiet()})
	if e.terms, err = bus.FollowTerminals(cnc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.terms.Close() })

	if opts.noAgent {
		if err := e.hosts.Register(ctx, hosts.Host{ID: hostID, Hostname: "h1.example.org", LibvirtURI: "test:///default",
			CPUs: opts.cpus, MemoryMiB: opts.memMiB}); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// The agent, on libvirt's test driver, with its own connection.
	hv, err := hypervisor.Open(ctx, "test:///default", hypervisor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.hv = &countingHV{Hypervisor: hv, calls: map[string][]string{}}
	anc, ajs := connect()
	ag, err := agent.New(agent.Config{HostID: hostID, LibvirtURI: "test:///default", Hypervisor: e.hv, Hosts: e.hosts,
		Bus: bus.New(anc, ajs, bus.Options{Service: "vmctl", Logger: quiet()}), Dir: t.TempDir(), Log: quiet(),
		CPUs: opts.cpus, MemoryMiB: opts.memMiB, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, ag.Run)
	t.Cleanup(func() {
		// Leave the process's test driver as found.
		e.hv.mu.Lock()
		ids := make([]string, 0, len(e.hv.calls))
		for id := range e.hv.calls {
			ids = append(ids, id)
		}
		e.hv.mu.Unlock()
		for _, id := range ids {
			_ = hv.Destroy(ctx, id)
			_ = hv.Undefine(ctx, id)
		}
		_ = hv.Close()
	})
	e.eventually("the agent registers its host", func() bool { _, err := e.hosts.Get(ctx, hostID); return err == nil })
	return e
}

// settings returns ServiceConfiguration/vmctl as it is now.
func (e *env) settings() settings.Settings {
	e.setMu.Lock()
	defer e.setMu.Unlock()
	return e.set
}

// configure changes ServiceConfiguration/vmctl, as an edit of the live
// document would.
func (e *env) configure(f func(s *settings.Settings)) {
	e.setMu.Lock()
	f(&e.set)
	e.setMu.Unlock()
}

// run starts fn until the test ends.
func run(t *testing.T, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = fn(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Errorf("still running %v after the end of the test", waitLimit)
		}
	})
}

// crash is the scheduler's crash hook: the first time a point of
// opts.crashAt is reached, the handler dies there.
func (e *env) crash(point string) {
	e.mu.Lock()
	hit := e.crashAt[point]
	delete(e.crashAt, point)
	e.mu.Unlock()
	if hit {
		panic("test crash at " + point)
	}
}

// handle is vmctl's command handler (vmctl.go) with the test's hooks: a
// gate that holds commands, and simulated crashes after the work.
func (e *env) handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	// The machine the command is about.
	var ref interface{ GetId() string } = &commonv1.ResourceRef{}
	if e.provider.Owns(cmd.Subject()) {
		ref = &cimiv1.ResourceCommand{}
	}
	_ = cmd.Decode(ref.(proto.Message))
	_, id, _ := cimi.SplitID(ref.GetId())
	e.mu.Lock()
	hold := e.hold
	e.mu.Unlock()
	if hold != nil {
		if c := hold(cmd.Subject(), id); c != nil {
			<-c
		}
	}
	var res bus.Result
	var err error
	if e.provider.Owns(cmd.Subject()) {
		res, err = e.provider.Handle(ctx, cmd)
	} else {
		res, err = e.sched.Handle(ctx, cmd)
	}
	var state machine.Detailed
	if doc, gerr := e.truth.Get(context.Background(), ref.GetId()); gerr == nil {
		if m, derr := machine.Decode(doc.Body); derr == nil {
			state = m.DetailedState
		}
	}
	e.mu.Lock()
	e.deliveries[cmd.ID()] = append(e.deliveries[cmd.ID()], delivery{n: cmd.Deliveries(), err: err, state: state})
	crash := e.failAfter[cmd.ID()] && cmd.Deliveries() == 1 && err == nil
	e.mu.Unlock()
	if crash {
		return bus.Result{}, errors.New("test: crash after the work, before the acknowledgement")
	}
	return res, err
}

// setHold makes vmctl's commands for which f returns a channel wait until
// it is closed; f gets the subject and the machine uuid.
func (e *env) setHold(f func(subject, id string) <-chan struct{}) {
	e.mu.Lock()
	e.hold = f
	e.mu.Unlock()
}

// deliveriesOf returns what the deliveries of a vmctl command did.
func (e *env) deliveriesOf(id string) []delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.deliveries[id])
}

// eventually polls cond until it holds, failing after waitLimit.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// send sends a Machine command as the gateway does and returns its
// outcome.
func (e *env) send(verb, id string, actor *commonv1.Actor, action string, body any) error {
	e.t.Helper()
	return e.sendAs(uuid.NewString(), verb, id, actor, action, body)
}

// sendAs is send with the command id cmdID.
func (e *env) sendAs(cmdID, verb, id string, actor *commonv1.Actor, action string, body any) error {
	e.t.Helper()
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	done, cancel := e.terms.Expect(cmdID)
	defer cancel()
	rc := &cimiv1.ResourceCommand{Kind: machine.Kind, Id: id, Body: data, Action: action}
	if err := e.client.Send(e.ctx, subject.Command(subject.Vmctl, subject.ResourceMachine, verb), &commonv1.Meta{CommandId: cmdID, Actor: actor}, rc); err != nil {
		e.t.Fatal(err)
	}
	select {
	case o := <-done:
		return o.Err
	case <-time.After(waitLimit):
		e.t.Fatalf("no outcome of %s on %s within %v", verb, id, waitLimit)
		return nil
	}
}

// create asks for a machine as alice and returns its uuid.
func (e *env) create(body any) (string, error) {
	e.t.Helper()
	id := uuid.NewString()
	return id, e.send(subject.VerbCimiCreate, machine.ID(id), alice, "", body)
}

// mustCreate creates a machine that must be accepted.
func (e *env) mustCreate(body any) string {
	e.t.Helper()
	id, err := e.create(body)
	if err != nil {
		e.t.Fatalf("create %v: %v", body, err)
	}
	return id
}

// act runs an action on machine id as alice.
func (e *env) act(id, action string, body any) error {
	e.t.Helper()
	return e.send(subject.VerbCimiActionPrefix+action, machine.ID(id), alice, action, body)
}

// kill deletes machine id as alice.
func (e *env) kill(id string) error {
	e.t.Helper()
	return e.send(subject.VerbCimiDelete, machine.ID(id), alice, "", nil)
}

// machine reads machine id as stored.
func (e *env) machine(id string) *machine.Machine {
	e.t.Helper()
	doc, err := e.truth.Get(e.ctx, machine.ID(id))
	if err != nil {
		e.t.Fatalf("read machine %s: %v", id, err)
	}
	m, err := machine.Decode(doc.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// state returns the detailed state of machine id.
func (e *env) state(id string) machine.Detailed { return e.machine(id).DetailedState }

// waitState waits until machine id is in state d.
func (e *env) waitState(id string, d machine.Detailed) *machine.Machine {
	e.t.Helper()
	var m *machine.Machine
	e.eventually(fmt.Sprintf("machine %s becomes %s", id, d), func() bool {
		m = e.machine(id)
		return m.DetailedState == d
	})
	return m
}

// waitOrStall waits until machine id is in state d, failing the test as
// soon as a delivery of the scheduler's command verb (deploy, teardown)
// timed out waiting for pdisk or the agent, with what was sent.
func (e *env) waitOrStall(id string, d machine.Detailed, verb string, why string) *machine.Machine {
	e.t.Helper()
	cmd := subject.Command(subject.Vmctl, subject.ResourceMachine, verb)
	var m *machine.Machine
	var stalled error
	e.eventually(fmt.Sprintf("machine %s becomes %s", id, d), func() bool {
		if m = e.machine(id); m.DetailedState == d {
			return true
		}
		for _, did := range e.tap.commandIDs(id)[cmd] {
			for _, dl := range e.deliveriesOf(did) {
				if errs.CodeOf(dl.err) == errs.Timeout {
					stalled = dl.err
				}
			}
		}
		return stalled != nil
	})
	if stalled != nil {
		e.t.Fatalf("machine %s is %s, not %s: its %s waited for an answer that never came (%v)%s. Commands sent (subject id → times sent): %v",
			id, m.DetailedState, d, verb, stalled, why, e.tap.sends(id))
	}
	return m
}

// leasesOf returns the addresses leased to machine id.
func (e *env) leasesOf(id string) []addresses.Lease {
	e.t.Helper()
	held, err := e.leases.Held(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []addresses.Lease
	for _, l := range held {
		if l.Machine == id {
			out = append(out, l)
		}
	}
	return out
}

// reservation reports whether machine id holds room on the host.
func (e *env) reservation(id string) bool {
	e.t.Helper()
	h, err := e.hosts.Get(e.ctx, hostID)
	if err != nil {
		e.t.Fatal(err)
	}
	_, ok := h.Reservations[id]
	return ok
}

// checkReleased fails the test unless a finished machine holds nothing: no
// address, no room on its host, no volume at pdisk, no domain.
func (e *env) checkReleased(id string) {
	e.t.Helper()
	e.eventually("machine "+id+" gives its addresses back", func() bool { return len(e.leasesOf(id)) == 0 })
	e.eventually("machine "+id+" gives its room on the host back", func() bool { return !e.reservation(id) })
	if held := e.pdisk.heldBy(id); len(held) > 0 {
		e.t.Errorf("machine %s is %s and still holds volumes at pdisk: %v (pdisk commands: %s)", id, e.state(id), held, e.pdisk.describe(id))
	}
	if e.hv != nil {
		if st, err := e.hv.State(e.ctx, id); err != nil || st != hypervisor.Missing {
			e.t.Errorf("machine %s is %s and its domain is %v (%v)", id, e.state(id), st, err)
		}
	}
}

// wantCode fails the test unless err has code and its message holds
// every part.
func wantCode(t *testing.T, what string, err error, code errs.Code, parts ...string) {
	t.Helper()
	if got := errs.CodeOf(err); got != code || (code == "") != (err == nil) {
		t.Errorf("%s: error %v has code %q, want %q", what, err, got, code)
		return
	}
	for _, p := range parts {
		if !strings.Contains(errs.MessageOf(err), p) {
			t.Errorf("%s: message %q does not say %q", what, errs.MessageOf(err), p)
		}
	}
}

// countingHV is the test driver as the agent sees it, counting what it is
// asked per domain.
type countingHV struct {
	hypervisor.Hypervisor
	mu    sync.Mutex
	calls map[string][]string // uuid → calls, e.g. "define", "attach vdb"
	// holdDefine, when it returns a channel, makes Define wait until it
	// is closed, as a slow host would.
	holdDefine func(id string) <-chan struct{}
	// forgetFirst removes each domain's definition at its first start, as
	// a host that restarted in between without its domains would.
	forgetFirst bool
	// deaf guests ignore the power button (ACPI).
	deaf bool
}

func (h *countingHV) note(id, call string) {
	h.mu.Lock()
	h.calls[id] = append(h.calls[id], call)
	h.mu.Unlock()
}

// callsOf returns the calls made for domain id.
func (h *countingHV) callsOf(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls[id])
}

// count returns how many times call was made for domain id.
func (h *countingHV) count(id, call string) int {
	n := 0
	for _, c := range h.callsOf(id) {
		if c == call {
			n++
		}
	}
	return n
}

func (h *countingHV) Define(ctx context.Context, d hypervisor.Domain) error {
	h.note(d.UUID, "define")
	h.mu.Lock()
	hold := h.holdDefine
	h.mu.Unlock()
	if hold != nil {
		if c := hold(d.UUID); c != nil {
			<-c
		}
	}
	return h.Hypervisor.Define(ctx, d)
}

func (h *countingHV) Start(ctx context.Context, id string) error {
	h.note(id, "start")
	h.mu.Lock()
	forget := h.forgetFirst
	h.mu.Unlock()
	if forget && h.count(id, "start") == 1 {
		if err := h.Hypervisor.Undefine(ctx, id); err != nil {
			return err
		}
	}
	return h.Hypervisor.Start(ctx, id)
}

func (h *countingHV) Shutdown(ctx context.Context, id string) error {
	h.note(id, "shutdown")
	h.mu.Lock()
	deaf := h.deaf
	h.mu.Unlock()
	if deaf {
		return nil
	}
	return h.Hypervisor.Shutdown(ctx, id)
}

func (h *countingHV) Reboot(ctx context.Context, id string) error {
	h.note(id, "reboot")
	return h.Hypervisor.Reboot(ctx, id)
}

func (h *countingHV) Destroy(ctx context.Context, id string) error {
	h.note(id, "destroy")
	return h.Hypervisor.Destroy(ctx, id)
}

func (h *countingHV) Attach(ctx context.Context, id string, d hypervisor.Disk) error {
	h.note(id, "attach "+d.Device+" "+d.Source)
	return h.Hypervisor.Attach(ctx, id, d)
}

func (h *countingHV) Detach(ctx context.Context, id, device string) error {
	h.note(id, "detach "+device)
	return h.Hypervisor.Detach(ctx, id, device)
}

// pdisk stands in for the pdisk service, another module: it answers
// cmd.pdisk.volume.* and svc.pdisk.cimi_get as pdisk does, records what
// it was asked, and keeps which machine holds which volume.
type pdisk struct {
	mu   sync.Mutex
	cmds []pdiskCmd
	held map[string]string // volume uuid → machine uuid
	// hold, when it returns a channel, makes the command wait until it
	// is closed; refuse, when it returns an error, fails the command.
	hold   func(c pdiskCmd) <-chan struct{}
	refuse func(c pdiskCmd) error
	// holdGet makes the cimi_get of a volume wait.
	holdGet func(id string) <-chan struct{}
	// captured are the volumes capture made, with what pdisk records of
	// them (bytes, sha1, identifier); noDigest makes captures record
	// none, as on a backend pdisk cannot read.
	captured map[string]map[string]any
	noDigest bool
}

// pdiskCmd is one command pdisk handled.
type pdiskCmd struct {
	verb     string // create, attach, detach, get_image, release, capture
	id       string // command id
	delivery int
	actor    *commonv1.Actor
	volume   string // the volume uuid it is about
	machine  string // the machine uuid it names
	msg      proto.Message
}

func (c pdiskCmd) String() string {
	return fmt.Sprintf("%s %s (machine %s, command %s)", c.verb, c.volume, c.machine, c.id)
}

func newPdisk(t *testing.T, connect func() (*nats.Conn, jetstream.JetStream)) *pdisk {
	p := &pdisk{held: map[string]string{}, captured: map[string]map[string]any{}}
	nc, js := connect()
	b := bus.New(nc, js, bus.Options{Service: "pdisk", Logger: quiet()})
	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Durable: "pdisk", Subjects: []string{"cmd.pdisk.>"}, Concurrency: 64,
			Backoff: []time.Duration{50 * time.Millisecond}}, p.handle)
	})
	get := bus.Handle(subject.OpCimiGet, func(ctx context.Context, req *cimiv1.GetResourceRequest) (proto.Message, error) {
		if !slices.Contains(bus.ActorFrom(ctx).GetRoles(), cimi.RoleAdmin) {
			return nil, errs.Errorf(errs.NotFound, "%s does not exist.", req.GetId())
		}
		p.mu.Lock()
		hold := p.holdGet
		p.mu.Unlock()
		if hold != nil {
			if c := hold(req.GetId()); c != nil {
				<-c
			}
		}
		u := strings.TrimPrefix(req.GetId(), "Volume/")
		if uuid.Validate(u) != nil {
			return nil, errs.Errorf(errs.NotFound, "%s does not exist.", req.GetId())
		}
		v := map[string]any{"id": req.GetId(), "state": "IN_USE", "format": "qcow2", "path": "/var/lib/pdisk/" + u + ".qcow2"}
		p.mu.Lock()
		for k, x := range p.captured[u] {
			v[k] = x
		}
		p.mu.Unlock()
		doc, _ := json.Marshal(v)
		return &cimiv1.ResourceDocument{Json: doc, Revision: 1}, nil
	})
	run(t, func(ctx context.Context) error { return b.Serve(ctx, bus.ServiceInfo{Name: subject.Pdisk}, get) })
	return p
}

func (p *pdisk) handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	c := pdiskCmd{verb: cmd.Subject()[strings.LastIndexByte(cmd.Subject(), '.')+1:], id: cmd.ID(), delivery: cmd.Deliveries(), actor: cmd.Actor()}
	switch c.verb {
	case "create":
		m := &volumev1.CreateVolume{}
		if err := cmd.Decode(m); err != nil {
			return bus.Result{}, err
		}
		c.msg, c.volume, c.machine = m, m.GetUuid(), m.GetVolatileForMachineUuid()
	case "attach":
		m := &volumev1.AttachVolume{}
		if err := cmd.Decode(m); err != nil {
			return bus.Result{}, err
		}
		c.msg, c.volume, c.machine = m, m.GetUuid(), m.GetMachineUuid()
	case "detach":
		m := &volumev1.DetachVolume{}
		if err := cmd.Decode(m); err != nil {
			return bus.Result{}, err
		}
		c.msg, c.volume, c.machine = m, m.GetUuid(), m.GetMachineUuid()
	case "get_image":
		m := &volumev1.GetImageVolume{}
		if err := cmd.Decode(m); err != nil {
			return bus.Result{}, err
		}
		c.msg, c.volume, c.machine = m, m.GetUuid(), m.GetMachineUuid()
	case "release":
		m := &volumev1.ReleaseVolume{}
		if err := cmd.Decode(m); err != nil {
			return bus.Result{}, err
		}
		c.msg, c.volume, c.machine = m, m.GetUuid(), m.GetMachineUuid()
	case "capture":
		m := &volumev1.CaptureVolume{}
		if err := cmd.Decode(m); err != nil {
			return bus.Result{}, err
		}
		c.msg, c.volume = m, m.GetUuid()
	default:
		return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "pdisk has no command %s.", cmd.Subject()))
	}
	p.mu.Lock()
	p.cmds = append(p.cmds, c)
	hold, refuse := p.hold, p.refuse
	p.mu.Unlock()
	if hold != nil {
		if ch := hold(c); ch != nil {
			<-ch
		}
	}
	if refuse != nil {
		if err := refuse(c); err != nil {
			return bus.Result{}, bus.Settle(err)
		}
	}
	if uuid.Validate(c.volume) != nil || strings.ToLower(c.volume) != c.volume {
		return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "%q is not a volume uuid.", c.volume))
	}
	p.mu.Lock()
	switch c.verb {
	case "create", "attach", "get_image":
		p.held[c.volume] = c.machine
	case "detach", "release":
		if p.held[c.volume] == c.machine {
			delete(p.held, c.volume)
		}
	case "capture":
		// What pdisk reads of the copy: its size and SHA-1 as stored,
		// and the Marketplace identifier of that SHA-1.
		to := c.msg.(*volumev1.CaptureVolume).GetNewUuid()
		p.captured[to] = map[string]any{"state": "AVAILABLE"}
		if !p.noDigest {
			sum := fmt.Sprintf("%x", sha1sum.Sum([]byte(to)))
			p.captured[to]["bytes"], p.captured[to]["sha1"], p.captured[to]["identifier"] = 1<<20+len(to), sum, identifierOf(sum)
		}
	}
	p.mu.Unlock()
	return bus.Result{Affected: []string{"Volume/" + c.volume}}, nil
}

// setHold sets the hold hook.
func (p *pdisk) setHold(f func(c pdiskCmd) <-chan struct{}) {
	p.mu.Lock()
	p.hold = f
	p.mu.Unlock()
}

// setRefuse sets the refuse hook.
func (p *pdisk) setRefuse(f func(c pdiskCmd) error) {
	p.mu.Lock()
	p.refuse = f
	p.mu.Unlock()
}

// setHoldGet sets the cimi_get hold hook.
func (p *pdisk) setHoldGet(f func(id string) <-chan struct{}) {
	p.mu.Lock()
	p.holdGet = f
	p.mu.Unlock()
}

// commands returns the commands pdisk handled about machine id (all when
// id is empty).
func (p *pdisk) commands(id string) []pdiskCmd {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []pdiskCmd
	for _, c := range p.cmds {
		if id == "" || c.machine == id {
			out = append(out, c)
		}
	}
	return out
}

// capturedOf returns what pdisk recorded of a volume capture made.
func (p *pdisk) capturedOf(id string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.captured[id]
}

// heldBy returns the volumes machine id holds at pdisk.
func (p *pdisk) heldBy(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for v, m := range p.held {
		if m == id {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// describe lists the commands about machine id, for failure messages.
func (p *pdisk) describe(id string) string {
	var b strings.Builder
	for _, c := range p.commands(id) {
		fmt.Fprintf(&b, "\n\t%s", c)
	}
	return b.String()
}

// tap sees every command and event published, on a plain NATS
// subscription: commands JetStream drops as duplicates included.
type tap struct {
	mu   sync.Mutex
	msgs []tapped
}

// tapped is one message seen on the wire.
type tapped struct {
	subject, id, typ string
	data             []byte
}

func newTap(t *testing.T, connect func() (*nats.Conn, jetstream.JetStream)) *tap {
	tp := &tap{}
	nc, _ := connect()
	for _, s := range []string{subject.AllCommands, subject.AllEvents} {
		if _, err := nc.Subscribe(s, func(m *nats.Msg) {
			tp.mu.Lock()
			tp.msgs = append(tp.msgs, tapped{subject: m.Subject, id: m.Header.Get(nats.MsgIdHdr), typ: m.Header.Get(bus.HeaderType), data: m.Data})
			tp.mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return tp
}

// seen returns the messages whose subject starts with prefix.
func (tp *tap) seen(prefix string) []tapped {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []tapped
	for _, m := range tp.msgs {
		if strings.HasPrefix(m.subject, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// commandIDs returns, per command subject, the distinct ids of the
// commands sent about machine id (their payload names it).
func (tp *tap) commandIDs(id string) map[string][]string {
	out := map[string][]string{}
	for _, m := range tp.seen(subject.CommandPrefix + ".") {
		if !strings.Contains(string(m.data), id) || slices.Contains(out[m.subject], m.id) {
			continue
		}
		out[m.subject] = append(out[m.subject], m.id)
	}
	return out
}

// sends counts how many times each command id about machine id was sent.
func (tp *tap) sends(id string) map[string]int {
	out := map[string]int{}
	for _, m := range tp.seen(subject.CommandPrefix + ".") {
		if strings.Contains(string(m.data), id) {
			out[m.subject+" "+m.id]++
		}
	}
	return out
}
