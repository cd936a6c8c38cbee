package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"stratuslab.dev/platform/telemetry"
)

// setup returns a Telemetry for a test, shut down when the test ends.
func setup(t *testing.T, o telemetry.Options) *telemetry.Telemetry {
	t.Helper()
	if o.Service == "" {
		o.Service = "testsvc"
	}
	if o.LogWriter == nil {
		o.LogWriter = io.Discard
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	tel, err := telemetry.Setup(context.Background(), o)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

func TestLoggerAddsTraceIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tel := setup(t, telemetry.Options{Service: "pdisk", Instance: "host-1", LogFormat: "json", LogWriter: &buf})

	ctx, span := tel.Tracer("test").Start(context.Background(), "op")
	tel.Logger.InfoContext(ctx, "inside", "volume", "Volume/1")
	span.End()
	tel.Logger.InfoContext(context.Background(), "outside")
	tel.Logger.DebugContext(ctx, "below the default level")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2:\n%s", len(lines), buf.String())
	}
	var in, out map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &out); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if !sc.IsValid() {
		t.Fatal("span without an exporter has no valid span context")
	}
	want := map[string]any{
		"msg": "inside", "service": "pdisk", "instance": "host-1", "volume": "Volume/1",
		"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(),
	}
	for k, v := range want {
		if in[k] != v {
			t.Errorf("inside span: %s = %v, want %v", k, in[k], v)
		}
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("outside span: unexpected trace_id in %s", lines[1])
	}
	if out["service"] != "pdisk" {
		t.Errorf("outside span: service = %v", out["service"])
	}
}

func TestLoggerOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    telemetry.Options
		wantErr string
		logs    []string // substrings of the output after logging debug and info
		notLogs []string
	}{
		{name: "text default", opts: telemetry.Options{}, logs: []string{"level=INFO", "msg=info-line", "service=testsvc"}, notLogs: []string{"debug-line"}},
		{name: "debug level", opts: telemetry.Options{LogLevel: "DEBUG", LogFormat: "text"}, logs: []string{"debug-line", "info-line"}},
		{name: "warn hides info", opts: telemetry.Options{LogLevel: "warn", LogFormat: "json"}, notLogs: []string{"info-line"}},
		{name: "bad level", opts: telemetry.Options{LogLevel: "loud"}, wantErr: `log level "loud"`},
		{name: "bad format", opts: telemetry.Options{LogFormat: "xml"}, wantErr: `log format "xml"`},
		{name: "no service", opts: telemetry.Options{Service: "-"}, wantErr: "Service is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			o := tt.opts
			o.LogWriter = &buf
			if o.Service == "-" {
				o.Service = ""
			} else {
				o.Service = "testsvc"
			}
			tel, err := telemetry.Setup(context.Background(), o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Setup error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			tel.Logger.Debug("debug-line")
			tel.Logger.Info("info-line")
			for _, s := range tt.logs {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, buf.String())
				}
			}
			for _, s := range tt.notLogs {
				if strings.Contains(buf.String(), s) {
					t.Errorf("output has %q:\n%s", s, buf.String())
				}
			}
		})
	}
}

// TestOTLPExport checks that spans and metrics reach an OTLP/HTTP endpoint
// when OTEL_EXPORTER_OTLP_ENDPOINT is set, and only then.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	for _, endpoint := range []string{"", srv.URL} {
		// The exporters read their settings from the process environment.
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
		tel, err := telemetry.Setup(context.Background(), telemetry.Options{Service: "otlp", LogWriter: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		_, span := tel.Tracer("test").Start(context.Background(), "exported")
		span.End()
		counter, err := tel.Meter("test").Int64Counter("otlp_things")
		if err != nil {
			t.Fatal(err)
		}
		counter.Add(context.Background(), 1)
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Fatalf("endpoint %q: Shutdown: %v", endpoint, err)
		}
		mu.Lock()
		got := map[string]int{}
		for k, v := range paths {
			got[k] = v
		}
		mu.Unlock()
		if endpoint == "" && len(got) != 0 {
			t.Errorf("without an endpoint, the collector received %v", got)
		}
		if endpoint != "" && (got["/v1/traces"] == 0 || got["/v1/metrics"] == 0) {
			t.Errorf("with an endpoint, the collector received %v, want /v1/traces and /v1/metrics", got)
		}
	}
}
