package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	jobv1 "stratuslab.dev/proto/stratus/job/v1"
)

// Identities of the tests.
var (
	alice = cimi.Identity{User: "alice", Roles: []string{"::users"}}
	bob   = cimi.Identity{User: "bob"}
	admin = cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}
)

// env is a gateway's jobs on a real NATS server with JetStream, beside a
// service consuming commands on cmd.test.thing.<verb>:
//
//	ok       succeeds, after publishing a ResourceChanged of its target
//	bad      fails for good with "forbidden"
//	slow     reports progress 40, then waits for release before succeeding
//	parent   sends a "child" command under the same job, then succeeds
//	child    succeeds
type env struct {
	t       *testing.T
	bus     *bus.Bus
	j       *Jobs
	release chan struct{}
	// captured holds every event seen by an ephemeral subscription, to
	// hand them to the handlers again.
	mu       sync.Mutex
	captured []*bus.Event
}

func newEnv(t *testing.T) *env {
	t.Helper()
	nc, js := testkit.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(ctx, js, "cimi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	jobs, err := st.Collection(ctx, KindJob)
	if err != nil {
		t.Fatal(err)
	}
	events, err := st.Collection(ctx, KindEvent)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	b := bus.New(nc, js, bus.Options{Service: "test", Logger: log})
	e := &env{t: t, bus: b, j: New(jobs, events, b, log), release: make(chan struct{})}

	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
	}
	start(e.j.Run)
	start(func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Durable: "test", Subjects: []string{"cmd.test.thing.*"},
			Backoff: []time.Duration{10 * time.Millisecond}}, e.handle)
	})
	ready := make(chan struct{})
	start(func(ctx context.Context) error {
		close(ready)
		return b.Subscribe(ctx, bus.SubscribeSpec{Since: time.Now().Add(-time.Hour)}, func(_ context.Context, ev *bus.Event) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.captured = append(e.captured, ev)
			return nil
		})
	})
	<-ready
	return e
}

// handle is the test service's command handler.
func (e *env) handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	var target commonv1.ResourceRef
	if err := cmd.Decode(&target); err != nil {
		return bus.Result{}, err
	}
	switch cmd.Subject() {
	case "cmd.test.thing.ok":
		ev := &cimiv1.ResourceChanged{Kind: "Thing", Id: target.GetId(), Json: []byte(`{"name":"my thing"}`), At: timestamppb.Now()}
		if err := e.bus.Publish(ctx, "evt.test.thing.created", ev, cmd.ID()+".created"); err != nil {
			return bus.Result{}, err
		}
		return bus.Result{Affected: []string{target.GetId()}, Message: "The thing is ready."}, nil
	case "cmd.test.thing.bad":
		return bus.Result{}, bus.Permanent(errs.Errorf(errs.Forbidden, "Only administrators may touch this thing."))
	case "cmd.test.thing.slow":
		p := &jobv1.JobProgress{CommandId: cmd.ID(), JobId: cmd.JobID(), CommandSubject: cmd.Subject(), Progress: 40, Message: "halfway there", ReportedAt: timestamppb.Now()}
		if err := e.bus.Publish(ctx, "evt.test.thing.slow_progress", p, cmd.ID()+".p40"); err != nil {
			return bus.Result{}, err
		}
		select {
		case <-e.release:
		case <-ctx.Done():
			return bus.Result{}, ctx.Err()
		}
		return bus.Result{Affected: []string{target.GetId()}, Message: "Slowly done."}, nil
	case "cmd.test.thing.parent":
		meta := &commonv1.Meta{CommandId: cmd.ID() + "-child", JobId: cmd.JobID(), Actor: cmd.Actor()}
		if err := e.bus.Send(ctx, "cmd.test.thing.child", meta, &target); err != nil {
			return bus.Result{}, err
		}
		return bus.Result{Affected: []string{target.GetId()}, Message: "Parent done."}, nil
	case "cmd.test.thing.child":
		return bus.Result{Affected: []string{target.GetId() + "-part"}, Message: "Child done."}, nil
	}
	return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "no such verb %s", cmd.Subject()))
}

