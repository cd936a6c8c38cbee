package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Options configure Setup.
type Options struct {
	// Service is the service name, e.g. "pdisk"; required.
	Service string
	// Version is the build version, reported as service.version.
	Version string
	// Instance tells replicas of a service apart, e.g. a host name.
	Instance string
	// LogFormat is "json" or "text" (the default when empty).
	LogFormat string
	// LogLevel is "debug", "info" (the default when empty), "warn" or
	// "error", in any case, optionally with an offset such as "info+2".
	LogLevel string
	// LogWriter receives the logs; os.Stderr when nil.
	LogWriter io.Writer
	// SpanProcessor, when set, also receives every span; tests pass a
	// processor around an in-memory exporter (sdk/trace/tracetest).
	SpanProcessor sdktrace.SpanProcessor
	// Getenv reads the OTEL_EXPORTER_OTLP_* variables that decide whether
	// OTLP exporters are created; os.Getenv when nil. The exporters
	// themselves read the rest of their settings (headers, TLS, timeouts)
	// from the process environment, as the OpenTelemetry specification says.
	Getenv func(string) string
}

// Telemetry holds a service's logger and OpenTelemetry providers. Pass it
// (or its fields) to whatever needs them; treat the fields as read-only.
type Telemetry struct {
	// Service is the service name given to Setup.
	Service string
	// Logger adds "service" (and "instance" when set) to every record and
	// "trace_id"/"span_id" when the context passed to a *Context method
	// carries a valid span.
	Logger *slog.Logger
	// Level filters Logger's records; setting it changes the level at once
	// (live configuration does).
	Level *slog.LevelVar
	// TracerProvider makes real spans; they are exported only when an OTLP
	// endpoint is configured.
	TracerProvider trace.TracerProvider
	// MeterProvider's instruments appear on Registry (hence /metrics) and,
	// when an OTLP endpoint is configured, are pushed there as well.
	MeterProvider metric.MeterProvider
	// Propagator carries W3C traceparent/tracestate and baggage across HTTP
	// requests and bus messages.
	Propagator propagation.TextMapPropagator
	// Registry is the service's own Prometheus registry (never the global
	// one), holding the OpenTelemetry metrics and Go runtime and process
	// collectors.
	Registry *prometheus.Registry

	tp           *sdktrace.TracerProvider
	mp           *sdkmetric.MeterProvider
	shutdownOnce sync.Once
	shutdownErr  error
}

// instrumentationName names the tracer and meter of this package.
const instrumentationName = "stratuslab.dev/platform/telemetry"

// Setup builds the logger and the providers of one service. Call Shutdown
// before the process exits so buffered spans and metrics are sent.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	if o.Service == "" {
		return nil, errors.New("telemetry: Options.Service is required")
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	level := new(slog.LevelVar)
	logger, err := newLogger(o, level)
	if err != nil {
		return nil, err
	}

	attrs := []attribute.KeyValue{semconv.ServiceName(o.Service)}
	if o.Version != "" {
		attrs = append(attrs, semconv.ServiceVersion(o.Version))
	}
	if o.Instance != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(o.Instance))
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, attrs...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if otlpConfigured(getenv, "TRACES") {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	if o.SpanProcessor != nil {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(o.SpanProcessor))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(fmt.Errorf("telemetry: register collector: %w", err), tp.Shutdown(ctx))
		}
	}
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: Prometheus exporter: %w", err), tp.Shutdown(ctx))
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	if otlpConfigured(getenv, "METRICS") {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("telemetry: OTLP metric exporter: %w", err), tp.Shutdown(ctx))
		}
		mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	mp := sdkmetric.NewMeterProvider(mpOpts...)

	return &Telemetry{
		Service:        o.Service,
		Logger:         logger,
		Level:          level,
		TracerProvider: tp,
		MeterProvider:  mp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Registry:       reg,
		tp:             tp,
		mp:             mp,
	}, nil
}

// otlpConfigured reports whether an OTLP endpoint is set for a signal
// ("TRACES" or "METRICS"), generally or for that signal alone.
func otlpConfigured(getenv func(string) string, signal string) bool {
	return strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) != "" ||
		strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT")) != ""
}

// Tracer returns a tracer for an instrumentation scope, usually the import
// path of the calling package.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// Meter returns a meter for an instrumentation scope, usually the import
// path of the calling package.
func (t *Telemetry) Meter(name string) metric.Meter { return t.MeterProvider.Meter(name) }

// Shutdown flushes and stops the providers; spans and metrics recorded
// afterwards are dropped. It is safe to call more than once.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		t.shutdownErr = errors.Join(t.tp.Shutdown(ctx), t.mp.Shutdown(ctx))
		if t.shutdownErr != nil {
			t.shutdownErr = fmt.Errorf("telemetry: shutdown: %w", t.shutdownErr)
		}
	})
	return t.shutdownErr
}
