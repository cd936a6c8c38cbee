package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
)

// imageResources holds Marketplace entries as the gateway shows them:
// operations from each entry's ACL (the uploader owns it, everyone
// reads), the deprecate action to who may modify. Creates and actions are
// recorded, not applied: what the marketplace does with them is its
// business.
type imageResources struct {
	mu    sync.Mutex
	docs  map[string]api.Document
	query url.Values
	// bodies of the creates and actions, in order
	creates, actions []string
}

func newImages() *imageResources { return &imageResources{docs: map[string]api.Document{}} }

func (m *imageResources) Kinds() []api.Kind {
	return []api.Kind{
		{Name: "MachineImage", Attr: "machineImages", AddRole: cimi.RoleUser, Actions: []string{"deprecate"}},
		{Name: "Machine", Attr: "machines", AddRole: cimi.RoleUser},
		{Name: "Volume", Attr: "volumes", AddRole: cimi.RoleUser},
	}
}

func (m *imageResources) Kind(name string) (api.Kind, bool) {
	for _, k := range m.Kinds() {
		if k.Name == name {
			return k, true
		}
	}
	return api.Kind{}, false
}

func (m *imageResources) decorate(who cimi.Identity, d api.Document) api.Document {
	out := api.Document{}
	for k, v := range d {
		out[k] = v
	}
	raw, _ := json.Marshal(d["acl"])
	var acl cimi.ACL
	_ = json.Unmarshal(raw, &acl)
	id := d["id"].(string)
	if ops := cimi.ResourceOperations(acl, who, id); len(ops) > 0 {
		out["operations"] = append(ops, cimi.Operation{Rel: cimi.ActionURI("deprecate"), Href: id + "/deprecate"})
	}
	return out
}

func (m *imageResources) Get(_ context.Context, who cimi.Identity, id string) (api.Document, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[id]
	if !ok {
		return nil, errs.Errorf(errs.NotFound, "%s does not exist.", id)
	}
	return m.decorate(who, d), nil
}