// send records a job as the gateway does and sends the command verb on
// target as who.
func (e *env) send(who cimi.Identity, verb, target string) string {
	e.t.Helper()
	ctx := context.Background()
	subj := "cmd.test.thing." + verb
	cmdID := "cmd-" + verb + "-" + cimi.NewID("X")[2:]
	id, err := e.j.Start(ctx, who, Spec{Action: verb, Target: target, CommandID: cmdID, CommandSubject: subj})
	if err != nil {
		e.t.Fatal(err)
	}
	meta := &commonv1.Meta{CommandId: cmdID, JobId: id, Actor: &commonv1.Actor{User: who.User, Roles: who.Roles}}
	if err := e.bus.Send(ctx, subj, meta, &commonv1.ResourceRef{Id: target}); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// job reads a stored job.
func (e *env) job(id string) (Job, uint64) {
	e.t.Helper()
	d, err := e.j.jobs.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("read %s: %v", id, err)
	}
	var j Job
	if err := json.Unmarshal(d.Body, &j); err != nil {
		e.t.Fatal(err)
	}
	return j, d.Revision
}

// waitJob waits until the job id satisfies ok and returns it. The bound is
// generous: it only keeps a broken test from hanging.
func (e *env) waitJob(id string, ok func(Job) bool) Job {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, _ := e.job(id)
		if ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s never reached the expected state; last: %+v", id, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ended(j Job) bool { return terminal(j.State) }

// events returns the audit trail as who may see it.
func (e *env) events(who cimi.Identity) []Event {
	e.t.Helper()
	page, err := e.j.events.Query(context.Background(), cimi.Query{OrderBy: []cimi.Order{{Attr: cimi.Attribute{Path: []string{"subject"}}}}}, who)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]Event, len(page.Docs))
	for i, d := range page.Docs {
		if err := json.Unmarshal(d.Body, &out[i]); err != nil {
			e.t.Fatal(err)
		}
	}
	return out
}

// waitEvents waits until who sees n events of the audit trail.
func (e *env) waitEvents(who cimi.Identity, n int) []Event {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs := e.events(who)
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s sees %d events, want %d: %+v", who.User, len(evs), n, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJobFollowsItsCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		verb   string
		state  string
		code   int
		errc   string
		msg    string
		affect []Ref
	}{
		{verb: "ok", state: StateSuccess, msg: "The thing is ready.", affect: []Ref{{Href: "Thing/ok"}}},
		{verb: "bad", state: StateFailed, code: 403, errc: "forbidden", msg: "Only administrators may touch this thing. (forbidden)"},
	}
	for _, tt := range tests {
		t.Run(tt.verb, func(t *testing.T) {
			id := e.send(alice, tt.verb, "Thing/"+tt.verb)
			queued, _ := e.job(id)
			if queued.State != StateQueued && !ended(queued) {
				t.Errorf("new job state = %s", queued.State)
			}
			j := e.waitJob(id, ended)
			if j.State != tt.state || j.ReturnCode != tt.code || j.ErrorCode != tt.errc || j.StatusMessage != tt.msg {
				t.Errorf("job = state %s returnCode %d errorCode %q message %q; want %s %d %q %q",
					j.State, j.ReturnCode, j.ErrorCode, j.StatusMessage, tt.state, tt.code, tt.errc, tt.msg)
			}
			if !slices.Equal(j.AffectedResources, tt.affect) {
				t.Errorf("affectedResources = %v, want %v", j.AffectedResources, tt.affect)
			}
			if tt.state == StateSuccess && j.Progress != 100 {
				t.Errorf("progress = %d, want 100", j.Progress)
			}
			if j.Action != tt.verb || j.TargetResource == nil || j.TargetResource.Href != "Thing/"+tt.verb {
				t.Errorf("action %q target %v", j.Action, j.TargetResource)
			}
			if j.ResourceURI != cimi.ResourceURI(KindJob) || j.TimeOfStatusChange.Before(j.Created) || j.Updated.Before(j.Created) {
				t.Errorf("common attributes: %+v", j.Common)
			}
		})
	}
}

func TestJobReportsProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.send(alice, "slow", "Thing/slow")
	j := e.waitJob(id, func(j Job) bool { return j.State != StateQueued })
	if j.State != StateRunning || j.Progress != 40 || j.StatusMessage != "halfway there" {
		t.Fatalf("running job = %s %d%% %q", j.State, j.Progress, j.StatusMessage)
	}
	close(e.release)
	j = e.waitJob(id, ended)
	if j.State != StateSuccess || j.Progress != 100 || j.StatusMessage != "Slowly done." {
		t.Fatalf("ended job = %s %d%% %q", j.State, j.Progress, j.StatusMessage)
	}
}

func TestNestedJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.send(alice, "parent", "Thing/p")
	parent := e.waitJob(id, func(j Job) bool { return ended(j) && len(j.NestedJobs) == 1 })
	if parent.State != StateSuccess || !slices.Equal(parent.AffectedResources, []Ref{{Href: "Thing/p"}}) {
		t.Fatalf("parent = %+v", parent)
	}
	child := e.waitJob(parent.NestedJobs[0].Href, ended)
	if child.State != StateSuccess || child.ParentJob == nil || child.ParentJob.Href != id || child.Action != "child" ||
		!slices.Equal(child.AffectedResources, []Ref{{Href: "Thing/p-part"}}) {
		t.Fatalf("child = %+v", child)
	}
	if child.ACL.Owner.Principal != "alice" {
		t.Errorf("child acl = %+v, want the parent's", child.ACL)
	}
}

// TestDuplicateEventsChangeNothing hands every event again to both
// handlers, after a progress report came late and a contradicting terminal
// event arrived: nothing moves a job that has ended, nor adds an Event.
func TestDuplicateEventsChangeNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	okID := e.send(alice, "ok", "Thing/1")
	badID := e.send(alice, "bad", "Thing/2")
	e.waitJob(okID, ended)
	e.waitJob(badID, ended)
	// Contradicting news for the ended jobs, published by nobody's command.
	if err := e.bus.Publish(ctx, "evt.test.thing.ok_failed", &commonv1.CommandFailed{JobId: okID, CommandSubject: "cmd.test.thing.ok",
		Error: &commonv1.Error{Code: "internal", Message: "late"}}, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(ctx, "evt.test.thing.bad_progress", &jobv1.JobProgress{JobId: badID, Progress: 90, Message: "late"}, ""); err != nil {
		t.Fatal(err)
	}
	// The end of a job the gateway never recorded is skipped.
	unknown := cimi.NewID(KindJob)
	if err := e.bus.Publish(ctx, "evt.test.thing.ok_completed", &commonv1.CommandCompleted{JobId: unknown, CommandId: "elsewhere"}, ""); err != nil {
		t.Fatal(err)
	}
	// A third job ending shows that the durable has handled everything
	// published before.
	e.waitJob(e.send(bob, "ok", "Thing/3"), ended)
	aliceEvents := e.waitEvents(alice, 3)
	// alice's three, bob's two, and the two events published without an
	// actor (the late failure, the unknown job's end).
	allEvents := e.waitEvents(admin, 7)
	if len(allEvents) != 7 || len(aliceEvents) != 3 {
		t.Fatalf("%d events, alice sees %d; want 7 and 3", len(allEvents), len(aliceEvents))
	}

	if _, err := e.j.jobs.Get(ctx, unknown); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an event made up job %s: %v", unknown, err)
	}
	before := map[string]uint64{}
	for _, id := range []string{okID, badID} {
		_, before[id] = e.job(id)
	}
	e.mu.Lock()
	captured := slices.Clone(e.captured)
	e.mu.Unlock()
	if len(captured) < 6 {
		t.Fatalf("captured %d events, want at least 6", len(captured))
	}
	for _, ev := range captured {
		if err := e.j.handleJobEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := e.j.handleAuditEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for id, rev := range before {
		j, now := e.job(id)
		if now != rev {
			t.Errorf("job %s changed: revision %d -> %d, now %+v", id, rev, now, j)
		}
	}
	if ok, _ := e.job(okID); ok.State != StateSuccess {
		t.Errorf("ok job state = %s", ok.State)
	}
	if bad, _ := e.job(badID); bad.State != StateFailed || bad.Progress != 0 {
		t.Errorf("bad job = %s %d%%", bad.State, bad.Progress)
	}
	if n := len(e.events(alice)); n != len(aliceEvents) {
		t.Errorf("alice sees %d events after the duplicates, %d before", n, len(aliceEvents))
	}
	if n := len(e.events(admin)); n != len(allEvents) {
		t.Errorf("there are %d events after the duplicates, %d before", n, len(allEvents))
	}
}

