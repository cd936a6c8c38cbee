package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
)

// memResources is an in-memory api.Resources: enough for the pages to
// render what the gateway would give them. Admins may do everything,
// others only read.
type memResources struct {
	mu   sync.Mutex
	docs map[string]api.Document // by id
	// async makes writes report an outcome that is not done yet.
	async bool
	calls []string
}

func newMem() *memResources { return &memResources{docs: map[string]api.Document{}} }

func (m *memResources) Kinds() []api.Kind {
	return []api.Kind{
		{Name: "ServiceMessage", Attr: "serviceMessages", AddRole: cimi.RoleAdmin},
		{Name: "User", Attr: "users", AddRole: cimi.RoleAdmin, NameAttrs: []string{"username"}},
		{Name: "Job", Attr: "jobs", ReadOnly: true},
	}
}

func (m *memResources) Kind(name string) (api.Kind, bool) {
	for _, k := range m.Kinds() {
		if k.Name == name {
			return k, true
		}
	}
	return api.Kind{}, false
}

func (m *memResources) put(doc api.Document) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docs[doc["id"].(string)] = doc
}

func (m *memResources) withOps(who cimi.Identity, doc api.Document) api.Document {
	out := api.Document{}
	for k, v := range doc {
		out[k] = v
	}
	kind, _, _ := cimi.SplitID(doc["id"].(string))
	if k, _ := m.Kind(kind); who.IsAdmin() && !k.ReadOnly {
		out["operations"] = cimi.ResourceOperations(cimi.ACL{}, who, doc["id"].(string))
	}
	return out
}

func (m *memResources) Get(_ context.Context, who cimi.Identity, id string) (api.Document, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[id]
	if !ok {
		return nil, errs.Errorf(errs.NotFound, "%s does not exist.", id)
	}
	return m.withOps(who, d), nil
}

func (m *memResources) Query(_ context.Context, who cimi.Identity, kind string, q url.Values) (*api.Collection, error) {
	pq, err := cimi.ParseQuery(q)
	if err != nil {
		return nil, errs.Errorf(errs.BadFilter, "%s", err.Error())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k, _ := m.Kind(kind)
	var ids []string
	for id := range m.docs {
		if strings.HasPrefix(id, kind+"/") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	c := &api.Collection{Kind: k, Count: uint64(len(ids)), Operations: cimi.CollectionOperations(who.IsAdmin() && k.AddRole != "", kind)}
	for i, id := range ids {
		if n := i + 1; n >= pq.First && (pq.Last == 0 || n <= pq.Last) {
			c.Docs = append(c.Docs, m.withOps(who, m.docs[id]))
		}
	}
	return c, nil
}

func (m *memResources) outcome(id string, doc api.Document) *api.Outcome {
	if m.async {
		return &api.Outcome{ID: id, JobID: "Job/j1"}
	}
	return &api.Outcome{ID: id, JobID: "Job/j1", Done: true, Document: doc}
}

func (m *memResources) Create(_ context.Context, who cimi.Identity, kind string, body []byte) (*api.Outcome, error) {
	if !who.IsAdmin() {
		return nil, errs.New(errs.Forbidden, "")
	}
	var doc api.Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errs.New(errs.Invalid, "not JSON")
	}
	if doc["name"] == "invalid" {
		return nil, errs.New(errs.Invalid, "The name <invalid> is refused.")
	}
	m.mu.Lock()
	id := fmt.Sprintf("%s/n%d", kind, len(m.docs)+1)
	m.calls = append(m.calls, "create "+id)
	m.mu.Unlock()
	doc["id"] = id
	if !m.async {
		m.put(doc)
	}
	return m.outcome(id, doc), nil
}

func (m *memResources) Edit(_ context.Context, who cimi.Identity, id string, body []byte, _ []string) (*api.Outcome, error) {
	if !who.IsAdmin() {
		return nil, errs.New(errs.Forbidden, "")
	}
	var doc api.Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errs.New(errs.Invalid, "not JSON")
	}
	if _, ok := doc["operations"]; ok {
		return nil, errs.New(errs.Invalid, "operations must not be sent")
	}
	doc["id"] = id
	m.put(doc)
	m.mu.Lock()
	m.calls = append(m.calls, "edit "+id)
	m.mu.Unlock()
	return m.outcome(id, doc), nil
}

