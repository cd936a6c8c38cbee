package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// Defaults of ConsumerSpec.
const (
	DefaultMaxDeliver    = 5
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 1024
	DefaultConcurrency   = 16
)

// defaultBackoff returns the redelivery delays used when a ConsumerSpec has
// none: 1s, 5s, 30s, then 1 minute.
func defaultBackoff() []time.Duration {
	return []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute}
}

// ConsumerSpec describes a durable command consumer. Every replica of a
// service consuming with the same Durable shares the work: each command goes
// to one of them.
type ConsumerSpec struct {
	// Durable names the consumer on the COMMANDS stream; the bus's service
	// name when empty.
	Durable string
	// Subjects filters the commands consumed; cmd.<service>.> when empty.
	// Filters of different durables must not overlap (work-queue stream).
	Subjects []string
	// MaxDeliver is how many times a command is tried before it fails with
	// a …_failed event; DefaultMaxDeliver when zero.
	MaxDeliver int
	// Backoff are the delays before redelivering after a transient error:
	// the first retry waits Backoff[0], the second Backoff[1], every later
	// one the last delay. 1s, 5s, 30s, 1m when empty.
	Backoff []time.Duration
	// AckWait is how long a command waits, after the process handling it
	// stopped answering, before it is redelivered elsewhere; without MaxRun
	// it is also the deadline of the handler's context. DefaultAckWait
	// when zero.
	AckWait time.Duration
	// MaxRun, when longer than AckWait, is the deadline of the handler's
	// context instead: while a handler runs, the bus tells JetStream every
	// AckWait/3 that the command is still in progress, so that long work
	// (an image download) is not redelivered while its process lives,
	// and a crash is still noticed after AckWait.
	MaxRun time.Duration
	// MaxAckPending bounds the commands in progress across all replicas;
	// DefaultMaxAckPending when zero.
	MaxAckPending int
	// Concurrency bounds the handlers running at once in this process (up
	// to as many more commands are prefetched); DefaultConcurrency when
	// zero.
	Concurrency int
	// StopGrace is how long the handlers in flight may go on once
	// Consume's context is cancelled; then their context is cancelled too,
	// and the commands they did not finish are delivered again, to another
	// replica or after the restart. DefaultStopGrace when zero.
	StopGrace time.Duration
}

// withDefaults fills the zero fields of s.
func (s ConsumerSpec) withDefaults(service string) ConsumerSpec {
	if s.Durable == "" {
		s.Durable = service
	}
	if len(s.Subjects) == 0 && service != "" {
		s.Subjects = []string{commandPrefix + service + ".>"}
	}
	if s.MaxDeliver <= 0 {
		s.MaxDeliver = DefaultMaxDeliver
	}
	if len(s.Backoff) == 0 {
		s.Backoff = defaultBackoff()
	}
	if s.AckWait <= 0 {
		s.AckWait = DefaultAckWait
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = DefaultMaxAckPending
	}
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.StopGrace <= 0 {
		s.StopGrace = DefaultStopGrace
	}
	return s
}

// backoffDelay returns the redelivery delay after delivery number n (from
// 1) of a non-empty backoff list.
func backoffDelay(backoff []time.Duration, n int) time.Duration {
	return backoff[max(min(n, len(backoff))-1, 0)]
}

// Result is what a command handler reports on success; it becomes the
// command's …_completed event.
type Result struct {
	// Affected are the ids of the resources created or changed, e.g.
	// "Volume/8d0f…".
	Affected []string
	// Message summarises the outcome for people.
	Message string
}

// Handler does the work of one command. ctx carries the command's trace
// span, its actor (ActorFrom) and metadata (MetaFrom) and ends after the
// consumer's AckWait. It returns nil on success, an error marked with
// Permanent when retrying cannot help, any other error to be retried later.
// A handler may see the same command twice (after a crash or a timeout), so
// it checks the store before acting.
type Handler func(ctx context.Context, cmd *Command) (Result, error)

