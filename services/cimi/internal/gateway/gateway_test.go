package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
)

func TestCloudEntryPoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, path := range []string{"/cimi/cloudEntryPoint", "/cimi/", "/cimi", "/"} {
		r := e.do(req{method: "GET", path: path}).want(t, path, 200)
		want := map[string]any{
			"id":                    "CloudEntryPoint",
			"resourceURI":           "http://schemas.dmtf.org/cimi/1/CloudEntryPoint",
			"baseURI":               e.url + "/cimi/",
			"created":               "2026-11-21T10:00:00Z",
			"updated":               "2026-11-21T10:00:00Z",
			"serviceMessages":       map[string]any{"href": "ServiceMessage"},
			"serviceConfigurations": map[string]any{"href": "ServiceConfiguration"},
			"users":                 map[string]any{"href": "User"},
			"jobs":                  map[string]any{"href": "Job"},
			"events":                map[string]any{"href": "Event"},
		}
		for k, v := range want {
			if got, _ := json.Marshal(r.body[k]); string(got) != mustJSON(t, v) {
				t.Errorf("%s: %s = %s, want %s", path, k, got, mustJSON(t, v))
			}
		}
	}
	e.do(req{method: "POST", path: "/cimi/cloudEntryPoint"}).wantError(t, "POST cep", 405, errs.MethodNotAllowed)
}

func TestServiceMessageCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{realAuthn: true})
	body := `{"name": "StratusLab is Alive!", "description": "Deploying StratusLab clouds is fun."}`
	r := e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: body}).want(t, "create", 201)
	id, _ := r.body["resource-id"].(string)
	jobID, _ := r.body["job-id"].(string)
	if !strings.HasPrefix(id, "ServiceMessage/") || !strings.HasPrefix(jobID, "Job/") {
		t.Fatalf("create answered %s", r.raw)
	}
	if r.header.Get("Location") != e.url+"/cimi/"+id || r.header.Get("CIMI-Job-URI") != e.url+"/cimi/"+jobID {
		t.Errorf("Location %q, CIMI-Job-URI %q", r.header.Get("Location"), r.header.Get("CIMI-Job-URI"))
	}
	if res, _ := r.body["resource"].(map[string]any); res["name"] != "StratusLab is Alive!" {
		t.Errorf("created resource not in the answer: %s", r.raw)
	}

	// Anyone reads it; only the admin is offered to change it.
	for _, as := range []string{"", "alice", "admin"} {
		r = e.do(req{method: "GET", path: "/cimi/" + id, as: as}).want(t, "get as "+as, 200)
		if r.body["description"] != "Deploying StratusLab clouds is fun." || r.body["resourceURI"] != cimi.ResourceURI("ServiceMessage") {
			t.Errorf("get as %q: %s", as, r.raw)
		}
		if got, want := rels(r.body), map[bool][]string{true: {"edit", "delete"}, false: nil}[as == "admin"]; !slices.Equal(got, want) {
			t.Errorf("operations for %q: %v, want %v", as, got, want)
		}
	}

	// Edit, then only the name ($select).
	r = e.do(req{method: "PUT", path: "/cimi/" + id, as: "admin", body: `{"name": "New title", "description": "New text"}`}).want(t, "edit", 200)
	if r.body["name"] != "New title" || r.body["description"] != "New text" || r.header.Get("CIMI-Job-URI") == "" {
		t.Errorf("edit answered %s", r.raw)
	}
	r = e.do(req{method: "PUT", path: "/cimi/" + id + "?$select=name", as: "admin", body: `{"name": "Only the title", "description": "ignored"}`}).want(t, "edit $select", 200)
	if r.body["name"] != "Only the title" || r.body["description"] != "New text" {
		t.Errorf("edit with $select answered %s", r.raw)
	}

	// The job of the create has succeeded.
	eventually(t, "job succeeded", func() bool {
		j := e.do(req{method: "GET", path: "/cimi/" + jobID, as: "admin"})
		return j.status == 200 && j.body["state"] == "SUCCESS"
	})

	// Others may not change it.
	e.do(req{method: "PUT", path: "/cimi/" + id, as: "alice", body: `{"name": "x"}`}).wantError(t, "edit as alice", 403, errs.Forbidden)
	e.do(req{method: "DELETE", path: "/cimi/" + id}).wantError(t, "delete anonymous", 401, errs.Unauthorized)

	r = e.do(req{method: "DELETE", path: "/cimi/" + id, as: "admin"}).want(t, "delete", 200)
	if r.body["message"] != id+" deleted" || r.body["resource-id"] != id || r.body["status"] != float64(200) {
		t.Errorf("delete answered %s", r.raw)
	}
	e.do(req{method: "GET", path: "/cimi/" + id, as: "admin"}).wantError(t, "get deleted", 404, errs.NotFound)
}

