package telemetry

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// HTTPMiddleware traces and measures every request next serves: it continues
// the trace of an incoming W3C traceparent header (or starts one), runs next
// with the server span in the request context, and records the span's
// method, route and status and the http.server.request.duration histogram.
// name identifies the server (e.g. "cimi") and names spans whose route is
// unknown. The route is the pattern that an http.ServeMux inside next
// matched, which keeps ids out of span names and metric labels.
//
// It is written here rather than taken from the otelhttp contrib module to
// avoid a further dependency tree for about a hundred lines, and because it
// uses the Telemetry's own providers and propagator rather than globals.
func HTTPMiddleware(t *Telemetry, name string, next http.Handler) http.Handler {
	tracer := t.Tracer(instrumentationName)
	duration, err := t.Meter(instrumentationName).Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."),
		// The boundaries the OpenTelemetry semantic conventions recommend.
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		// Only an invalid instrument definition fails, which a test catches;
		// the returned instrument is then a working no-op.
		t.Logger.Error("telemetry: HTTP duration histogram", "error", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := t.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, name,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				semconv.HTTPRequestMethodKey.String(r.Method),
				semconv.URLPath(r.URL.Path),
				semconv.ServerAddress(r.Host),
			))
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(ctx)
		finish := func(status int) {
			route := routeOf(r.Pattern)
			attrs := []attribute.KeyValue{
				semconv.HTTPRequestMethodKey.String(r.Method),
				semconv.HTTPResponseStatusCode(status),
			}
			if route != "" {
				attrs = append(attrs, semconv.HTTPRoute(route))
				span.SetName(r.Method + " " + route)
			}
			span.SetAttributes(attrs...)
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			span.End()
			duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
		}
		defer func() {
			if p := recover(); p != nil {
				span.RecordError(fmt.Errorf("panic: %v", p))
				finish(http.StatusInternalServerError)
				panic(p)
			}
		}()
		next.ServeHTTP(rec, r)
		finish(rec.statusCode())
	})
}

// routeOf turns a ServeMux pattern ("GET example.com/volumes/{id}") into an
// http.route ("/volumes/{id}").
func routeOf(pattern string) string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		pattern = strings.TrimLeft(pattern[i:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:]
	}
	return pattern
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush lets handlers that stream (server-sent events, watches) flush
// through the recorder with a plain http.Flusher assertion.
func (s *statusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) statusCode() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