// Command is one delivery of a command to a handler.
type Command struct {
	subject    string
	data       []byte
	typ        string
	meta       *commonv1.Meta
	deliveries int
}

// Subject returns the subject the command was sent on, e.g.
// "cmd.pdisk.volume.create".
func (c *Command) Subject() string { return c.subject }

// ID returns the command id.
func (c *Command) ID() string { return c.meta.GetCommandId() }

// JobID returns the id of the Job following the command, "" if none.
func (c *Command) JobID() string { return c.meta.GetJobId() }

// Actor returns the identity the command runs as, nil for the system.
func (c *Command) Actor() *commonv1.Actor { return c.meta.GetActor() }

// Meta returns the command's metadata as sent.
func (c *Command) Meta() *commonv1.Meta { return c.meta }

// Deliveries returns how many times this command has been delivered,
// counting this delivery (1 the first time).
func (c *Command) Deliveries() int { return c.deliveries }

// Decode unmarshals the command's payload into m. A payload that is not an m
// gives an error marked Permanent with code "invalid", which the handler can
// return as is.
func (c *Command) Decode(m proto.Message) error {
	return decodePayload(c.subject, c.typ, c.data, m)
}

// decodePayload checks the type header (when present) against m and
// unmarshals data into m.
func decodePayload(subject, typ string, data []byte, m proto.Message) error {
	want := string(m.ProtoReflect().Descriptor().FullName())
	if typ != "" && typ != want {
		return Permanent(&codedError{code: codeInvalid,
			msg: fmt.Sprintf("The message on %s is a %s, not the expected %s.", subject, typ, want)})
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return Permanent(&codedError{code: codeInvalid,
			msg: fmt.Sprintf("The message on %s is not a valid %s.", subject, want), cause: err})
	}
	return nil
}

// Consume runs handler for the commands matching spec, on a durable pull
// consumer of the COMMANDS stream shared by every replica using the same
// durable name. Every command ends in exactly one terminal event:
//
//   - success: evt.….<verb>_completed (CommandCompleted), then the command is
//     acknowledged; its Nats-Msg-Id derives from the command id, so a
//     redelivered command does not add a second event;
//   - an error marked Permanent (or a payload that cannot be decoded):
//     evt.….<verb>_failed (CommandFailed) with the error's code and message,
//     then the command is terminated;
//   - any other error: redelivery after spec.Backoff, until the delivery
//     count reaches MaxDeliver, which fails the command as above with the
//     number of deliveries.
//
// The code of an error is taken from the outermost error in its chain with a
// Code() string method, "internal" when there is none. Consume blocks until
// ctx is cancelled, then stops taking commands, lets the handlers in flight
// (and the commands already prefetched) finish and be acknowledged within
// spec.StopGrace, and returns nil. Errors reaching the server are logged and retried; Consume
// returns an error only for an invalid spec or a closed connection.
func (b *Bus) Consume(ctx context.Context, spec ConsumerSpec, handler Handler) error {
	spec = spec.withDefaults(b.service)
	if spec.Durable == "" || len(spec.Subjects) == 0 {
		return errors.New("bus: consume: a durable name and subjects are required when the bus has no service name")
	}
	cfg := jetstream.ConsumerConfig{
		Durable:   spec.Durable,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   spec.AckWait,
		// Unlimited on the server: the consumer itself fails a command
		// that reached MaxDeliver, with an event. A server-side limit would
		// leave the message stuck in the work queue without one.
		MaxDeliver:    -1,
		MaxAckPending: spec.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(spec.Subjects) == 1 {
		cfg.FilterSubject = spec.Subjects[0]
	} else {
		cfg.FilterSubjects = spec.Subjects
	}
	log := b.log.With("consumer", spec.Durable)

	hard, cancel := afterGrace(ctx, spec.StopGrace)
	defer cancel()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	slots := make(chan struct{}, spec.Concurrency)
	delay := time.Duration(0)
	for ctx.Err() == nil {
		if delay > 0 && !sleep(ctx, delay) {
			break
		}
		cons, err := b.js.CreateOrUpdateConsumer(ctx, CommandsStream, cfg)
		if err != nil {
			if b.nc.IsClosed() {
				return fmt.Errorf("bus: consume %s: %w", spec.Durable, nats.ErrConnectionClosed)
			}
			delay = nextDelay(delay)
			if ctx.Err() == nil {
				log.Warn("cannot create the command consumer; retrying", "error", err, "retry_in", delay)
			}
			continue
		}
		err = b.pump(ctx, hard, cons, spec, slots, &inflight, handler)
		if err == nil {
			break
		}
		if b.nc.IsClosed() {
			return fmt.Errorf("bus: consume %s: %w (%w)", spec.Durable, nats.ErrConnectionClosed, err)
		}
		delay = nextDelay(0)
		log.Warn("command consumer interrupted; restarting", "error", err, "retry_in", delay)
	}
	return nil
}

// nextDelay doubles a retry delay, from 250ms up to 30s.
func nextDelay(d time.Duration) time.Duration {
	return min(max(2*d, 250*time.Millisecond), 30*time.Second)
}

// pump takes messages from cons and starts a handler for each while a slot
// is free; the handlers' contexts derive from hard. It returns nil once ctx
// is cancelled and the prefetched messages are handed out, or the error
// that stopped the message iterator.
func (b *Bus) pump(ctx, hard context.Context, cons jetstream.Consumer, spec ConsumerSpec, slots chan struct{}, inflight *sync.WaitGroup, handler Handler) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(spec.Concurrency))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()
	for {
		slots <- struct{}{}
		msg, err := it.Next()
		if err != nil {
			<-slots
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
				return nil
			}
			return err
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			b.process(hard, spec, msg, handler)
		}()
	}
}

