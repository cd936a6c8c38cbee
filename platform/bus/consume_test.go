package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/testkit"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

func TestSendConsumeRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	events := collect(t, b, "evt.pdisk.>")

	actor := &commonv1.Actor{User: "alice", Roles: []string{"::ADMIN", "group:physics"}}
	meta := &commonv1.Meta{JobId: "Job/42", Actor: actor}
	if err := b.Send(context.Background(), "cmd.pdisk.volume.create", meta, &commonv1.ResourceRef{Id: "Volume/1"}); err != nil {
		t.Fatal(err)
	}
	if meta.CommandId == "" || meta.IssuedAt == nil {
		t.Fatalf("Send did not fill the metadata: %v", meta)
	}

	// The stored message carries the headers of ARCHITECTURE.md §4.
	stream, err := e.js.Stream(context.Background(), CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetLastMsgForSubject(context.Background(), "cmd.pdisk.volume.create")
	if err != nil {
		t.Fatal(err)
	}
	var gotActor actorJSON
	if err := json.Unmarshal([]byte(raw.Header.Get(HeaderActor)), &gotActor); err != nil {
		t.Fatalf("actor header %q: %v", raw.Header.Get(HeaderActor), err)
	}
	for k, want := range map[string]string{
		nats.MsgIdHdr: meta.CommandId,
		HeaderJob:     "Job/42",
		HeaderType:    "stratus.common.v1.ResourceRef",
	} {
		if got := raw.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if gotActor.User != "alice" || len(gotActor.Roles) != 2 {
		t.Errorf("actor header = %+v", gotActor)
	}

	type seen struct {
		subject, id, job string
		deliveries       int
		actor, ctxActor  *commonv1.Actor
		meta             *commonv1.Meta
		payload          *commonv1.ResourceRef
		issued           time.Time
	}
	got := make(chan seen, 1)
	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, ConsumerSpec{}, func(ctx context.Context, cmd *Command) (Result, error) {
			var p commonv1.ResourceRef
			if err := cmd.Decode(&p); err != nil {
				return Result{}, err
			}
			got <- seen{cmd.Subject(), cmd.ID(), cmd.JobID(), cmd.Deliveries(), cmd.Actor(), ActorFrom(ctx), MetaFrom(ctx), &p, cmd.Meta().GetIssuedAt().AsTime()}
			return Result{Affected: []string{"Volume/1"}, Message: "volume created"}, nil
		})
	})
	var s seen
	select {
	case s = <-got:
	case <-time.After(waitLimit):
		t.Fatal("handler not called")
	}
	if s.subject != "cmd.pdisk.volume.create" || s.id != meta.CommandId || s.job != "Job/42" || s.deliveries != 1 {
		t.Errorf("command = %+v", s)
	}
	if !proto.Equal(s.actor, actor) || !proto.Equal(s.ctxActor, actor) || s.meta.GetCommandId() != meta.CommandId {
		t.Errorf("actor %v, context actor %v, context meta %v; want %v", s.actor, s.ctxActor, s.meta, actor)
	}
	if s.payload.GetId() != "Volume/1" {
		t.Errorf("payload = %v", s.payload)
	}
	if !s.issued.Equal(meta.IssuedAt.AsTime()) {
		t.Errorf("issued at %v, want %v", s.issued, meta.IssuedAt.AsTime())
	}

	ev, done, failed := terminal(t, events, meta.CommandId)
	if failed != nil {
		t.Fatalf("command failed: %v", failed)
	}
	if !proto.Equal(ev.Actor(), actor) {
		t.Errorf("terminal event actor %v, want the command's %v", ev.Actor(), actor)
	}
	if ev.Subject() != "evt.pdisk.volume.create_completed" || ev.JobID() != "Job/42" || ev.ID() != terminalMsgID(meta.CommandId) {
		t.Errorf("event subject %q job %q id %q", ev.Subject(), ev.JobID(), ev.ID())
	}
	if done.JobId != "Job/42" || done.CommandSubject != "cmd.pdisk.volume.create" || done.Message != "volume created" ||
		len(done.Affected) != 1 || done.Affected[0].GetId() != "Volume/1" || done.CompletedAt == nil {
		t.Errorf("completed event = %v", done)
	}
	eventually(t, "command removed from the work queue", func() bool { return e.streamMsgs(CommandsStream) == 0 })
}

func TestSendRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	tests := []struct {
		name    string
		subject string
		meta    *commonv1.Meta
	}{
		{"event subject", "evt.pdisk.volume.create", &commonv1.Meta{}},
		{"too short", "cmd.pdisk.create", &commonv1.Meta{}},
		{"wildcard", "cmd.pdisk.*.create", &commonv1.Meta{}},
		{"empty token", "cmd.pdisk..create", &commonv1.Meta{}},
		{"no metadata", "cmd.pdisk.volume.create", nil},
	}
	for _, tt := range tests {
		if err := b.Send(context.Background(), tt.subject, tt.meta, &commonv1.ResourceRef{}); err == nil {
			t.Errorf("%s: Send(%q) succeeded", tt.name, tt.subject)
		}
	}
	if n := e.streamMsgs(CommandsStream); n != 0 {
		t.Errorf("%d commands stored, want 0", n)
	}
	// A command larger than one message of the bus is refused for its
	// size, for good: retrying cannot help.
	big := &commonv1.ResourceRef{Id: strings.Repeat("x", int(e.nc.MaxPayload()))}
	err := b.Send(context.Background(), "cmd.pdisk.volume.create", &commonv1.Meta{}, big)
	if errs.CodeOf(err) != errs.TooLarge || !IsPermanent(err) || !strings.Contains(errs.MessageOf(err), "more than the") {
		t.Errorf("an oversized command: %v (code %s, permanent %v), want a permanent too_large", err, errs.CodeOf(err), IsPermanent(err))
	}
}