func TestCreateRights(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{realAuthn: true})
	body := `{"name": "n", "description": "d"}`
	r := e.do(req{method: "POST", path: "/cimi/ServiceMessage", body: body}).wantError(t, "anonymous create", 401, errs.Unauthorized)
	if r.header.Get("WWW-Authenticate") != `Basic realm="StratusLab"` {
		t.Errorf("anonymous API client not invited to authenticate: %v", r.header)
	}
	r = e.do(req{method: "POST", path: "/cimi/ServiceMessage", body: body, header: map[string]string{"Cookie": "stratus_session=x"}})
	if r.status != 401 || r.header.Get("WWW-Authenticate") != "" {
		t.Errorf("browser with a cookie: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "alice", body: body}).wantError(t, "user create", 403, errs.Forbidden)
	e.do(req{method: "POST", path: "/cimi/Job", as: "admin", body: body}).wantError(t, "create a job", 403, errs.Forbidden)
	e.do(req{method: "PUT", path: "/cimi/Job/x", as: "admin", body: body}).wantError(t, "edit a job", 403, errs.Forbidden)
	e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: `{"description": "no name"}`}).wantError(t, "invalid body", 400, errs.Invalid)
	e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: `[1]`}).wantError(t, "not an object", 400, errs.Invalid)
	e.do(req{method: "POST", path: "/cimi/User", as: "admin", body: `{"first-name": "x"}`}).wantError(t, "user without username", 400, errs.Invalid)
	r = e.do(req{method: "GET", path: "/cimi/ServiceMessage", header: map[string]string{"Authorization": "Bearer forged"}})
	r.wantError(t, "bad token", 401, errs.Unauthorized)
}

func TestCollectionOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for as, want := range map[string][]string{"": nil, "alice": nil, "admin": {"add"}} {
		r := e.do(req{method: "GET", path: "/cimi/ServiceMessage", as: as}).want(t, "query as "+as, 200)
		if got := rels(r.body); !slices.Equal(got, want) {
			t.Errorf("collection operations for %q: %v, want %v", as, got, want)
		}
		if r.body["id"] != "ServiceMessage" || r.body["resourceURI"] != cimi.ResourceURI("ServiceMessageCollection") || r.body["count"] != float64(0) {
			t.Errorf("collection as %q: %s", as, r.raw)
		}
		if docs, ok := r.body["serviceMessages"].([]any); !ok || len(docs) != 0 {
			t.Errorf("empty collection as %q: %s", as, r.raw)
		}
	}
}

func TestQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const n = 130 // more than the original server's silent cap of 100
	for i := range n {
		body := fmt.Sprintf(`{"name": "msg-%03d", "description": "%d"}`, i, i%2)
		e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: body}).want(t, "create", 201)
	}
	query := func(q string) response {
		return e.do(req{method: "GET", path: "/cimi/ServiceMessage?" + q}).want(t, q, 200)
	}
	names := func(r response) []string {
		var out []string
		docs, _ := r.body["serviceMessages"].([]any)
		for _, d := range docs {
			out = append(out, fmt.Sprint(d.(map[string]any)["name"]))
		}
		return out
	}
	r := query("")
	if r.body["count"] != float64(n) || len(names(r)) != n {
		t.Errorf("all: count %v, %d documents", r.body["count"], len(names(r)))
	}
	r = query(url.Values{"$orderby": {"name:desc"}, "$first": {"101"}, "$last": {"110"}}.Encode())
	if got := names(r); r.body["count"] != float64(n) || len(got) != 10 || got[0] != "msg-029" || got[9] != "msg-020" {
		t.Errorf("page 101-110 by name desc: count %v, %v", r.body["count"], got)
	}
	r = query(url.Values{"$filter": {"description='1'"}, "$orderby": {"name"}, "$first": {"60"}}.Encode())
	if got := names(r); r.body["count"] != float64(n/2) || len(got) != 6 || got[0] != "msg-119" {
		t.Errorf("filtered page: count %v, %v", r.body["count"], got)
	}
	r = query(url.Values{"$select": {"name"}, "$last": {"1"}}.Encode())
	docs, _ := r.body["serviceMessages"].([]any)
	if len(docs) != 1 {
		t.Fatalf("$select page: %s", r.raw)
	}
	if d := docs[0].(map[string]any); d["name"] == nil || d["description"] != nil || d["id"] == nil {
		t.Errorf("$select=name gave %v", d)
	}

	r = e.do(req{method: "GET", path: "/cimi/ServiceMessage?" + url.Values{"$filter": {"name='x' and"}}.Encode()})
	r.wantError(t, "bad filter", 400, errs.BadFilter)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "position") {
		t.Errorf("bad filter message has no position: %q", msg)
	}
	e.do(req{method: "GET", path: "/cimi/ServiceMessage?$first=0"}).wantError(t, "bad $first", 400, errs.BadFilter)
	e.do(req{method: "GET", path: "/cimi/ServiceMessage?$filter=%zz"}).wantError(t, "bad query string", 400, errs.BadFilter)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.do(req{method: "GET", path: "/cimi/NoSuchKind"}).wantError(t, "unknown kind", 404, errs.NotFound)
	e.do(req{method: "GET", path: "/cimi/ServiceMessage/nope"}).wantError(t, "unknown resource", 404, errs.NotFound)
	e.do(req{method: "GET", path: "/nothing/here"}).wantError(t, "unknown path", 404, errs.NotFound)
	r := e.do(req{method: "PATCH", path: "/cimi/ServiceMessage", as: "admin", body: "{}"}).wantError(t, "PATCH", 405, errs.MethodNotAllowed)
	if r.header.Get("Allow") != "GET, POST" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}
	e.do(req{method: "GET", path: "/cimi/login"}).wantError(t, "GET login", 405, errs.MethodNotAllowed)
	e.do(req{method: "DELETE", path: "/cimi/ServiceMessage/a/start", as: "admin"}).wantError(t, "DELETE action", 405, errs.MethodNotAllowed)

	big := `{"name": "` + strings.Repeat("x", MaxBodyBytes) + `"}`
	e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: big}).wantError(t, "big body", 413, errs.TooLarge)
	for _, ct := range []string{"text/plain", "application/xml", "application/x-www-form-urlencoded", ";;"} {
		e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: `{"name":"x"}`, contentType: ct}).
			wantError(t, "content type "+ct, 415, errs.UnsupportedMediaType)
	}
	e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: `{"name":"x"}`, contentType: "application/json; charset=utf-8"}).
		want(t, "json with charset", 201)
	hr, _ := http.NewRequest("POST", e.url+"/cimi/ServiceMessage", strings.NewReader(`{"name":"y"}`))
	hr.Header.Set("Authorization", "Bearer "+e.token("admin"))
	send(t, hr).want(t, "no content type", 201)
	e.do(req{method: "POST", path: "/cimi/ServiceMessage/x/start", as: "admin"}).wantError(t, "no such action", 400, errs.Invalid)
}

func TestOwnerNotRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noOwner: true, writeWait: 200 * time.Millisecond})
	e.do(req{method: "GET", path: "/cimi/ServiceMessage"}).wantError(t, "query", 503, errs.Unavailable)
	r := e.do(req{method: "GET", path: "/cimi/ServiceMessage/x"}).wantError(t, "get", 503, errs.Unavailable)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "cimi service") {
		t.Errorf("message does not name the service: %q", msg)
	}
	// A write is accepted: the command waits in its stream for the owner.
	r = e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: `{"name":"later"}`}).want(t, "create", 202)
	if r.header.Get("Location") == "" || r.header.Get("CIMI-Job-URI") == "" || r.body["job-id"] == nil {
		t.Errorf("accepted create: %v %s", r.header, r.raw)
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{realAuthn: true})
	r := e.do(req{method: "GET", path: "/cimi/authn"}).want(t, "anonymous authn", 200)
	if r.body["identity"] != "" || mustJSON(t, r.body["roles"]) != `["::ANON"]` {
		t.Errorf("anonymous authn: %s", r.raw)
	}
	r = e.do(req{method: "GET", path: "/cimi/authn", as: "admin"}).want(t, "admin authn", 200)
	if r.body["identity"] != "admin" || mustJSON(t, r.body["roles"]) != `["::USER","::ADMIN","::ANON"]` || r.body["expires"] == nil {
		t.Errorf("admin authn: %s", r.raw)
	}

	e.token("alice") // alice exists
	// A form login with a redirect sets the cookie and goes back to the page.
	form := url.Values{"username": {"alice"}, "password": {"alice-secret"}, "redirectURL": {"/webui/ServiceMessage"}}
	r = e.do(req{method: "POST", path: "/cimi/login", body: form.Encode(), contentType: "application/x-www-form-urlencoded"}).want(t, "form login", 303)
	if r.header.Get("Location") != "/webui/ServiceMessage" {
		t.Errorf("redirected to %q", r.header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "stratus_session" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value == "" {
		t.Fatalf("no session cookie: %v", r.header)
	}
	r = e.do(req{method: "GET", path: "/cimi/authn", header: map[string]string{"Cookie": cookie.String()}}).want(t, "cookie authn", 200)
	if r.body["identity"] != "alice" {
		t.Errorf("cookie authn: %s", r.raw)
	}
	// Only local redirects.
	form.Set("redirectURL", "https://evil.example.org/")
	r = e.do(req{method: "POST", path: "/cimi/login", body: form.Encode(), contentType: "application/x-www-form-urlencoded"}).want(t, "external redirect", 200)
	if r.body["identity"] != "alice" {
		t.Errorf("login answered %s", r.raw)
	}

	e.do(req{method: "POST", path: "/cimi/login", body: `{"username":"alice","password":"wrong"}`}).wantError(t, "wrong password", 401, errs.Unauthorized)
	e.do(req{method: "POST", path: "/cimi/login", body: `{"username":`}).wantError(t, "broken body", 400, errs.Invalid)

	// Logout revokes the token.
	tok := e.token("alice")
	e.do(req{method: "POST", path: "/cimi/logout", as: "alice"}).want(t, "logout", 200)
	eventually(t, "token revoked", func() bool {
		hr, _ := http.NewRequest("GET", e.url+"/cimi/authn", nil)
		hr.Header.Set("Authorization", "Bearer "+tok)
		return send(t, hr).status == 401
	})
	e.do(req{method: "POST", path: "/cimi/logout"}).want(t, "anonymous logout", 200)
}

func TestThrottledLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.do(req{method: "POST", path: "/cimi/login", body: `{"username":"mallory","password":"x"}`}).wantError(t, "throttled", 429, errs.TooManyRequests)
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestLocalRedirect(t *testing.T) {
	t.Parallel()
	for target, ok := range map[string]bool{
		"/webui/": true, "/cimi/x?y=1": true, "": false, "//evil.org/": false, "https://evil.org/": false,
		"webui": false, "/\\evil.org": false, "/a\r\nSet-Cookie: x": false,
	} {
		if _, got := localRedirect(target); got != ok {
			t.Errorf("localRedirect(%q) = %v, want %v", target, got, ok)
		}
	}
}

// docsOf returns the documents of a collection answer.
func docsOf(r response) []map[string]any {
	var out []map[string]any
	for k, v := range r.body {
		if list, ok := v.([]any); ok && k != "operations" {
			for _, d := range list {
				if m, ok := d.(map[string]any); ok {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// rels lists the rel of each operation of a document.
func rels(doc map[string]any) []string {
	var out []string
	ops, _ := doc["operations"].([]any)
	for _, op := range ops {
		out = append(out, fmt.Sprint(op.(map[string]any)["rel"]))
	}
	return out
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWebUIMounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.do(req{method: "GET", path: "/cimi/webui"}).want(t, "old web UI address", 301)
	if r.header.Get("Location") != "/webui/" {
		t.Errorf("redirected to %q", r.header.Get("Location"))
	}
	hr, _ := http.NewRequest("GET", e.url+"/webui/", nil)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("web UI: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{widgets: true, realAuthn: true})
	eventually(t, "widgets owner answering", func() bool {
		return e.do(req{method: "GET", path: "/cimi/Widget"}).status == 200
	})
	r := e.do(req{method: "POST", path: "/cimi/Widget", as: "alice", body: `{"name": "w"}`}).want(t, "create", 201)
	id := r.body["resource-id"].(string)
	r = e.do(req{method: "GET", path: "/cimi/" + id, as: "alice"}).want(t, "get", 200)
	wantOps := []string{"edit", "delete", cimi.ActionURI("polish")}
	if got := rels(r.body); !slices.Equal(got, wantOps) {
		t.Errorf("owner's operations %v, want %v", got, wantOps)
	}
	for _, op := range r.body["operations"].([]any) {
		if m := op.(map[string]any); m["rel"] == cimi.ActionURI("polish") && m["href"] != id+"/polish" {
			t.Errorf("action href %v", m["href"])
		}
	}
	if got := rels(e.do(req{method: "GET", path: "/cimi/" + id, as: "admin"}).body); !slices.Equal(got, wantOps) {
		t.Errorf("admin's operations %v", got)
	}

	// The operation href, with an empty body or with the Action.
	r = e.do(req{method: "POST", path: "/cimi/" + id + "/polish", as: "alice"}).want(t, "action at its href", 200)
	if r.header.Get("CIMI-Job-URI") == "" || r.body["resource"].(map[string]any)["polished"] != true {
		t.Errorf("action answered %v %s", r.header, r.raw)
	}
	action := fmt.Sprintf(`{"resourceURI": %q, "action": %q}`, cimi.ResourceURI("Action"), cimi.ActionURI("polish"))
	e.do(req{method: "POST", path: "/cimi/" + id, as: "alice", body: action}).want(t, "Action posted to the resource", 200)
	e.do(req{method: "POST", path: "/cimi/" + id + "/polish", as: "alice", body: action}).want(t, "Action at its href", 200)

	e.do(req{method: "POST", path: "/cimi/" + id + "/rust", as: "alice"}).wantError(t, "unknown action", 400, errs.Invalid)
	e.do(req{method: "POST", path: "/cimi/" + id, as: "alice", body: `{"action": "x"}`}).wantError(t, "unknown action URI", 400, errs.Invalid)
	e.do(req{method: "POST", path: "/cimi/" + id + "/polish", as: "alice", body: `{"action": "stop"}`}).wantError(t, "disagreeing action", 400, errs.Invalid)
	e.do(req{method: "POST", path: "/cimi/" + id + "/polish"}).wantError(t, "anonymous action", 401, errs.Unauthorized)
	e.do(req{method: "POST", path: "/cimi/" + id + "/polish", as: "bob"}).wantError(t, "someone else's widget", 404, errs.NotFound)
	if got := rels(e.do(req{method: "GET", path: "/cimi/Widget", as: "bob"}).body); !slices.Equal(got, []string{"add"}) {
		t.Errorf("a user's collection operations %v", got)
	}
}

func TestUsersSeparated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{widgets: true, realAuthn: true})
	eventually(t, "widgets owner answering", func() bool {
		return e.do(req{method: "GET", path: "/cimi/Widget"}).status == 200
	})
	r := e.do(req{method: "POST", path: "/cimi/Widget", as: "bob", body: `{"name": "bob's"}`}).want(t, "bob creates", 201)
	widget, job := r.body["resource-id"].(string), r.body["job-id"].(string)
	e.token("alice")

	// alice sees nothing of bob's, in any collection, and cannot touch it.
	e.do(req{method: "GET", path: "/cimi/" + widget, as: "alice"}).wantError(t, "bob's widget", 404, errs.NotFound)
	e.do(req{method: "GET", path: "/cimi/" + job, as: "alice"}).wantError(t, "bob's job", 404, errs.NotFound)
	e.do(req{method: "GET", path: "/cimi/User/bob", as: "alice"}).wantError(t, "bob's user record", 404, errs.NotFound)
	e.do(req{method: "PUT", path: "/cimi/" + widget, as: "alice", body: `{"name": "mine"}`}).wantError(t, "edit bob's widget", 404, errs.NotFound)
	e.do(req{method: "DELETE", path: "/cimi/" + widget, as: "alice"}).wantError(t, "delete bob's widget", 404, errs.NotFound)
	e.do(req{method: "PUT", path: "/cimi/User/bob", as: "alice", body: `{"email": "x@example.org"}`}).wantError(t, "edit bob's record", 404, errs.NotFound)
	for _, kind := range []string{"Widget", "Job", "Event", "User", "ServiceConfiguration"} {
		r := e.do(req{method: "GET", path: "/cimi/" + kind, as: "alice"}).want(t, "alice lists "+kind, 200)
		for _, d := range docsOf(r) {
			acl, _ := d["acl"].(map[string]any)
			owner, _ := acl["owner"].(map[string]any)
			if d["id"] == widget || d["id"] == job || d["id"] == "User/bob" || owner["principal"] == "bob" {
				t.Errorf("alice's %s collection shows bob's %v", kind, d["id"])
			}
		}
	}
	// alice reads her own record, and the admin reads everything.
	r = e.do(req{method: "GET", path: "/cimi/User/alice", as: "alice"}).want(t, "own record", 200)
	if r.body["username"] != "alice" || r.body["password"] != nil {
		t.Errorf("own record: %s", r.raw)
	}
	e.do(req{method: "GET", path: "/cimi/" + widget, as: "admin"}).want(t, "admin reads bob's widget", 200)
	e.do(req{method: "GET", path: "/cimi/User/bob", as: "admin"}).want(t, "admin reads bob's record", 200)
	// Anonymous callers see only what ::ANON may.
	for _, kind := range []string{"Widget", "Job", "Event", "User", "ServiceConfiguration"} {
		r := e.do(req{method: "GET", path: "/cimi/" + kind}).want(t, "anonymous lists "+kind, 200)
		if r.body["count"] != float64(0) {
			t.Errorf("anonymous %s collection: %s", kind, r.raw)
		}
	}
}