// process runs the handler for one delivery and settles it: terminal event
// then ack or term, or a delayed nak. The handler's context derives from
// hard, which Consume cancels StopGrace after it is told to stop.
func (b *Bus) process(hard context.Context, spec ConsumerSpec, msg jetstream.Msg, handler Handler) {
	h := msg.Headers()
	cmd := &Command{subject: msg.Subject(), data: msg.Data(), typ: h.Get(HeaderType), deliveries: 1}
	var stored time.Time
	if md, err := msg.Metadata(); err == nil {
		cmd.deliveries, stored = int(md.NumDelivered), md.Timestamp
	}
	meta, metaErr := metaFromHeaders(h)
	cmd.meta = meta

	hctx, cancel := context.WithTimeout(hard, max(spec.AckWait, spec.MaxRun))
	defer cancel()
	if spec.MaxRun > spec.AckWait {
		stop := keepInProgress(msg, spec.AckWait/3)
		defer stop()
	}
	hctx = b.extract(hctx, h)
	hctx, span := b.tracer.Start(hctx, "process "+cmd.subject, trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(messagingAttrs(cmd.subject, "process")...)
		span.SetAttributes(attribute.String("stratus.command_id", meta.GetCommandId()),
			attribute.Int("messaging.delivery_count", cmd.deliveries))
	}
	hctx = withMeta(hctx, meta)
	// The logger is made on the paths that log only: building it costs
	// more than the rest of a successful delivery.
	log := func() *slog.Logger {
		l := b.log.With("subject", cmd.subject, "command", meta.GetCommandId(), "job", meta.GetJobId(), "delivery", cmd.deliveries)
		if sc := span.SpanContext(); sc.HasTraceID() {
			l = l.With("trace_id", sc.TraceID().String())
		}
		return l
	}

	// A redelivery of a command that has ended (its acknowledgement was
	// lost in a crash) is not carried out again: done twice, a step may
	// undo what a later one did, as a start redelivered after the kill
	// that followed it. Its recorded outcome is published again instead.
	// A server killed with its consumers' state not yet written delivers
	// such a command again as a first delivery: an old command is checked
	// too. A fresh one, the usual case, costs no lookup.
	if metaErr == nil && (cmd.deliveries > 1 || time.Since(stored) > recordCheckAge) {
		if b.answerFromRecord(hctx, msg, cmd, log) {
			return
		}
	}

	var res Result
	var err error
	switch {
	case metaErr != nil:
		err = metaErr
	case cmd.deliveries > spec.MaxDeliver:
		// Only a crash or an expired AckWait gets here: the handler never
		// settled the previous delivery. Give up rather than loop.
		err = &codedError{code: codeInternal, msg: fmt.Sprintf(
			"The command was delivered %d times without completing: the service handling it stopped or ran out of time.", cmd.deliveries-1)}
	default:
		res, err = b.call(hctx, log, handler, cmd)
	}

	// The terminal event is published under a context that is neither
	// cancelled nor past the handler's deadline: the outcome must be
	// recorded even when the handler used all of its time.
	pctx := context.WithoutCancel(hctx)
	if err == nil {
		if perr := b.complete(pctx, cmd, res); perr != nil {
			b.retry(msg, spec, cmd, log, fmt.Errorf("publish completion: %w", perr))
			return
		}
		if aerr := msg.Ack(); aerr != nil {
			log().Warn("cannot acknowledge a completed command; it will be redelivered", "error", aerr)
		}
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	if hard.Err() != nil {
		// Cut short by the stop, whatever the handler made of its
		// cancelled context: delivered again, at once, elsewhere or
		// after the restart.
		log().Info("command interrupted by the stop; it will be delivered again", "error", err)
		if nerr := msg.Nak(); nerr != nil {
			log().Warn("cannot return an interrupted command; it will come back after its ack wait", "error", nerr)
		}
		return
	}
	final := metaErr != nil || IsPermanent(err) || cmd.deliveries >= spec.MaxDeliver
	if !final {
		b.retry(msg, spec, cmd, log, err)
		return
	}
	if perr := b.fail(pctx, cmd, err); perr != nil {
		b.retry(msg, spec, cmd, log, fmt.Errorf("publish failure: %w", perr))
		return
	}
	l := log()
	l.Warn("command failed", "code", errorCode(err), "error", err)
	if terr := msg.TermWithReason(errorCode(err)); terr != nil {
		l.Warn("cannot terminate a failed command; it will be redelivered", "error", terr)
	}
}

// recordCheckAge is the age past which a command's first delivery is
// checked against the recorded outcomes: commands are delivered within
// milliseconds of being sent unless a crash or a backlog held them.
const recordCheckAge = time.Second

// answerFromRecord settles a delivery of a command whose outcome is
// recorded: it publishes the recorded terminal event (it may have been
// lost with the crash) and acknowledges the delivery. It reports false,
// for the handler to run, when no outcome is recorded or the record
// cannot be read.
func (b *Bus) answerFromRecord(ctx context.Context, msg jetstream.Msg, cmd *Command, log func() *slog.Logger) bool {
	if cmd.ID() == "" || b.js == nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kind, ev, found, err := b.recordedOutcome(rctx, cmd.ID())
	if err != nil || !found {
		return false
	}
	if err := b.publishTerminal(context.WithoutCancel(ctx), cmd, kind, ev); err != nil {
		return false
	}
	log().Info("command delivered again after it ended: its recorded outcome is published again")
	if err := msg.Ack(); err != nil {
		log().Warn("cannot acknowledge an ended command; it will be redelivered", "error", err)
	}
	return true
}

// keepInProgress tells JetStream every period that msg is still being
// handled, until stop is called.
func keepInProgress(msg jetstream.Msg, period time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress() // a failure shows as a redelivery, which handlers tolerate
			}
		}
	}()
	return func() { close(done); <-finished }
}