func (m *memResources) Delete(_ context.Context, who cimi.Identity, id string) (*api.Outcome, error) {
	if !who.IsAdmin() {
		return nil, errs.New(errs.Forbidden, "")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, id)
	m.calls = append(m.calls, "delete "+id)
	return m.outcome(id, nil), nil
}

func (m *memResources) Action(_ context.Context, _ cimi.Identity, id string, body []byte) (*api.Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "action "+id+" "+string(body))
	return m.outcome(id, nil), nil
}

// memSessions knows one user, admin with password "secret"; the cookie
// holds the token itself.
type memSessions struct {
	mu      sync.Mutex
	revoked []string
}

const adminToken = "token-admin"

func (s *memSessions) Authenticate(r *http.Request) (api.Session, error) {
	c, err := r.Cookie(api.SessionCookie)
	if err != nil {
		return api.Session{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Value != adminToken || slices.Contains(s.revoked, c.Value) {
		return api.Session{}, errs.New(errs.Unauthorized, "")
	}
	return api.Session{Identity: cimi.Identity{User: "admin", Roles: []string{cimi.RoleAdmin}}, Method: "password",
		Token: adminToken, Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, nil
}

func (s *memSessions) Login(_ context.Context, _ *http.Request, c api.Credentials) (api.Session, error) {
	if c.Username != "admin" || c.Password != "secret" {
		return api.Session{}, errs.New(errs.Unauthorized, "The username or password is wrong.")
	}
	return api.Session{Identity: cimi.Identity{User: "admin", Roles: []string{cimi.RoleAdmin}}, Method: "password", Token: adminToken}, nil
}

func (s *memSessions) Logout(_ context.Context, sess api.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = append(s.revoked, sess.Token)
	return nil
}

func (s *memSessions) SetCookie(w http.ResponseWriter, sess api.Session) {
	http.SetCookie(w, &http.Cookie{Name: api.SessionCookie, Value: sess.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func (s *memSessions) ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: api.SessionCookie, Value: "", Path: "/", MaxAge: -1})
}

// fixture is a UI over fresh in-memory resources and sessions.
type fixture struct {
	res  *memResources
	sess *memSessions
	h    http.Handler
}

func newFixture() *fixture {
	f := &fixture{res: newMem(), sess: &memSessions{}}
	f.h = New(f.res, f.sess, nil).Handler()
	return f
}

// req describes one request to the UI.
type req struct {
	method, path string
	form         url.Values
	token        string
	origin       string // "" sends the request's own origin on POSTs; "-" none
}

func (f *fixture) do(t *testing.T, q req) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if q.form != nil {
		r = httptest.NewRequest(q.method, q.path, strings.NewReader(q.form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(q.method, q.path, nil)
	}
	switch {
	case q.origin == "" && q.method == http.MethodPost:
		r.Header.Set("Origin", "http://"+r.Host)
	case q.origin != "" && q.origin != "-":
		r.Header.Set("Origin", q.origin)
	}
	if q.token != "" {
		r.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: q.token})
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func message(id, name, desc string) api.Document {
	return api.Document{"id": id, "resourceURI": cimi.ResourceURI("ServiceMessage"), "name": name, "description": desc,
		"updated": "2025-01-01T00:00:00Z", "acl": map[string]any{"owner": map[string]any{"principal": "admin", "type": "USER"}}}
}

func TestPagesEscapeHostileValues(t *testing.T) {
	t.Parallel()
	f := newFixture()
	hostile := `<script>alert("x")</script>`
	attrHostile := `" onmouseover="alert(1)`
	f.res.put(message("ServiceMessage/evil", hostile, attrHostile))
	cases := []struct {
		name, path string
	}{
		{"collection", "/webui/ServiceMessage"},
		{"resource", "/webui/ServiceMessage/evil"},
		{"json", "/webui/ServiceMessage/evil?format=json"},
		{"editor", "/webui/ServiceMessage/evil?op=edit"},
		{"filter echoed", "/webui/ServiceMessage?%24filter=" + url.QueryEscape(`name='`+hostile+`'`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := f.do(t, req{method: http.MethodGet, path: c.path, token: adminToken})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d, body:\n%s", w.Code, w.Body)
			}
			body := w.Body.String()
			if strings.Contains(body, "<script>") {
				t.Errorf("raw <script> in the page:\n%s", body)
			}
			if strings.Contains(body, `" onmouseover="`) {
				t.Errorf("attribute injection in the page:\n%s", body)
			}
			if !strings.Contains(body, "&lt;script&gt;") {
				t.Errorf("the escaped value is not shown:\n%s", body)
			}
		})
	}
}

func TestPostsMustComeFromThisSite(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"same origin", map[string]string{"Origin": "http://example.com"}, http.StatusSeeOther},
		{"same origin, https", map[string]string{"Origin": "https://example.com"}, http.StatusSeeOther},
		{"other origin", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"other port", map[string]string{"Origin": "http://example.com:8443"}, http.StatusForbidden},
		{"null origin", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"origin with another scheme", map[string]string{"Origin": "ftp://example.com"}, http.StatusForbidden},
		{"referer only, same", map[string]string{"Referer": "http://example.com/webui/login"}, http.StatusSeeOther},
		{"referer only, other", map[string]string{"Referer": "http://evil.example/page"}, http.StatusForbidden},
		{"origin wins over referer", map[string]string{"Origin": "http://evil.example", "Referer": "http://example.com/webui/"}, http.StatusForbidden},
		{"neither", map[string]string{}, http.StatusForbidden},
		{"behind a proxy", map[string]string{"Origin": "https://cloud.example.org", "X-Forwarded-Host": "cloud.example.org"}, http.StatusSeeOther},
		{"proxy names another host", map[string]string{"Origin": "https://evil.example", "X-Forwarded-Host": "cloud.example.org"}, http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			form := url.Values{"username": {"admin"}, "password": {"secret"}}
			r := httptest.NewRequest(http.MethodPost, "/webui/login", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d; body:\n%s", w.Code, c.want, w.Body)
			}
			if c.want == http.StatusForbidden && strings.Contains(w.Header().Get("Set-Cookie"), adminToken) {
				t.Error("a refused login still set the session cookie")
			}
		})
	}
}

