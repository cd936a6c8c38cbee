package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"stratuslab.dev/platform/telemetry"
)

// startAdmin runs an admin server on a free loopback port until the test
// ends and returns its base URL.
func startAdmin(t *testing.T, a *telemetry.Admin) string {
	t.Helper()
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	})
	return "http://" + a.Addr()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAdminHealthAndMetrics(t *testing.T) {
	t.Parallel()
	tel := setup(t, telemetry.Options{Service: "pdisk"})
	a := telemetry.NewAdmin("127.0.0.1:0", tel)
	if a.Addr() != "" {
		t.Errorf("Addr before Listen = %q, want empty", a.Addr())
	}
	base := startAdmin(t, a)
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("Addr %q does not carry the chosen port", base)
	}

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}

	counter, err := tel.Meter("stratuslab.dev/test").Int64Counter("stratus_test_widgets")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3)
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{"stratus_test_widgets_total{", "} 3\n", "go_goroutines ", "process_cpu_seconds_total ", `service_name="pdisk"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAdminReadiness(t *testing.T) {
	t.Parallel()
	tel := setup(t, telemetry.Options{})
	a := telemetry.NewAdmin("127.0.0.1:0", tel)
	base := startAdmin(t, a)

	type body struct {
		Status string
		Failed map[string]string
		Checks []string
	}
	probe := func() (int, body) {
		code, raw := get(t, base+"/readyz")
		var b body
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			t.Fatalf("/readyz body %q: %v", raw, err)
		}
		return code, b
	}

	if code, b := probe(); code != 200 || b.Status != "ready" || len(b.Checks) != 0 {
		t.Errorf("no checks: %d %+v, want 200 ready", code, b)
	}
	a.AddReadiness("nats", func(context.Context) error { return nil })
	a.AddReadiness("store", func(context.Context) error { return nil })
	if code, b := probe(); code != 200 || len(b.Failed) != 0 || strings.Join(b.Checks, ",") != "nats,store" {
		t.Errorf("passing checks: %d %+v, want 200 with nats,store", code, b)
	}

	a.AddReadiness("store", func(context.Context) error { return errors.New("bucket missing") })
	// Ignores its context: the probe must still answer, naming it.
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	a.AddReadiness("stuck", func(context.Context) error { <-block; return nil })
	code, b := probe()
	if code != 503 || b.Status != "not ready" {
		t.Errorf("failing checks: status %d %q, want 503 not ready", code, b.Status)
	}
	if b.Failed["store"] != "bucket missing" || b.Failed["stuck"] == "" {
		t.Errorf("failed = %v, want store and stuck", b.Failed)
	}
	if _, ok := b.Failed["nats"]; ok {
		t.Errorf("passing check nats reported as failed")
	}
}

func TestAdminListenError(t *testing.T) {
	t.Parallel()
	tel := setup(t, telemetry.Options{})
	a := telemetry.NewAdmin("127.0.0.1:0", tel)
	base := startAdmin(t, a)
	b := telemetry.NewAdmin(strings.TrimPrefix(base, "http://"), tel)
	err := b.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run on a busy port = %v, want a listen error", err)
	}
}