func TestDuplicateCommandID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	meta := &commonv1.Meta{CommandId: "c-dup"}
	for range 3 {
		if err := b.Send(context.Background(), "cmd.pdisk.volume.delete", meta, &commonv1.ResourceRef{Id: "Volume/1"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.streamMsgs(CommandsStream); n != 1 {
		t.Fatalf("%d commands stored for one command id, want 1", n)
	}
	// A different id is a different command.
	if err := b.Send(context.Background(), "cmd.pdisk.volume.delete", &commonv1.Meta{}, &commonv1.ResourceRef{}); err != nil {
		t.Fatal(err)
	}
	if n := e.streamMsgs(CommandsStream); n != 2 {
		t.Fatalf("%d commands stored, want 2", n)
	}
}

func TestReplicasShareDurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sender := e.bus("pdisk")
	events := collect(t, sender, "evt.>")
	const n = 40
	var mu sync.Mutex
	handled := map[string]int{}
	perReplica := [2]int{}
	for r := range 2 {
		b := e.busOwnConn("pdisk")
		run(t, func(ctx context.Context) error {
			return b.Consume(ctx, ConsumerSpec{Concurrency: 1}, func(ctx context.Context, cmd *Command) (Result, error) {
				mu.Lock()
				handled[cmd.ID()]++
				perReplica[r]++
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // let the other replica take some
				return Result{}, nil
			})
		})
	}
	for i := range n {
		meta := &commonv1.Meta{CommandId: fmt.Sprintf("c-%d", i)}
		if err := sender.Send(context.Background(), "cmd.pdisk.volume.create", meta, &commonv1.ResourceRef{}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if ev := next(t, events); ev.Subject() != "evt.pdisk.volume.create_completed" {
			t.Fatalf("unexpected event %s", ev.Subject())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != n {
		t.Errorf("%d commands handled, want %d", len(handled), n)
	}
	for id, c := range handled {
		if c != 1 {
			t.Errorf("command %s handled %d times", id, c)
		}
	}
	if perReplica[0] == 0 || perReplica[1] == 0 {
		t.Errorf("work not shared between replicas: %v", perReplica)
	}
}

func TestTransientErrorRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	events := collect(t, b, "evt.>")
	var calls atomic.Int32
	var deliveries []int
	var mu sync.Mutex
	run(t, func(ctx context.Context) error {
		spec := ConsumerSpec{Backoff: []time.Duration{5 * time.Millisecond}}
		return b.Consume(ctx, spec, func(ctx context.Context, cmd *Command) (Result, error) {
			mu.Lock()
			deliveries = append(deliveries, cmd.Deliveries())
			mu.Unlock()
			if calls.Add(1) < 3 {
				return Result{}, errors.New("store briefly unreachable")
			}
			return Result{Message: "third time lucky"}, nil
		})
	})
	meta := &commonv1.Meta{}
	if err := b.Send(context.Background(), "cmd.pdisk.volume.resize", meta, &commonv1.ResourceRef{}); err != nil {
		t.Fatal(err)
	}
	ev, done, failed := terminal(t, events, meta.CommandId)
	if failed != nil || ev.Subject() != "evt.pdisk.volume.resize_completed" || done.Message != "third time lucky" {
		t.Fatalf("terminal event %s: %v %v", ev.Subject(), done, failed)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(deliveries) != "[1 2 3]" {
		t.Errorf("deliveries seen = %v, want [1 2 3]", deliveries)
	}
}

func TestCommandFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// send puts the command on the bus and returns its id.
		send       func(t *testing.T, e *env, b *Bus) string
		handler    Handler
		maxDeliver int
		wantCode   string
		wantMsg    string // "" to skip
		wantDeliv  uint32
		wantCalls  int32
	}{
		{
			name: "permanent error",
			send: sendRef,
			handler: func(context.Context, *Command) (Result, error) {
				return Result{}, Permanent(fmt.Errorf("pdisk: %w", codeErr{"not_found", "Volume/9 does not exist"}))
			},
			wantCode: "not_found", wantMsg: "pdisk: Volume/9 does not exist", wantDeliv: 1, wantCalls: 1,
		},
		{
			name: "permanent uncoded error",
			send: sendRef,
			handler: func(context.Context, *Command) (Result, error) {
				return Result{}, Permanent(errors.New("open /var/lib/secret: permission denied"))
			},
			wantCode: "internal", wantMsg: errorMessage(errors.New("x")), wantDeliv: 1, wantCalls: 1,
		},
		{
			name: "max deliveries",
			send: sendRef,
			handler: func(context.Context, *Command) (Result, error) {
				return Result{}, codeErr{"unavailable", "backend down"}
			},
			maxDeliver: 3, wantCode: "unavailable", wantMsg: "backend down", wantDeliv: 3, wantCalls: 3,
		},
		{
			name: "payload of another type",
			send: func(t *testing.T, e *env, b *Bus) string {
				meta := &commonv1.Meta{}
				if err := b.Send(context.Background(), "cmd.pdisk.volume.create", meta, &commonv1.Actor{User: "x"}); err != nil {
					t.Fatal(err)
				}
				return meta.CommandId
			},
			handler:  decodeRef,
			wantCode: "invalid", wantDeliv: 1, wantCalls: 1,
		},
		{
			name: "undecodable payload",
			send: func(t *testing.T, e *env, _ *Bus) string {
				m := nats.NewMsg("cmd.pdisk.volume.create")
				m.Header.Set(nats.MsgIdHdr, "c-garbage")
				m.Data = []byte{0xff, 0xff, 0xff}
				if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
					t.Fatal(err)
				}
				return "c-garbage"
			},
			handler:  decodeRef,
			wantCode: "invalid", wantDeliv: 1, wantCalls: 1,
		},
		{
			name: "bad actor header",
			send: func(t *testing.T, e *env, _ *Bus) string {
				m := nats.NewMsg("cmd.pdisk.volume.create")
				m.Header.Set(nats.MsgIdHdr, "c-actor")
				m.Header.Set(HeaderActor, "{not json")
				if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
					t.Fatal(err)
				}
				return "c-actor"
			},
			handler:  decodeRef,
			wantCode: "invalid", wantDeliv: 1, wantCalls: 0,
		},
		{
			name: "panic",
			send: sendRef,
			handler: func(context.Context, *Command) (Result, error) {
				panic("handler bug")
			},
			maxDeliver: 2, wantCode: "internal", wantDeliv: 2, wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bus("pdisk")
			events := collect(t, b, "evt.>")
			var calls atomic.Int32
			run(t, func(ctx context.Context) error {
				spec := ConsumerSpec{MaxDeliver: tt.maxDeliver, Backoff: []time.Duration{time.Millisecond}}
				return b.Consume(ctx, spec, func(ctx context.Context, cmd *Command) (Result, error) {
					calls.Add(1)
					return tt.handler(ctx, cmd)
				})
			})
			id := tt.send(t, e, b)
			ev, done, failed := terminal(t, events, id)
			if done != nil {
				t.Fatalf("command completed: %v", done)
			}
			if ev.Subject() != "evt.pdisk.volume.create_failed" {
				t.Errorf("event subject %s", ev.Subject())
			}
			if failed.Error.GetCode() != tt.wantCode || (tt.wantMsg != "" && failed.Error.GetMessage() != tt.wantMsg) {
				t.Errorf("error = %v, want code %q message %q", failed.Error, tt.wantCode, tt.wantMsg)
			}
			if failed.Deliveries != tt.wantDeliv || failed.CommandSubject != "cmd.pdisk.volume.create" || failed.FailedAt == nil {
				t.Errorf("failed event = %v, want %d deliveries", failed, tt.wantDeliv)
			}
			// Terminated: gone from the work queue, never handled again.
			eventually(t, "command removed from the work queue", func() bool { return e.streamMsgs(CommandsStream) == 0 })
			if c := calls.Load(); c != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", c, tt.wantCalls)
			}
		})
	}
}

