package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
)

// SpecificationVersion is the CIMI version the gateway speaks, sent in the
// CIMI-Specification-Version header of every response.
const SpecificationVersion = "2.0.0"

// maxHeaderBytes bounds request headers; bodies are bounded per route.
const maxHeaderBytes = 64 << 10

// Collection is one collection the cloud serves, listed in the
// CloudEntryPoint: its attribute name there and its href.
type Collection struct {
	Attr string // e.g. "volumes"
	Href string // e.g. "Volume"
}

// Gateway serves the CIMI REST API.
type Gateway struct {
	log         *slog.Logger
	created     time.Time
	collections []Collection
	wrap        func(http.Handler) http.Handler
}

// New returns a gateway listing collections in its CloudEntryPoint, which
// was first created at created. wrap decorates the handler (tracing,
// metrics); nil leaves it as is.
func New(log *slog.Logger, created time.Time, collections []Collection, wrap func(http.Handler) http.Handler) *Gateway {
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	return &Gateway{log: log, created: created.UTC(), collections: collections, wrap: wrap}
}

// Handler returns the HTTP handler of the API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cimi/cloudEntryPoint", g.cloudEntryPoint)
	mux.HandleFunc("GET /cimi/{$}", g.cloudEntryPoint)
	mux.HandleFunc("GET /cimi", g.cloudEntryPoint)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errs.Errorf(errs.NotFound, "Nothing is served at %s; start from /cimi/cloudEntryPoint.", r.URL.Path))
	})
	return g.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("CIMI-Specification-Version", SpecificationVersion)
		mux.ServeHTTP(w, r)
	}))
}

// Serve answers requests on l until ctx ends, then shuts down gracefully,
// giving requests in progress a few seconds to finish.
func (g *Gateway) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("gateway: serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		g.log.Warn("gateway shutdown cut short", "error", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serve %s: %w", l.Addr(), err)
	}
	return nil
}

func (g *Gateway) cloudEntryPoint(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	cep := map[string]any{
		"id":          "CloudEntryPoint",
		"resourceURI": cimi.ResourceURI("CloudEntryPoint"),
		"baseURI":     fmt.Sprintf("%s://%s/cimi/", scheme, r.Host),
		"created":     g.created,
		"updated":     g.created,
	}
	for _, c := range g.collections {
		cep[c.Attr] = map[string]string{"href": c.Href}
	}
	writeJSON(w, http.StatusOK, cep)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers with the CIMI error body of err: its HTTP status, its
// stable code and a message for people.
func writeError(w http.ResponseWriter, err error) {
	code := errs.CodeOf(err)
	status := errs.HTTPStatus(code)
	writeJSON(w, status, map[string]any{
		"status":  status,
		"code":    string(code),
		"message": errs.MessageOf(err),
	})
}