func (m *imageResources) Query(_ context.Context, who cimi.Identity, kind string, q url.Values) (*api.Collection, error) {
	if _, err := cimi.ParseQuery(q); err != nil {
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
	c := &api.Collection{Kind: k, Count: uint64(len(ids)), Operations: cimi.CollectionOperations(who.User != "", kind)}
	for _, id := range ids {
		c.Docs = append(c.Docs, m.decorate(who, m.docs[id]))
	}
	return c, nil
}

func (m *imageResources) lastQuery() url.Values {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.query
}

func (m *imageResources) Create(_ context.Context, who cimi.Identity, kind string, body []byte) (*api.Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates = append(m.creates, string(body))
	if bytes.Contains(body, []byte("tampered")) {
		return nil, errs.New(errs.Invalid, "Entry refused (signature-digest): the document was changed after it was signed.")
	}
	id := fmt.Sprintf("%s/00000000-0000-4000-8000-%012d", kind, len(m.docs)+1)
	m.docs[id] = api.Document{"id": id, "identifier": "new"}
	return &api.Outcome{ID: id, JobID: "Job/j1", Done: true}, nil
}

func (m *imageResources) Edit(context.Context, cimi.Identity, string, []byte, []string) (*api.Outcome, error) {
	return nil, errs.New(errs.Forbidden, "not in these tests")
}

func (m *imageResources) Delete(context.Context, cimi.Identity, string) (*api.Outcome, error) {
	return nil, errs.New(errs.Forbidden, "not in these tests")
}

func (m *imageResources) Action(_ context.Context, _ cimi.Identity, id string, body []byte) (*api.Outcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.actions = append(m.actions, id+" "+string(body))
	if d := m.docs[id]; d["deprecated"] != nil {
		return nil, errs.Errorf(errs.Conflict, "%s was deprecated already: %q", id, d["deprecated"])
	}
	return &api.Outcome{ID: id, JobID: "Job/j2", Done: true}, nil
}

// userSessions knows a user per token: the token is the user's name, and
// "admin" is an administrator.
type userSessions struct{ memSessions }

func (s *userSessions) Authenticate(r *http.Request) (api.Session, error) {
	c, err := r.Cookie(api.SessionCookie)
	if err != nil {
		return api.Session{}, nil
	}
	who := cimi.Identity{User: c.Value}
	if c.Value == "admin" {
		who.Roles = []string{cimi.RoleAdmin}
	}
	return api.Session{Identity: who, Method: "password", Token: c.Value}, nil
}

// Entries of the tests.
const (
	imgSigned     = "MachineImage/11111111-1111-4111-8111-111111111111"
	imgDeprecated = "MachineImage/22222222-2222-4222-8222-222222222222"
	imgDraft      = "MachineImage/33333333-3333-4333-8333-333333333333"
	identifier1   = "MMZu9WvwKIro-rtBQfDk4PsKO7_"
)

// entryDoc is an entry uploaded by alice, readable by everyone.
func entryDoc(id string, extra api.Document) api.Document {
	d := api.Document{"id": id, "resourceURI": cimi.ResourceURI("MachineImage"), "identifier": identifier1,
		"endorser": map[string]any{"email": "images@example.org", "subject": "CN=Images,O=Example", "issuer": "CN=Images,O=Example"},
		"endorsed": "2025-03-01T10:00:00Z", "valid": "2099-01-01T00:00:00Z", "name": "Debian 12", "description": "A small Debian.",
		"os": "debian", "osVersion": "12", "osArch": "x86_64", "tag": "debian-test", "kind": "machine", "format": "qcow2",
		"compression": "gz", "bytes": float64(123456), "sha1": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
		"locations": []any{"https://images.example.org/debian.qcow2.gz", "pdisk:0d4e5f60-1111-4222-8333-444455556666"},
		"draft":     false, "status": "valid", "xml": "<rdf:RDF>the signed XML</rdf:RDF>",
		"created": "2025-03-02T00:00:00Z", "updated": "2025-03-02T00:00:00Z",
		"acl": map[string]any{"owner": map[string]any{"principal": "alice", "type": "USER"},
			"rules": []any{map[string]any{"principal": "ANON", "type": "ROLE", "right": "VIEW"}}}}
	for k, v := range extra {
		if v == nil {
			delete(d, k)
			continue
		}
		d[k] = v
	}
	return d
}

// imageFixture is a UI over the entries.
type imageFixture struct {
	res *imageResources
	h   http.Handler
}

func newImageFixture() *imageFixture {
	f := &imageFixture{res: newImages()}
	f.res.docs[imgSigned] = entryDoc(imgSigned, nil)
	f.res.docs[imgDeprecated] = entryDoc(imgDeprecated, api.Document{"endorsed": "2025-02-01T10:00:00Z", "status": "deprecated",
		"deprecated": "replaced by <12.1>", "deprecatedBy": "alice", "deprecatedAt": "2025-03-05T00:00:00Z", "valid": nil})
	f.res.docs[imgDraft] = entryDoc(imgDraft, api.Document{"endorsed": nil, "status": "draft", "draft": true,
		"endorser": map[string]any{"email": "alice@example.org"}, "volume": "Volume/0d4e5f60-1111-4222-8333-444455556666",
		"acl": map[string]any{"owner": map[string]any{"principal": "alice", "type": "USER"}}})
	f.h = New(f.res, &userSessions{}, nil).Handler()
	return f
}

func (f *imageFixture) get(t *testing.T, path, user string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if user != "" {
		r.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: user})
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func (f *imageFixture) post(t *testing.T, path, user, contentType string, body []byte, origin string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	if origin == "" {
		origin = "http://" + r.Host
	}
	r.Header.Set("Origin", origin)
	r.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: user})
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func TestMetadataPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ id, email, endorsed, want string }{
		{identifier1, "", "", "/marketplace/metadata/" + identifier1},
		{identifier1, "a@b.org", "", "/marketplace/metadata/" + identifier1 + "/a@b.org"},
		{identifier1, "a@b.org", "2025-03-01T10:00:00Z", "/marketplace/metadata/" + identifier1 + "/a@b.org/2025-03-01T10:00:00Z"},
		{identifier1, "", "2025-03-01T10:00:00Z", "/marketplace/metadata/" + identifier1},
		// Each part stays one segment.
		{"a/b", "x/y@z?.org", "d e", "/marketplace/metadata/a%2Fb/x%2Fy@z%3F.org/d%20e"},
	} {
		if got := MetadataPath(c.id, c.email, c.endorsed); got != c.want {
			t.Errorf("MetadataPath(%q, %q, %q) = %q, want %q", c.id, c.email, c.endorsed, got, c.want)
		}
	}
}

