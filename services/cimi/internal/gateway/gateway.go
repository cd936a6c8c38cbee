package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
	"stratuslab.dev/services/cimi/internal/webui"
)

// SpecificationVersion is the CIMI version the gateway speaks, sent in the
// CIMI-Specification-Version header of every response.
const SpecificationVersion = "2.0.0"

// maxHeaderBytes bounds request headers.
const maxHeaderBytes = 64 << 10

// MaxBodyBytes bounds request bodies: CIMI documents are small, and a
// bigger body is refused with 413 before it is read whole.
const MaxBodyBytes = 1 << 20

// Sessions is what the gateway needs of authentication: the
// api.Authenticator and the session cookie.
type Sessions interface {
	api.Authenticator
	SetCookie(w http.ResponseWriter, s api.Session)
	ClearCookie(w http.ResponseWriter)
}

// Options configure a Gateway.
type Options struct {
	Log *slog.Logger
	// Created is when the cloud first started: the CloudEntryPoint's
	// created and updated times.
	Created   time.Time
	Resources api.Resources
	Sessions  Sessions
	// WebUI serves the pages under /webui/; nil serves none.
	WebUI http.Handler
	// Bus reaches the services whose plain-text reports the gateway
	// serves (/load.txt, /dhcp/hosts); with none, those are unavailable.
	Bus *bus.Bus
	// ImagesDir holds the site's image files, served under ImagesPrefix;
	// empty serves none.
	ImagesDir string
	// Wrap decorates the handler (tracing, metrics); nil leaves it as is.
	Wrap func(http.Handler) http.Handler
}

// Gateway serves the CIMI REST API.
type Gateway struct {
	log      *slog.Logger
	created  time.Time
	res      api.Resources
	sessions Sessions
	webui    http.Handler
	bus      *bus.Bus
	images   string
	wrap     func(http.Handler) http.Handler
}

// New returns a gateway serving o.Resources on behalf of the callers
// o.Sessions authenticates.
func New(o Options) *Gateway {
	if o.Wrap == nil {
		o.Wrap = func(h http.Handler) http.Handler { return h }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Gateway{log: o.Log, created: o.Created.UTC(), res: o.Resources, sessions: o.Sessions, webui: o.WebUI, bus: o.Bus, images: o.ImagesDir, wrap: o.Wrap}
}

// Handler returns the HTTP handler of the API (and of the web UI).
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", g.cloudEntryPoint)
	mux.HandleFunc("/cimi", g.cloudEntryPoint)
	mux.HandleFunc("/cimi/{$}", g.cloudEntryPoint)
	mux.HandleFunc("/cimi/cloudEntryPoint", g.cloudEntryPoint)
	mux.HandleFunc("/cimi/login", g.login)
	mux.HandleFunc("/cimi/logout", g.logout)
	mux.HandleFunc("/cimi/authn", g.authn)
	mux.HandleFunc("/cimi/{kind}", g.collection)
	mux.HandleFunc("/cimi/{kind}/{local}", g.resource)
	mux.HandleFunc("/cimi/{kind}/{local}/{action}", g.action)
	mux.HandleFunc("/load.txt", g.loadTxt)
	mux.HandleFunc("/dhcp/hosts", g.dhcpHosts)
	mux.Handle(ImagesPrefix, siteImages(g.images))
	mux.HandleFunc(webui.MetadataPrefix, g.metadataCollection)
	mux.HandleFunc(webui.MetadataPrefix+"/{key...}", g.metadataEntry)
	if g.webui != nil {
		mux.Handle("/webui/", g.webui)
		mux.Handle("/cimi/webui", http.RedirectHandler("/webui/", http.StatusMovedPermanently))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errs.Errorf(errs.NotFound, "Nothing is served at %s; start from /cimi/cloudEntryPoint.", quote(r.URL.Path)))
	})
	return g.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("CIMI-Specification-Version", SpecificationVersion)
		defer g.recover(w, r)
		mux.ServeHTTP(w, r)
	}))
}

// recover turns a panic in a handler into an internal error for the
// caller and a log entry with the stack for the administrators.
func (g *Gateway) recover(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	g.log.Error("request handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	writeError(w, errs.New(errs.Internal, ""))
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
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
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
	if !allow(w, r, http.MethodGet) {
		return
	}
	cep := map[string]any{
		"id":          "CloudEntryPoint",
		"resourceURI": cimi.ResourceURI("CloudEntryPoint"),
		"baseURI":     baseURI(r),
		"created":     g.created,
		"updated":     g.created,
	}
	for _, k := range g.res.Kinds() {
		cep[k.Attr] = map[string]string{"href": k.Name}
	}
	writeJSON(w, http.StatusOK, cep)
}

// baseURI is the URL every href is relative to, as the caller reached us.
func baseURI(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/cimi/"
}

// allow answers 405 with the allowed methods unless r uses one of them
// (GET allowing HEAD).
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
			return true
		}
	}
	list := ""
	for i, m := range methods {
		if i > 0 {
			list += ", "
		}
		list += m
	}
	w.Header().Set("Allow", list)
	writeError(w, errs.Errorf(errs.MethodNotAllowed, "%s is not allowed on %s; use %s.", r.Method, quote(r.URL.Path), list))
	return false
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
	switch code {
	case errs.TooManyRequests:
		w.Header().Set("Retry-After", retryAfter(err))
	}
	writeJSON(w, status, map[string]any{
		"status":  status,
		"code":    string(code),
		"message": errs.MessageOf(err),
	})
}

// retryAfter is the Retry-After of a too_many_requests error, in seconds:
// what the error says when it knows, or a few seconds.
func retryAfter(err error) string {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if s := int(ra.RetryAfter().Seconds() + 0.999); s > 0 {
			return fmt.Sprint(s)
		}
	}
	return "5"
}
