package bus

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/testkit"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// waitLimit bounds every wait in these tests; reaching it is a failure, not
// a timing assertion.
const waitLimit = 15 * time.Second

// quiet is a logger for tests: the bus logs from goroutines that may outlive
// a test, where t.Log would panic.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is one test's NATS server with the streams declared.
type env struct {
	t  *testing.T
	nc *nats.Conn
	js jetstream.JetStream
	s  string // client URL
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := testkit.NATS(t, "")
	nc, js := connect(t, s.ClientURL())
	if err := EnsureStreams(context.Background(), js, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, s: s.ClientURL()}
}

func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
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

// bus returns a Bus for service on the environment's connection.
func (e *env) bus(service string) *Bus {
	return New(e.nc, e.js, Options{Service: service, Logger: quiet()})
}

// busOwnConn returns a Bus with a connection of its own, as another replica
// would have.
func (e *env) busOwnConn(service string) *Bus {
	nc, js := connect(e.t, e.s)
	return New(nc, js, Options{Service: service, Logger: quiet()})
}

// run starts fn in a goroutine and returns a function that cancels its
// context and returns its error; the test's cleanup stops it too.
func run(t *testing.T, fn func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitLimit):
				t.Errorf("still running %v after cancellation", waitLimit)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// collect subscribes (ephemeral, from the beginning) to subjects and returns
// the channel the events arrive on.
func collect(t *testing.T, b *Bus, subjects ...string) <-chan *Event {
	t.Helper()
	ch := make(chan *Event, 1024)
	spec := SubscribeSpec{Subjects: subjects, Since: time.Now().Add(-time.Hour)}
	run(t, func(ctx context.Context) error {
		return b.Subscribe(ctx, spec, func(_ context.Context, ev *Event) error {
			ch <- ev
			return nil
		})
	})
	return ch
}

// next returns the next event from ch, failing the test if none comes.
func next(t *testing.T, ch <-chan *Event) *Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(waitLimit):
		t.Fatalf("no event within %v", waitLimit)
		return nil
	}
}

// terminal returns the terminal event of the command with id cmdID, decoded,
// skipping other events.
func terminal(t *testing.T, ch <-chan *Event, cmdID string) (*Event, *commonv1.CommandCompleted, *commonv1.CommandFailed) {
	t.Helper()
	for {
		ev := next(t, ch)
		switch ev.Type() {
		case "stratus.common.v1.CommandCompleted":
			var c commonv1.CommandCompleted
			if err := ev.Decode(&c); err != nil {
				t.Fatal(err)
			}
			if c.CommandId == cmdID {
				return ev, &c, nil
			}
		case "stratus.common.v1.CommandFailed":
			var f commonv1.CommandFailed
			if err := ev.Decode(&f); err != nil {
				t.Fatal(err)
			}
			if f.CommandId == cmdID {
				return ev, nil, &f
			}
		}
	}
}

// waitClosed waits for ch to be closed, failing the test after waitLimit.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("waited %v for %s", waitLimit, what)
	}
}

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// streamMsgs returns the number of messages stored in stream.
func (e *env) streamMsgs(stream string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// codeErr is an error with a code, as platform/errs makes them.
type codeErr struct{ code, msg string }

func (e codeErr) Error() string { return e.msg }
func (e codeErr) Code() string  { return e.code }
