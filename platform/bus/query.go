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
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// DefaultRequestTimeout bounds a Request whose context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// Limits of the serving side of queries.
const (
	// queryHandlerTimeout bounds one query handler.
	queryHandlerTimeout = 30 * time.Second
	// queryConcurrency bounds the query handlers running at once per Serve.
	queryConcurrency = 64
)

// ServiceInfo identifies a query service to NATS micro discovery (nats
// micro ls / info / stats).
type ServiceInfo struct {
	// Name is the service name: letters, digits, '-' and '_'. Endpoints
	// listen on svc.<Name>.<op> in queue group <Name>. The bus's service
	// name when empty.
	Name string
	// Version is a semantic version, e.g. "1.2.0"; "0.0.0" when empty.
	Version string
	// Description says what the service answers, for people.
	Description string
}

// QueryHandler answers one query. req is the protobuf-encoded request; ctx
// carries the caller's actor (ActorFrom) and continues its trace. The
// returned message is the reply (nil for an empty one); an error is answered
// with its stable code (from a Code() string method, "internal" otherwise)
// and its message for people.
type QueryHandler func(ctx context.Context, req []byte) (proto.Message, error)

// Endpoint is one query operation of a service.
type Endpoint struct {
	// Op names the operation: letters, digits, '-' and '_'.
	Op string
	// Handler answers the operation's requests.
	Handler QueryHandler

	// reqType is the full name of the request message a Handle endpoint
	// expects; requests labelled with another type are refused.
	reqType string
}

// Handle returns an Endpoint whose requests are decoded into a new *Req
// before fn runs; a request labelled (Stratus-Type) with another message
// type, or that does not decode, is answered with code "invalid" without
// calling fn.
func Handle[Req any, PReq interface {
	*Req
	proto.Message
}](op string, fn func(ctx context.Context, req PReq) (proto.Message, error)) Endpoint {
	reqType := string(PReq(new(Req)).ProtoReflect().Descriptor().FullName())
	return Endpoint{Op: op, reqType: reqType, Handler: func(ctx context.Context, data []byte) (proto.Message, error) {
		req := PReq(new(Req))
		if err := proto.Unmarshal(data, req); err != nil {
			return nil, &codedError{code: codeInvalid, msg: fmt.Sprintf("The request is not a valid %s.", reqType), cause: err}
		}
		return fn(ctx, req)
	}}
}

// Serve answers queries on the endpoints through NATS micro, each on
// svc.<name>.<op> in queue group <name> so that replicas share the load, and
// makes the service discoverable ($SRV.PING, $SRV.INFO, $SRV.STATS). Each
// request runs in its own goroutine (at most 64 at once). Serve blocks until
// ctx is cancelled, then stops listening, waits for the requests in
// progress and returns nil; it returns an error at once when the service
// cannot be registered.
func (b *Bus) Serve(ctx context.Context, info ServiceInfo, endpoints ...Endpoint) error {
	if info.Name == "" {
		info.Name = b.service
	}
	if info.Version == "" {
		info.Version = "0.0.0"
	}
	log := b.log.With("service", info.Name)
	svc, err := micro.AddService(b.nc, micro.Config{
		Name:        info.Name,
		Version:     info.Version,
		Description: info.Description,
		QueueGroup:  info.Name,
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			log.Warn("query service error", "subject", err.Subject, "error", err.Description)
		},
	})
	if err != nil {
		return fmt.Errorf("bus: serve %s: %w", info.Name, err)
	}
	s := &querier{bus: b, ctx: ctx, log: log, sem: make(chan struct{}, queryConcurrency)}
	for _, ep := range endpoints {
		subject := querySubject(info.Name, ep.Op)
		handler := micro.HandlerFunc(func(r micro.Request) { s.dispatch(subject, ep, r) })
		if err := svc.AddEndpoint(ep.Op, handler, micro.WithEndpointSubject(subject)); err != nil {
			_ = svc.Stop()
			return fmt.Errorf("bus: serve %s: endpoint %q: %w", info.Name, ep.Op, err)
		}
	}
	<-ctx.Done()
	s.stop()
	if err := svc.Stop(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Warn("cannot stop the query service cleanly", "error", err)
	}
	s.inflight.Wait()
	return nil
}

// querier runs the requests of one Serve call.
type querier struct {
	bus *Bus
	ctx context.Context
	log *slog.Logger
	sem chan struct{}

	mu       sync.Mutex
	stopping bool
	inflight sync.WaitGroup
}

// stop makes requests arriving from now on be refused, so that the
// in-flight count only decreases.
func (s *querier) stop() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
}

// dispatch starts a goroutine for r, waiting for a free slot first.
func (s *querier) dispatch(subject string, ep Endpoint, r micro.Request) {
	s.sem <- struct{}{}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		<-s.sem
		_ = r.Error(codeUnavailable, "The service is stopping: retry.", nil)
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.inflight.Done()
		defer func() { <-s.sem }()
		s.answer(subject, ep, r)
	}()
}