func sendRef(t *testing.T, _ *env, b *Bus) string {
	meta := &commonv1.Meta{}
	if err := b.Send(context.Background(), "cmd.pdisk.volume.create", meta, &commonv1.ResourceRef{Id: "Volume/9"}); err != nil {
		t.Fatal(err)
	}
	return meta.CommandId
}

func decodeRef(_ context.Context, cmd *Command) (Result, error) {
	var r commonv1.ResourceRef
	if err := cmd.Decode(&r); err != nil {
		return Result{}, err
	}
	return Result{}, nil
}

// TestRedeliveryDoesNotDuplicateEvent replays what happens when a replica
// dies after publishing the terminal event but before acknowledging: the
// command comes back, the handler runs again, and still one event exists.
func TestRedeliveryDoesNotDuplicateEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	meta := &commonv1.Meta{}
	if err := b.Send(context.Background(), "cmd.pdisk.volume.create", meta, &commonv1.ResourceRef{}); err != nil {
		t.Fatal(err)
	}
	cmd := &Command{subject: "cmd.pdisk.volume.create", meta: meta, deliveries: 1}
	for range 2 {
		if err := b.complete(context.Background(), cmd, Result{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.fail(context.Background(), cmd, errors.New("second attempt failed")); err != nil {
		t.Fatal(err)
	}
	if n := e.streamMsgs(EventsStream); n != 1 {
		t.Errorf("%d terminal events stored, want 1", n)
	}
	// The first outcome is the command's: the failed attempt after it
	// does not replace it.
	o, found, err := b.Outcome(context.Background(), meta.CommandId)
	if err != nil || !found || o.Err != nil || o.Completed == nil {
		t.Errorf("recorded outcome = %+v, %v, %v; want the completion", o, found, err)
	}
}

// TestEndedCommandAnsweredFromRecord: a command whose outcome is recorded
// is answered from the record, its handler not run again, when it is
// delivered again (the acknowledgement lost in a crash) and when a server
// killed before writing its consumers' state delivers it again as an old
// first delivery.
func TestEndedCommandAnsweredFromRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// old: the outcome is recorded before the consumer starts, and
		// the command left waiting past recordCheckAge; otherwise the
		// first delivery records it, then fails as a process would that
		// died before acknowledging.
		old       bool
		wantCalls int32
	}{
		{"delivered again", false, 1},
		{"old first delivery", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bus("pdisk")
			events := collect(t, b, "evt.>")
			record := func(ctx context.Context, id string) error {
				completed := &commonv1.CommandCompleted{CommandId: id, CommandSubject: "cmd.pdisk.volume.resize", Message: "done the first time"}
				_, _, err := b.recordOutcome(ctx, id, outcomeByteCompleted, completed)
				return err
			}
			meta := &commonv1.Meta{}
			if err := b.Send(context.Background(), "cmd.pdisk.volume.resize", meta, &commonv1.ResourceRef{}); err != nil {
				t.Fatal(err)
			}
			if tt.old {
				if err := record(context.Background(), meta.CommandId); err != nil {
					t.Fatal(err)
				}
				time.Sleep(recordCheckAge + 100*time.Millisecond)
			}
			var calls atomic.Int32
			run(t, func(ctx context.Context) error {
				spec := ConsumerSpec{Backoff: []time.Duration{5 * time.Millisecond}}
				return b.Consume(ctx, spec, func(ctx context.Context, cmd *Command) (Result, error) {
					calls.Add(1)
					if err := record(ctx, cmd.ID()); err != nil {
						return Result{}, Permanent(err)
					}
					return Result{}, errors.New("acknowledgement lost")
				})
			})
			ev, done, failed := terminal(t, events, meta.CommandId)
			if failed != nil || ev.Subject() != "evt.pdisk.volume.resize_completed" || done.Message != "done the first time" {
				t.Fatalf("terminal event %s: %v %v", ev.Subject(), done, failed)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Errorf("the handler ran %d times, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestGracefulDrain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	events := collect(t, b, "evt.>")
	started := make(chan struct{})
	release := make(chan struct{})
	var ctxErr error
	stop := run(t, func(ctx context.Context) error {
		return b.Consume(ctx, ConsumerSpec{}, func(hctx context.Context, cmd *Command) (Result, error) {
			close(started)
			<-release
			ctxErr = hctx.Err()
			return Result{Message: "finished after stop"}, nil
		})
	})
	meta := &commonv1.Meta{}
	if err := b.Send(context.Background(), "cmd.pdisk.volume.create", meta, &commonv1.ResourceRef{}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, started, "the handler to be called")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Consume must not return while its handler is blocked; give a wrong
	// implementation the time to do so.
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("Consume returned (%v) with a handler in flight", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if ctxErr != nil {
		t.Errorf("handler context ended by the stop: %v", ctxErr)
	}
	_, done, _ := terminal(t, events, meta.CommandId)
	if done == nil || done.Message != "finished after stop" {
		t.Fatalf("terminal event = %v", done)
	}
	eventually(t, "command acknowledged", func() bool { return e.streamMsgs(CommandsStream) == 0 })
}

// TestStopGraceCutsHandler: a handler still busy StopGrace after the stop
// (it waits on a service that stopped too) sees its context cancelled, so
// that Consume returns; its command, whatever error the handler made of
// that, is not failed but delivered again, and completes after the restart.
func TestStopGraceCutsHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("vmctl")
	events := collect(t, b, "evt.>")
	spec := ConsumerSpec{StopGrace: 100 * time.Millisecond, MaxDeliver: 2}
	started := make(chan struct{})
	stop := run(t, func(ctx context.Context) error {
		return b.Consume(ctx, spec, func(hctx context.Context, _ *Command) (Result, error) {
			close(started)
			<-hctx.Done()
			return Result{}, Permanent(fmt.Errorf("pdisk did not answer: %w", hctx.Err()))
		})
	})
	meta := &commonv1.Meta{}
	if err := b.Send(context.Background(), "cmd.vmctl.machine.teardown", meta, &commonv1.ResourceRef{}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, started, "the handler to be called")
	if err := stop(); err != nil { // run fails the test if it does not return
		t.Fatalf("Consume: %v", err)
	}

	run(t, func(ctx context.Context) error {
		return b.Consume(ctx, spec, func(context.Context, *Command) (Result, error) {
			return Result{Message: "done after the restart"}, nil
		})
	})
	_, done, failed := terminal(t, events, meta.CommandId)
	if done == nil || done.Message != "done after the restart" {
		t.Fatalf("the interrupted command ended with %v / %v; want completed after the restart", done, failed)
	}
}

func TestConsumeReturnsOnClosedConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.busOwnConn("pdisk")
	errc := make(chan error, 1)
	go func() {
		errc <- b.Consume(context.Background(), ConsumerSpec{}, func(context.Context, *Command) (Result, error) {
			return Result{}, nil
		})
	}()
	eventually(t, "consumer created", func() bool {
		_, err := e.js.Consumer(context.Background(), CommandsStream, "pdisk")
		return err == nil
	})
	b.nc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("Consume returned %v, want a closed-connection error", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Consume still running on a closed connection")
	}
}

func TestSendWithoutStreamIsUnavailable(t *testing.T) {
	t.Parallel()
	nc, js := testkit.JetStream(t) // no EnsureStreams
	b := New(nc, js, Options{Service: "pdisk", Logger: quiet()})
	err := b.Send(context.Background(), "cmd.pdisk.volume.create", &commonv1.Meta{}, &commonv1.ResourceRef{})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Send without a stream: %v, want ErrUnavailable", err)
	}
}

// TestMaxRunKeepsLongWorkInProgress: a handler that runs well past
// AckWait is not redelivered while it runs when MaxRun allows it; without
// MaxRun the same handler is redelivered (its context ends at AckWait).
func TestMaxRunKeepsLongWorkInProgress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		maxRun    time.Duration
		wantCalls int32
	}{
		{"MaxRun beyond the work", 10 * time.Second, 1},
		{"AckWait only", 0, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.bus("pdisk")
			events := collect(t, b, "evt.>")
			var calls atomic.Int32
			run(t, func(ctx context.Context) error {
				spec := ConsumerSpec{AckWait: 400 * time.Millisecond, MaxRun: tt.maxRun, Backoff: []time.Duration{5 * time.Millisecond}}
				return b.Consume(ctx, spec, func(ctx context.Context, cmd *Command) (Result, error) {
					if calls.Add(1) > 1 {
						return Result{Message: "again"}, nil
					}
					select {
					case <-time.After(1500 * time.Millisecond): // the long work
						return Result{Message: "long work done"}, nil
					case <-ctx.Done():
						return Result{}, ctx.Err()
					}
				})
			})
			meta := &commonv1.Meta{}
			if err := b.Send(context.Background(), "cmd.pdisk.volume.download", meta, &commonv1.ResourceRef{}); err != nil {
				t.Fatal(err)
			}
			_, done, failed := terminal(t, events, meta.CommandId)
			if failed != nil {
				t.Fatalf("failed: %v", failed)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("handler called %d times (last: %q), want %d", got, done.Message, tt.wantCalls)
			}
		})
	}
}
