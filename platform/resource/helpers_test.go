package resource

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// waitLimit bounds every wait in these tests; reaching it is a failure,
// not a timing assertion.
const waitLimit = 15 * time.Second

// service is the name the provider under test serves for.
const service = "test"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Identities of the tests.
var (
	alice = &commonv1.Actor{User: "alice", Roles: []string{cimi.RoleUser}}
	bob   = &commonv1.Actor{User: "bob", Roles: []string{cimi.RoleUser}}
	admin = &commonv1.Actor{User: "root", Roles: []string{cimi.RoleAdmin}}
	anon  = &commonv1.Actor{}
)

// env is one test's NATS server, store, provider (serving and consuming)
// and a client bus that sends commands and queries as the gateway would.
type env struct {
	t      *testing.T
	client *bus.Bus
	p      *Provider
	coll   store.Collection
	js     jetstream.JetStream // for another replica's store

	mu      sync.Mutex
	events  []*bus.Event
	crashes map[string]bool // command ids whose first delivery "crashes" after the work
}

// newEnv starts everything for kinds made by mk from the collection
// "Note" of the store.
func newEnv(t *testing.T, mk func(coll store.Collection) []Kind) *env {
	t.Helper()
	nc, js := testkit.JetStream(t)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(ctx, js, service, embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	coll, err := st.Collection(ctx, "Note")
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: service, Logger: quiet()})
	p, err := New(b, service, quiet(), mk(coll)...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, client: bus.New(nc, js, bus.Options{Service: "gw", Logger: quiet()}), p: p, coll: coll, js: js, crashes: map[string]bool{}}
	run(t, func(ctx context.Context) error {
		return b.Serve(ctx, bus.ServiceInfo{}, p.Endpoints()...)
	})
	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Subjects: p.Subjects(), Backoff: []time.Duration{20 * time.Millisecond}}, e.handle)
	})
	run(t, func(ctx context.Context) error {
		spec := bus.SubscribeSpec{Subjects: []string{subject.AllEvents}, Since: time.Now().Add(-time.Hour)}
		return e.client.Subscribe(ctx, spec, func(_ context.Context, ev *bus.Event) error {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
			return nil
		})
	})
	return e
}

// handle runs the provider, simulating a crash after the work of the
// first delivery of the commands in e.crashes: the bus redelivers them.
func (e *env) handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	res, err := e.p.Handle(ctx, cmd)
	e.mu.Lock()
	crash := e.crashes[cmd.ID()] && cmd.Deliveries() == 1
	e.mu.Unlock()
	if crash && err == nil {
		return bus.Result{}, errors.New("simulated crash before the acknowledgement")
	}
	return res, err
}

// run starts fn in a goroutine until the test ends.
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
			t.Errorf("still running %v after cancellation", waitLimit)
		}
	})
}

// cmd is a ResourceCommand to send.
type cmd struct {
	verb       string // cimi_create, ...
	id         string
	body       string
	selects    []string
	ifRevision uint64
	crash      bool   // crash after the first delivery's work
	kind       string // the kind of the subject; the id's when empty
}

// outcome is how a command ended: code "" for success.
type outcome struct {
	id       string // command id
	code     errs.Code
	message  string
	affected []string
}

// do sends c as actor (nil: the system) and waits for its terminal event.
func (e *env) do(actor *commonv1.Actor, c cmd) outcome {
	e.t.Helper()
	kind, _, _ := cimi.SplitID(c.id)
	if c.kind != "" {
		kind = c.kind
	}
	cmdID := uuid.NewString()
	if c.crash {
		e.mu.Lock()
		e.crashes[cmdID] = true
		e.mu.Unlock()
	}
	meta := &commonv1.Meta{CommandId: cmdID, Actor: actor}
	rc := &cimiv1.ResourceCommand{Meta: meta, Kind: kind, Id: c.id, Body: []byte(c.body), Select: c.selects, IfRevision: c.ifRevision}
	subj := subject.CimiCommand(service, subject.ResourceToken(kind), c.verb)
	if err := e.client.Send(context.Background(), subj, meta, rc); err != nil {
		e.t.Fatalf("send %s: %v", subj, err)
	}
	return e.wait(cmdID)
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
					o := outcome{id: cmdID, message: c.Message}
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
					return outcome{id: cmdID, code: errs.Code(f.Error.GetCode()), message: f.Error.GetMessage()}
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
	return append([]*bus.Event(nil), e.events...)
}

