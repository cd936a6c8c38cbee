package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/controller"
	"stratuslab.dev/services/marketplace/internal/mptest"
	"stratuslab.dev/services/marketplace/internal/settings"
)

// waitLimit bounds every wait in these tests; reaching it is a failure,
// not a timing assertion.
const waitLimit = 30 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The actors of the tests: alice and bob upload entries signed by their
// own certificates.
var (
	alice = &commonv1.Actor{User: "alice", Roles: []string{cimi.RoleUser}}
	bob   = &commonv1.Actor{User: "bob", Roles: []string{cimi.RoleUser}}
	carol = &commonv1.Actor{User: "carol", Roles: []string{cimi.RoleUser}}
	root  = &commonv1.Actor{User: "root", Roles: []string{cimi.RoleAdmin}}
	anon  = &commonv1.Actor{}
)

// pki is the certificates of the tests, made once per test binary.
type pki struct {
	ca, otherCA          mptest.Credential
	alice, bob, outsider mptest.Credential
}

var testPKI = sync.OnceValue(func() *pki {
	p := &pki{ca: mptest.NewCA("Marketplace Test CA"), otherCA: mptest.NewCA("Unrelated CA")}
	p.alice = mptest.NewEndorser(p.ca, "Alice Appliance", "alice@example.org", 2048)
	p.bob = mptest.NewEndorser(p.ca, "Bob Builder", "bob@example.org", 2048)
	p.outsider = mptest.NewEndorser(p.otherCA, "Olga Outsider", "olga@example.net", 2048)
	return p
})

// env is one test's marketplace: an in-process NATS server, one or more
// replicas (controller, CIMI provider, query service and command consumer
// on one durable, as marketplace.go wires them) sharing the store
// buckets, a client bus that sends commands as the gateway and vmctl do,
// and every event published.
type env struct {
	t        testing.TB
	srv      *natsserver.Server
	client   *bus.Bus
	clock    *clock
	settings atomic.Pointer[settings.Settings]
	// store reads the buckets directly, strictly (see stored).
	store    store.Store
	replicas []*replica

	mu     sync.Mutex
	events []*bus.Event
}

// replica is one marketplace process.
type replica struct {
	images, newest store.Collection
	ctl            *controller.Controller
	provider       *resource.Provider
}

// newEnv starts a marketplace of n replicas with the default settings.
func newEnv(t testing.TB, n int) *env {
	t.Helper()
	e := &env{t: t, srv: testkit.NATS(t, ""), clock: &clock{}}
	s := settings.Defaults()
	e.settings.Store(&s)
	ctx := context.Background()
	nc, js := e.connect()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e.client = bus.New(nc, js, bus.Options{Service: "gw", Logger: quiet()})
	// Strict reads: what the bucket holds, whatever any index saw.
	st, err := embedded.Open(ctx, js, "marketplace", embedded.WithLogger(quiet()), embedded.WithStrictReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e.store = st
	run(t, func(ctx context.Context) error {
		spec := bus.SubscribeSpec{Subjects: []string{subject.AllEvents}, Since: time.Now().Add(-time.Hour)}
		return e.client.Subscribe(ctx, spec, func(_ context.Context, ev *bus.Event) error {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
			return nil
		})
	})
	for range n {
		e.replicas = append(e.replicas, e.replica())
	}
	return e
}

func (e *env) connect() (*nats.Conn, jetstream.JetStream) {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return nc, js
}

// replica starts one marketplace process on its own connection and store.
func (e *env) replica() *replica {
	e.t.Helper()
	ctx := context.Background()
	nc, js := e.connect()
	st, err := embedded.Open(ctx, js, "marketplace", embedded.WithLogger(quiet()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	r := &replica{}
	if r.images, err = st.Collection(ctx, catalog.Kind); err != nil {
		e.t.Fatal(err)
	}
	if r.newest, err = st.Collection(ctx, controller.NewestKind); err != nil {
		e.t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: "marketplace", Logger: quiet()})
	r.ctl, err = controller.New(controller.Config{
		Images: r.images, Newest: r.newest, Bus: b, Log: quiet(), Now: e.clock.Now,
		Settings: func() settings.Settings { return *e.settings.Load() },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if r.provider, err = resource.New(b, "marketplace", quiet(), r.ctl.Kind()); err != nil {
		e.t.Fatal(err)
	}
	handle := func(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
		if r.provider.Owns(cmd.Subject()) {
			return r.provider.Handle(ctx, cmd)
		}
		return r.ctl.Handle(ctx, cmd)
	}
	run(e.t, func(ctx context.Context) error {
		return b.Serve(ctx, bus.ServiceInfo{}, append(r.provider.Endpoints(), r.ctl.Endpoints()...)...)
	})
	run(e.t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Durable: "marketplace", Subjects: r.provider.Subjects(), Concurrency: 16,
			AckWait: waitLimit, Backoff: []time.Duration{20 * time.Millisecond}}, handle)
	})
	return r
}

// r is the first replica.
func (e *env) r() *replica { return e.replicas[0] }

// set changes the live settings.
func (e *env) set(fn func(s *settings.Settings)) {
	s := *e.settings.Load()
	fn(&s)
	e.settings.Store(&s)
}

// run starts fn in a goroutine until the test ends.
func run(t testing.TB, fn func(ctx context.Context) error) {
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
			t.Errorf("still running %v after cancellation", waitLimit)
		}
	})
}

// clock is the controllers' clock: the wall clock moved by a skew.
type clock struct {
	mu   sync.Mutex
	skew time.Duration
}

// Now is the time the controllers read.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

// Advance moves the clock on by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.skew += d
	c.mu.Unlock()
}

// outcome is how a command ended: code "" for success.
type outcome struct {
	id       string // the resource the command was about
	code     errs.Code
	message  string
	affected []string
}

