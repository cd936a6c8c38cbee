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
	// configs adds the MachineConfiguration collection; set it before
	// the first request.
	configs bool
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
	kinds := []api.Kind{
		{Name: "ServiceMessage", Attr: "serviceMessages", AddRole: cimi.RoleAdmin},
		{Name: "User", Attr: "users", AddRole: cimi.RoleAdmin, NameAttrs: []string{"username"}},
		{Name: "Job", Attr: "jobs", ReadOnly: true},
		{Name: "Volume", Attr: "volumes", AddRole: cimi.RoleUser},
		{Name: "Machine", Attr: "machines", AddRole: cimi.RoleUser,
			Actions: []string{"stop", "start", "restart", "shutdown", "attach_volume", "detach_volume"}},
		{Name: "Host", Attr: "hosts", Described: true, Actions: []string{"maintenance", "enable"}},
	}
	if m.configs {
		kinds = append(kinds, api.Kind{Name: "MachineConfiguration", Attr: "machineConfigurations", AddRole: cimi.RoleAdmin})
	}
	return kinds
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
		// As the gateway decorates: the actions of the kind follow
		// edit and delete.
		ops := cimi.ResourceOperations(cimi.ACL{}, who, doc["id"].(string))
		for _, a := range k.Actions {
			ops = append(ops, cimi.Operation{Rel: cimi.ActionURI(a), Href: doc["id"].(string) + "/" + a})
		}
		out["operations"] = ops
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
	if err := m.refusal("action", id, body, nil); err != nil {
		return nil, err
	}
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
	f.res.put(machine(machM1, 42, api.Document{"name": hostile, "detailedState": attrHostile, "state": hostile, "hostname": attrHostile,
		"image": map[string]any{"volume": hostile}, "stateMessage": hostile,
		"disks":             []any{map[string]any{"role": hostile, "device": attrHostile, "volume": "Volume/" + attrHostile, "hotPlugged": true}},
		"networkInterfaces": []any{map[string]any{"network": hostile, "ip": attrHostile}},
		"context":           map[string]any{"sshKey": hostile, "pairs": []any{map[string]any{"key": attrHostile, "value": hostile}}}}))
	cases := []struct {
		name, path string
	}{
		{"machine list", "/webui/Machine"},
		{"machine page", "/webui/Machine/" + machM1},
		{"machine quick filter echoed", "/webui/Machine?name=" + url.QueryEscape(hostile) + "&type=" + url.QueryEscape(attrHostile)},
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

// machine is a Machine document as vmctl returns it (numbers as JSON
// decodes them): m1.small from a Marketplace image, running, with a
// volume attached at launch and one hot-plugged; extra attributes are
// added or replace the defaults.
func machine(uuid string, vmID int, extra api.Document) api.Document {
	d := api.Document{"id": "Machine/" + uuid, "resourceURI": cimi.ResourceURI("Machine"), "uuid": uuid,
		"vmId": float64(vmID), "name": fmt.Sprintf("one-%d", vmID), "owner": "alice",
		"state": "STARTED", "detailedState": "Running", "stateChanged": "2025-02-03T04:06:00Z",
		"type": "m1.small", "cpu": float64(1), "memory": float64(1572864), "swapMiB": float64(1536),
		"image": map[string]any{"marketplace": "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF"},
		"disks": []any{
			map[string]any{"role": "root", "volume": "Volume/" + diskU2, "device": "vda", "sizeMiB": float64(10240)},
			map[string]any{"role": "swap", "device": "vdb", "sizeMiB": float64(1536)},
			map[string]any{"role": "persistent", "volume": "Volume/" + diskU3, "device": "vdc", "sizeMiB": float64(5120)},
			map[string]any{"role": "persistent", "volume": "Volume/" + diskU1, "device": "vdd", "sizeMiB": float64(5120), "hotPlugged": true},
			map[string]any{"role": "context", "device": "hdc", "readOnly": true},
		},
		"networkInterfaces": []any{map[string]any{"network": "public", "ip": "134.158.75.42", "mac": "0a:0a:86:9e:4b:2a"}},
		"ip":                "134.158.75.42", "hostname": "vm-42.example.org",
		"context": map[string]any{"method": "one", "sshKey": "ssh-ed25519 AAAAC3Nza alice@laptop",
			"pairs": []any{map[string]any{"key": "ROLE", "value": "web server"}}},
		"created": "2025-02-03T04:05:06Z", "updated": "2025-02-03T04:06:00Z",
		"acl": map[string]any{"owner": map[string]any{"principal": "alice", "type": "USER"}}}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// machines puts a running machine (M1, vm 42) and a pending one (M2, vm
// 43, 2 CPUs and 512 MiB from a volume, no disks yet).
func (f *fixture) machines() {
	f.res.put(machine(machM1, 42, nil))
	f.res.put(machine(machM2, 43, api.Document{"name": "web", "state": "CREATING", "detailedState": "Pending",
		"type": "t1.micro", "cpu": float64(2), "memory": float64(524288), "owner": "bob",
		"image": map[string]any{"volume": diskU2}, "disks": nil, "networkInterfaces": nil, "hostname": "vm-43.example.org",
		"ip": "134.158.75.43", "context": map[string]any{}}))
}

func TestMachineList(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.machines()
	w := f.do(t, req{method: http.MethodGet, path: "/webui/Machine", token: adminToken})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d:\n%s", w.Code, w.Body)
	}
	contains(t, w.Body.String(), []string{
		// The columns of stratus-describe-instance and more, each
		// ordering the list by its attribute.
		`<th><a href="/webui/Machine?%24orderby=vmId">vmId</a></th><th><a href="/webui/Machine?%24orderby=name">name</a></th>` +
			`<th><a href="/webui/Machine?%24orderby=detailedState">state</a></th><th><a href="/webui/Machine?%24orderby=type">type</a></th>` +
			`<th><a href="/webui/Machine?%24orderby=cpu">cpu</a></th><th><a href="/webui/Machine?%24orderby=memory">memory</a></th>` +
			`<th><a href="/webui/Machine?%24orderby=ip">ip</a></th><th><a href="/webui/Machine?%24orderby=hostname">hostname</a></th>` +
			`<th><a href="/webui/Machine?%24orderby=owner">owner</a></th><th><a href="/webui/Machine?%24orderby=created">created</a></th>`,
		// The vm id links to the machine; the memory (KiB) reads in GiB
		// or MiB; the DMTF state follows the StratusLab one.
		`<tr id="row-` + machM1 + `"><td><a href="/webui/Machine/` + machM1 + `">42</a></td><td>one-42</td>` +
			`<td>Running <small class="note">STARTED</small></td><td>m1.small</td><td>1</td><td>1.5 GiB</td>` +
			`<td>134.158.75.42</td><td>vm-42.example.org</td><td>alice</td><td>2025-02-03T04:05:06Z</td></tr>`,
		`<tr id="row-` + machM2 + `"><td><a href="/webui/Machine/` + machM2 + `">43</a></td><td>web</td>` +
			`<td>Pending <small class="note">CREATING</small></td><td>t1.micro</td><td>2</td><td>512 MiB</td>`,
		`<a class="button" id="add" href="/webui/Machine?op=add">run</a>`,
		`<select id="quick-detailedState" name="detailedState"><option value="">any</option><option value="Pending">Pending</option>`,
		`<option value="Stopped">Stopped</option></select>`,
		`<input id="quick-type" name="type" type="text"`, `<input id="quick-name" name="name" type="text"`,
		`<span id="range">1–2 of 2</span>`,
	}, []string{`id="clear"`, `<th>description</th>`})
}

func TestMachineQuickFilters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, query string
		filters     []string // the $filter values sent
		page        []string
	}{
		{name: "state", query: "detailedState=Running", filters: []string{"detailedState = 'Running'"},
			page: []string{`<option value="Running" selected>`, `id="clear"`}},
		{name: "type and name, in the boxes' order", query: "name=web&type=m1.small", filters: []string{"type = 'm1.small' and name = 'web'"},
			page: []string{`<input id="quick-type" name="type" type="text" size="16" value="m1.small">`}},
		{name: "name with quotes stays one value", query: "name=" + url.QueryEscape(`x' or owner = 'bob`),
			filters: []string{`name = 'x'' or owner = ''bob'`}},
		{name: "with a typed filter and an order", query: "detailedState=Done&%24filter=" + url.QueryEscape("cpu > 1") + "&%24orderby=vmId",
			filters: []string{"cpu > 1", "detailedState = 'Done'"},
			page:    []string{`<input type="hidden" name="$orderby" value="vmId">`, `<option value="Done" selected>`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.machines()
			w := f.do(t, req{method: http.MethodGet, path: "/webui/Machine?" + c.query, token: adminToken})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", w.Code, w.Body)
			}
			q, _, _ := f.res.last()
			if got := q["$filter"]; !slices.Equal(got, c.filters) {
				t.Errorf("$filter %q, want %q", got, c.filters)
			}
			// Each quick filter is one comparison, whatever its value.
			quick := q["$filter"][len(q["$filter"])-1]
			e, err := cimi.ParseFilter(quick)
			if err != nil {
				t.Fatalf("the quick filter %q does not parse: %v", quick, err)
			}
			var cmps []*cimi.Comparison
			switch e := e.(type) {
			case *cimi.Comparison:
				cmps = append(cmps, e)
			case *cimi.Logical:
				for _, term := range e.Terms {
					cmp, ok := term.(*cimi.Comparison)
					if !ok || e.Op != cimi.And {
						t.Fatalf("the quick filter %q reads back as %#v", quick, e)
					}
					cmps = append(cmps, cmp)
				}
			}
			for _, cmp := range cmps {
				if a := cmp.Attr.Path[0]; cmp.Op != cimi.Eq || cmp.Value.Str != f.queryValue(t, c.query, a) {
					t.Errorf("%q reads back as %s %v %q", quick, a, cmp.Op, cmp.Value.Str)
				}
			}
			contains(t, w.Body.String(), c.page, nil)
		})
	}
}