// changes returns the ResourceChanged events of command cmdID.
func (e *env) changes(cmdID string) []*cimiv1.ResourceChanged {
	e.t.Helper()
	var out []*cimiv1.ResourceChanged
	for _, ev := range e.snapshot() {
		if ev.ID() != cmdID+".changed" {
			continue
		}
		var rc cimiv1.ResourceChanged
		if err := ev.Decode(&rc); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, &rc)
	}
	return out
}

// get reads id through the cimi_get endpoint. Refusals are asked in
// process: platform/bus's Serve answers errors from its own goroutine
// while NATS micro reads the request's error state, which the race
// detector reports (a bus defect, not this package's).
func (e *env) get(actor *commonv1.Actor, id string) (map[string]any, uint64, errs.Code) {
	e.t.Helper()
	if _, _, err := e.p.Get(context.Background(), IdentityOf(actor), id); err != nil {
		return nil, 0, errs.CodeOf(err)
	}
	var resp cimiv1.ResourceDocument
	err := e.client.Request(context.Background(), subject.CimiQuery(service, subject.OpCimiGet), actor,
		&cimiv1.GetResourceRequest{Actor: actor, Id: id}, &resp)
	if err != nil {
		return nil, 0, errs.CodeOf(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(resp.Json, &doc); err != nil {
		e.t.Fatal(err)
	}
	return doc, resp.Revision, ""
}

// query reads a collection through the cimi_query endpoint; refusals are
// asked in process, as in get.
func (e *env) query(actor *commonv1.Actor, kind string, q *commonv1.CollectionQuery) (uint64, []map[string]any, errs.Code) {
	e.t.Helper()
	if _, _, err := e.p.Query(context.Background(), IdentityOf(actor), kind, q); err != nil {
		return 0, nil, errs.CodeOf(err)
	}
	var resp cimiv1.ResourceDocuments
	err := e.client.Request(context.Background(), subject.CimiQuery(service, subject.OpCimiQuery), actor,
		&cimiv1.QueryResourcesRequest{Actor: actor, Kind: kind, Query: q}, &resp)
	if err != nil {
		return 0, nil, errs.CodeOf(err)
	}
	docs := make([]map[string]any, len(resp.Documents))
	for i, d := range resp.Documents {
		if err := json.Unmarshal(d.Json, &docs[i]); err != nil {
			e.t.Fatal(err)
		}
	}
	return resp.Count, docs, ""
}

// stored reads a document as the store keeps it, hidden attributes
// included; nil when absent.
func (e *env) stored(id string) map[string]any {
	e.t.Helper()
	d, err := e.coll.Get(context.Background(), id)
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

// notes is the kind most tests use: any signed-in user may create a Note.
func notes(coll store.Collection) []Kind {
	return []Kind{{
		Name:       "Note",
		Collection: coll,
		CanCreate:  func(who cimi.Identity) bool { return who.User != "" },
	}}
}

func newID() string { return "Note/" + uuid.NewString() }

// storedRaw returns the JSON of a document as stored.
func (e *env) storedRaw(id string) string {
	e.t.Helper()
	d, err := e.coll.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(d.Body)
}

// eventOf returns the ResourceChanged event of command cmdID, nil if none.
func (e *env) eventOf(cmdID string) *bus.Event {
	for _, ev := range e.snapshot() {
		if ev.ID() == cmdID+".changed" {
			return ev
		}
	}
	return nil
}
