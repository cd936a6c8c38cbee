package bus

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

func TestTraceContextCrossesTheBus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	// Sender and consumer are separate buses, as in two processes.
	sender := New(e.nc, e.js, Options{Service: "cimi", Logger: quiet(), TracerProvider: tp})
	worker := New(e.nc, e.js, Options{Service: "pdisk", Logger: quiet(), TracerProvider: tp})

	handled := make(chan trace.SpanContext, 1)
	run(t, func(ctx context.Context) error {
		return worker.Consume(ctx, ConsumerSpec{}, func(ctx context.Context, cmd *Command) (Result, error) {
			handled <- trace.SpanContextFromContext(ctx)
			return Result{}, nil
		})
	})
	queried := make(chan trace.SpanContext, 1)
	run(t, func(ctx context.Context) error {
		return worker.Serve(ctx, ServiceInfo{Version: "1.0.0"}, Endpoint{Op: "get", Handler: func(ctx context.Context, _ []byte) (proto.Message, error) {
			queried <- trace.SpanContextFromContext(ctx)
			return nil, nil
		}})
	})

	ctx, root := tp.Tracer("test").Start(context.Background(), "http request")
	if err := sender.Send(ctx, "cmd.pdisk.volume.create", &commonv1.Meta{}, &commonv1.ResourceRef{}); err != nil {
		t.Fatal(err)
	}
	var consumerSpan trace.SpanContext
	select {
	case consumerSpan = <-handled:
	case <-time.After(waitLimit):
		t.Fatal("handler not called")
	}
	if consumerSpan.TraceID() != root.SpanContext().TraceID() {
		t.Errorf("consumer trace %s, sender trace %s", consumerSpan.TraceID(), root.SpanContext().TraceID())
	}

	waitServing(t, sender, "svc.pdisk.get")
	if err := sender.Request(ctx, "svc.pdisk.get", nil, &commonv1.ResourceRef{}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case sc := <-queried:
		if sc.TraceID() != root.SpanContext().TraceID() {
			t.Errorf("query handler trace %s, caller trace %s", sc.TraceID(), root.SpanContext().TraceID())
		}
	case <-time.After(waitLimit):
		t.Fatal("query handler not called")
	}
	root.End()

	// The spans form one tree: http request → send → process.
	eventually(t, "process span ended", func() bool { return spanNamed(exp, "process cmd.pdisk.volume.create") != nil })
	send, process := spanNamed(exp, "send cmd.pdisk.volume.create"), spanNamed(exp, "process cmd.pdisk.volume.create")
	if send == nil || send.Parent.SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("send span %+v is not a child of the request span", send)
	}
	if process.Parent.SpanID() != send.SpanContext.SpanID() || process.SpanKind != trace.SpanKindConsumer {
		t.Errorf("process span parent %s kind %v, want child of send span %s", process.Parent.SpanID(), process.SpanKind, send.SpanContext.SpanID())
	}
}

// spanNamed returns the ended span called name, nil if none.
func spanNamed(exp *tracetest.InMemoryExporter, name string) *tracetest.SpanStub {
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			return &s
		}
	}
	return nil
}