func TestCatalogue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, query string
		filters     []string // the $filter values sent
		orderby     string
		page        []string
		notPage     []string
	}{
		{name: "valid entries, newest first, by default", filters: []string{"status = 'valid'"}, orderby: "endorsed:desc",
			page: []string{`<option value="valid" selected>valid</option>`, `<input type="hidden" name="$orderby" value="endorsed:desc">`,
				`<th><a href="/webui/MachineImage?%24orderby=endorsed&amp;status=valid">endorsed</a> ▼</th>`},
			notPage: []string{`id="clear"`}},
		{name: "any status", query: "status=", orderby: "endorsed:desc",
			page: []string{`<option value="">any</option><option value="valid">valid</option>`, `id="clear"`}},
		{name: "endorser, os and tag", query: "email=images%40example.org&os=debian&tag=debian-test&status=deprecated",
			filters: []string{"endorser/email = 'images@example.org' and os = 'debian' and tag = 'debian-test' and status = 'deprecated'"},
			orderby: "endorsed:desc",
			page: []string{`<input id="quick-email" name="email" type="text" size="16" value="images@example.org">`,
				`<option value="deprecated" selected>`, `id="clear"`}},
		{name: "a hostile endorser stays one value", query: "email=" + url.QueryEscape(`x' or status != 'draft`),
			filters: []string{`endorser/email = 'x'' or status != ''draft' and status = 'valid'`}, orderby: "endorsed:desc"},
		{name: "another order", query: "%24orderby=name", filters: []string{"status = 'valid'"}, orderby: "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newImageFixture()
			w := f.get(t, "/webui/MachineImage?"+c.query, "bob")
			if w.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", w.Code, w.Body)
			}
			q := f.res.lastQuery()
			if !slices.Equal(q["$filter"], c.filters) || q.Get("$orderby") != c.orderby {
				t.Errorf("sent $filter %q $orderby %q, want %q %q", q["$filter"], q.Get("$orderby"), c.filters, c.orderby)
			}
			contains(t, w.Body.String(), c.page, c.notPage)
		})
	}
	t.Run("the columns", func(t *testing.T) {
		t.Parallel()
		f := newImageFixture()
		w := f.get(t, "/webui/MachineImage", "")
		contains(t, w.Body.String(), []string{
			`<tr id="row-11111111-1111-4111-8111-111111111111"><td><a href="/webui/` + imgSigned + `">` + identifier1 + `</a></td>` +
				`<td>Debian 12</td><td>images@example.org</td><td>debian</td><td>12</td><td>x86_64</td><td>debian-test</td>` +
				`<td>2025-03-01T10:00:00Z</td><td>2099-01-01T00:00:00Z</td><td>valid</td></tr>`,
			// Status is computed: it orders nothing.
			`<th>status</th>`,
			`<th><a href="/webui/MachineImage?%24orderby=endorser%2Femail&amp;status=valid">endorser</a></th>`,
		}, []string{`id="add"`, "the signed XML"})
		// Paging keeps "any" status.
		for i := 4; i <= 25; i++ {
			id := fmt.Sprintf("MachineImage/00000000-0000-4000-8000-%012d", i)
			f.res.docs[id] = entryDoc(id, nil)
		}
		w = f.get(t, "/webui/MachineImage?status=", "alice")
		contains(t, w.Body.String(), []string{`<a class="button" id="add" href="/webui/MachineImage?op=add">upload</a>`,
			`<a id="next" href="/webui/MachineImage?%24first=21&amp;%24last=40&amp;%24orderby=endorsed%3Adesc&amp;status=">next</a>`}, nil)
	})
}

