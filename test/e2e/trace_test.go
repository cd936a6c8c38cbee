package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/telemetry"
	"stratuslab.dev/platform/testkit"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// TestOneTraceAcrossHTTPAndBus follows a request carrying a W3C
// traceparent through the HTTP middleware, a command sent on the bus from
// the request's context, and the service handling it: every span belongs to
// the caller's trace, and the handler's span descends from the request's.
func TestOneTraceAcrossHTTPAndBus(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: "trace-test", LogWriter: io.Discard,
		SpanProcessor: sdktrace.NewSimpleSpanProcessor(exp)})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	nc, js := testkit.JetStream(t)
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: "trace", TracerProvider: tel.TracerProvider, Propagator: tel.Propagator})
	handled := make(chan trace.SpanContext, 1)
	go func() {
		_ = b.Consume(ctx, bus.ConsumerSpec{}, func(ctx context.Context, _ *bus.Command) (bus.Result, error) {
			handled <- trace.SpanContextFromContext(ctx)
			return bus.Result{}, nil
		})
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /cimi/Thing", func(w http.ResponseWriter, r *http.Request) {
		meta := &commonv1.Meta{Actor: &commonv1.Actor{User: "alice"}}
		if err := b.Send(r.Context(), "cmd.trace.thing.create", meta, &commonv1.ResourceRef{Id: "Thing/1"}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(telemetry.HTTPMiddleware(tel, "gateway", mux))
	defer srv.Close()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/cimi/Thing", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}

	var sc trace.SpanContext
	select {
	case sc = <-handled:
	case <-ctx.Done():
		t.Fatal("the command was not handled")
	}
	if got := sc.TraceID().String(); got != traceID {
		t.Fatalf("the handler runs in trace %s, want the caller's %s", got, traceID)
	}
	// Every recorded span is in the caller's trace, and the chain runs
	// handler → … → HTTP server span.
	var spans tracetest.SpanStubs
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if spans = exp.GetSpans(); len(spans) >= 3 {
			break
		}
	}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %q is in trace %s", s.Name, s.SpanContext.TraceID())
		}
		byID[s.SpanContext.SpanID()] = s
	}
	var chain []string
	for id := sc.SpanID(); ; {
		s, ok := byID[id]
		if !ok {
			break
		}
		chain = append(chain, s.Name)
		id = s.Parent.SpanID()
	}
	if len(chain) < 3 || chain[len(chain)-1] != "POST /cimi/Thing" {
		t.Errorf("span chain from the handler up: %q; want it to reach the HTTP span", chain)
	}
}