// queryValue returns the value of the quick filter a in query.
func (f *fixture) queryValue(t *testing.T, query, a string) string {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return v.Get(a)
}

func TestMachineCreateForm(t *testing.T) {
	t.Parallel()
	t.Run("the form", func(t *testing.T) {
		t.Parallel()
		f := newFixture()
		w := f.do(t, req{method: http.MethodGet, path: "/webui/Machine?op=add", token: adminToken})
		if w.Code != http.StatusOK {
			t.Fatalf("status %d:\n%s", w.Code, w.Body)
		}
		contains(t, w.Body.String(), []string{
			`<h1>Run a Machine</h1>`,
			`<form class="fields" id="create-form" method="post" action="/webui/Machine">`,
			`<input id="create-image" name="image" type="text" size="40" maxlength="4096" value="" placeholder="Marketplace id or volume uuid" required>`,
			// Without a MachineConfiguration collection, the standard
			// types, m1.small chosen.
			`<select id="create-type" name="type"><option value="t1.micro">t1.micro: 1 CPU, 512 MiB RAM, 512 MiB swap</option>` +
				`<option value="m1.small" selected>m1.small: 1 CPU, 1.5 GiB RAM, 1.5 GiB swap</option>`,
			`<option value="c1.xlarge">c1.xlarge: 4 CPUs, 6 GiB RAM, 6 GiB swap</option></select>`,
			`<input id="create-cpu" name="cpu" type="number" step="1" min="1" value="">`,
			`<input id="create-ram" name="ram" type="number" step="1" min="1" value="">`,
			`<input id="create-swap" name="swap" type="number" step="1" value="">`,
			`<input id="create-name" name="name" type="text"`,
			`<textarea id="create-sshKey" name="sshKey"`, `<textarea id="create-context" name="context"`,
			`<input type="radio" id="create-network-public" name="network" value="public" checked>`,
			`<input type="radio" id="create-network-local" name="network" value="local">`,
			`<input type="radio" id="create-network-private" name="network" value="private">`,
			`<input id="create-volatileDisk" name="volatileDisk" type="number" step="1" min="1" value="">`,
			`<input id="create-persistentDisk" name="persistentDisk" type="text"`,
			`<button id="create-submit" type="submit">run</button>`,
		}, nil)
	})
	t.Run("types from MachineConfiguration", func(t *testing.T) {
		t.Parallel()
		f := newFixture()
		f.res.configs = true
		w := f.do(t, req{method: http.MethodGet, path: "/webui/Machine?op=add", token: adminToken})
		// An empty collection: the standard table still.
		contains(t, w.Body.String(), []string{`<option value="m1.small" selected>`, `<option value="c1.xlarge">`}, nil)
		f.res.put(api.Document{"id": "MachineConfiguration/big", "name": "x1.big", "cpu": float64(16), "memory": float64(64 << 20), "swapMiB": float64(0)})
		f.res.put(api.Document{"id": "MachineConfiguration/small", "name": "m1.small", "cpu": float64(1), "memory": float64(1572864), "swapMiB": float64(1536)})
		f.res.put(api.Document{"id": "MachineConfiguration/nameless", "cpu": float64(1)})
		w = f.do(t, req{method: http.MethodGet, path: "/webui/Machine?op=add", token: adminToken})
		contains(t, w.Body.String(), []string{
			`<select id="create-type" name="type"><option value="x1.big">x1.big: 16 CPUs, 64 GiB RAM</option>` +
				`<option value="m1.small" selected>m1.small: 1 CPU, 1.5 GiB RAM, 1.5 GiB swap</option></select>`,
		}, []string{"c1.xlarge"})
	})
	full := url.Values{"op": {"add"}, "image": {" KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF "}, "type": {"m1.large"}, "cpu": {"2"}, "ram": {"2048"},
		"swap": {"1024"}, "name": {"web"}, "sshKey": {"ssh-ed25519 AAAA alice@laptop\r\n"},
		"context": {"ROLE=web server\r\n\r\n  URL = http://x/?a=b\r\n"}, "network": {"private"}, "volatileDisk": {"10"},
		"persistentDisk": {diskU1}}
	fullBody := `{"context":[{"key":"ROLE","value":"web server"},{"key":"URL","value":" http://x/?a=b"}],"cpu":2,` +
		`"image":"KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF","name":"web","network":"private","persistentDisks":["` + diskU1 + `"],` +
		`"ram":2048,"sshKey":"ssh-ed25519 AAAA alice@laptop","swap":1024,"type":"m1.large","volatileDisks":[10]}`
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
		fail     error
		form     url.Values
		status   int
		location string
		body     string // what Create was sent; "" when it was not called
		page     []string
	}{
		{name: "run", form: full, status: http.StatusSeeOther, location: "/webui/Machine/n1", body: fullBody},
		{name: "accepted: the job", async: true, form: full, status: http.StatusSeeOther, location: "/webui/Job/j1", body: fullBody},
		{name: "only the image: the server's defaults", form: url.Values{"op": {"add"}, "image": {diskU2}, "type": {"m1.small"},
			"cpu": {""}, "ram": {" "}, "context": {"\r\n"}, "network": {"public"}, "volatileDisk": {""}, "persistentDisk": {" "}},
			status: http.StatusSeeOther, location: "/webui/Machine/n1", body: `{"image":"` + diskU2 + `","network":"public","type":"m1.small"}`},
		{name: "refused by the server, values kept", fail: errs.New(errs.Invalid, "The machine type m1.large needs 6144 MiB of RAM; no host has that much."),
			form: full, status: http.StatusBadRequest, body: fullBody,
			page: []string{`<p class="error" role="alert">The machine type m1.large needs 6144 MiB of RAM; no host has that much.</p>`,
				`<h1>Run a Machine</h1>`,
				`value=" KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF "`, `<option value="m1.large" selected>`, `<option value="m1.small">`,
				`id="create-cpu" name="cpu" type="number" step="1" min="1" value="2"`, `value="2048"`, `value="1024"`, `value="web"`,
				">ssh-ed25519 AAAA alice@laptop\r\n</textarea>", ">ROLE=web server\r\n\r\n  URL = http://x/?a=b\r\n</textarea>",
				`id="create-network-private" name="network" value="private" checked>`, `value="10"`, `value="` + diskU1 + `"`}},
		{name: "a context line without =", form: with("context", "A=1\r\nnot a pair"), status: http.StatusBadRequest,
			page: []string{`Line 2 of the context pairs, &#34;not a pair&#34;, is not KEY=value`, ">A=1\r\nnot a pair</textarea>", `value="web"`}},
		{name: "a context line without key", form: with("context", "=1"), status: http.StatusBadRequest,
			page: []string{`Line 1 of the context pairs, &#34;=1&#34;, is not KEY=value`}},
		{name: "cpu not a number", form: with("cpu", "two"), status: http.StatusBadRequest,
			page: []string{"The CPUs must be a whole number of at least 1, not &#34;two&#34;.", `value="two"`}},
		{name: "swap not a number", form: with("swap", "1.5"), status: http.StatusBadRequest,
			page: []string{"The swap (MiB) must be a whole number, not &#34;1.5&#34;."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.res.async = c.async
			if c.fail != nil {
				f.res.fail = map[string]error{"create Machine": c.fail}
			}
			w := f.do(t, req{method: http.MethodPost, path: "/webui/Machine", form: c.form, token: adminToken})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d:\n%s", w.Code, c.status, w.Body)
			}
			if got := w.Header().Get("Location"); got != c.location {
				t.Errorf("Location %q, want %q", got, c.location)
			}
			if _, body, _ := f.res.last(); body != c.body {
				t.Errorf("Create was sent\n%s\nwant\n%s", body, c.body)
			}
			contains(t, w.Body.String(), c.page, nil)
		})
	}
}