func TestCollectionPaging(t *testing.T) {
	t.Parallel()
	f := newFixture()
	for i := 1; i <= 45; i++ {
		f.res.put(message(fmt.Sprintf("ServiceMessage/m%02d", i), fmt.Sprintf("message %02d", i), ""))
	}
	link := func(first, last int) string {
		return "/webui/ServiceMessage?" + url.Values{"$first": {strconv.Itoa(first)}, "$last": {strconv.Itoa(last)}}.Encode()
	}
	cases := []struct {
		name, query     string
		rng             string
		prev, next      string
		firstRow, noRow string
	}{
		{"first page", "", "1–20 of 45", "", link(21, 40), "message 01", "message 21"},
		{"second page", "?%24first=21&%24last=40", "21–40 of 45", link(1, 20), link(41, 60), "message 21", "message 41"},
		{"last page", "?%24first=41&%24last=60", "41–45 of 45", link(21, 40), "", "message 45", "message 40"},
		{"pages of 10", "?%24first=11&%24last=20", "11–20 of 45", link(1, 10), link(21, 30), "message 11", "message 21"},
		{"past the end", "?%24first=101", "none of 45 at 101", link(81, 100), "", "", "message"},
		{"filter and order kept", "?%24filter=" + url.QueryEscape("name!='x'") + "&%24orderby=name%3Adesc", "1–20 of 45", "",
			"/webui/ServiceMessage?" + url.Values{"$filter": {"name!='x'"}, "$orderby": {"name:desc"}, "$first": {"21"}, "$last": {"40"}}.Encode(),
			"message 01", "message 21"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := f.do(t, req{method: http.MethodGet, path: "/webui/ServiceMessage" + c.query})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", w.Code, w.Body)
			}
			body := w.Body.String()
			if !strings.Contains(body, `<span id="range">`+c.rng+`</span>`) {
				t.Errorf("range %q not shown:\n%s", c.rng, body)
			}
			checkLink(t, body, "previous", c.prev)
			checkLink(t, body, "next", c.next)
			if c.firstRow != "" && !strings.Contains(body, c.firstRow) {
				t.Errorf("%q missing", c.firstRow)
			}
			if strings.Contains(body, "<td>"+c.noRow) {
				t.Errorf("%q shown on the wrong page", c.noRow)
			}
		})
	}
}

