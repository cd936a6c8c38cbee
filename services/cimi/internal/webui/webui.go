package webui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
)

// Prefix is the path under which the gateway mounts the UI.
const Prefix = "/webui/"

// PageSize is the number of resources a collection page shows unless the
// caller asks for another range with $first and $last.
const PageSize = 20

// maxFormBytes bounds the body of a form: CIMI documents are small, and a
// bigger form is refused before it is read whole.
const maxFormBytes = 1 << 20

// formOverhead is what a multipart form may add to the file it carries
// (boundaries, part headers, the other fields).
const formOverhead = 64 << 10

//go:embed templates/*.html style.css
var assets embed.FS

// Sessions is what the UI needs of the gateway's authentication.
type Sessions interface {
	api.Authenticator
	SetCookie(w http.ResponseWriter, s api.Session)
	ClearCookie(w http.ResponseWriter)
}

// UI serves the web pages. It holds no state of its own beyond the parsed
// templates: who the caller is comes from the session cookie of each
// request, and the resources from api.Resources.
type UI struct {
	res   api.Resources
	sess  Sessions
	log   *slog.Logger
	pages map[string]*template.Template
	css   []byte
	// views are the kinds with pages of their own (kindViews).
	views map[string]kindView
}

// New returns the UI showing res to the callers s authenticates.
func New(res api.Resources, s Sessions, log *slog.Logger) *UI {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The pages under templates/, each rendered inside layout.html.
	pageNames := []string{"home", "collection", "resource", "json", "editor", "form", "confirm", "login", "authn", "error"}
	u := &UI{res: res, sess: s, log: log, pages: make(map[string]*template.Template, len(pageNames)), views: kindViews()}
	// The templates are embedded in the binary: a parse error is a
	// programming error that the package's tests catch, not a runtime
	// condition.
	layout := template.Must(template.New("layout.html").ParseFS(assets, "templates/layout.html", "templates/fields.html"))
	for _, name := range pageNames {
		t := template.Must(layout.Clone())
		u.pages[name] = template.Must(t.ParseFS(assets, "templates/"+name+".html"))
	}
	css, err := fs.ReadFile(assets, "style.css")
	if err != nil {
		panic(fmt.Sprintf("webui: embedded style.css: %v", err))
	}
	u.css = css
	return u
}

// Handler serves every page under /webui/ (the gateway mounts it there and
// redirects /cimi/webui to /webui/).
func (u *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", u.home)
	mux.HandleFunc("GET "+Prefix+"style.css", u.style)
	mux.HandleFunc("GET "+Prefix+"login", u.loginPage)
	mux.HandleFunc("POST "+Prefix+"login", u.login)
	mux.HandleFunc("POST "+Prefix+"logout", u.logout)
	mux.HandleFunc("GET "+Prefix+"authn", u.authn)
	mux.HandleFunc("GET "+Prefix+"{kind}", u.collection)
	mux.HandleFunc("POST "+Prefix+"{kind}", u.add)
	mux.HandleFunc("GET "+Prefix+"{kind}/{local}", u.resource)
	mux.HandleFunc("POST "+Prefix+"{kind}/{local}", u.change)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Pages show what this caller may see: never cache them, never
		// frame them (clickjacking), and run no script or style from
		// elsewhere.
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		if r.Method == http.MethodPost {
			if !SameOrigin(r) {
				u.log.Warn("web UI refused a cross-site form", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
				u.fail(w, r, api.Session{}, errs.New(errs.Forbidden,
					"This form was not sent from this site's own pages, so it was refused. Open the page again and resubmit."))
				return
			}
			limit := int64(maxFormBytes)
			if isMultipart(r) {
				// A file of at most maxFormBytes, with the form around it.
				limit += formOverhead
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		mux.ServeHTTP(w, r)
	})
}

// SameOrigin reports whether a POST comes from a page of this site: its
// Origin header, or failing that its Referer, names the host the request
// was sent to. A request with neither is refused: browsers send Origin on
// every cross-site POST, and scripts have the REST API. X-Forwarded-Host
// is accepted too because a front proxy may rewrite Host; a cross-site
// form cannot set that header, so it does not open a hole. The gateway
// applies it too, to the forms its REST routes accept from browsers.
func SameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return false
	}
	o, err := url.Parse(src)
	if err != nil || o.Host == "" || (o.Scheme != "http" && o.Scheme != "https") {
		return false
	}
	if strings.EqualFold(o.Host, r.Host) {
		return true
	}
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	fwd = strings.TrimSpace(fwd)
	return fwd != "" && strings.EqualFold(o.Host, fwd)
}

// style serves the stylesheet.
func (u *UI) style(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(u.css)
}

// view is what a page template sees. Layout fields come first; each page
// uses the fields it needs.
type view struct {
	Title string
	// User is the caller's name, empty when anonymous.
	User string
	// Error is a message for the person, shown above the page.
	Error string
	// Notice is information for the person that is not an error.
	Notice string

	Kinds      []api.Kind
	Collection *collectionView
	Resource   *resourceView
	Editor     *editorView
	Form       *formView
	Confirm    *confirmView
	JSON       string
	Back       string
	Authn      *authnView
	Login      *loginView
}

// render writes page name with status; the page is produced in memory
// first so that a template failure becomes a clean error page.
func (u *UI) render(w http.ResponseWriter, status int, name string, v *view) {
	var b bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&b, "layout.html", v); err != nil {
		u.log.Error("web UI page failed to render", "page", name, "error", err)
		http.Error(w, "The page could not be shown: the administrators can find details in the logs.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// fail shows err on an error page with its code's status.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s api.Session, err error) {
	code := errs.CodeOf(err)
	if code == errs.Internal {
		u.log.Error("web UI request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	u.render(w, errs.HTTPStatus(code), "error", &view{Title: "Error", User: s.Identity.User, Error: errs.MessageOf(err)})
}

// session finds who sent r. A cookie that no longer verifies (expired,
// revoked by a logout elsewhere or a password change, signed with a
// retired key) is cleared; a page read then goes to the login form, which
// says the session ended, rather than showing the page to an anonymous
// caller who would find things "missing". Other failures are reported.
func (u *UI) session(w http.ResponseWriter, r *http.Request) (api.Session, bool) {
	s, err := u.sess.Authenticate(r)
	if err == nil {
		return s, true
	}
	if errs.CodeOf(err) == errs.Unauthorized {
		if _, cerr := r.Cookie(api.SessionCookie); cerr == nil {
			u.sess.ClearCookie(w)
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Prefix+"login?ended=1", http.StatusSeeOther)
				return api.Session{}, false
			}
			return api.Session{}, true
		}
	}
	u.fail(w, r, api.Session{}, err)
	return api.Session{}, false
}

// pageOf returns the UI page of a resource id such as "Job/<uuid>".
func pageOf(id string) string {
	kind, local, err := cimi.SplitID(id)
	if err != nil {
		return Prefix
	}
	return Prefix + kind + "/" + url.PathEscape(local)
}

// outcomePage is where to go after a write: the resource when the write
// is done (or the fallback, for a delete), its job while it goes on.
func outcomePage(o *api.Outcome, done string) string {
	if o == nil {
		return done
	}
	if !o.Done && o.JobID != "" {
		return pageOf(o.JobID)
	}
	return done
}
