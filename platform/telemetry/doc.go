// Package telemetry sets up what every service reports about itself: a
// structured slog logger that stamps each line with the service name and the
// active trace and span ids, OpenTelemetry traces (exported over OTLP/HTTP
// when OTEL_EXPORTER_OTLP_ENDPOINT is set, real spans either way so trace ids
// cross HTTP and the bus), metrics on a private Prometheus registry, and the
// admin HTTP server with /healthz, /readyz and /metrics. Providers are passed
// explicitly to whoever needs them; nothing is registered globally, so several
// services can run in one process (the all-in-one binary) without sharing
// state.
package telemetry