// checkLink checks the href of the link with the id, or its absence.
func checkLink(t *testing.T, body, id, want string) {
	t.Helper()
	prefix := `<a id="` + id + `" href="`
	i := strings.Index(body, prefix)
	if want == "" {
		if i >= 0 {
			t.Errorf("unexpected %s link", id)
		}
		return
	}
	if i < 0 {
		t.Errorf("no %s link, want %s", id, want)
		return
	}
	rest := body[i+len(prefix):]
	got := strings.ReplaceAll(rest[:strings.IndexByte(rest, '"')], "&amp;", "&")
	if got != want {
		t.Errorf("%s link %q, want %q", id, got, want)
	}
}

func TestCollectionErrorsAndButtons(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.res.put(message("ServiceMessage/a", "alive", "fun"))
	cases := []struct {
		name, path, token string
		status            int
		want, notWant     []string
	}{
		{"bad filter keeps the text", "/webui/ServiceMessage?%24filter=" + url.QueryEscape("name = 'x' and"), "",
			http.StatusBadRequest, []string{`class="error"`, `value="name = &#39;x&#39; and"`}, nil},
		{"unknown collection", "/webui/Nothing", "", http.StatusNotFound, []string{`no collection named &#34;Nothing&#34;`}, nil},
		{"unknown resource", "/webui/ServiceMessage/none", "", http.StatusNotFound, []string{"does not exist"}, nil},
		{"anonymous: no add", "/webui/ServiceMessage", "", http.StatusOK, []string{">alive<", `id="login"`}, []string{`id="add"`}},
		{"admin: add", "/webui/ServiceMessage", adminToken, http.StatusOK, []string{`id="add"`, `id="logout"`, ">admin<"}, []string{`id="login"`}},
		{"anonymous resource: view json only", "/webui/ServiceMessage/a", "", http.StatusOK,
			[]string{`id="view-json"`, ">fun<"}, []string{`id="edit"`, `id="delete"`}},
		{"admin resource: all buttons", "/webui/ServiceMessage/a", adminToken, http.StatusOK,
			[]string{`id="view-json"`, `id="edit"`, `id="delete"`}, nil},
		{"anonymous editor refused", "/webui/ServiceMessage/a?op=edit", "", http.StatusForbidden, nil, []string{"<textarea"}},
		{"editor holds the document without operations", "/webui/ServiceMessage/a?op=edit", adminToken, http.StatusOK,
			[]string{"<textarea", "&#34;description&#34;: &#34;fun&#34;"}, []string{"operations"}},
		{"delete asks first", "/webui/ServiceMessage/a?op=delete", adminToken, http.StatusOK, []string{`id="confirm-delete"`}, nil},
		{"json view", "/webui/ServiceMessage/a?format=json", "", http.StatusOK, []string{"<pre", "&#34;name&#34;: &#34;alive&#34;"}, nil},
		{"add editor", "/webui/ServiceMessage?op=add", adminToken, http.StatusOK, []string{"<textarea", ">{}</textarea>"}, nil},
		{"home lists the collections", "/webui/", "", http.StatusOK, []string{`href="/webui/ServiceMessage">ServiceMessage<`, `href="/webui/User">User<`}, nil},
		{"authn page", "/webui/authn", adminToken, http.StatusOK, []string{`<td id="identity">admin</td>`, "::ADMIN", "password", "2030-01-02T03:04:05Z"}, nil},
		{"authn page, anonymous", "/webui/authn", "", http.StatusOK, []string{"not logged in"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := f.do(t, req{method: http.MethodGet, path: c.path, token: c.token})
			if w.Code != c.status {
				t.Errorf("status %d, want %d", w.Code, c.status)
			}
			body := w.Body.String()
			for _, s := range c.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q:\n%s", s, body)
				}
			}
			for _, s := range c.notWant {
				if strings.Contains(body, s) {
					t.Errorf("page has %q:\n%s", s, body)
				}
			}
		})
	}
}