func TestMachinePage(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.machines()
	m3 := "5e5e5e5e-0000-4000-8000-0000000000a3"
	f.res.put(machine(m3, 44, api.Document{"state": "ERROR", "detailedState": "Failed", "stateMessage": "No host has 64 GiB of RAM free.",
		"image":  map[string]any{"url": "http://img.example.org/a.qcow2", "bytes": float64(1 << 30), "sha1": "ab12"},
		"memory": float64(1000 * 1024), "host": "Host/node-1", "savedVolume": diskU3, "disks": []any{}, "networkInterfaces": []any{},
		"context": map[string]any{"method": "cloud-init", "cloudInit": "ssh,key#none,script.sh", "files": map[string]any{"script.sh": "IyEvYmluL3No"},
			"userData": "Content-Type: multipart"}}))
	m1 := "/webui/Machine/" + machM1
	cases := []struct {
		name, path, token string
		want, notWant     []string
	}{
		{"running, as one who may act", m1, adminToken, []string{
			`<td id="attr-vmId">42</td>`, `<td id="attr-uuid">` + machM1 + `</td>`, `<td id="attr-name">one-42</td>`,
			`<td id="attr-state">Running <small class="note">STARTED</small></td>`, `<td id="attr-type">m1.small</td>`,
			`<td id="attr-cpu">1</td>`, `<td id="attr-memory">1.5 GiB</td>`, `<td id="attr-swap">1.5 GiB</td>`,
			`<td id="attr-image">KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF <small class="note">Marketplace</small></td>`,
			`<td id="attr-ip">134.158.75.42</td>`, `<td id="attr-hostname">vm-42.example.org</td>`, `<td id="attr-owner">alice</td>`,
			`<td id="attr-ssh-key">ssh-ed25519 AAAAC3Nza alice@laptop</td>`,
			`<td id="attr-context"><ul><li>method one</li><li>ROLE=web server</li></ul></td>`,
			// The interfaces and disks as small tables.
			`<tr id="nic-0"><td>public</td><td>134.158.75.42</td><td>0a:0a:86:9e:4b:2a</td></tr>`,
			`<tr id="disk-vda"><td>vda</td><td>root</td><td><a href="/webui/Volume/` + diskU2 + `">` + diskU2 + `</a></td><td>10 GiB</td>` +
				`<td>read-write</td><td>at launch</td><td></td></tr>`,
			`<tr id="disk-vdb"><td>vdb</td><td>swap</td><td>—</td><td>1.5 GiB</td>`,
			`<tr id="disk-hdc"><td>hdc</td><td>context</td><td>—</td><td></td><td>read-only</td>`,
			// Only the hot-plugged volume may be detached.
			`<tr id="disk-vdd"><td>vdd</td><td>persistent</td><td><a href="/webui/Volume/` + diskU1 + `">` + diskU1 + `</a></td>` +
				`<td>5 GiB</td><td>read-write</td><td>hot-plugged</td><td><form class="inline" method="post" action="` + m1 + `">` +
				`<input type="hidden" name="op" value="action"><input type="hidden" name="action" value="detach_volume">` +
				`<input type="hidden" name="volume" value="` + diskU1 + `"><button id="detach-` + diskU1 + `" type="submit">detach</button></form></td></tr>`,
			// The buttons of the actions the machine offers, kill first.
			`<a class="button" id="kill" href="` + m1 + `?op=delete">kill</a>`,
			`<input type="hidden" name="action" value="stop"><button id="action-stop" type="submit">stop</button>`,
			`<input type="hidden" name="action" value="start"><button id="action-start" type="submit">start</button>`,
			`<input type="hidden" name="action" value="restart"><button id="action-restart" type="submit">restart</button>`,
			`<input type="hidden" name="action" value="shutdown"><button id="action-shutdown" type="submit">shutdown</button>`,
			`<form class="action" id="attach-form" method="post" action="` + m1 + `">`,
			`<input type="hidden" name="action" value="attach_volume">`,
			`<input id="attach-volume" name="volume" type="text" size="40" value="" placeholder="volume uuid" required>`,
			`<button id="attach-submit" type="submit">attach</button>`,
			// The rest follows as it is.
			`<td id="attr-id">Machine/` + machM1 + `</td>`, `<td id="attr-created">2025-02-03T04:05:06Z</td>`,
		}, []string{`id="delete"`, `id="detach-` + diskU3, `id="detach-` + diskU2, `id="action-attach_volume"`,
			`id="action-detach_volume"`, `<th>detailedState</th>`, `<th>networkInterfaces</th>`, `id="attr-host"`}},
		{"failed, built from a URL", "/webui/Machine/" + m3, adminToken, []string{
			`<td id="attr-state">Failed <small class="note">ERROR</small></td>`,
			`<td id="attr-state-message">No host has 64 GiB of RAM free.</td>`,
			`<td id="attr-image">http://img.example.org/a.qcow2 <small class="note">1073741824 bytes, SHA-1 ab12</small></td>`,
			`<td id="attr-memory">1000 MiB</td>`, `<td id="attr-host"><a href="/webui/Host/node-1">Host/node-1</a></td>`,
			`<td id="attr-saved-volume"><a href="/webui/Volume/` + diskU3 + `">` + diskU3 + `</a></td>`,
			`<td id="attr-disks">none</td>`, `<td id="attr-interfaces">none</td>`,
			`<td id="attr-context"><ul><li>method cloud-init</li><li>cloud-init ssh,key#none,script.sh</li><li>1 files</li><li>user data, 23 bytes</li></ul></td>`,
		}, []string{"IyEvYmluL3No"}},
		{"pending, from a volume", "/webui/Machine/" + machM2, adminToken, []string{
			`<td id="attr-image"><a href="/webui/Volume/` + diskU2 + `">` + diskU2 + `</a> <small class="note">volume</small></td>`,
			`<td id="attr-state">Pending <small class="note">CREATING</small></td>`, `<td id="attr-memory">512 MiB</td>`,
			`<td id="attr-context">none</td>`,
		}, []string{`id="attr-ssh-key"`}},
		{"as a reader: no buttons", m1, "", []string{`<td id="attr-state">Running`, `id="view-json"`, `<td>hot-plugged</td></tr>`},
			[]string{`id="kill"`, `id="action-`, `id="attach-form"`, `id="detach-`, `<th></th>`}},
		{"kill asks first", m1 + "?op=delete", adminToken, []string{`<h1>Kill Machine/` + machM1 + `</h1>`,
			`<p>Kill <strong>Machine/` + machM1 + `</strong>? The machine is destroyed at once`,
			`<input type="hidden" name="op" value="delete">`, `<button id="confirm-kill" type="submit">kill</button>`},
			[]string{`id="confirm-delete"`}},
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

// A Done machine stays to be read: its page offers nothing to do, though
// the gateway lists every action of the kind.
func TestDoneMachine(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.res.put(machine(machM1, 42, api.Document{"state": "DELETED", "detailedState": "Done"}))
	f.res.fail = map[string]error{"delete Machine/" + machM1: errs.New(errs.Conflict, "Machine 42 is already done.")}
	page := "/webui/Machine/" + machM1
	none := []string{`id="kill"`, `id="action-`, `id="attach-form"`, `id="detach-`, `<th></th>`}

	w := f.do(t, req{method: http.MethodGet, path: page, token: adminToken})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d:\n%s", w.Code, w.Body)
	}
	// The disks it had stay listed, without their detach button.
	contains(t, w.Body.String(), []string{`<td id="attr-state">Done <small class="note">DELETED</small></td>`, `id="view-json"`,
		`id="edit"`, `<tr id="disk-vdd"><td>vdd</td><td>persistent</td>`}, none)

	// A kill sent from a page left open is refused, and the page shown
	// again offers nothing either.
	w = f.do(t, req{method: http.MethodPost, path: page, form: url.Values{"op": {"delete"}}, token: adminToken})
	if w.Code != http.StatusConflict {
		t.Fatalf("status %d, want 409:\n%s", w.Code, w.Body)
	}
	contains(t, w.Body.String(), []string{`<p class="error" role="alert">Machine 42 is already done.</p>`,
		`<td id="attr-state">Done`}, none)

	if w := f.do(t, req{method: http.MethodGet, path: page + "?op=delete", token: adminToken}); w.Code != http.StatusForbidden ||
		strings.Contains(w.Body.String(), `id="confirm-kill"`) {
		t.Errorf("the kill confirmation of a Done machine: %d\n%s", w.Code, w.Body)
	}
}

func TestMachineActions(t *testing.T) {
	t.Parallel()
	page := "/webui/Machine/" + machM1
	action := func(verb, extra string) string {
		return `{"action":"http://schemas.dmtf.org/cimi/1/action/` + verb + `","resourceURI":"http://schemas.dmtf.org/cimi/1/Action"` + extra + `}`
	}
	cases := []struct {
		name     string
		async    bool
		fail     error
		form     url.Values
		status   int
		location string
		call     string
		body     string // what Action was sent; "" when it was not called
		page     []string
	}{
		{name: "stop", form: url.Values{"op": {"action"}, "action": {"stop"}}, status: http.StatusSeeOther, location: page,
			call: "action Machine/" + machM1 + " " + action("stop", ""), body: action("stop", "")},
		{name: "start", form: url.Values{"op": {"action"}, "action": {"start"}}, status: http.StatusSeeOther, location: page, body: action("start", "")},
		{name: "restart", form: url.Values{"op": {"action"}, "action": {"restart"}}, status: http.StatusSeeOther, location: page, body: action("restart", "")},
		{name: "shutdown still going on: its job", async: true, form: url.Values{"op": {"action"}, "action": {"shutdown"}},
			status: http.StatusSeeOther, location: "/webui/Job/j1", body: action("shutdown", "")},
		{name: "a stray volume is not sent with a plain action", form: url.Values{"op": {"action"}, "action": {"stop"}, "volume": {diskU2}},
			status: http.StatusSeeOther, location: page, body: action("stop", "")},
		{name: "attach", form: url.Values{"op": {"action"}, "action": {"attach_volume"}, "volume": {" " + diskU2 + " "}},
			status: http.StatusSeeOther, location: page, body: action("attach_volume", `,"volume":"`+diskU2+`"`)},
		{name: "detach", form: url.Values{"op": {"action"}, "action": {"detach_volume"}, "volume": {diskU1}},
			status: http.StatusSeeOther, location: page, body: action("detach_volume", `,"volume":"`+diskU1+`"`)},
		{name: "attach without a volume", form: url.Values{"op": {"action"}, "action": {"attach_volume"}, "volume": {"  "}},
			status: http.StatusBadRequest, page: []string{`<p class="error" role="alert">Give the volume to attach volume.</p>`}},
		{name: "detach of a disk attached at launch", fail: errs.New(errs.Conflict, "Disk have not been hot-plugged"),
			form: url.Values{"op": {"action"}, "action": {"detach_volume"}, "volume": {diskU3}}, status: http.StatusConflict,
			body: action("detach_volume", `,"volume":"`+diskU3+`"`),
			page: []string{`<p class="error" role="alert">Disk have not been hot-plugged</p>`, `<td id="attr-state">Running`,
				`id="detach-` + diskU1 + `"`, `<input id="attach-volume" name="volume" type="text" size="40" value=""`}},
		{name: "attach of a volume held elsewhere keeps the uuid typed",
			fail: errs.New(errs.Conflict, "Volume "+diskU2+" is attached to Machine/"+machM2+"."),
			form: url.Values{"op": {"action"}, "action": {"attach_volume"}, "volume": {diskU2}}, status: http.StatusConflict,
			body: action("attach_volume", `,"volume":"`+diskU2+`"`),
			page: []string{`<p class="error" role="alert">Volume ` + diskU2 + ` is attached to Machine/` + machM2 + `.</p>`,
				`<input id="attach-volume" name="volume" type="text" size="40" value="` + diskU2 + `"`}},
		{name: "stop refused", fail: errs.New(errs.Forbidden, "You may not stop Machine/"+machM1+"."),
			form: url.Values{"op": {"action"}, "action": {"stop"}}, status: http.StatusForbidden, body: action("stop", ""),
			page: []string{`<p class="error" role="alert">You may not stop Machine/` + machM1 + `.</p>`, `<td id="attr-vmId">42</td>`, `id="action-stop"`}},
		{name: "kill", form: url.Values{"op": {"delete"}}, status: http.StatusSeeOther, location: "/webui/Machine", call: "delete Machine/" + machM1},
		{name: "kill refused", fail: errs.New(errs.Forbidden, "Not enough rights to kill the machine."),
			form: url.Values{"op": {"delete"}}, status: http.StatusForbidden,
			page: []string{`<p class="error" role="alert">Not enough rights to kill the machine.</p>`, `<td id="attr-vmId">42</td>`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture()
			f.machines()
			f.res.async = c.async
			if c.fail != nil {
				verb := c.form.Get("op")
				f.res.fail = map[string]error{verb + " Machine/" + machM1: c.fail}
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
			if _, body, _ := f.res.last(); body != c.body {
				t.Errorf("Action was sent\n%s\nwant\n%s", body, c.body)
			}
			contains(t, w.Body.String(), c.page, nil)
		})
	}
}

func TestSizes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kib  any
		want string
	}{
		{float64(1572864), "1.5 GiB"}, {float64(524288), "512 MiB"}, {float64(8 << 20), "8 GiB"}, {float64(1280 * 1024), "1.25 GiB"},
		{float64(1000 * 1024), "1000 MiB"}, {float64(1023 * 1024), "1023 MiB"}, {float64(1536), "1536 KiB"}, {json.Number("3145728"), "3 GiB"},
		{float64(0), "0 MiB"}, {"lots", "lots"}, {nil, ""}, {float64(1.5), "1.5"},
	}
	for _, c := range cases {
		if got := memory(c.kib); got != c.want {
			t.Errorf("memory(%v) = %q, want %q", c.kib, got, c.want)
		}
	}
}

