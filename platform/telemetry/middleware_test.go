package telemetry_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"stratuslab.dev/platform/telemetry"
)

func TestHTTPMiddleware(t *testing.T) {
	t.Parallel()
	const (
		incomingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		incomingSpan  = "00f067aa0ba902b7"
	)
	tests := []struct {
		name        string
		path        string
		traceparent string
		wantStatus  int
		wantName    string
		wantRoute   string
		wantError   bool
	}{
		{name: "continues traceparent", path: "/volumes/abc", traceparent: "00-" + incomingTrace + "-" + incomingSpan + "-01",
			wantStatus: 404, wantName: "GET /volumes/{id}", wantRoute: "/volumes/{id}"},
		{name: "new trace", path: "/volumes/abc", wantStatus: 404, wantName: "GET /volumes/{id}", wantRoute: "/volumes/{id}"},
		{name: "server error", path: "/fail", wantStatus: 500, wantName: "GET /fail", wantRoute: "/fail", wantError: true},
		{name: "no route", path: "/nowhere", wantStatus: 404, wantName: "cimi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			exp := tracetest.NewInMemoryExporter()
			tel := setup(t, telemetry.Options{SpanProcessor: sdktrace.NewSimpleSpanProcessor(exp)})

			var seen trace.SpanContext
			mux := http.NewServeMux()
			mux.HandleFunc("GET /volumes/{id}", func(w http.ResponseWriter, r *http.Request) {
				seen = trace.SpanContextFromContext(r.Context())
				http.Error(w, "no such volume", http.StatusNotFound)
			})
			mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
			})
			h := telemetry.HTTPMiddleware(tel, "cimi", mux)

			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.traceparent != "" {
				req.Header.Set("traceparent", tt.traceparent)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}

			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name != tt.wantName || s.SpanKind != trace.SpanKindServer {
				t.Errorf("span %q kind %v, want %q server", s.Name, s.SpanKind, tt.wantName)
			}
			if tt.traceparent != "" {
				if s.SpanContext.TraceID().String() != incomingTrace || s.Parent.SpanID().String() != incomingSpan || !s.Parent.IsRemote() {
					t.Errorf("span trace %s parent %s, want trace %s parent %s (remote)",
						s.SpanContext.TraceID(), s.Parent.SpanID(), incomingTrace, incomingSpan)
				}
			} else if s.Parent.IsValid() {
				t.Errorf("span has parent %v without traceparent", s.Parent)
			}
			if seen.IsValid() && seen.SpanID() != s.SpanContext.SpanID() {
				t.Errorf("handler saw span %s, exported %s", seen.SpanID(), s.SpanContext.SpanID())
			}
			if tt.wantRoute == "/volumes/{id}" && !seen.IsValid() {
				t.Errorf("handler context carries no span")
			}
			attrs := attribute.NewSet(s.Attributes...)
			if v, _ := attrs.Value("http.response.status_code"); v.AsInt64() != int64(tt.wantStatus) {
				t.Errorf("http.response.status_code = %v, want %d", v.String(), tt.wantStatus)
			}
			if v, _ := attrs.Value("http.request.method"); v.AsString() != "GET" {
				t.Errorf("http.request.method = %q", v.String())
			}
			if v, _ := attrs.Value("http.route"); v.AsString() != tt.wantRoute {
				t.Errorf("http.route = %q, want %q", v.String(), tt.wantRoute)
			}
			if (s.Status.Code == codes.Error) != tt.wantError {
				t.Errorf("span status %v, want error %v", s.Status.Code, tt.wantError)
			}

			if n := histogramCount(t, tel, "http_server_request_duration_seconds"); n != 1 {
				t.Errorf("duration histogram count = %d, want 1", n)
			}
		})
	}
}

func TestHTTPMiddlewarePanic(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tel := setup(t, telemetry.Options{SpanProcessor: sdktrace.NewSimpleSpanProcessor(exp)})
	h := telemetry.HTTPMiddleware(tel, "boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("handler bug")
	}))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not propagate")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Status.Code != codes.Error || len(spans[0].Events) == 0 {
		t.Fatalf("spans after a panic = %+v, want one error span with the panic recorded", spans)
	}
}

// histogramCount returns the total sample count of a histogram family on
// the Telemetry's registry.
func histogramCount(t *testing.T, tel *telemetry.Telemetry, name string) uint64 {
	t.Helper()
	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, f := range families {
		if f.GetName() != name || f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range f.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}