func TestFormsRedirect(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		async    bool
		token    string
		path     string
		form     url.Values
		status   int
		location string
		call     string
		body     []string
	}{
		{name: "login", path: "/webui/login", form: url.Values{"username": {"admin"}, "password": {"secret"}},
			status: http.StatusSeeOther, location: "/webui/"},
		{name: "login refused", path: "/webui/login", form: url.Values{"username": {"admin"}, "password": {"wrong"}},
			status: http.StatusUnauthorized, body: []string{"username or password is wrong", `value="admin"`}},
		{name: "add", token: adminToken, path: "/webui/ServiceMessage", form: url.Values{"op": {"add"}, "json": {`{"name":"hi"}`}},
			status: http.StatusSeeOther, location: "/webui/ServiceMessage/n2", call: "create ServiceMessage/n2"},
		{name: "add still running", async: true, token: adminToken, path: "/webui/ServiceMessage", form: url.Values{"op": {"add"}, "json": {`{"name":"hi"}`}},
			status: http.StatusSeeOther, location: "/webui/Job/j1", call: "create ServiceMessage/n2"},
		{name: "add refused keeps the text", token: adminToken, path: "/webui/ServiceMessage", form: url.Values{"op": {"add"}, "json": {`{"name":"invalid"}`}},
			status: http.StatusBadRequest, body: []string{"The name &lt;invalid&gt; is refused.", "{&#34;name&#34;:&#34;invalid&#34;}</textarea>"}},
		{name: "add of bad JSON", token: adminToken, path: "/webui/ServiceMessage", form: url.Values{"op": {"add"}, "json": {`{"name":`}},
			status: http.StatusBadRequest, body: []string{"not a JSON object", "{&#34;name&#34;:</textarea>"}},
		{name: "add of an array", token: adminToken, path: "/webui/ServiceMessage", form: url.Values{"op": {"add"}, "json": {`[1]`}},
			status: http.StatusBadRequest, body: []string{"not an object"}},
		{name: "add anonymously", path: "/webui/ServiceMessage", form: url.Values{"op": {"add"}, "json": {`{}`}},
			status: http.StatusForbidden, body: []string{"not allowed"}},
		{name: "edit", token: adminToken, path: "/webui/ServiceMessage/a", form: url.Values{"op": {"edit"}, "json": {`{"name":"new"}`}},
			status: http.StatusSeeOther, location: "/webui/ServiceMessage/a", call: "edit ServiceMessage/a"},
		{name: "edit still running", async: true, token: adminToken, path: "/webui/ServiceMessage/a", form: url.Values{"op": {"edit"}, "json": {`{"name":"new"}`}},
			status: http.StatusSeeOther, location: "/webui/Job/j1", call: "edit ServiceMessage/a"},
		{name: "delete", token: adminToken, path: "/webui/ServiceMessage/a", form: url.Values{"op": {"delete"}},
			status: http.StatusSeeOther, location: "/webui/ServiceMessage", call: "delete ServiceMessage/a"},
		{name: "action", token: adminToken, path: "/webui/ServiceMessage/a", form: url.Values{"op": {"action"}, "action": {"start"}},
			status: http.StatusSeeOther, location: "/webui/ServiceMessage/a",
			call: `action ServiceMessage/a {"action":"http://schemas.dmtf.org/cimi/1/action/start","resourceURI":"http://schemas.dmtf.org/cimi/1/Action"}`},
		{name: "unknown form", token: adminToken, path: "/webui/ServiceMessage/a", form: url.Values{"op": {"explode"}},
			status: http.StatusBadRequest},
		{name: "logout", token: adminToken, path: "/webui/logout", form: url.Values{}, status: http.StatusSeeOther, location: "/webui/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.res.async = c.async
			f.res.put(message("ServiceMessage/a", "alive", "fun"))
			w := f.do(t, req{method: http.MethodPost, path: c.path, form: c.form, token: c.token})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d:\n%s", w.Code, c.status, w.Body)
			}
			if got := w.Header().Get("Location"); got != c.location {
				t.Errorf("Location %q, want %q", got, c.location)
			}
			if c.call != "" && !slices.Contains(f.res.calls, c.call) {
				t.Errorf("calls %q lack %q", f.res.calls, c.call)
			}
			for _, s := range c.body {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("page lacks %q:\n%s", s, w.Body)
				}
			}
		})
	}
}

