package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// SubscribeSpec describes how to follow the EVENTS stream.
type SubscribeSpec struct {
	// Durable names a durable consumer: its position survives restarts and
	// processes subscribing with the same name share the events. Empty
	// means an ordered, ephemeral consumer that sees every event and
	// forgets its position when Subscribe returns.
	Durable string
	// Subjects filters the events; evt.> when empty.
	Subjects []string
	// Since delivers the events stored from this time on. When zero, an
	// ephemeral subscription sees only events published after it starts and
	// a new durable one every retained event. An existing durable keeps its
	// position whatever Since says.
	Since time.Time
	// MaxDeliver is how many times a durable subscription offers an event
	// to a failing handler before logging it as lost; DefaultMaxDeliver
	// when zero.
	MaxDeliver int
	// Backoff are the redelivery delays of a durable subscription, as in
	// ConsumerSpec.
	Backoff []time.Duration
	// AckWait is, for a durable, the time before an unacknowledged event is
	// redelivered and the deadline of the handler's context; DefaultAckWait
	// when zero.
	AckWait time.Duration
	// StopGrace is, for a durable, how long its handler may go on with the
	// events already fetched once Subscribe's context is cancelled; then
	// the handler's context is cancelled too, and the events left are
	// delivered again after the restart. DefaultStopGrace when zero.
	StopGrace time.Duration
}

// EventHandler handles one event; ctx continues the trace of the publisher.
// An error makes a durable subscription redeliver the event after its
// backoff; an ephemeral subscription logs it and goes on.
type EventHandler func(ctx context.Context, ev *Event) error

// Event is one event delivered to an EventHandler.
type Event struct {
	subject    string
	typ        string
	id         string
	jobID      string
	actor      string // the Stratus-Actor header, decoded on demand
	data       []byte
	seq        uint64
	stored     time.Time
	deliveries int
}

// Actor returns the identity of the command the event comes from, nil when
// the event is the system's own (or its header cannot be read).
func (e *Event) Actor() *commonv1.Actor {
	a, err := decodeActor(e.actor)
	if err != nil {
		return nil
	}
	return a
}

// Subject returns the subject the event was published on.
func (e *Event) Subject() string { return e.subject }

// Type returns the full protobuf name of the payload, e.g.
// "stratus.common.v1.CommandCompleted"; "" if the publisher did not say.
func (e *Event) Type() string { return e.typ }

// ID returns the event's Nats-Msg-Id, "" when published without one.
func (e *Event) ID() string { return e.id }

// JobID returns the id of the Job the event belongs to, "" if none.
func (e *Event) JobID() string { return e.jobID }

// Sequence returns the event's position in the EVENTS stream.
func (e *Event) Sequence() uint64 { return e.seq }

// Time returns when the event was stored.
func (e *Event) Time() time.Time { return e.stored }

// Decode unmarshals the event's payload into m; a payload of another type
// or that cannot be parsed gives an error with code "invalid".
func (e *Event) Decode(m proto.Message) error {
	return decodePayload(e.subject, e.typ, e.data, m)
}

// Subscribe runs handler for every event matching spec, one at a time in
// stream order, until ctx is cancelled; then it returns nil, after a
// durable subscription has handled and acknowledged the events it had
// already fetched, within spec.StopGrace (an ephemeral one's handler sees
// ctx cancelled). Errors
// reaching the server are logged and retried.
func (b *Bus) Subscribe(ctx context.Context, spec SubscribeSpec, handler EventHandler) error {
	if len(spec.Subjects) == 0 {
		spec.Subjects = []string{eventPrefix + ">"}
	}
	if spec.MaxDeliver <= 0 {
		spec.MaxDeliver = DefaultMaxDeliver
	}
	if len(spec.Backoff) == 0 {
		spec.Backoff = defaultBackoff()
	}
	if spec.AckWait <= 0 {
		spec.AckWait = DefaultAckWait
	}
	if spec.StopGrace <= 0 {
		spec.StopGrace = DefaultStopGrace
	}
	hard, cancel := afterGrace(ctx, spec.StopGrace)
	defer cancel()
	log := b.log.With("subscription", spec.Durable, "subjects", spec.Subjects)
	delay := time.Duration(0)
	for ctx.Err() == nil {
		if delay > 0 && !sleep(ctx, delay) {
			break
		}
		cons, err := b.eventConsumer(ctx, spec)
		if err != nil {
			if b.nc.IsClosed() {
				return fmt.Errorf("bus: subscribe: %w", nats.ErrConnectionClosed)
			}
			delay = nextDelay(delay)
			if ctx.Err() == nil {
				log.Warn("cannot create the event consumer; retrying", "error", err, "retry_in", delay)
			}
			continue
		}
		err = b.follow(ctx, hard, cons, spec, handler)
		if err == nil {
			break
		}
		if b.nc.IsClosed() {
			return fmt.Errorf("bus: subscribe: %w (%w)", nats.ErrConnectionClosed, err)
		}
		delay = nextDelay(0)
		log.Warn("event subscription interrupted; restarting", "error", err, "retry_in", delay)
	}
	return nil
}

