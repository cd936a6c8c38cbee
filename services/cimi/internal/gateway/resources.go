package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
)

// who authenticates r; on failure it answers and returns false.
func (g *Gateway) who(w http.ResponseWriter, r *http.Request) (api.Session, bool) {
	s, err := g.sessions.Authenticate(r)
	if err != nil {
		g.fail(w, r, err)
		return api.Session{}, false
	}
	return s, true
}

// fail answers with err, inviting API clients to authenticate with HTTP
// Basic on a 401. Browsers holding a session cookie (the web UI) are not
// invited, or they would pop up a password dialog over the page.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errs.CodeOf(err) == errs.Unauthorized {
		if _, cerr := r.Cookie(api.SessionCookie); cerr != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="StratusLab"`)
		}
	}
	if errs.CodeOf(err) == errs.Internal {
		g.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeError(w, err)
}

// collection serves /cimi/{kind}: query (GET) and create (POST).
func (g *Gateway) collection(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	s, ok := g.who(w, r)
	if !ok {
		return
	}
	kind := r.PathValue("kind")
	if r.Method == http.MethodPost {
		body, err := readBody(w, r)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		out, err := g.res.Create(r.Context(), s.Identity, kind, body)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		g.writeOutcome(w, r, out, http.StatusCreated, "created")
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		g.fail(w, r, errs.Errorf(errs.BadFilter, "The query string cannot be read: %s.", err.Error()))
		return
	}
	c, err := g.res.Query(r.Context(), s.Identity, kind, q)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	docs := c.Docs
	if docs == nil {
		docs = []api.Document{}
	}
	body := map[string]any{
		"id":          c.Kind.Name,
		"resourceURI": cimi.ResourceURI(c.Kind.Name + "Collection"),
		"count":       c.Count,
		c.Kind.Attr:   docs,
	}
	if len(c.Operations) > 0 {
		body["operations"] = c.Operations
	}
	writeJSON(w, http.StatusOK, body)
}

// resource serves /cimi/{kind}/{local}: read, edit, delete, and actions
// posted as a CIMI Action.
func (g *Gateway) resource(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPost) {
		return
	}
	s, ok := g.who(w, r)
	if !ok {
		return
	}
	id := r.PathValue("kind") + "/" + r.PathValue("local")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		doc, err := g.res.Get(r.Context(), s.Identity, id)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, doc)
	case http.MethodPut:
		selects, err := selectParam(r)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		out, err := g.res.Edit(r.Context(), s.Identity, id, body, selects)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		if out.Done && out.Document != nil {
			g.setOutcomeHeaders(w, r, out)
			writeJSON(w, http.StatusOK, out.Document)
			return
		}
		g.writeOutcome(w, r, out, http.StatusOK, "updated")
	case http.MethodDelete:
		out, err := g.res.Delete(r.Context(), s.Identity, id)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		g.writeOutcome(w, r, out, http.StatusOK, "deleted")
	case http.MethodPost:
		body, err := readBody(w, r)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		g.runAction(w, r, s, id, body)
	}
}

// action serves /cimi/{kind}/{local}/{action}: the operation href of an
// action. The body, when any, is the CIMI Action; its "action" must agree
// with the path.
func (g *Gateway) action(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	s, ok := g.who(w, r)
	if !ok {
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	name := r.PathValue("action")
	act := map[string]any{}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &act); err != nil || act == nil {
			g.fail(w, r, errs.New(errs.Invalid, "The request body must be a CIMI Action (a JSON object) or empty."))
			return
		}
	}
	uri := cimi.ActionURI(name)
	if given, ok := act["action"]; ok && given != uri && given != name {
		g.fail(w, r, errs.Errorf(errs.Invalid, "The body asks for the action %s but was posted to the href of %s.", quote(fmt.Sprint(given)), quote(name)))
		return
	}
	act["action"] = uri
	if _, ok := act["resourceURI"]; !ok {
		act["resourceURI"] = cimi.ResourceURI("Action")
	}
	body, _ = json.Marshal(act)
	g.runAction(w, r, s, r.PathValue("kind")+"/"+r.PathValue("local"), body)
}

func (g *Gateway) runAction(w http.ResponseWriter, r *http.Request, s api.Session, id string, body []byte) {
	out, err := g.res.Action(r.Context(), s.Identity, id, body)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	g.writeOutcome(w, r, out, http.StatusOK, "done")
}

// writeOutcome answers a write: doneStatus when it ended within the wait,
// 202 Accepted otherwise, both pointing at the resource and its job.
func (g *Gateway) writeOutcome(w http.ResponseWriter, r *http.Request, out *api.Outcome, doneStatus int, verb string) {
	g.setOutcomeHeaders(w, r, out)
	status, msg := doneStatus, fmt.Sprintf("%s %s", out.ID, verb)
	if !out.Done {
		status, msg = http.StatusAccepted, fmt.Sprintf("%s accepted; follow %s", out.ID, out.JobID)
	}
	body := map[string]any{"status": status, "message": msg, "resource-id": out.ID}
	if out.JobID != "" {
		body["job-id"] = out.JobID
	}
	if out.Document != nil {
		body["resource"] = out.Document
	}
	writeJSON(w, status, body)
}

func (g *Gateway) setOutcomeHeaders(w http.ResponseWriter, r *http.Request, out *api.Outcome) {
	if out.ID != "" {
		w.Header().Set("Location", baseURI(r)+out.ID)
	}
	if out.JobID != "" {
		w.Header().Set("CIMI-Job-URI", baseURI(r)+out.JobID)
	}
}

// readBody reads a JSON request body of at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, errs.Errorf(errs.UnsupportedMediaType, "The request body must be JSON (Content-Type: application/json), not %s.", quote(ct))
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errs.Errorf(errs.TooLarge, "The request body is larger than %d bytes, the most the gateway accepts.", MaxBodyBytes)
	case err != nil:
		return nil, errs.Wrap(errs.Invalid, err, "The request body could not be read")
	}
	return body, nil
}

// selectParam reads the $select of a PUT: the attributes to replace.
func selectParam(r *http.Request) ([]string, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errs.Errorf(errs.BadFilter, "The query string cannot be read: %s.", err.Error())
	}
	q, err := cimi.ParseQuery(url.Values{"$select": v["$select"]})
	if err != nil {
		return nil, errs.Errorf(errs.BadFilter, "%s", err.Error())
	}
	return q.Select, nil
}

// quote quotes user text for a message, shortened so that a huge input
// does not make a huge answer.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return fmt.Sprintf("%q", s)
}