func TestLoginAndLogoutCookies(t *testing.T) {
	t.Parallel()
	f := newFixture()
	w := f.do(t, req{method: http.MethodPost, path: "/webui/login", form: url.Values{"username": {"admin"}, "password": {"secret"}}})
	if c := cookie(w, api.SessionCookie); c == nil || c.Value != adminToken {
		t.Fatalf("login set no session cookie: %q", w.Header().Values("Set-Cookie"))
	}
	w = f.do(t, req{method: http.MethodPost, path: "/webui/logout", form: url.Values{}, token: adminToken})
	if c := cookie(w, api.SessionCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("logout did not clear the cookie: %q", w.Header().Values("Set-Cookie"))
	}
	if !slices.Contains(f.sess.revoked, adminToken) {
		t.Error("logout did not revoke the session")
	}
	// The revoked cookie no longer authenticates: a page read clears it
	// and goes to the login form, which says why.
	w = f.do(t, req{method: http.MethodGet, path: "/webui/ServiceMessage", token: adminToken})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/webui/login?ended=1" {
		t.Errorf("a stale cookie led to %d %q", w.Code, w.Header().Get("Location"))
	}
	if c := cookie(w, api.SessionCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("a stale cookie was not cleared: %q", w.Header().Values("Set-Cookie"))
	}
	w = f.do(t, req{method: http.MethodGet, path: "/webui/login?ended=1"})
	if !strings.Contains(w.Body.String(), `id="notice"`) || !strings.Contains(w.Body.String(), `id="login"`) {
		t.Errorf("the login form does not say the session ended:\n%s", w.Body)
	}
}

func cookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestFormTooLarge(t *testing.T) {
	t.Parallel()
	f := newFixture()
	big := url.Values{"op": {"add"}, "json": {strings.Repeat("x", maxFormBytes+1)}}
	w := f.do(t, req{method: http.MethodPost, path: "/webui/ServiceMessage", form: big, token: adminToken})
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", w.Code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture()
	w := f.do(t, req{method: http.MethodGet, path: "/webui/"})
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	w = f.do(t, req{method: http.MethodGet, path: "/webui/style.css"})
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}