// answer runs the handler for one request and replies.
func (s *querier) answer(subject string, ep Endpoint, r micro.Request) {
	b := s.bus
	hdr := nats.Header(r.Headers())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), queryHandlerTimeout)
	defer cancel()
	ctx = b.extract(ctx, hdr)
	ctx, span := b.tracer.Start(ctx, "serve "+subject, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(messagingAttrs(subject, "serve")...)
	}

	var resp proto.Message
	actor, err := decodeActor(hdr.Get(HeaderActor))
	typ := hdr.Get(HeaderType)
	switch {
	case err != nil:
		err = &codedError{code: codeInvalid, msg: "The request's " + HeaderActor + " header is not valid JSON.", cause: err}
	case ep.reqType != "" && typ != "" && typ != ep.reqType:
		err = &codedError{code: codeInvalid, msg: fmt.Sprintf("%s expects a %s, not a %s.", subject, ep.reqType, typ)}
	default:
		resp, err = s.call(WithActor(ctx, actor), ep.Handler, r.Data())
	}
	if err == nil {
		var data []byte
		h := nats.Header{}
		if resp != nil {
			data, err = proto.Marshal(resp)
			h.Set(HeaderType, string(resp.ProtoReflect().Descriptor().FullName()))
		}
		if err == nil {
			if rerr := s.reply(r, data, h); rerr != nil {
				s.log.Warn("cannot send a query reply", "subject", subject, "error", rerr)
			}
			return
		}
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	code := errorCode(err)
	if code == codeInternal {
		s.log.Error("query failed", "subject", subject, "error", err)
	}
	h := nats.Header{}
	h.Set(micro.ErrorHeader, errorMessage(err))
	h.Set(micro.ErrorCodeHeader, code)
	if rerr := s.reply(r, nil, h); rerr != nil {
		s.log.Warn("cannot send a query error reply", "subject", subject, "error", rerr)
	}
}

// reply answers r from the goroutine that ran its handler. It publishes on
// the reply subject itself rather than through r.Respond or r.Error: micro
// reads the request's error state once the (already returned) micro
// handler is done, so setting it from another goroutine is a data race.
// The price is that micro's statistics count no errors.
func (s *querier) reply(r micro.Request, data []byte, h nats.Header) error {
	if r.Reply() == "" {
		return nil // a published query expects no answer
	}
	return s.bus.nc.PublishMsg(&nats.Msg{Subject: r.Reply(), Header: h, Data: data})
}

// call runs h, turning a panic into an internal error.
func (s *querier) call(ctx context.Context, h QueryHandler, data []byte) (resp proto.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("query handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("bus: query handler panicked: %v", p)
		}
	}()
	return h(ctx, data)
}

// Request sends the query req to subject (svc.<service>.<op>) as actor and
// decodes the reply into resp (which may be nil to ignore it). It waits until
// ctx's deadline, or DefaultRequestTimeout when ctx has none. Errors: one
// wrapping ErrUnavailable when no instance of the service is listening
// (after asking three times over half a second), a
// *QueryError with the code and message the service answered with, an error
// with code "timeout" when the reply does not come in time.
func (b *Bus) Request(ctx context.Context, subject string, actor *commonv1.Actor, req, resp proto.Message) error {
	if err := checkSubject(subject, queryPrefix, 3); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("bus: query %s: encode request: %w", subject, err)
	}
	ctx, span := b.tracer.Start(ctx, "query "+subject, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(messagingAttrs(subject, "request")...)
	}
	hv := newHeader(2)
	hv.set(HeaderType, string(req.ProtoReflect().Descriptor().FullName()))
	hv.set(HeaderActor, encodeActor(actor))
	b.inject(ctx, hv.h)
	msg := &nats.Msg{Subject: subject, Header: hv.h, Data: data}
	reply, err := b.nc.RequestMsgWithContext(ctx, msg)
	// No responders: the service is starting or restarting, or down. A
	// query only reads, so asking again a moment later is safe; a service
	// that is down costs the caller half a second more before its 503.
	for attempt := 2; attempt <= 3 && errors.Is(err, nats.ErrNoResponders) && sleep(ctx, 250*time.Millisecond); attempt++ {
		reply, err = b.nc.RequestMsgWithContext(ctx, msg)
	}
	if err == nil {
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			err = &QueryError{code: code, message: reply.Header.Get(micro.ErrorHeader)}
		} else if resp != nil {
			err = decodePayload(subject, reply.Header.Get(HeaderType), reply.Data, resp)
		}
	} else {
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			err = fmt.Errorf("bus: query %s: %w", subject, ErrUnavailable)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			err = &codedError{code: codeTimeout, msg: fmt.Sprintf("The service behind %s did not answer in time: retry later.", subject), cause: err}
		default:
			err = fmt.Errorf("bus: query %s: %w", subject, err)
		}
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}
