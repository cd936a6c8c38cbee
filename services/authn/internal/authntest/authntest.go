package authntest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
)

// Env is one test's NATS server, bus and store.
type Env struct {
	t     testing.TB
	URL   string
	Conn  *nats.Conn
	JS    jetstream.JetStream
	Bus   *bus.Bus
	Store store.Store
}

// Quiet is a logger for code that may log after its test ended.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// New starts a NATS server with the streams, and opens a bus and an
// embedded store for the service "authn" on it.
func New(t testing.TB) *Env {
	t.Helper()
	srv := testkit.NATS(t, "")
	e := &Env{t: t, URL: srv.ClientURL()}
	e.Conn, e.JS = e.connect()
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, e.JS, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e.Bus = bus.New(e.Conn, e.JS, bus.Options{Service: "authn", Logger: Quiet()})
	var err error
	if e.Store, err = embedded.Open(ctx, e.JS, "authn"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Store.Close() })
	return e
}

func (e *Env) connect() (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect(e.URL)
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

// Replica returns a bus and store on a connection of their own, as another
// replica of authn would have.
func (e *Env) Replica() (*bus.Bus, store.Store) {
	nc, js := e.connect()
	st, err := embedded.Open(context.Background(), js, "authn")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	return bus.New(nc, js, bus.Options{Service: "authn", Logger: Quiet()}), st
}

// Collection opens one of the store's collections.
func (e *Env) Collection(kind string) store.Collection {
	e.t.Helper()
	c, err := e.Store.Collection(context.Background(), kind)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// Last decodes into m the last event published on subject and reports
// whether there was one.
func (e *Env) Last(subject string, m proto.Message) bool {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.JS.Stream(ctx, bus.EventsStream)
	if err != nil {
		e.t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	} else if err != nil {
		e.t.Fatal(err)
	}
	if err := proto.Unmarshal(msg.Data, m); err != nil {
		e.t.Fatal(err)
	}
	return true
}

// Count returns how many events were published on subject.
func (e *Env) Count(subject string) uint64 {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.JS.Stream(ctx, bus.EventsStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// Clock is a settable time source for code that takes a now function.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
