package bus

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// Headers set on every message, beside Nats-Msg-Id and the W3C trace
// context (traceparent, tracestate).
const (
	// HeaderJob holds the id of the CIMI Job following a command.
	HeaderJob = "Stratus-Job"
	// HeaderActor holds the identity a command or query runs as, as compact
	// JSON: {"user":"alice","roles":["::ADMIN"]}.
	HeaderActor = "Stratus-Actor"
	// HeaderIssuedAt holds when a command was issued, in RFC 3339 with
	// nanoseconds.
	HeaderIssuedAt = "Stratus-Issued-At"
	// HeaderType holds the full protobuf name of the payload, e.g.
	// "stratus.common.v1.CommandCompleted".
	HeaderType = "Stratus-Type"
)

// Options configure a Bus.
type Options struct {
	// Service is the name of the service using the bus, e.g. "pdisk". It is
	// the default durable name and filter of Consume and the default name
	// of Serve.
	Service string
	// Logger receives warnings about retried and failed messages;
	// slog.Default() when nil.
	Logger *slog.Logger
	// TracerProvider makes the spans of every send, publish, delivery and
	// query; the default records nothing.
	TracerProvider trace.TracerProvider
	// Propagator writes and reads the trace context in message headers;
	// the default is W3C Trace Context.
	Propagator propagation.TextMapPropagator
}

// Bus sends commands, publishes events, consumes both and serves and calls
// queries for one service. It is safe for concurrent use.
type Bus struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	service    string
	log        *slog.Logger
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator

	outcomesMu sync.Mutex
	outcomes   jetstream.KeyValue // opened on first use
}

// New returns a Bus on the connection nc and its JetStream context js; the
// streams must exist (see EnsureStreams) before commands flow.
func New(nc *nats.Conn, js jetstream.JetStream, opts Options) *Bus {
	b := &Bus{nc: nc, js: js, service: opts.Service, log: opts.Logger, propagator: opts.Propagator}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("component", "bus")
	tp := opts.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	b.tracer = tp.Tracer("stratuslab.dev/platform/bus")
	if b.propagator == nil {
		b.propagator = propagation.TraceContext{}
	}
	return b
}

// Service returns the service name the bus was made for.
func (b *Bus) Service() string { return b.service }

// contextKey keys the values this package keeps in a context.
type contextKey int

const (
	actorKey contextKey = iota
	metaKey
)

// WithActor returns a copy of ctx carrying actor, the identity the work done
// under ctx runs as.
func WithActor(ctx context.Context, actor *commonv1.Actor) context.Context {
	return context.WithValue(ctx, actorKey, actor)
}

// ActorFrom returns the actor carried by ctx: the one a command or query was
// sent with inside handlers, nil when there is none.
func ActorFrom(ctx context.Context) *commonv1.Actor {
	if a, ok := ctx.Value(actorKey).(*commonv1.Actor); ok {
		return a
	}
	if m := MetaFrom(ctx); m != nil {
		return m.GetActor()
	}
	return nil
}

// withMeta returns a copy of ctx carrying the metadata of the command being
// handled.
func withMeta(ctx context.Context, meta *commonv1.Meta) context.Context {
	return context.WithValue(ctx, metaKey, meta)
}

// MetaFrom returns the metadata (command id, job id, actor, issue time) of
// the command being handled under ctx, nil outside a command handler.
func MetaFrom(ctx context.Context) *commonv1.Meta {
	m, _ := ctx.Value(metaKey).(*commonv1.Meta)
	return m
}

// actorJSON is the wire form of HeaderActor.
type actorJSON struct {
	User  string   `json:"user,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// encodeActor returns the HeaderActor value for a, "" for nil.
func encodeActor(a *commonv1.Actor) string {
	if a == nil {
		return ""
	}
	out, err := json.Marshal(actorJSON{User: a.GetUser(), Roles: a.GetRoles()})
	if err != nil { // cannot happen for strings
		return ""
	}
	return string(out)
}

// decodeActor parses a HeaderActor value; "" gives nil.
func decodeActor(s string) (*commonv1.Actor, error) {
	if s == "" {
		return nil, nil
	}
	var a actorJSON
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return nil, err
	}
	return &commonv1.Actor{User: a.User, Roles: a.Roles}, nil
}

// headerValues builds a message header whose values share one backing
// array: a message is sent for every command, and nats.Header.Set would
// allocate a slice per header.
type headerValues struct {
	h    nats.Header
	vals []string
}

// newHeader returns a builder for a header of up to n values.
func newHeader(n int) headerValues {
	return headerValues{h: make(nats.Header, n+2), vals: make([]string, 0, n)}
}

// set sets key to the single value v; an empty v is not set.
func (hv *headerValues) set(key, v string) {
	if v == "" {
		return
	}
	if len(hv.vals) == cap(hv.vals) {
		hv.h.Set(key, v)
		return
	}
	i := len(hv.vals)
	hv.vals = append(hv.vals, v)
	hv.h[key] = hv.vals[i : i+1 : i+1]
}

// headerCarrier lets the propagator read and write NATS headers.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }

func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// inject writes the trace context of ctx into h.
func (b *Bus) inject(ctx context.Context, h nats.Header) {
	b.propagator.Inject(ctx, headerCarrier(h))
}

// extract returns ctx continuing the trace context found in h.
func (b *Bus) extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return b.propagator.Extract(ctx, headerCarrier(h))
}

// DefaultStopGrace is how long the handlers in flight go on once their
// Consume or Subscribe is told to stop, before their context is cancelled
// too.
const DefaultStopGrace = 10 * time.Second

// afterGrace returns a context that is cancelled grace after ctx is, not
// with it: in a graceful stop handlers finish their work, yet one waiting
// on a service that is stopping too (as in the all-in-one, where all stop
// at once) does not hold the process for its whole deadline.
func afterGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(hard, func() { t.Stop() })
	})
	return hard, func() { stop(); cancel() }
}

// sleep waits for d or until ctx ends, reporting whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