func FuzzParsePairs(f *testing.F) {
	for _, s := range []string{"A=1", "A=1\nB=2", "A=1\r\nB = x=y \r\n\r\n", "=1", "nothing", " K =", "\n\n", "É=ü\nX==="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parsePairs("context pairs", s)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		// Every pair comes from one line, whole: written back as
		// KEY=value lines, they read the same.
		var lines []string
		for _, p := range ps {
			if p.Key == "" || p.Key != strings.TrimSpace(p.Key) || strings.ContainsAny(p.Key, "=\n") || strings.Contains(p.Value, "\n") {
				t.Fatalf("pair %+v from %q", p, s)
			}
			lines = append(lines, p.Key+"="+p.Value)
		}
		again, err := parsePairs("context pairs", strings.Join(lines, "\n"))
		if err != nil || !slices.Equal(again, ps) {
			t.Fatalf("%q → %+v → %+v (%v)", s, ps, again, err)
		}
	})
}

// Hosts: administrators see whether each host is up and in maintenance,
// and switch maintenance from its page.
func TestHostPages(t *testing.T) {
	t.Parallel()
	f := newFixture()
	f.res.put(api.Document{"id": "Host/node-1", "resourceURI": cimi.ResourceURI("Host"), "name": "node-1", "hostname": "node-1.example.org",
		"state": "AVAILABLE", "maintenance": true, "runningMachines": float64(3), "hypervisor": "QEMU", "updated": "2025-02-03T04:05:06Z",
		"acl": map[string]any{"owner": map[string]any{"principal": "::ADMIN", "type": "ROLE"}}})
	w := f.do(t, req{method: http.MethodGet, path: "/webui/Host", token: adminToken})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d:\n%s", w.Code, w.Body)
	}
	contains(t, w.Body.String(), []string{
		`<th><a href="/webui/Host?%24orderby=state">state</a></th><th><a href="/webui/Host?%24orderby=maintenance">maintenance</a></th>` +
			`<th><a href="/webui/Host?%24orderby=runningMachines">runningMachines</a></th>` +
			`<th><a href="/webui/Host?%24orderby=hypervisor">hypervisor</a></th>`,
		`<tr id="row-node-1"><td><a href="/webui/Host/node-1">node-1</a></td><td>node-1</td><td></td><td>AVAILABLE</td><td>true</td><td>3</td><td>QEMU</td>`,
	}, []string{`id="add"`})

	w = f.do(t, req{method: http.MethodGet, path: "/webui/Host/node-1", token: adminToken})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d:\n%s", w.Code, w.Body)
	}
	contains(t, w.Body.String(), []string{`<td id="attr-maintenance">true</td>`,
		`<input type="hidden" name="action" value="maintenance"><button id="action-maintenance" type="submit">maintenance</button>`,
		`<input type="hidden" name="action" value="enable"><button id="action-enable" type="submit">enable</button>`}, nil)

	w = f.do(t, req{method: http.MethodPost, path: "/webui/Host/node-1", form: url.Values{"op": {"action"}, "action": {"enable"}}, token: adminToken})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/webui/Host/node-1" {
		t.Errorf("enable: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if _, body, _ := f.res.last(); body != `{"action":"http://schemas.dmtf.org/cimi/1/action/enable","resourceURI":"http://schemas.dmtf.org/cimi/1/Action"}` {
		t.Errorf("enable sent %s", body)
	}
}