// call runs handler, turning a panic into an error so that the command is
// retried and eventually failed instead of crashing every replica in turn.
func (b *Bus) call(ctx context.Context, log func() *slog.Logger, handler Handler, cmd *Command) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			log().Error("command handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("bus: command handler panicked: %v", p)
		}
	}()
	return handler(ctx, cmd)
}

// retry asks for a redelivery after the backoff of this delivery.
func (b *Bus) retry(msg jetstream.Msg, spec ConsumerSpec, cmd *Command, log func() *slog.Logger, err error) {
	d := backoffDelay(spec.Backoff, cmd.deliveries)
	l := log()
	l.Warn("command not done; retrying", "error", err, "retry_in", d)
	if nerr := msg.NakWithDelay(d); nerr != nil {
		l.Warn("cannot return a command for redelivery; it will come back after its ack wait", "error", nerr)
	}
}

// complete publishes the …_completed event of cmd.
func (b *Bus) complete(ctx context.Context, cmd *Command, res Result) error {
	ev := &commonv1.CommandCompleted{
		CommandId:      cmd.ID(),
		JobId:          cmd.JobID(),
		CommandSubject: cmd.subject,
		Message:        res.Message,
		CompletedAt:    timestamppb.Now(),
	}
	if len(res.Affected) > 0 {
		ev.Affected = make([]*commonv1.ResourceRef, len(res.Affected))
		for i, id := range res.Affected {
			ev.Affected[i] = &commonv1.ResourceRef{Id: id}
		}
	}
	return b.settle(ctx, cmd, outcomeByteCompleted, ev)
}