func TestJobACL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.send(alice, "ok", "Thing/acl")
	e.waitJob(id, ended)
	p, err := resource.New(e.bus, "cimi", nil, e.j.Kinds()...)
	if err != nil {
		t.Fatal(err)
	}
	if subs := p.Subjects(); len(subs) != 0 {
		t.Errorf("read-only kinds consume commands: %v", subs)
	}
	ctx := context.Background()
	tests := []struct {
		who     cimi.Identity
		visible bool
	}{
		{alice, true},
		{admin, true},
		{bob, false},
		{cimi.Identity{}, false},
	}
	for _, tt := range tests {
		_, _, err := p.Get(ctx, tt.who, id)
		if visible := err == nil; visible != tt.visible {
			t.Errorf("%q gets the job: %v (err %v), want %v", tt.who.User, visible, err, tt.visible)
		}
		if !tt.visible && errs.CodeOf(err) != errs.NotFound {
			t.Errorf("%q: code %s, want not_found", tt.who.User, errs.CodeOf(err))
		}
		n, _, err := p.Query(ctx, tt.who, KindJob, &commonv1.CollectionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]uint64{true: 1, false: 0}[tt.visible]; n != want {
			t.Errorf("%q queries %d jobs, want %d", tt.who.User, n, want)
		}
	}
}

func TestAnonymousJobIsAdminsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := e.j.Start(context.Background(), cimi.Identity{}, Spec{Action: "create", Target: "Thing/x"})
	if err != nil {
		t.Fatal(err)
	}
	j, _ := e.job(id)
	if j.ACL.Owner != (cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}) || len(j.ACL.Rules) != 0 {
		t.Fatalf("acl = %+v", j.ACL)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id, err := e.j.Start(ctx, alice, Spec{Action: "delete", Target: "Thing/f", CommandID: "c1", CommandSubject: "cmd.test.thing.gone"})
	if err != nil {
		t.Fatal(err)
	}
	sendErr := errs.Wrap(errs.Unavailable, errors.New("nats: no responders"), "The request could not be passed on.")
	if err := e.j.Fail(ctx, id, sendErr); err != nil {
		t.Fatal(err)
	}
	j, rev := e.job(id)
	if j.State != StateFailed || j.ReturnCode != 503 || j.ErrorCode != "unavailable" || j.StatusMessage != "The request could not be passed on. (unavailable)" {
		t.Fatalf("failed job = %+v", j)
	}
	// A second failure of an ended job changes nothing.
	if err := e.j.Fail(ctx, id, errors.New("other")); err != nil {
		t.Fatal(err)
	}
	if _, again := e.job(id); again != rev {
		t.Errorf("revision %d -> %d", rev, again)
	}
	if err := e.j.Fail(ctx, "Job/nope", sendErr); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("fail of an unknown job: %v", err)
	}
}
