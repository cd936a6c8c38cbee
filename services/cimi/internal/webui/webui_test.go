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
	// fail holds the error a write refuses with, by "<verb> <id>".
	fail  map[string]error
	calls []string
	// The last query, and the body and $select of the last write.
	query   url.Values
	body    string
	selects []string
}

// last returns what the last query and write sent.
func (m *memResources) last() (query url.Values, body string, selects []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.query, m.body, m.selects
}

// refusal returns the error set for verb on id, recording the body.
func (m *memResources) refusal(verb, id string, body []byte, selects []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.body, m.selects = string(body), selects
	return m.fail[verb+" "+id]
}

func newMem() *memResources { return &memResources{docs: map[string]api.Document{}} }

func (m *memResources) Kinds() []api.Kind {
	return []api.Kind{
		{Name: "ServiceMessage", Attr: "serviceMessages", AddRole: cimi.RoleAdmin},
		{Name: "User", Attr: "users", AddRole: cimi.RoleAdmin, NameAttrs: []string{"username"}},
		{Name: "Job", Attr: "jobs", ReadOnly: true},
		{Name: "Volume", Attr: "volumes", AddRole: cimi.RoleUser},
		{Name: "Machine", Attr: "machines", AddRole: cimi.RoleUser},
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
	m.query = q
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
	if err := m.refusal("create", kind, body, nil); err != nil {
		return nil, err
	}
	if size, ok := doc["size"].(float64); ok && (size < 1 || size > 1024) {
		return nil, errs.Errorf(errs.Invalid, "The size must be from 1 to 1024 GiB, not %v.", size)
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

func (m *memResources) Edit(_ context.Context, who cimi.Identity, id string, body []byte, selects []string) (*api.Outcome, error) {
	if !who.IsAdmin() {
		return nil, errs.New(errs.Forbidden, "")
	}
	if err := m.refusal("edit", id, body, selects); err != nil {
		return nil, err
	}
	var doc api.Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errs.New(errs.Invalid, "not JSON")
	}
	if _, ok := doc["operations"]; ok {
		return nil, errs.New(errs.Invalid, "operations must not be sent")
	}
	// With $select only those attributes change, as on the gateway.
	m.mu.Lock()
	if cur, ok := m.docs[id]; ok && len(selects) > 0 {
		next := api.Document{}
		for k, v := range cur {
			next[k] = v
		}
		for _, a := range selects {
			if v, ok := doc[a]; ok {
				next[a] = v
			} else {
				delete(next, a)
			}
		}
		doc = next
	}
	m.mu.Unlock()
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
	if err := m.refusal("delete", id, nil, nil); err != nil {
		if errs.CodeOf(err) == errs.NotFound {
			m.mu.Lock()
			delete(m.docs, id)
			m.mu.Unlock()
		}
		return nil, err
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
	f.res.put(volume(diskU1, hostile, api.Document{"description": attrHostile, "machine": "Machine/" + hostile, "device": attrHostile,
		"attachments": []any{attachment(hostile, attrHostile, true)}}))
	cases := []struct {
		name, path string
	}{
		{"volume list", "/webui/Volume"},
		{"volume page and its edit form", "/webui/Volume/" + diskU1},
		{"quick filter echoed", "/webui/Volume?tag=" + url.QueryEscape(hostile) + "&state=" + url.QueryEscape(attrHostile)},
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

// Volumes: the pages of the guide's persistent disks.

const (
	diskU1 = "0b0c1d2e-0000-4000-8000-000000000001"
	diskU2 = "0b0c1d2e-0000-4000-8000-000000000002"
	diskU3 = "0b0c1d2e-0000-4000-8000-000000000003"
	machM1 = "5e5e5e5e-0000-4000-8000-0000000000a1"
	machM2 = "5e5e5e5e-0000-4000-8000-0000000000a2"
)

// volume is a Volume document as pdisk returns it (numbers as JSON
// decodes them); extra attributes are added or replace the defaults.
func volume(uuid, tag string, extra api.Document) api.Document {
	d := api.Document{"id": "Volume/" + uuid, "resourceURI": cimi.ResourceURI("Volume"), "uuid": uuid, "tag": tag,
		"owner": "alice", "size": float64(5), "capacity": float64(5 << 20), "visibility": "PRIVATE", "count": float64(0),
		"type": "DATA_IMAGE_RAW_READ_WRITE", "state": "AVAILABLE", "backend": "qcow2", "format": "qcow2",
		"created": "2025-02-03T04:05:06Z", "updated": "2025-02-03T04:05:06Z",
		"acl": map[string]any{"owner": map[string]any{"principal": "alice", "type": "USER"}}}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// attachment is one element of a volume's attachments.
func attachment(machine, device string, hot bool) map[string]any {
	return map[string]any{"machine": "Machine/" + machine, "device": device, "hotPlugged": hot, "attached": "2025-02-03T05:00:00Z"}
}

// volumes puts a mounted disk (U1), a free one (U2) and a read-only one
// held by two machines (U3).
func (f *fixture) volumes() {
	f.res.put(volume(diskU1, "HELLO", api.Document{"state": "IN_USE", "count": float64(1), "machine": "Machine/" + machM1,
		"device": "vdb", "attachments": []any{attachment(machM1, "vdb", true)}}))
	f.res.put(volume(diskU2, "spare", api.Document{"visibility": "PUBLIC", "size": float64(1024), "owner": "bob"}))
	f.res.put(volume(diskU3, "", api.Document{"type": "DATA_IMAGE_RAW_READONLY", "state": "IN_USE", "count": float64(2),
		"machine": "Machine/" + machM1, "device": "vdc",
		"attachments": []any{attachment(machM1, "vdc", false), attachment(machM2, "vdd", true)}}))
}

// contains checks that body holds every one of want and none of notWant.
func contains(t *testing.T, body string, want, notWant []string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q:\n%s", s, body)
		}
	}
	for _, s := range notWant {
		if strings.Contains(body, s) {
			t.Errorf("page has %q:\n%s", s, body)
		}
	}
}

func TestVolumeList(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.volumes()
	w := f.do(t, req{method: http.MethodGet, path: "/webui/Volume", token: adminToken})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d:\n%s", w.Code, w.Body)
	}
	contains(t, w.Body.String(), []string{
		// The columns, each ordering the list.
		`<th><a href="/webui/Volume?%24orderby=uuid">uuid</a></th><th><a href="/webui/Volume?%24orderby=tag">tag</a></th>` +
			`<th><a href="/webui/Volume?%24orderby=size">size (GiB)</a></th><th><a href="/webui/Volume?%24orderby=visibility">visibility</a></th>` +
			`<th><a href="/webui/Volume?%24orderby=owner">owner</a></th><th><a href="/webui/Volume?%24orderby=type">type</a></th>` +
			`<th><a href="/webui/Volume?%24orderby=state">state</a></th><th><a href="/webui/Volume?%24orderby=machine">mounted on</a></th>` +
			`<th><a href="/webui/Volume?%24orderby=created">created</a></th>`,
		// A mounted disk links to its machine.
		`<tr id="row-` + diskU1 + `"><td><a href="/webui/Volume/` + diskU1 + `">` + diskU1 + `</a></td><td>HELLO</td><td>5</td>` +
			`<td>PRIVATE</td><td>alice</td><td>DATA_IMAGE_RAW_READ_WRITE</td><td>IN_USE</td>` +
			`<td><a href="/webui/Machine/` + machM1 + `">` + machM1 + ` (vdb)</a></td><td>2025-02-03T04:05:06Z</td></tr>`,
		// A free one is mounted nowhere.
		`<td>PUBLIC</td><td>bob</td><td>DATA_IMAGE_RAW_READ_WRITE</td><td>AVAILABLE</td><td>—</td>`,
		`<td>1024</td>`,
		// A read-only one held by two machines says so.
		machM1 + ` (vdc) and 1 more</a>`,
		`id="add"`, `id="quick-visibility"`, `id="quick-state"`, `id="quick-type"`, `<input id="quick-tag" name="tag"`,
		`<option value="QUARANTINED">QUARANTINED</option>`, `<span id="range">1–3 of 3</span>`,
	}, []string{`id="clear"`, `id="quick-filter"`, "<th>name</th>"})
	// The other kinds keep their generic columns.
	f.res.put(message("ServiceMessage/a", "alive", "fun"))
	w = f.do(t, req{method: http.MethodGet, path: "/webui/ServiceMessage"})
	contains(t, w.Body.String(), []string{
		`<tr id="row-a"><td><a href="/webui/ServiceMessage/a">a</a></td><td>alive</td><td>fun</td><td>2025-01-01T00:00:00Z</td></tr>`,
		`<a href="/webui/ServiceMessage?%24orderby=name">name</a>`,
	}, []string{"quick-", "mounted on"})
}

func TestVolumeQuickFilters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, query string
		filters     []string // the $filter values sent
		tag         string   // the tag compared, read back from the filter
		page        []string
	}{
		{name: "none", query: "", filters: nil},
		{name: "state", query: "state=AVAILABLE", filters: []string{"state = 'AVAILABLE'"},
			page: []string{`<option value="AVAILABLE" selected>`, `<code id="quick-filter">state = &#39;AVAILABLE&#39;</code>`, `id="clear"`}},
		{name: "several, in the boxes' order", query: "type=DATA_IMAGE_RAW_READ_WRITE&visibility=PUBLIC",
			filters: []string{"visibility = 'PUBLIC' and type = 'DATA_IMAGE_RAW_READ_WRITE'"},
			page:    []string{`<option value="PUBLIC" selected>`, `<option value="DATA_IMAGE_RAW_READ_WRITE" selected>`}},
		{name: "tag", query: "tag=HELLO", filters: []string{"tag = 'HELLO'"}, tag: "HELLO",
			page: []string{`<input id="quick-tag" name="tag" type="text" size="16" value="HELLO">`}},
		{name: "tag with a quote", query: "tag=" + url.QueryEscape("it's"), filters: []string{"tag = 'it''s'"}, tag: "it's",
			page: []string{`value="it&#39;s"`}},
		{name: "tag trying to escape its quotes", query: "tag=" + url.QueryEscape(`x' or owner != 'y\`),
			filters: []string{`tag = 'x'' or owner != ''y\\'`}, tag: `x' or owner != 'y\`},
		{name: "with a typed filter", query: "state=IN_USE&%24filter=" + url.QueryEscape("size > 2 or tag = 'a'"),
			filters: []string{"size > 2 or tag = 'a'", "state = 'IN_USE'"},
			page:    []string{`value="size &gt; 2 or tag = &#39;a&#39;"`}},
		{name: "empty values choose nothing", query: "state=&visibility=&tag=&type=", filters: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.volumes()
			w := f.do(t, req{method: http.MethodGet, path: "/webui/Volume?" + c.query, token: adminToken})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", w.Code, w.Body)
			}
			q, _, _ := f.res.last()
			if got := q["$filter"]; !slices.Equal(got, c.filters) {
				t.Errorf("$filter %q, want %q", got, c.filters)
			}
			if c.tag != "" {
				e, err := cimi.ParseFilter(q.Get("$filter"))
				cmp, ok := e.(*cimi.Comparison)
				if err != nil || !ok || cmp.Attr.Path[0] != "tag" || cmp.Value.Str != c.tag {
					t.Errorf("the filter %q reads back as %#v (%v), not tag = %q", q.Get("$filter"), e, err, c.tag)
				}
			}
			contains(t, w.Body.String(), c.page, nil)
		})
	}
}

func TestVolumeListLinksKeepTheFilters(t *testing.T) {
	t.Parallel()
	f := newFixture()
	for i := range 25 {
		f.res.put(volume(fmt.Sprintf("0b0c1d2e-0000-4000-8000-%012d", i), "t", nil))
	}
	cases := []struct {
		name, query string
		next        url.Values
		heads       map[string]string // column → its heading's link and arrow
		orderBy     string
	}{
		{name: "quick filters and the typed filter", query: "state=AVAILABLE&tag=t&%24filter=size%3E1",
			next:  url.Values{"state": {"AVAILABLE"}, "tag": {"t"}, "$filter": {"size>1"}, "$first": {"21"}, "$last": {"40"}},
			heads: map[string]string{"size (GiB)": "/webui/Volume?" + url.Values{"state": {"AVAILABLE"}, "tag": {"t"}, "$filter": {"size>1"}, "$orderby": {"size"}}.Encode() + `">size (GiB)</a></th>`}},
		{name: "ordered ascending", query: "%24orderby=size", orderBy: "size",
			next:  url.Values{"$orderby": {"size"}, "$first": {"21"}, "$last": {"40"}},
			heads: map[string]string{"size": "/webui/Volume?%24orderby=size%3Adesc\">size (GiB)</a> ▲</th>", "tag": "/webui/Volume?%24orderby=tag\">tag</a></th>"}},
		{name: "ordered descending", query: "%24orderby=size%3Adesc", orderBy: "size:desc",
			next:  url.Values{"$orderby": {"size:desc"}, "$first": {"21"}, "$last": {"40"}},
			heads: map[string]string{"size": "/webui/Volume?%24orderby=size\">size (GiB)</a> ▼</th>"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := f.do(t, req{method: http.MethodGet, path: "/webui/Volume?" + c.query})
			body := w.Body.String()
			checkLink(t, body, "next", "/webui/Volume?"+c.next.Encode())
			for col, want := range c.heads {
				if !strings.Contains(strings.ReplaceAll(body, "&amp;", "&"), `<a href="`+want) {
					t.Errorf("heading %s does not link to %s:\n%s", col, want, body)
				}
			}
			if c.orderBy != "" && !strings.Contains(body, `<input type="hidden" name="$orderby" value="`+c.orderBy+`">`) {
				t.Errorf("the search form drops $orderby=%s", c.orderBy)
			}
		})
	}
}

func TestVolumeCreateForm(t *testing.T) {
	t.Parallel()
	t.Run("the form", func(t *testing.T) {
		t.Parallel()
		f := newFixture()
		w := f.do(t, req{method: http.MethodGet, path: "/webui/Volume?op=add", token: adminToken})
		if w.Code != http.StatusOK {
			t.Fatalf("status %d:\n%s", w.Code, w.Body)
		}
		contains(t, w.Body.String(), []string{
			`<form class="fields" id="create-form" method="post" action="/webui/Volume">`,
			`<input type="hidden" name="op" value="add">`,
			`<input id="create-size" name="size" type="number" step="1" min="1" max="1024" value="" required>`,
			`<input id="create-tag" name="tag" type="text" size="40" maxlength="256" value="">`,
			`<textarea id="create-description" name="description"`,
			`<input type="radio" id="create-visibility-private" name="visibility" value="PRIVATE" checked>`,
			`<input type="radio" id="create-visibility-public" name="visibility" value="PUBLIC">`,
			`<button id="create-submit" type="submit">create</button>`,
			`<a id="create-json" href="/webui/Volume?op=add&amp;editor=json">`,
		}, []string{"<textarea id=\"json\""})
		w = f.do(t, req{method: http.MethodGet, path: "/webui/Volume?op=add&editor=json", token: adminToken})
		contains(t, w.Body.String(), []string{`<textarea id="json" name="json"`}, []string{"create-form"})
	})
	full := url.Values{"op": {"add"}, "size": {"5"}, "tag": {"HELLO"}, "description": {"a <disk>"}, "visibility": {"PUBLIC"}}
	with := func(k, v string) url.Values {
		out := url.Values{}
		for k, vs := range full {
			out[k] = vs
		}
		out.Set(k, v)
		return out
	}
	cases := []struct {
		name     string
		async    bool
		token    string
		form     url.Values
		status   int
		location string
		body     string // what Create was sent; "" when it was not called
		page     []string
	}{
		{name: "created", token: adminToken, form: full, status: http.StatusSeeOther, location: "/webui/Volume/n1",
			body: `{"description":"a <disk>","size":5,"tag":"HELLO","visibility":"PUBLIC"}`},
		{name: "accepted: the job", async: true, token: adminToken, form: full, status: http.StatusSeeOther, location: "/webui/Job/j1",
			body: `{"description":"a <disk>","size":5,"tag":"HELLO","visibility":"PUBLIC"}`},
		{name: "empty values left to the server", token: adminToken,
			form:   url.Values{"op": {"add"}, "size": {" 1 "}, "tag": {""}, "description": {"  "}, "visibility": {"PRIVATE"}},
			status: http.StatusSeeOther, location: "/webui/Volume/n1", body: `{"size":1,"visibility":"PRIVATE"}`},
		{name: "refused by the server, values kept", token: adminToken, form: with("size", "5000"), status: http.StatusBadRequest,
			body: `{"description":"a <disk>","size":5000,"tag":"HELLO","visibility":"PUBLIC"}`,
			page: []string{`<p class="error" role="alert">The size must be from 1 to 1024 GiB, not 5000.</p>`,
				`id="create-size" name="size" type="number" step="1" min="1" max="1024" value="5000"`, `value="HELLO"`,
				`>a &lt;disk&gt;</textarea>`, `id="create-visibility-public" name="visibility" value="PUBLIC" checked>`}},
		{name: "not a number", token: adminToken, form: with("size", "5.5"), status: http.StatusBadRequest,
			page: []string{"The size (GiB) must be a whole number from 1 to 1024, not &#34;5.5&#34;.", `value="5.5"`, `value="HELLO"`}},
		{name: "anonymous", form: full, status: http.StatusForbidden, page: []string{`class="error"`, `id="create-form"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.res.async = c.async
			w := f.do(t, req{method: http.MethodPost, path: "/webui/Volume", form: c.form, token: c.token})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d:\n%s", w.Code, c.status, w.Body)
			}
			if got := w.Header().Get("Location"); got != c.location {
				t.Errorf("Location %q, want %q", got, c.location)
			}
			if _, body, _ := f.res.last(); body != c.body {
				t.Errorf("Create was sent %q, want %q", body, c.body)
			}
			contains(t, w.Body.String(), c.page, nil)
		})
	}
}

func TestVolumePage(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.volumes()
	f.res.put(volume(diskU2, "old", api.Document{"state": "QUARANTINED", "quarantine": "2025-03-01T00:00:00Z", "stateMessage": "Its machine ended."}))
	cases := []struct {
		name, path, token string
		want, notWant     []string
	}{
		{"mounted, as its owner", "/webui/Volume/" + diskU1, adminToken, []string{
			`<td id="attr-uuid">` + diskU1 + `</td>`, `<td id="attr-tag">HELLO</td>`, `<td id="attr-size">5 GiB</td>`,
			`<td id="attr-state">IN_USE</td>`, `<td id="attr-visibility">PRIVATE</td>`, `<td id="attr-owner">alice</td>`,
			`<td id="attr-mounted-on"><a href="/webui/Machine/` + machM1 + `">` + machM1 + ` (vdb)</a></td>`,
			`<td id="attr-attachments"><ul><li><a href="/webui/Machine/` + machM1 + `">` + machM1 + ` as vdb, hot-plugged, since 2025-02-03T05:00:00Z</a></li></ul></td>`,
			// The rest follows as it is.
			`<td id="attr-backend">qcow2</td>`, `<td id="attr-id">Volume/` + diskU1 + `</td>`, `<th>acl</th>`,
			// The edit form, filled.
			`<form class="fields" id="edit-form" method="post" action="/webui/Volume/` + diskU1 + `">`,
			`<input type="hidden" name="op" value="edit">`,
			`<input id="edit-tag" name="tag" type="text" size="40" maxlength="256" value="HELLO">`,
			`<textarea id="edit-description" name="description" rows="3" cols="60" maxlength="4096"></textarea>`,
			`<input type="radio" id="edit-visibility-private" name="visibility" value="PRIVATE" checked>`,
			`<button id="edit-submit" type="submit">save</button>`,
			`id="delete" href="/webui/Volume/` + diskU1 + `?op=delete"`, `id="edit-json"`, `id="view-json"`,
		}, []string{`id="edit"`, `id="attr-quarantine"`, `id="attr-machine"`, `id="edit-size"`, `<th>quarantine</th>`}},
		{"held by two machines", "/webui/Volume/" + diskU3, adminToken, []string{
			`<td id="attr-tag"></td>`, machM1 + ` (vdc) and 1 more</a>`,
			machM1 + ` as vdc, attached at launch, since`, `<a href="/webui/Machine/` + machM2 + `">` + machM2 + ` as vdd, hot-plugged`,
		}, nil},
		{"quarantined", "/webui/Volume/" + diskU2, adminToken, []string{
			`<td id="attr-quarantine">2025-03-01T00:00:00Z (the disk is deleted then)</td>`,
			`<td id="attr-state-message">Its machine ended.</td>`, `<td id="attr-mounted-on">—</td>`, `<td id="attr-attachments">none</td>`,
		}, nil},
		{"as a reader", "/webui/Volume/" + diskU1, "", []string{`<td id="attr-state">IN_USE</td>`, `id="view-json"`},
			[]string{"edit-form", `id="delete"`, `id="edit-json"`}},
		{"the JSON editor is still there", "/webui/Volume/" + diskU1 + "?op=edit", adminToken, []string{`<textarea id="json"`}, nil},
		{"delete asks first", "/webui/Volume/" + diskU1 + "?op=delete", adminToken,
			[]string{`Delete <strong>Volume/` + diskU1 + `</strong>?`, `id="confirm-delete"`}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := f.do(t, req{method: http.MethodGet, path: c.path, token: c.token})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", w.Code, w.Body)
			}
			contains(t, w.Body.String(), c.want, c.notWant)
		})
	}
}

func TestVolumeEditAndDelete(t *testing.T) {
	t.Parallel()
	page := "/webui/Volume/" + diskU1
	cases := []struct {
		name     string
		fail     error
		gone     bool // the volume is gone when the refusal comes
		form     url.Values
		status   int
		location string
		call     string
		body     string
		selects  []string
		page     []string
	}{
		{name: "edit sends only the form's attributes",
			form: url.Values{"op": {"edit"}, "tag": {"NEW"}, "description": {""}, "visibility": {"PUBLIC"},
				"size": {"99"}, "owner": {"mallory"}, "state": {"AVAILABLE"}},
			status: http.StatusSeeOther, location: page, call: "edit Volume/" + diskU1,
			body: `{"description":"","tag":"NEW","visibility":"PUBLIC"}`, selects: []string{"tag", "description", "visibility"}},
		{name: "edit refused keeps what was typed", fail: errs.New(errs.Invalid, "The tag is longer than 256 bytes."),
			form:   url.Values{"op": {"edit"}, "tag": {"TYPED"}, "description": {"typed <text>"}, "visibility": {"PUBLIC"}},
			status: http.StatusBadRequest, body: `{"description":"typed <text>","tag":"TYPED","visibility":"PUBLIC"}`,
			selects: []string{"tag", "description", "visibility"},
			page: []string{`<p class="error" role="alert">The tag is longer than 256 bytes.</p>`, `id="edit-tag" name="tag" type="text" size="40" maxlength="256" value="TYPED"`,
				`>typed &lt;text&gt;</textarea>`, `id="edit-visibility-public" name="visibility" value="PUBLIC" checked>`,
				// The page still shows the disk as it is.
				`<td id="attr-tag">HELLO</td>`}},
		{name: "the JSON editor replaces everything", form: url.Values{"op": {"edit"}, "json": {`{"tag":"J"}`}},
			status: http.StatusSeeOther, location: page, call: "edit Volume/" + diskU1, body: `{"tag":"J"}`},
		{name: "delete", form: url.Values{"op": {"delete"}}, status: http.StatusSeeOther, location: "/webui/Volume", call: "delete Volume/" + diskU1},
		{name: "delete without the rights", fail: errs.New(errs.Forbidden, "Not enough rights to delete disk."),
			form: url.Values{"op": {"delete"}}, status: http.StatusForbidden,
			page: []string{`<p class="error" role="alert">Not enough rights to delete disk.</p>`, `<td id="attr-uuid">` + diskU1 + `</td>`}},
		{name: "delete of a mounted disk", fail: errs.New(errs.Conflict, "Volume "+diskU1+" is attached to Machine/"+machM1+": detach it first."),
			form: url.Values{"op": {"delete"}}, status: http.StatusConflict,
			page: []string{"is attached to Machine/" + machM1 + ": detach it first.", `<td id="attr-state">IN_USE</td>`}},
		{name: "delete of a disk gone meanwhile", fail: errs.New(errs.NotFound, "Volume "+diskU1+" does not exist."), gone: true,
			form: url.Values{"op": {"delete"}}, status: http.StatusNotFound,
			page: []string{"does not exist.", "back to the CloudEntryPoint"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.volumes()
			if c.fail != nil {
				verb := c.form.Get("op")
				f.res.fail = map[string]error{verb + " Volume/" + diskU1: c.fail}
			}
			w := f.do(t, req{method: http.MethodPost, path: page, form: c.form, token: adminToken})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d:\n%s", w.Code, c.status, w.Body)
			}
			if got := w.Header().Get("Location"); got != c.location {
				t.Errorf("Location %q, want %q", got, c.location)
			}
			if c.call != "" && !slices.Contains(f.res.calls, c.call) {
				t.Errorf("calls %q lack %q", f.res.calls, c.call)
			}
			_, body, selects := f.res.last()
			if body != c.body || !slices.Equal(selects, c.selects) {
				t.Errorf("sent %s with $select %q, want %s with %q", body, selects, c.body, c.selects)
			}
			contains(t, w.Body.String(), c.page, nil)
			if c.status == http.StatusSeeOther && c.form.Get("op") == "edit" && !c.form.Has("json") {
				d, err := f.res.Get(context.Background(), cimi.Identity{}, "Volume/"+diskU1)
				if err != nil || d["size"] != float64(5) || d["owner"] != "alice" || d["state"] != "IN_USE" {
					t.Errorf("the edit changed what the form does not show: %v %v", d, err)
				}
			}
		})
	}
}
