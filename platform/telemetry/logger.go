package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel/trace"
)

// ParseLevel reads a log level: "debug", "info" (also the empty string),
// "warn" or "error", in any case, optionally with an offset such as "info+2".
func ParseLevel(s string) (slog.Level, error) {
	var level slog.Level
	if s == "" {
		return level, nil
	}
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return level, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return level, nil
}

// newLogger builds the service logger described by o, filtering at level.
func newLogger(o Options, level *slog.LevelVar) (*slog.Logger, error) {
	w := o.LogWriter
	if w == nil {
		w = os.Stderr
	}
	l, err := ParseLevel(o.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	level.Set(l)
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch o.LogFormat {
	case "json":
		h = slog.NewJSONHandler(w, hopts)
	case "text", "":
		h = slog.NewTextHandler(w, hopts)
	default:
		return nil, fmt.Errorf("telemetry: log format %q: want json or text", o.LogFormat)
	}
	attrs := []slog.Attr{slog.String("service", o.Service)}
	if o.Instance != "" {
		attrs = append(attrs, slog.String("instance", o.Instance))
	}
	return slog.New(traceHandler{h.WithAttrs(attrs)}), nil
}

// traceHandler adds the trace and span ids of the context's span to each
// record, so a log line can be found from a trace and the other way round.
// Like any attribute added at log time, they sit inside the groups opened
// with WithGroup.
type traceHandler struct{ next slog.Handler }

func (h traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone() // the caller may hand the same record to other handlers
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.next.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.next.WithGroup(name)}
}