func TestEntryPage(t *testing.T) {
	t.Parallel()
	xmlLink := `<a class="button" id="entry-xml" href="/marketplace/metadata/` + identifier1 + `/images@example.org/2025-03-01T10:00:00Z?format=xml&amp;status=all">XML</a>`
	jsonLink := `<a class="button" id="entry-json" href="/marketplace/metadata/` + identifier1 + `/images@example.org/2025-03-01T10:00:00Z?format=json&amp;status=all">JSON</a>`
	runLink := `<a class="button" id="run-machine" href="/webui/Machine?image=` + identifier1 + `&amp;op=add">run a machine from it</a>`
	deprecateForm := `<form class="action" id="deprecate-form" method="post" action="/webui/` + imgSigned + `">`
	cases := []struct {
		name, id, user string
		want, notWant  []string
	}{
		{"anonymous", imgSigned, "", []string{xmlLink, jsonLink, runLink,
			`<tr><th>identifier</th><td id="attr-identifier">` + identifier1 + `</td></tr>`,
			`<tr><th>title</th><td id="attr-title">Debian 12</td></tr>`,
			`<tr><th>status</th><td id="attr-status">valid</td></tr>`,
			`<td id="attr-endorser">images@example.org <small class="note">CN=Images,O=Example</small></td>`,
			`<td id="attr-endorsed">2025-03-01T10:00:00Z</td>`, `<td id="attr-valid-until">2099-01-01T00:00:00Z</td>`,
			`<li><a href="https://images.example.org/debian.qcow2.gz">https://images.example.org/debian.qcow2.gz</a></li>`,
			`<li><a href="/webui/Volume/0d4e5f60-1111-4222-8333-444455556666">pdisk:0d4e5f60-1111-4222-8333-444455556666</a></li>`,
		}, []string{deprecateForm, `id="edit"`, `id="delete"`, "the signed XML", `id="action-deprecate"`}},
		{"the uploader may deprecate, not edit or delete", imgSigned, "alice", []string{deprecateForm,
			`<input id="deprecate-reason" name="reason" type="text"`}, []string{`id="edit"`, `id="delete"`, `id="action-deprecate"`}},
		{"another user", imgSigned, "bob", []string{xmlLink}, []string{deprecateForm, `id="edit"`, `id="delete"`}},
		{"an administrator may do all", imgSigned, "admin", []string{deprecateForm, `id="edit"`, `id="delete"`}, nil},
		{"deprecated", imgDeprecated, "alice", []string{
			`<td id="attr-status">deprecated</td>`,
			`<td id="attr-deprecated">replaced by &lt;12.1&gt; <small class="note">by alice on 2025-03-05T00:00:00Z</small></td>`,
			`<td id="attr-valid-until">never expires</td>`,
			`/marketplace/metadata/` + identifier1 + `/images@example.org/2025-02-01T10:00:00Z?format=xml&amp;status=all`,
		}, []string{`id="deprecate-form"`}},
		{"a draft, to its author", imgDraft, "alice", []string{
			`<td id="attr-status">draft</td>`, `not signed yet`,
			`<a class="button" id="entry-xml" href="/marketplace/metadata/` + identifier1 + `/alice@example.org?format=xml&amp;status=draft">XML</a>`,
			`id="edit"`, `id="delete"`, `<td id="attr-volume"><a href="/webui/Volume/0d4e5f60-1111-4222-8333-444455556666">`,
		}, []string{`id="deprecate-form"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newImageFixture()
			w := f.get(t, "/webui/"+c.id, c.user)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", w.Code, w.Body)
			}
			contains(t, w.Body.String(), c.want, c.notWant)
		})
	}
}

func TestDeprecateForm(t *testing.T) {
	t.Parallel()
	f := newImageFixture()
	form := func(reason string) []byte {
		return []byte(url.Values{"op": {"action"}, "action": {"deprecate"}, "reason": {reason}}.Encode())
	}
	const ct = "application/x-www-form-urlencoded"
	w := f.post(t, "/webui/"+imgSigned, "alice", ct, form("  replaced by 12.1 "), "")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/webui/"+imgSigned {
		t.Fatalf("deprecate: %d %v\n%s", w.Code, w.Header(), w.Body)
	}
	if len(f.res.actions) != 1 {
		t.Fatalf("actions sent: %q", f.res.actions)
	}
	var act map[string]string
	if err := json.Unmarshal([]byte(strings.TrimPrefix(f.res.actions[0], imgSigned+" ")), &act); err != nil ||
		act["action"] != cimi.ActionURI("deprecate") || act["reason"] != "replaced by 12.1" {
		t.Errorf("action sent: %s (%v)", f.res.actions[0], err)
	}
	// No reason: nothing is sent, the page says what is missing.
	w = f.post(t, "/webui/"+imgSigned, "alice", ct, form(" "), "")
	contains(t, w.Body.String(), []string{"Give the reason to deprecate."}, nil)
	if w.Code != http.StatusBadRequest || len(f.res.actions) != 1 {
		t.Errorf("an empty reason: %d, actions %q", w.Code, f.res.actions)
	}
	// Refused: the page shows why, with the reason as typed.
	w = f.post(t, "/webui/"+imgDeprecated, "admin", ct, form("again"), "")
	contains(t, w.Body.String(), []string{"was deprecated already: &#34;replaced by &lt;12.1&gt;&#34;"}, nil)
	if w.Code != http.StatusConflict {
		t.Errorf("a second deprecation: %d", w.Code)
	}
}

// uploadForm is the upload form as a browser sends it.
func uploadForm(t *testing.T, file []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if err := mw.WriteField("op", "add"); err != nil {
		t.Fatal(err)
	}
	fw, err := mw.CreateFormFile("file", "debian.xml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(file); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}

func TestUploadForm(t *testing.T) {
	t.Parallel()
	t.Run("the form", func(t *testing.T) {
		t.Parallel()
		f := newImageFixture()
		w := f.get(t, "/webui/MachineImage?op=add", "alice")
		contains(t, w.Body.String(), []string{
			`<h1>Upload a MachineImage</h1>`,
			`<form class="fields" id="create-form" method="post" action="/webui/MachineImage" enctype="multipart/form-data">`,
			`<input id="create-file" name="file" type="file" accept=".xml,application/xml,text/xml" required>`,
			`<button id="create-submit" type="submit">upload</button>`,
		}, nil)
	})
	// The signed bytes go to the marketplace as they are: CRLF, tabs,
	// "<" and non-ASCII text included.
	signed := "<?xml version=\"1.0\"?>\r\n<rdf:RDF>\r\n\t<x a=\"&lt;&amp;\">été \u2028</x>\r\n</rdf:RDF>"
	cases := []struct {
		name   string
		file   []byte
		origin string
		status int
		says   string
		sent   bool
	}{
		{"stored", []byte(signed), "", http.StatusSeeOther, "", true},
		{"refused", []byte("tampered " + signed), "", http.StatusBadRequest, "Entry refused (signature-digest)", true},
		{"not UTF-8", []byte("<x>\xff</x>"), "", http.StatusBadRequest, `The file &#34;debian.xml&#34; is not UTF-8 text`, false},
		{"more than 1 MiB", bytes.Repeat([]byte("x"), MaxMetadataBytes+1), "", http.StatusRequestEntityTooLarge,
			"The file &#34;debian.xml&#34; is 1048577 bytes; the signed entry may have at most 1048576 bytes.", false},
		{"from another site", []byte(signed), "http://evil.example", http.StatusForbidden, "not sent from this site", false},
		{"an empty file", []byte{}, "", http.StatusBadRequest, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newImageFixture()
			body, ct := uploadForm(t, c.file)
			w := f.post(t, "/webui/MachineImage", "alice", ct, body, c.origin)
			if c.name == "an empty file" {
				// The marketplace says what is missing; the UI sends {}.
				if len(f.res.creates) != 1 || f.res.creates[0] != "{}" {
					t.Errorf("an empty file sent %q", f.res.creates)
				}
				return
			}
			if w.Code != c.status {
				t.Fatalf("status %d, want %d:\n%s", w.Code, c.status, w.Body)
			}
			if c.status == http.StatusSeeOther {
				if loc := w.Header().Get("Location"); !strings.HasPrefix(loc, "/webui/MachineImage/00000000-") {
					t.Errorf("the upload led to %q", loc)
				}
			} else {
				contains(t, w.Body.String(), []string{c.says}, nil)
			}
			if !c.sent {
				if len(f.res.creates) != 0 {
					t.Errorf("sent %q", f.res.creates)
				}
				return
			}
			var got map[string]string
			if len(f.res.creates) != 1 || json.Unmarshal([]byte(f.res.creates[0]), &got) != nil || got["metadata"] != string(c.file) || len(got) != 1 {
				t.Errorf("create bodies %q, want one {\"metadata\": <the file>}", f.res.creates)
			}
		})
	}
	t.Run("a form too large", func(t *testing.T) {
		t.Parallel()
		f := newImageFixture()
		body, ct := uploadForm(t, bytes.Repeat([]byte("x"), MaxMetadataBytes+formOverhead))
		w := f.post(t, "/webui/MachineImage", "alice", ct, body, "")
		if w.Code != http.StatusRequestEntityTooLarge || len(f.res.creates) != 0 {
			t.Errorf("status %d, creates %q:\n%s", w.Code, f.res.creates, w.Body)
		}
	})
}

func TestRunFromEntry(t *testing.T) {
	t.Parallel()
	f := newImageFixture()
	w := f.get(t, "/webui/Machine?op=add&image="+url.QueryEscape(identifier1+`" onfocus="x`), "alice")
	contains(t, w.Body.String(), []string{`<input id="create-image" name="image" type="text" size="40" maxlength="4096" value="` +
		identifier1 + `&#34; onfocus=&#34;x"`}, []string{`" onfocus="x`})
}