// eventConsumer creates the consumer a subscription reads from.
func (b *Bus) eventConsumer(ctx context.Context, spec SubscribeSpec) (jetstream.Consumer, error) {
	policy, start := jetstream.DeliverNewPolicy, (*time.Time)(nil)
	if !spec.Since.IsZero() {
		policy, start = jetstream.DeliverByStartTimePolicy, &spec.Since
	}
	if spec.Durable == "" {
		return b.js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: spec.Subjects,
			DeliverPolicy:  policy,
			OptStartTime:   start,
		})
	}
	if spec.Since.IsZero() {
		policy = jetstream.DeliverAllPolicy
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        spec.Durable,
		FilterSubjects: spec.Subjects,
		DeliverPolicy:  policy,
		OptStartTime:   start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        spec.AckWait,
		MaxDeliver:     spec.MaxDeliver,
	}
	existing, err := b.js.Consumer(ctx, EventsStream, spec.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return b.js.CreateConsumer(ctx, EventsStream, cfg)
	}
	if err != nil {
		return nil, err
	}
	// The starting point of a durable cannot change: keep the existing one.
	cur := existing.CachedInfo().Config
	cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = cur.DeliverPolicy, cur.OptStartTime, cur.OptStartSeq
	return b.js.UpdateConsumer(ctx, EventsStream, cfg)
}

// follow hands the events of cons to handler until ctx is cancelled (nil)
// or the iterator fails (the error); a durable's handler contexts derive
// from hard.
func (b *Bus) follow(ctx, hard context.Context, cons jetstream.Consumer, spec SubscribeSpec, handler EventHandler) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return err
	}
	defer it.Stop()
	// A durable drains what it has already fetched, so those events are
	// acknowledged now rather than redelivered after AckWait.
	end := it.Stop
	if spec.Durable != "" {
		end = it.Drain
	}
	stop := context.AfterFunc(ctx, end)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
				return nil
			}
			return err
		}
		b.receive(ctx, hard, spec, msg, handler)
	}
}

// receive runs handler for one event and settles it.
func (b *Bus) receive(ctx, hard context.Context, spec SubscribeSpec, msg jetstream.Msg, handler EventHandler) {
	h := msg.Headers()
	ev := &Event{subject: msg.Subject(), typ: h.Get(HeaderType), id: h.Get(nats.MsgIdHdr),
		jobID: h.Get(HeaderJob), actor: h.Get(HeaderActor), data: msg.Data(), deliveries: 1}
	if md, err := msg.Metadata(); err == nil {
		ev.seq, ev.stored, ev.deliveries = md.Sequence.Stream, md.Timestamp, int(md.NumDelivered)
	}
	// A durable's handler outlives Subscribe's context, to settle what was
	// fetched, within its AckWait and the stop's grace; an ephemeral one
	// has nothing to settle.
	hctx := ctx
	if spec.Durable != "" {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(hard, spec.AckWait)
		defer cancel()
	}
	hctx = b.extract(hctx, h)
	hctx, span := b.tracer.Start(hctx, "receive "+ev.subject, trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(messagingAttrs(ev.subject, "receive")...)
	}
	err := b.callEvent(hctx, handler, ev)
	if err == nil {
		if spec.Durable != "" {
			if aerr := msg.Ack(); aerr != nil {
				b.log.Warn("cannot acknowledge an event", "subject", ev.subject, "error", aerr)
			}
		}
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	log := b.log.With("subject", ev.subject, "event", ev.id, "sequence", ev.seq, "delivery", ev.deliveries, "error", err)
	switch {
	case spec.Durable == "":
		log.Warn("event handler failed; event skipped")
	case hard.Err() != nil:
		log.Info("event handler interrupted by the stop; the event will be delivered again", "subscription", spec.Durable)
		_ = msg.Nak()
	case ev.deliveries >= spec.MaxDeliver:
		log.Error("event handler failed on every delivery; event given up", "subscription", spec.Durable)
		_ = msg.TermWithReason("handler failed")
	default:
		d := backoffDelay(spec.Backoff, ev.deliveries)
		log.Warn("event handler failed; retrying", "subscription", spec.Durable, "retry_in", d)
		_ = msg.NakWithDelay(d)
	}
}

// callEvent runs handler, turning a panic into an error.
func (b *Bus) callEvent(ctx context.Context, handler EventHandler, ev *Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bus: event handler panicked: %v", p)
		}
	}()
	return handler(ctx, ev)
}
