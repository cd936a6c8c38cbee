package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// Send publishes the command cmd on subject (cmd.<service>.<resource>.<verb>)
// in the COMMANDS stream and waits until JetStream has stored it. meta says
// who asks and under which job; Send fills a missing command id (a UUID) and
// issue time in place, so the caller can read them back. The command id is
// the message's Nats-Msg-Id: sending the same command twice within the
// duplicate window stores it once, and Send reports success both times.
func (b *Bus) Send(ctx context.Context, subject string, meta *commonv1.Meta, cmd proto.Message) error {
	_, err := b.SendOnce(ctx, subject, meta, cmd)
	return err
}

// SendOnce is Send, and also says whether JetStream dropped the command as
// a duplicate: one with the same id was sent within the duplicate window.
// A sender that resumes after a crash and sends a step's command again
// learns so, and reads the first one's outcome with Outcome instead of
// waiting for a terminal event that went by before it listened.
func (b *Bus) SendOnce(ctx context.Context, subject string, meta *commonv1.Meta, cmd proto.Message) (sentBefore bool, err error) {
	if err := checkCommandSubject(subject); err != nil {
		return false, err
	}
	if meta == nil {
		return false, errors.New("bus: send: command metadata is required")
	}
	if meta.CommandId == "" {
		meta.CommandId = uuid.NewString()
	}
	if meta.IssuedAt == nil {
		meta.IssuedAt = timestamppb.Now()
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return false, fmt.Errorf("bus: send %s: encode command: %w", subject, err)
	}
	ctx, span := b.tracer.Start(ctx, "send "+subject, trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(messagingAttrs(subject, "send")...)
		span.SetAttributes(attribute.String("stratus.command_id", meta.CommandId))
	}

	hv := newHeader(5)
	hv.set(nats.MsgIdHdr, meta.CommandId)
	hv.set(HeaderType, string(cmd.ProtoReflect().Descriptor().FullName()))
	hv.set(HeaderIssuedAt, meta.IssuedAt.AsTime().Format(time.RFC3339Nano))
	hv.set(HeaderJob, meta.JobId)
	hv.set(HeaderActor, encodeActor(meta.Actor))
	b.inject(ctx, hv.h)
	dup, err := b.store(ctx, &nats.Msg{Subject: subject, Header: hv.h, Data: data})
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return false, fmt.Errorf("bus: send %s: %w", subject, err)
	}
	return dup, nil
}

// Publish stores the event on subject (evt.<service>.<resource>.<event>) in
// the EVENTS stream and waits for JetStream's acknowledgement. msgID, when
// not empty, becomes the Nats-Msg-Id: republishing the same event after a
// crash, with the same id, stores it once. Inside a command handler the
// event carries the command's job id.
func (b *Bus) Publish(ctx context.Context, subject string, event proto.Message, msgID string) error {
	if err := checkEventSubject(subject); err != nil {
		return err
	}
	ctx, span := b.tracer.Start(ctx, "publish "+subject, trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(messagingAttrs(subject, "publish")...)
	}
	if err := b.publishEvent(ctx, subject, event, msgID, MetaFrom(ctx)); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	return nil
}

// publishEvent encodes and stores one event; ctx carries the span the
// trace context is taken from. meta, when not nil, is the command the event
// comes from: the event carries its job and its actor, so that subscribers
// (the audit trail) know whose work it records.
func (b *Bus) publishEvent(ctx context.Context, subject string, event proto.Message, msgID string, meta *commonv1.Meta) error {
	data, err := proto.Marshal(event)
	if err != nil {
		return fmt.Errorf("bus: publish %s: encode event: %w", subject, err)
	}
	hv := newHeader(4)
	hv.set(nats.MsgIdHdr, msgID)
	hv.set(HeaderType, string(event.ProtoReflect().Descriptor().FullName()))
	hv.set(HeaderJob, meta.GetJobId())
	if a := meta.GetActor(); a != nil {
		hv.set(HeaderActor, encodeActor(a))
	}
	b.inject(ctx, hv.h)
	if _, err := b.store(ctx, &nats.Msg{Subject: subject, Header: hv.h, Data: data}); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

// storeTimeout bounds a publish whose context has no deadline.
const storeTimeout = 5 * time.Second

// store publishes m to JetStream and waits for the acknowledgement. A
// duplicate is success: the message is already stored. It speaks the
// JetStream publish protocol itself rather than through jetstream.Publish,
// whose JSON decoding of every acknowledgement costs a twentieth of the CPU
// of a command round trip.
func (b *Bus) store(ctx context.Context, m *nats.Msg) (duplicate bool, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, storeTimeout)
		defer cancel()
	}
	for attempt := 1; ; attempt++ {
		resp, err := b.nc.RequestMsgWithContext(ctx, m)
		if err == nil {
			return checkPubAck(resp.Data)
		}
		// No responders: no stream listens on the subject, or, in a
		// cluster, its leader is being elected. Retry briefly.
		if errors.Is(err, nats.ErrNoResponders) && attempt < 3 && sleep(ctx, 250*time.Millisecond) {
			continue
		}
		switch {
		case errors.Is(err, context.Canceled):
			return false, err
		case errors.Is(err, nats.ErrMaxPayload):
			return false, Permanent(&codedError{code: codeTooLarge, cause: err, msg: fmt.Sprintf(
				"The message is %d bytes, more than the %d the message bus carries: send less.", len(m.Data)+headerSize(m.Header), b.nc.MaxPayload())})
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			return false, &codedError{code: codeTimeout, msg: "The message bus did not acknowledge in time: retry later.", cause: err}
		default:
			return false, &codedError{code: codeUnavailable, msg: "The message bus did not store the message: retry later.", cause: err}
		}
	}
}

// checkPubAck reads a JetStream publish acknowledgement and whether it
// says the message was a duplicate. The server writes a success as
// {"stream":"NAME","seq":N…} from a template, so that prefix is enough;
// anything else is decoded in full.
func checkPubAck(data []byte) (duplicate bool, err error) {
	if bytes.HasPrefix(data, []byte(`{"stream":`)) && !bytes.Contains(data, []byte(`"error"`)) && !bytes.Contains(data, []byte(`"duplicate"`)) {
		return false, nil
	}
	var ack struct {
		Stream    string `json:"stream"`
		Duplicate bool   `json:"duplicate"`
		Error     *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return false, &codedError{code: codeUnavailable, msg: "The message bus answered with an unreadable acknowledgement.", cause: err}
	}
	if ack.Error != nil {
		return false, &codedError{code: codeUnavailable, msg: "The message bus refused to store the message.",
			cause: fmt.Errorf("jetstream: %s (status %d, error %d)", ack.Error.Description, ack.Error.Code, ack.Error.ErrCode)}
	}
	if ack.Stream == "" {
		return false, &codedError{code: codeUnavailable, msg: "The message bus answered with an acknowledgement naming no stream."}
	}
	return ack.Duplicate, nil
}

// messagingAttrs are the OpenTelemetry messaging attributes of a span.
func messagingAttrs(subject, operation string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", subject),
		attribute.String("messaging.operation.name", operation),
	}
}

// headerSize approximates the bytes of h on the wire.
func headerSize(h nats.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