// fail publishes the …_failed event of cmd.
func (b *Bus) fail(ctx context.Context, cmd *Command, err error) error {
	ev := &commonv1.CommandFailed{
		CommandId:      cmd.ID(),
		JobId:          cmd.JobID(),
		CommandSubject: cmd.subject,
		Error:          &commonv1.Error{Code: errorCode(err), Message: errorMessage(err)},
		Deliveries:     uint32(cmd.deliveries),
		FailedAt:       timestamppb.Now(),
	}
	return b.settle(ctx, cmd, outcomeByteFailed, ev)
}

// settle records ev as cmd's outcome, unless one is recorded already, and
// publishes the recorded one as the terminal event.
func (b *Bus) settle(ctx context.Context, cmd *Command, kind byte, ev proto.Message) error {
	kind, ev, err := b.recordOutcome(ctx, cmd.ID(), kind, ev)
	if err != nil {
		return err
	}
	return b.publishTerminal(ctx, cmd, kind, ev)
}

// publishTerminal publishes ev, cmd's terminal event of the given kind.
func (b *Bus) publishTerminal(ctx context.Context, cmd *Command, kind byte, ev proto.Message) error {
	outcome := outcomeCompleted
	if kind == outcomeByteFailed {
		outcome = outcomeFailed
	}
	return b.publishEvent(ctx, terminalSubject(cmd.subject, outcome), ev, b.terminalID(cmd), cmd.meta)
}

// terminalID is the Nats-Msg-Id of cmd's terminal event; none for a command
// without id, which cannot be de-duplicated anyway.
func (b *Bus) terminalID(cmd *Command) string {
	if cmd.ID() == "" {
		return ""
	}
	return terminalMsgID(cmd.ID())
}

// metaFromHeaders rebuilds a command's metadata from its headers. The
// metadata is returned even with an error, as far as it could be read.
func metaFromHeaders(h nats.Header) (*commonv1.Meta, error) {
	meta := &commonv1.Meta{CommandId: h.Get(nats.MsgIdHdr), JobId: h.Get(HeaderJob)}
	if at := h.Get(HeaderIssuedAt); at != "" {
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			meta.IssuedAt = timestamppb.New(t)
		}
	}
	actor, err := decodeActor(h.Get(HeaderActor))
	if err != nil {
		return meta, Permanent(&codedError{code: codeInvalid, msg: "The command's " + HeaderActor + " header is not valid JSON.", cause: err})
	}
	meta.Actor = actor
	if meta.CommandId == "" {
		return meta, Permanent(&codedError{code: codeInvalid, msg: "The command has no id (" + nats.MsgIdHdr + " header): send commands with bus.Send."})
	}
	return meta, nil
}
