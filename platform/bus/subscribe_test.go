package bus

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

func TestPublishDeduplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("vmctl")
	ev := &commonv1.ResourceRef{Id: "Machine/1"}
	for range 2 {
		if err := b.Publish(context.Background(), "evt.vmctl.machine.state_changed", ev, "m1-running"); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.streamMsgs(EventsStream); n != 1 {
		t.Errorf("%d events stored for one id, want 1", n)
	}
	if err := b.Publish(context.Background(), "cmd.vmctl.machine.start", ev, ""); err == nil {
		t.Error("published an event on a command subject")
	}
}

func TestSubscribeEphemeral(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("vmctl")
	ctx := context.Background()
	if err := b.Publish(ctx, "evt.vmctl.machine.state_changed", &commonv1.ResourceRef{Id: "Machine/old"}, ""); err != nil {
		t.Fatal(err)
	}
	events := collect(t, b, "evt.vmctl.machine.>")
	if err := b.Publish(ctx, "evt.pdisk.volume.deleted", &commonv1.ResourceRef{Id: "Volume/1"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "evt.vmctl.machine.state_changed", &commonv1.ResourceRef{Id: "Machine/1"}, "e1"); err != nil {
		t.Fatal(err)
	}
	// Since an hour ago: both machine events, in order, not the volume one.
	for _, want := range []string{"Machine/old", "Machine/1"} {
		ev := next(t, events)
		var got commonv1.ResourceRef
		if err := ev.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.Id != want || ev.Subject() != "evt.vmctl.machine.state_changed" || ev.Type() != "stratus.common.v1.ResourceRef" {
			t.Errorf("event %s %s %v, want %s", ev.Subject(), ev.Type(), &got, want)
		}
		if ev.Sequence() == 0 || ev.Time().IsZero() {
			t.Errorf("event without position: seq %d time %v", ev.Sequence(), ev.Time())
		}
	}
	var wrong commonv1.CommandFailed
	if err := (&Event{subject: "evt.a.b.c", typ: "stratus.common.v1.ResourceRef"}).Decode(&wrong); errorCode(err) != "invalid" {
		t.Errorf("decoding into another type: %v", err)
	}
}

func TestSubscribeDurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("billing")
	ctx := context.Background()
	publish := func(id string) {
		t.Helper()
		if err := b.Publish(ctx, "evt.vmctl.machine.state_changed", &commonv1.ResourceRef{Id: id}, id); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 16)
	var failures atomic.Int32
	subscribe := func() func() error {
		spec := SubscribeSpec{Durable: "billing", Subjects: []string{"evt.vmctl.>"}, Backoff: []time.Duration{time.Millisecond},
			Since: time.Now()} // ignored once the durable exists
		return run(t, func(ctx context.Context) error {
			return b.Subscribe(ctx, spec, func(_ context.Context, ev *Event) error {
				// The first delivery of "m2" fails: it must come back.
				if ev.ID() == "m2" && failures.Add(1) == 1 {
					return errors.New("accounting store unreachable")
				}
				got <- ev.ID()
				return nil
			})
		})
	}
	publish("m0") // before the durable exists and before Since: never seen
	time.Sleep(5 * time.Millisecond)
	stop := subscribe()
	publish("m1")
	publish("m2")
	if a, b := receive(t, got), receive(t, got); a != "m1" || b != "m2" {
		t.Fatalf("received %s, %s; want m1, m2", a, b)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Published while nobody listens: delivered on return, and only it.
	publish("m3")
	subscribe()
	if id := receive(t, got); id != "m3" {
		t.Fatalf("after restart received %s, want m3", id)
	}
	if n := failures.Load(); n != 2 {
		t.Errorf("m2 handled %d times, want 2", n)
	}
}

// TestSubscribeStopGrace: a durable's handler still busy StopGrace after
// the stop sees its context cancelled, so that Subscribe returns, not
// after its AckWait; its event is handled after the restart.
func TestSubscribeStopGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("billing")
	spec := SubscribeSpec{Durable: "billing-grace", Subjects: []string{"evt.vmctl.>"}, MaxDeliver: 2, StopGrace: 100 * time.Millisecond}
	started := make(chan struct{})
	stop := run(t, func(ctx context.Context) error {
		return b.Subscribe(ctx, spec, func(hctx context.Context, _ *Event) error {
			close(started)
			<-hctx.Done()
			return hctx.Err()
		})
	})
	if err := b.Publish(context.Background(), "evt.vmctl.machine.state_changed", &commonv1.ResourceRef{Id: "m1"}, "m1"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, started, "the handler to be called")
	if err := stop(); err != nil { // run fails the test if it does not return
		t.Fatal(err)
	}
	got := make(chan string, 1)
	run(t, func(ctx context.Context) error {
		return b.Subscribe(ctx, spec, func(_ context.Context, ev *Event) error {
			got <- ev.ID()
			return nil
		})
	})
	if id := receive(t, got); id != "m1" {
		t.Fatalf("after the restart received %s, want m1", id)
	}
}

func receive(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(waitLimit):
		t.Fatal("nothing received")
		return ""
	}
}
