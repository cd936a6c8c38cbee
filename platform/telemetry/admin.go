package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the admin server. A readiness check that takes longer than
// readyTimeout counts as failed: a probe must answer quickly to be useful.
const (
	readyTimeout    = 2 * time.Second
	shutdownTimeout = 5 * time.Second
)

// Admin is a service's operations HTTP server: /healthz (liveness),
// /readyz (readiness checks) and /metrics (Prometheus). It belongs on a
// private address, never on the user-facing listener.
type Admin struct {
	addr string
	t    *Telemetry

	mu     sync.Mutex
	checks map[string]func(context.Context) error
	ln     net.Listener
}

// NewAdmin returns an admin server for addr ("host:port"; port 0 picks a
// free port, see Addr). It does not listen until Listen or Run.
func NewAdmin(addr string, t *Telemetry) *Admin {
	return &Admin{addr: addr, t: t, checks: map[string]func(context.Context) error{}}
}

// AddReadiness registers a check that /readyz runs on every probe, e.g. "the
// NATS connection is up". A check added again under the same name replaces
// the earlier one. Checks run concurrently and must respect ctx.
func (a *Admin) AddReadiness(name string, check func(ctx context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks[name] = check
}

// Listen binds the address, so that Addr is known before Run serves. Run
// calls it when it has not been called.
func (a *Admin) Listen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("admin server: listen on %s: %w", a.addr, err)
	}
	a.ln = ln
	return nil
}

// Addr returns the address listened on, with the port chosen when the
// configured port was 0, or "" before Listen.
func (a *Admin) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Handler returns the admin endpoints, for tests and for mounting them on
// another server.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.t.Registry, promhttp.HandlerOpts{}))
	// Profiles, for the performance work of docs/PERFORMANCE.md. The admin
	// listener is on loopback unless an operator moves it.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// Run serves until ctx ends, then shuts down gracefully, letting requests
// in flight finish for a few seconds. It returns nil after a shutdown caused
// by ctx and the server's error otherwise.
func (a *Admin) Run(ctx context.Context) error {
	if err := a.Listen(); err != nil {
		return err
	}
	a.mu.Lock()
	ln := a.ln
	a.mu.Unlock()
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.t.Logger.InfoContext(ctx, "admin server listening", "addr", ln.Addr().String())
	select {
	case err := <-served:
		return fmt.Errorf("admin server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("admin server on %s: shutdown: %w", ln.Addr(), err)
	}
	return nil
}

// readiness is the JSON body of /readyz.
type readiness struct {
	Status string `json:"status"` // "ready" or "not ready"
	// Failed maps each failing check to its error.
	Failed map[string]string `json:"failed,omitempty"`
	// Checks lists every check run, sorted.
	Checks []string `json:"checks"`
}

func (a *Admin) serveReady(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	checks := make(map[string]func(context.Context) error, len(a.checks))
	for name, c := range a.checks {
		checks[name] = c
	}
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for name, check := range checks {
		go func() { results <- result{name, runCheck(ctx, check)} }()
	}
	body := readiness{Status: "ready", Checks: []string{}}
	fail := func(name, msg string) {
		if body.Failed == nil {
			body.Failed = map[string]string{}
		}
		body.Failed[name] = msg
	}
	pending := make(map[string]bool, len(checks))
	for name := range checks {
		pending[name] = true
		body.Checks = append(body.Checks, name)
	}
	for len(pending) > 0 {
		select {
		case res := <-results:
			delete(pending, res.name)
			if res.err != nil {
				fail(res.name, res.err.Error())
			}
		case <-ctx.Done():
			// A check ignoring ctx must not hold the probe.
			for name := range pending {
				fail(name, fmt.Sprintf("no answer within %s: %v", readyTimeout, ctx.Err()))
			}
			clear(pending)
		}
	}
	sort.Strings(body.Checks)
	status := http.StatusOK
	if len(body.Failed) > 0 {
		status = http.StatusServiceUnavailable
		body.Status = "not ready"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// runCheck runs one check, turning a panic into a failure so that a buggy
// check cannot take the admin server down.
func runCheck(ctx context.Context, check func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return check(ctx)
}