func (o outcome) ok() bool { return o.code == "" }

// send sends a command as actor under command id cmdID (a new one when
// empty) and waits for its end.
func (e *env) send(actor *commonv1.Actor, subj string, msg proto.Message, cmdID string) outcome {
	e.t.Helper()
	if cmdID == "" {
		cmdID = uuid.NewString()
	}
	meta := &commonv1.Meta{CommandId: cmdID, Actor: actor}
	if err := e.client.Send(context.Background(), subj, meta, msg); err != nil {
		e.t.Fatalf("send %s: %v", subj, err)
	}
	return e.wait(cmdID)
}

// cimi sends a CIMI write (verb cimi_create, cimi_edit, cimi_delete,
// cimi_<action>) on id as actor and waits for its end.
func (e *env) cimi(actor *commonv1.Actor, verb, id, body string, selects ...string) outcome {
	e.t.Helper()
	rc := &cimiv1.ResourceCommand{Kind: catalog.Kind, Id: id, Body: []byte(body), Select: selects}
	if a, ok := strings.CutPrefix(verb, subject.VerbCimiActionPrefix); ok && verb != subject.VerbCimiCreate && verb != subject.VerbCimiEdit && verb != subject.VerbCimiDelete {
		rc.Action = a
	}
	o := e.send(actor, subject.CimiCommand(subject.Marketplace, subject.ResourceMachineImage, verb), rc, "")
	o.id = id
	return o
}

// upload sends a signed entry as the gateway does for POST
// /cimi/MachineImage {"metadata": xml}.
func (e *env) upload(actor *commonv1.Actor, xml []byte) outcome {
	e.t.Helper()
	body, err := json.Marshal(map[string]string{"metadata": string(xml)})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.cimi(actor, subject.VerbCimiCreate, cimi.NewID(catalog.Kind), string(body))
}

// mustUpload uploads and fails the test when the entry is refused; it
// returns the entry's id.
func (e *env) mustUpload(actor *commonv1.Actor, xml []byte) string {
	e.t.Helper()
	o := e.upload(actor, xml)
	if !o.ok() {
		e.t.Fatalf("upload refused: %s: %s", o.code, o.message)
	}
	return o.id
}

// deprecate runs the deprecate action as actor with a reason.
func (e *env) deprecate(actor *commonv1.Actor, id, reason string) outcome {
	e.t.Helper()
	body, _ := json.Marshal(map[string]string{"action": cimi.ActionURI("deprecate"), "reason": reason})
	return e.cimi(actor, subject.CimiAction("deprecate"), id, string(body))
}

// wait returns the outcome of command cmdID.
func (e *env) wait(cmdID string) outcome {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		for _, ev := range e.snapshot() {
			switch ev.Type() {
			case "stratus.common.v1.CommandCompleted":
				var c commonv1.CommandCompleted
				if err := ev.Decode(&c); err != nil {
					e.t.Fatal(err)
				}
				if c.CommandId == cmdID {
					o := outcome{message: c.Message}
					for _, r := range c.Affected {
						o.affected = append(o.affected, r.Id)
					}
					return o
				}
			case "stratus.common.v1.CommandFailed":
				var f commonv1.CommandFailed
				if err := ev.Decode(&f); err != nil {
					e.t.Fatal(err)
				}
				if f.CommandId == cmdID {
					return outcome{code: errs.Code(f.Error.GetCode()), message: f.Error.GetMessage()}
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("command %s did not end within %v", cmdID, waitLimit)
	return outcome{}
}

func (e *env) snapshot() []*bus.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// eventsOn returns the events published on subj so far.
func (e *env) eventsOn(subj string) []*bus.Event {
	var out []*bus.Event
	for _, ev := range e.snapshot() {
		if ev.Subject() == subj {
			out = append(out, ev)
		}
	}
	return out
}

// get reads id as actor through the provider (in process: the bus
// answers refusals from a goroutine the race detector flags, a bus
// matter).
func (e *env) get(actor *commonv1.Actor, id string) (map[string]any, errs.Code) {
	e.t.Helper()
	doc, _, err := e.r().provider.Get(context.Background(), resource.IdentityOf(actor), id)
	if err != nil {
		return nil, errs.CodeOf(err)
	}
	return doc, ""
}

// mustGet reads id as actor and fails the test when it cannot.
func (e *env) mustGet(actor *commonv1.Actor, id string) catalog.Image {
	e.t.Helper()
	doc, code := e.get(actor, id)
	if code != "" {
		e.t.Fatalf("get %s as %q: %s", id, actor.GetUser(), code)
	}
	im, err := catalog.FromMap(doc)
	if err != nil {
		e.t.Fatal(err)
	}
	return im
}

// query runs a CIMI query as actor through the provider: the count and
// the ids of the page.
func (e *env) query(actor *commonv1.Actor, q *commonv1.CollectionQuery) (uint64, []string, error) {
	e.t.Helper()
	count, docs, err := e.r().provider.Query(context.Background(), resource.IdentityOf(actor), catalog.Kind, q)
	if err != nil {
		return 0, nil, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i], _ = d["id"].(string)
	}
	return count, ids, nil
}

// stored reads the document id from the bucket; nil when absent.
func (e *env) stored(id string) map[string]any {
	e.t.Helper()
	// Opened on first use: a collection loads an index of every document.
	images, err := e.store.Collection(context.Background(), catalog.Kind)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := images.Get(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(d.Body, &doc); err != nil {
		e.t.Fatal(err)
	}
	return doc
}

// count is the number of stored entries (drafts included), as the first
// replica, which sees its own writes at once, counts them.
func (e *env) count() int {
	e.t.Helper()
	p, err := e.r().images.Query(context.Background(), cimi.Query{}, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Count
}
