package gateway

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/cimi/internal/webui"
)

// testEntry is the entry format of the marketplace stand-in: what the
// gateway passes on does not depend on the real one (client/metadata),
// which the stand-in does not check.
type testEntry struct {
	XMLName    xml.Name `xml:"entry"`
	Identifier string   `xml:"identifier"`
	Email      string   `xml:"email"`
	Endorsed   string   `xml:"endorsed"`
	Valid      string   `xml:"valid"`
	OS         string   `xml:"os"`
	OSVersion  string   `xml:"osVersion"`
	Arch       string   `xml:"arch"`
	Tag        string   `xml:"tag"`
	Title      string   `xml:"title"`
}

// render writes the entry as a document whose bytes a careless copy
// would change: a declaration, CRLF line ends, tabs, escapes, characters
// that JSON encoders like to escape, and no final line end.
func (e testEntry) render() string {
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<!-- <signed> & \u2028 \u00e9t\u00e9 -->\r\n<entry>\r\n" +
		"\t<identifier>" + esc(e.Identifier) + "</identifier>\r\n\t<email>" + esc(e.Email) + "</email>\r\n" +
		"\t<endorsed>" + esc(e.Endorsed) + "</endorsed>\r\n\t<valid>" + esc(e.Valid) + "</valid>\r\n" +
		"\t<os>" + esc(e.OS) + "</os><osVersion>" + esc(e.OSVersion) + "</osVersion><arch>" + esc(e.Arch) + "</arch>\r\n" +
		"\t<tag>" + esc(e.Tag) + "</tag><title>" + esc(e.Title) + " &lt;&amp;&gt; \"q\"</title>\r\n</entry>"
}

// marketStandIn owns MachineImage as the marketplace does, as far as the
// gateway can tell: uploads {"metadata": xml} refused with the
// marketplace's messages, entries public and owned by their uploader,
// status stored (the real one computes it), the deprecate action. It
// records the queries the gateway sends.
type marketStandIn struct {
	mu      sync.Mutex
	queries []string // each query's filter and order, as FormatFilter writes them
	seen    map[string]bool
}

// recordingCollection records the queries of the stand-in's collection.
type recordingCollection struct {
	store.Collection
	m *marketStandIn
}

func (c recordingCollection) Query(ctx context.Context, q cimi.Query, who cimi.Identity) (store.Page, error) {
	f := ""
	if q.Filter != nil {
		f = cimi.FormatFilter(q.Filter)
	}
	for _, o := range q.OrderBy {
		f += " $orderby=" + strings.Join(o.Attr.Path, "/")
		if o.Desc {
			f += ":desc"
		}
	}
	c.m.mu.Lock()
	c.m.queries = append(c.m.queries, f)
	c.m.mu.Unlock()
	return c.Collection.Query(ctx, q, who)
}

// lastQuery is the last query the stand-in answered.
func (m *marketStandIn) lastQuery() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queries) == 0 {
		return ""
	}
	return m.queries[len(m.queries)-1]
}

func (m *marketStandIn) upload(_ context.Context, _ cimi.Identity, _ string, body map[string]any) (map[string]any, error) {
	doc, _ := body["metadata"].(string)
	for a := range body {
		if a != "metadata" {
			return nil, errs.Errorf(errs.Invalid, "A new MachineImage takes one attribute, \"metadata\" (not %q).", a)
		}
	}
	if strings.Contains(doc, "tampered") {
		return nil, errs.New(errs.Invalid, "Entry refused (signature-digest): the document was changed after it was signed.")
	}
	var e testEntry
	if err := xml.Unmarshal([]byte(doc), &e); err != nil {
		return nil, errs.Errorf(errs.Invalid, "Entry refused (well-formed): %v.", err)
	}
	key := e.Identifier + "/" + e.Email + "/" + e.Endorsed
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen[key] {
		return nil, errs.Errorf(errs.Conflict, "Entry refused (already-uploaded): the Marketplace holds %s already.", key)
	}
	m.seen[key] = true
	status := "valid"
	if v, err := time.Parse(time.RFC3339, e.Valid); err == nil && v.Before(time.Now()) {
		status = "expired"
	}
	out := map[string]any{"identifier": e.Identifier, "endorser": map[string]any{"email": e.Email}, "endorsed": e.Endorsed,
		"name": e.Title, "os": e.OS, "osVersion": e.OSVersion, "osArch": e.Arch, "draft": false, "xml": doc, "status": status}
	if e.Valid != "" {
		out["valid"] = e.Valid
	}
	if e.Tag != "" {
		out["tag"] = e.Tag
	}
	return out, nil
}

func deprecateStandIn(_ context.Context, who cimi.Identity, current, body map[string]any) (map[string]any, error) {
	reason, _ := body["reason"].(string)
	switch {
	case strings.TrimSpace(reason) == "":
		return nil, errs.New(errs.Invalid, "Deprecating needs a reason.")
	case current["deprecated"] != nil:
		return nil, errs.Errorf(errs.Conflict, "%s was deprecated already: %q", current["id"], current["deprecated"])
	}
	current["deprecated"], current["deprecatedBy"], current["status"] = reason, who.User, "deprecated"
	return current, nil
}

// startMarketplace runs the stand-in on the test's bus.
func startMarketplace(t *testing.T, e *env) *marketStandIn {
	t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(context.Background(), js, subject.Marketplace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	coll, err := st.Collection(context.Background(), "MachineImage")
	if err != nil {
		t.Fatal(err)
	}
	m := &marketStandIn{seen: map[string]bool{}}
	b := bus.New(e.nc, js, bus.Options{Service: subject.Marketplace, Logger: quiet()})
	p, err := resource.New(b, subject.Marketplace, quiet(), resource.Kind{
		Name: "MachineImage", Collection: recordingCollection{coll, m},
		CanCreate: func(who cimi.Identity) bool { return who.User != "" },
		New:       m.upload,
		Actions: map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){
			"deprecate": deprecateStandIn,
		},
		DefaultACL: func(who cimi.Identity, _ string, _ map[string]any) cimi.ACL {
			acl := cimi.OwnedBy(who)
			acl.Rules = append(acl.Rules, cimi.Rule{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.View})
			return acl
		},
		Refuse: func(_ cimi.Identity, op string, visible bool) error {
			if op == "action" && visible {
				return errs.New(errs.Forbidden, "Only the uploader of a Marketplace entry or an administrator may deprecate it.")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, func(ctx context.Context) error {
		return b.Serve(ctx, bus.ServiceInfo{Name: subject.Marketplace}, p.Endpoints()...)
	})
	start(t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Durable: subject.Marketplace, Subjects: p.Subjects()}, p.Handle)
	})
	eventually(t, "marketplace answering", func() bool { return e.do(req{method: "GET", path: "/marketplace/metadata"}).status == 200 })
	return m
}

// ids of the test entries: 27 characters, as real identifiers.
const (
	idDebian = "MMZu9WvwKIro-rtBQfDk4PsKO7_"
	idCentos = "BN1RvJkyV9CkVSJ6xsIiC5sGPZ6"
)

// multipartBody is a form holding the fields and a file part "file".
func multipartBody(t *testing.T, fields map[string]string, fileField string, file []byte) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil {
		fw, err := mw.CreateFormFile(fileField, "entry.xml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(file); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), mw.FormDataContentType()
}

func TestSearchFilter(t *testing.T) {
	t.Parallel()
	hostile := []string{
		`x' or os = 'y`, `')) or ((identifier != '`, `\' or 1=1 --`, `a\\'b`, `née "quoted" 'single'`,
		`%27 or true`, `endorser/email = 'a'`, "\u2028 and \u00a0 and \U0001F600",
	}
	cases := []struct {
		name   string
		query  string
		filter string // the $filter sent
		first  string
		last   string
	}{
		{"no parameter: valid entries, the first 20", "", "status = 'valid'", "1", "20"},
		{"every parameter, in a fixed order",
			"tag=debian-test&arch=x86_64&os-version=12&os=debian&email=images%40example.org&identifier=" + idDebian +
				"&created=2025-03-04&status=expired&first=3&last=7",
			"identifier = '" + idDebian + "' and endorser/email = 'images@example.org' and os = 'debian' and osVersion = '12'" +
				" and osArch = 'x86_64' and tag = 'debian-test' and endorsed >= 2025-03-04T00:00:00Z and status = 'expired'", "3", "7"},
		{"created as a time, in UTC", "created=2025-03-04T05:06:07%2B02:00", "endorsed >= 2025-03-04T03:06:07Z and status = 'valid'", "1", "20"},
		{"all is every signed entry", "status=all", "draft = false", "1", "20"},
		{"deprecated", "status=deprecated", "status = 'deprecated'", "1", "20"},
		{"drafts", "status=draft", "status = 'draft'", "1", "20"},
		{"first alone gives a page of 20", "first=41", "status = 'valid'", "41", "60"},
		{"empty values are no filter", "os=&tag=&status=&format=", "status = 'valid'", "1", "20"},
		{"a page of 1000", "first=1&last=1000", "status = 'valid'", "1", "1000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			s, err := parseSearch(q)
			if err != nil {
				t.Fatal(err)
			}
			got := s.cimiQuery()
			if got.Get("$filter") != c.filter || got.Get("$first") != c.first || got.Get("$last") != c.last || got.Get("$orderby") != "endorsed:desc" {
				t.Errorf("CIMI query %v, want $filter %q, $first %s, $last %s, $orderby endorsed:desc", got, c.filter, c.first, c.last)
			}
		})
	}
	// Whatever a value holds, it stays one string literal compared with
	// its attribute: the filter reads back as the same comparisons.
	for _, v := range hostile {
		t.Run("hostile "+v, func(t *testing.T) {
			q := url.Values{}
			params := []string{"identifier", "email", "os", "os-version", "arch", "tag"}
			for _, p := range params {
				q.Set(p, v)
			}
			s, err := parseSearch(q)
			if err != nil {
				t.Fatal(err)
			}
			e, err := cimi.ParseFilter(s.cimiQuery().Get("$filter"))
			if err != nil {
				t.Fatalf("%q does not parse: %v", s.cimiQuery().Get("$filter"), err)
			}
			l, ok := e.(*cimi.Logical)
			if !ok || l.Op != cimi.And || len(l.Terms) != len(params)+1 {
				t.Fatalf("%q reads back as %#v", s.cimiQuery().Get("$filter"), e)
			}
			attrs := []string{"identifier", "endorser/email", "os", "osVersion", "osArch", "tag"}
			for i, term := range l.Terms[:len(params)] {
				cmp, ok := term.(*cimi.Comparison)
				if !ok || cmp.Op != cimi.Eq || cmp.Value.Kind != cimi.String || cmp.Value.Str != v || strings.Join(cmp.Attr.Path, "/") != attrs[i] {
					t.Errorf("term %d reads back as %#v", i, term)
				}
			}
		})
	}
	for _, c := range []struct{ name, query, says string }{
		{"unknown parameter", "endorser=a%40b.org", `"endorser" is not a search parameter`},
		{"a CIMI parameter", "%24filter=os%3D%27x%27", `"$filter" is not a search parameter`},
		{"twice", "os=a&os=b", "given 2 times"},
		{"unknown status", "status=withdrawn", "The status must be one of valid, expired, deprecated, draft, all"},
		{"a status filter is no status", "status=valid%27%20or%20%27", "The status must be one of"},
		{"bad date", "created=yesterday", "created must be a date"},
		{"bad first", "first=0", "first must be a whole number from 1"},
		{"bad last", "last=ten", "last must be a whole number from 1"},
		{"last before first", "first=5&last=4", "last (4) must not be before first (5)"},
		{"page too large", "first=1&last=1001", "A page holds at most 1000 entries"},
		{"control character", "tag=a%00b", "The tag must be text of at most 1024 bytes without control characters"},
		{"tab", "email=a%09b", "The email must be text"},
		{"too long", "os=" + strings.Repeat("x", 1025), "The os must be text"},
		{"not UTF-8", "tag=%ff", "The tag must be text"},
		{"unknown format", "format=yaml", "The format must be json or xml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = parseSearch(q)
			if errs.CodeOf(err) != errs.Invalid || !strings.Contains(errs.MessageOf(err), c.says) {
				t.Errorf("error %v (%s), want invalid saying %q", err, errs.CodeOf(err), c.says)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ accept, want string }{
		{"", "json"},
		{"*/*", "json"},
		{"application/json", "json"},
		{"application/xml", "xml"},
		{"text/xml", "xml"},
		{"application/*", "json"},
		{"text/*", "xml"},
		// What Chromium and Firefox send for a page.
		{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7", "html"},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html"},
		{"application/json;q=0.5, application/xml", "xml"},
		{"application/xml;q=0.5, application/json;q=0.6", "json"},
		{"text/html;q=0.1, */*", "json"},
		{"image/png", "json"},
		{"application/json;q=0, text/html;q=0", "json"},
		{"application/xml;q=bad", "json"},
	} {
		if got := negotiate(c.accept); got != c.want {
			t.Errorf("Accept %q: %s, want %s", c.accept, got, c.want)
		}
	}
}

func TestMarketplaceRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// Before the marketplace runs: its owner is named.
	r := e.do(req{method: "GET", path: "/marketplace/metadata"}).wantError(t, "search without the marketplace", 503, errs.Unavailable)
	if !strings.Contains(r.body["message"].(string), "marketplace") {
		t.Errorf("the 503 does not name the marketplace: %s", r.raw)
	}
	m := startMarketplace(t, e)

	debian := testEntry{Identifier: idDebian, Email: "images@example.org", Endorsed: "2025-03-01T10:00:00Z",
		Valid: "2099-01-01T00:00:00Z", OS: "debian", OSVersion: "12", Arch: "x86_64", Tag: "debian-test", Title: "Debian 12"}
	debianNewer := debian
	debianNewer.Endorsed, debianNewer.Title = "2025-04-01T10:00:00Z", "Debian 12.1"
	debianOther := debian
	debianOther.Email, debianOther.Endorsed = "other@example.net", "2025-05-01T10:00:00Z"
	centos := testEntry{Identifier: idCentos, Email: "images@example.org", Endorsed: "2025-02-01T10:00:00Z",
		OS: "centos", OSVersion: "7", Arch: "x86_64", Title: "CentOS 7"}
	expired := testEntry{Identifier: "AAAAAAAAAAAAAAAAAAAAAAAAAAA", Email: "images@example.org", Endorsed: "2020-01-01T10:00:00Z",
		Valid: "2021-01-01T00:00:00Z", OS: "debian", Title: "old"}
	location := func(en testEntry) string {
		return "/marketplace/metadata/" + en.Identifier + "/" + en.Email + "/" + en.Endorsed
	}
	xmlReq := func(as string, en testEntry) req {
		return req{method: "POST", path: "/marketplace/metadata", as: as, body: en.render(), contentType: "application/xml"}
	}

	var debianID string
	t.Run("upload", func(t *testing.T) {
		e.do(xmlReq("", debian)).wantError(t, "anonymous upload", 401, errs.Unauthorized)
		r := e.do(xmlReq("alice", debian)).want(t, "upload", 201)
		if got := r.header.Get("Location"); got != location(debian) {
			t.Errorf("Location %q, want %q", got, location(debian))
		}
		debianID, _ = r.body["resource-id"].(string)
		if !strings.HasPrefix(debianID, "MachineImage/") || !strings.HasPrefix(r.header.Get("CIMI-Job-URI"), "http") {
			t.Errorf("upload answer: %s %v", r.raw, r.header)
		}
		res, _ := r.body["resource"].(map[string]any)
		if res["identifier"] != idDebian || res["xml"] != debian.render() {
			t.Errorf("the answer's resource is not the entry: %s", r.raw)
		}
		// The same entry again: the marketplace's refusal, as it gives it.
		r = e.do(xmlReq("alice", debian)).wantError(t, "upload again", 409, errs.Conflict)
		if !strings.Contains(r.body["message"].(string), "Entry refused (already-uploaded)") {
			t.Errorf("the refusal is not the marketplace's: %s", r.raw)
		}
		tampered := strings.Replace(debian.render(), "Debian 12", "tampered", 1)
		r = e.do(req{method: "POST", path: "/marketplace/metadata", as: "alice", body: tampered, contentType: "text/xml; charset=utf-8"}).
			wantError(t, "tampered", 400, errs.Invalid)
		if !strings.Contains(r.body["message"].(string), "Entry refused (signature-digest)") {
			t.Errorf("the refusal does not name the rule: %s", r.raw)
		}
		// Raw text/xml, a form's file, as the original marketplace took them.
		e.do(req{method: "POST", path: "/marketplace/metadata", as: "bob", body: debianOther.render(), contentType: "text/xml"}).want(t, "text/xml", 201)
		body, ct := multipartBody(t, map[string]string{"comment": "ignored"}, "file", []byte(debianNewer.render()))
		r = e.do(req{method: "POST", path: "/marketplace/metadata", as: "alice", body: body, contentType: ct}).want(t, "multipart", 201)
		if got := r.header.Get("Location"); got != location(debianNewer) {
			t.Errorf("Location %q, want %q", got, location(debianNewer))
		}
		e.do(xmlReq("alice", centos)).want(t, "centos", 201)
		e.do(xmlReq("alice", expired)).want(t, "expired", 201)
	})

	t.Run("upload refusals of the gateway", func(t *testing.T) {
		big := strings.Repeat("x", webui.MaxMetadataBytes+1)
		noFile, noFileCT := multipartBody(t, map[string]string{"other": "x"}, "", nil)
		bigFile, bigFileCT := multipartBody(t, nil, "file", []byte(big))
		// The file fits, the form around it does not.
		bigForm, bigFormCT := multipartBody(t, map[string]string{"padding": strings.Repeat("p", 80<<10)}, "file", []byte(big[:webui.MaxMetadataBytes-1000]))
		// An entry of 1 MiB passes the gateway's bound on uploads, not
		// the one on what the bus carries to the marketplace (CRLF become
		// \r\n in JSON: 4 bytes for 2); one of 900 KiB passes both.
		mib := centos.render() + strings.Repeat("\r\n", (webui.MaxMetadataBytes-len(centos.render()))/2)
		fits := centos.render() + strings.Repeat(" ", 900<<10)
		for _, c := range []struct {
			name   string
			r      req
			status int
			code   errs.Code
			says   string
		}{
			{"more than 1 MiB", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: big, contentType: "application/xml"},
				413, errs.TooLarge, "Entry refused (document-size)"},
			{"a file of more than 1 MiB", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: bigFile, contentType: bigFileCT},
				413, errs.TooLarge, "at most 1048576 bytes"},
			{"a form of more than 1 MiB and its overhead", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: bigForm, contentType: bigFormCT},
				413, errs.TooLarge, "document-size"},
			{"1 MiB", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: mib, contentType: "application/xml"},
				413, errs.TooLarge, "Entry refused (document-size): the entry takes"},
			{"900 KiB: the marketplace decides", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: fits, contentType: "application/xml"},
				409, errs.Conflict, "already-uploaded"},
			{"JSON", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: `{"metadata": "x"}`},
				415, errs.UnsupportedMediaType, "Content-Type: application/xml"},
			{"no content type", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: "<x/>", contentType: "-"},
				415, errs.UnsupportedMediaType, "multipart/form-data"},
			{"a form without the file", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: noFile, contentType: noFileCT},
				400, errs.Invalid, `no field "file"`},
			{"empty", req{method: "POST", path: "/marketplace/metadata", as: "alice", contentType: "application/xml"},
				400, errs.Invalid, "holds no entry"},
			{"not UTF-8", req{method: "POST", path: "/marketplace/metadata", as: "alice", body: "<entry>\xff</entry>", contentType: "application/xml"},
				400, errs.Invalid, "not UTF-8"},
			{"anonymous, before reading", req{method: "POST", path: "/marketplace/metadata", body: big, contentType: "application/xml"},
				401, errs.Unauthorized, "Log in"},
			{"PUT", req{method: "PUT", path: "/marketplace/metadata", as: "alice", body: "x", contentType: "application/xml"},
				405, errs.MethodNotAllowed, "GET, POST"},
		} {
			t.Run(c.name, func(t *testing.T) {
				if c.r.contentType == "-" {
					c.r.contentType = ""
					c.r.header = map[string]string{"Content-Type": ""}
				}
				r := e.do(c.r).wantError(t, c.name, c.status, c.code)
				if !strings.Contains(r.body["message"].(string), c.says) {
					t.Errorf("message %q, want it to say %q", r.body["message"], c.says)
				}
			})
		}
	})

	t.Run("a form from another site is refused", func(t *testing.T) {
		body, ct := multipartBody(t, nil, "file", []byte(centos.render()))
		for _, origin := range []string{"http://evil.example", ""} {
			hr, err := http.NewRequest("POST", e.url+"/marketplace/metadata", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			hr.Header.Set("Content-Type", ct)
			if origin != "" {
				hr.Header.Set("Origin", origin)
			}
			hr.AddCookie(&http.Cookie{Name: "stratus_session", Value: e.token("alice")})
			send(t, hr).wantError(t, "cross-site form from "+origin, 403, errs.Forbidden)
		}
		// From the site's own page, the form is the person's.
		hr, err := http.NewRequest("POST", e.url+"/marketplace/metadata", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Content-Type", ct)
		hr.Header.Set("Origin", e.url)
		hr.AddCookie(&http.Cookie{Name: "stratus_session", Value: e.token("alice")})
		send(t, hr).wantError(t, "same-site form, an entry stored already", 409, errs.Conflict)
	})

	t.Run("one entry", func(t *testing.T) {
		for _, c := range []struct {
			name    string
			path    string
			as      string
			accept  string
			status  int
			want    testEntry // the entry answered when 200
			xml     bool
			noEntry bool
		}{
			{"XML by Accept, anonymous", location(debian), "", "application/xml", 200, debian, true, false},
			{"XML by format", location(debian) + "?format=xml", "bob", "application/json", 200, debian, true, false},
			{"JSON by default", location(debian), "", "", 200, debian, false, false},
			{"JSON by format", location(debian) + "?format=json", "", "application/xml", 200, debian, false, false},
			{"newest of an endorser", "/marketplace/metadata/" + idDebian + "/images@example.org", "", "", 200, debianNewer, false, false},
			{"newest of anyone", "/marketplace/metadata/" + idDebian, "", "application/xml", 200, debianOther, true, false},
			{"escaped segments", "/marketplace/metadata/" + idDebian + "/images%40example.org/2025-03-01T10%3A00%3A00Z?format=xml", "", "", 200, debian, true, false},
			{"trailing slash", "/marketplace/metadata/" + idDebian + "/images@example.org/", "", "application/xml", 200, debianNewer, true, false},
			{"expired is not valid", "/marketplace/metadata/" + expired.Identifier, "", "", 404, testEntry{}, false, true},
			{"expired with status=expired", "/marketplace/metadata/" + expired.Identifier + "?status=expired", "", "", 200, expired, false, false},
			{"expired with status=all", "/marketplace/metadata/" + expired.Identifier + "?status=all&format=xml", "", "", 200, expired, true, false},
			{"unknown endorser", "/marketplace/metadata/" + idDebian + "/nobody@example.org", "", "", 404, testEntry{}, false, true},
			{"hostile e-mail", "/marketplace/metadata/" + idDebian + "/" + url.PathEscape("x' or identifier != '"), "", "", 404, testEntry{}, false, true},
			{"unknown parameter", location(debian) + "?first=1", "", "", 400, testEntry{}, false, true},
			{"bad status", location(debian) + "?status=old", "", "", 400, testEntry{}, false, true},
			{"control character", "/marketplace/metadata/" + idDebian + "/a%0Ab", "", "", 400, testEntry{}, false, true},
			{"too deep", location(debian) + "/more/segments", "", "", 404, testEntry{}, false, true},
			{"not an action", location(debian) + "/polish", "", "", 404, testEntry{}, false, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				rq := req{method: "GET", path: c.path, as: c.as}
				if c.accept != "" {
					rq.header = map[string]string{"Accept": c.accept}
				}
				r := e.do(rq)
				if c.noEntry {
					r.want(t, c.name, c.status)
					if r.body["code"] == nil {
						t.Errorf("not a CIMI error: %s", r.raw)
					}
					return
				}
				r.want(t, c.name, 200)
				if c.xml {
					if ct := r.header.Get("Content-Type"); ct != "application/xml; charset=utf-8" {
						t.Errorf("Content-Type %q", ct)
					}
					if string(r.raw) != c.want.render() {
						t.Errorf("XML answer is not the entry byte for byte:\n%q\nwant\n%q", r.raw, c.want.render())
					}
					return
				}
				if r.body["identifier"] != c.want.Identifier || r.body["endorsed"] != c.want.Endorsed || r.body["xml"] != c.want.render() {
					t.Errorf("JSON answer %s, want the entry of %s", r.raw, c.want.Endorsed)
				}
			})
		}
		// A browser goes to the web UI's page of the entry.
		r := e.do(req{method: "GET", path: location(debian), header: map[string]string{
			"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}}).want(t, "browser", 303)
		if got := r.header.Get("Location"); got != "/webui/"+debianID {
			t.Errorf("a browser is sent to %q, want /webui/%s", got, debianID)
		}
		// HEAD says how long the XML is.
		r = e.do(req{method: "HEAD", path: location(debian) + "?format=xml"}).want(t, "HEAD", 200)
		if r.header.Get("Content-Length") != fmt.Sprint(len(debian.render())) {
			t.Errorf("HEAD Content-Length %q, want %d", r.header.Get("Content-Length"), len(debian.render()))
		}
		e.do(req{method: "DELETE", path: location(debian), as: "admin"}).wantError(t, "DELETE", 405, errs.MethodNotAllowed)
		e.do(req{method: "GET", path: location(debian) + "/deprecate"}).wantError(t, "GET deprecate", 405, errs.MethodNotAllowed)
		// What the marketplace was asked last: the three, signed entries.
		e.do(req{method: "GET", path: location(debian) + "?status=all"}).want(t, "status all", 200)
		if got, want := m.lastQuery(), "identifier = '"+idDebian+"' and endorser/email = 'images@example.org' and endorsed = '2025-03-01T10:00:00Z' and draft = false $orderby=endorsed:desc"; got != want {
			t.Errorf("query sent:\n%s\nwant\n%s", got, want)
		}
	})

	// search returns the endorsed dates of a search's JSON answer, and its
	// count.
	search := func(t *testing.T, query string) ([]string, float64) {
		t.Helper()
		r := e.do(req{method: "GET", path: "/marketplace/metadata?" + query}).want(t, "search "+query, 200)
		list, ok := r.body["machineImages"].([]any)
		if !ok {
			t.Fatalf("search %s: no machineImages list: %s", query, r.raw)
		}
		var dates []string
		for _, d := range list {
			dates = append(dates, d.(map[string]any)["endorsed"].(string))
		}
		count, _ := r.body["count"].(float64)
		return dates, count
	}

	t.Run("search", func(t *testing.T) {
		for _, c := range []struct {
			query string
			want  []string // endorsed dates, in the order answered
			count float64
		}{
			{"", []string{"2025-05-01T10:00:00Z", "2025-04-01T10:00:00Z", "2025-03-01T10:00:00Z", "2025-02-01T10:00:00Z"}, 4},
			{"email=images%40example.org", []string{"2025-04-01T10:00:00Z", "2025-03-01T10:00:00Z", "2025-02-01T10:00:00Z"}, 3},
			{"identifier=" + idCentos, []string{"2025-02-01T10:00:00Z"}, 1},
			{"os=debian&os-version=12&arch=x86_64", []string{"2025-05-01T10:00:00Z", "2025-04-01T10:00:00Z", "2025-03-01T10:00:00Z"}, 3},
			{"tag=debian-test&email=other%40example.net", []string{"2025-05-01T10:00:00Z"}, 1},
			{"created=2025-04-01", []string{"2025-05-01T10:00:00Z", "2025-04-01T10:00:00Z"}, 2},
			{"created=2025-04-01T10:00:01Z", []string{"2025-05-01T10:00:00Z"}, 1},
			{"status=expired", []string{"2020-01-01T10:00:00Z"}, 1},
			{"status=all&os=debian", []string{"2025-05-01T10:00:00Z", "2025-04-01T10:00:00Z", "2025-03-01T10:00:00Z", "2020-01-01T10:00:00Z"}, 4},
			{"first=2&last=3", []string{"2025-04-01T10:00:00Z", "2025-03-01T10:00:00Z"}, 4},
			{"first=9", nil, 4},
			{"email=" + url.QueryEscape("images@example.org' or os != '"), nil, 0},
			{"tag=" + url.QueryEscape("x') or (draft = false"), nil, 0},
		} {
			dates, count := search(t, c.query)
			if !slices.Equal(dates, c.want) || count != c.count {
				t.Errorf("search %q: %v (count %v), want %v (count %v)", c.query, dates, count, c.want, c.count)
			}
		}
		// The hostile value went as one literal.
		search(t, "tag="+url.QueryEscape("x' or tag != '"))
		if got, want := m.lastQuery(), `tag = 'x'' or tag != ''' and status = 'valid' $orderby=endorsed:desc`; got != want {
			t.Errorf("query sent:\n%s\nwant\n%s", got, want)
		}
		e.do(req{method: "GET", path: "/marketplace/metadata?status=gone"}).wantError(t, "bad status", 400, errs.Invalid)
		e.do(req{method: "GET", path: "/marketplace/metadata?%zz"}).wantError(t, "unreadable query", 400, errs.Invalid)

		// XML: one <metadata> holding every entry's XML, declarations
		// left out so that the whole is one document.
		for _, rq := range []req{
			{method: "GET", path: "/marketplace/metadata?os=debian", header: map[string]string{"Accept": "application/xml"}},
			{method: "GET", path: "/marketplace/metadata?os=debian&format=xml"},
		} {
			r := e.do(rq).want(t, "XML search", 200)
			if ct := r.header.Get("Content-Type"); ct != "application/xml; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			var doc struct {
				XMLName xml.Name    `xml:"metadata"`
				Entries []testEntry `xml:"entry"`
			}
			if err := xml.Unmarshal(r.raw, &doc); err != nil {
				t.Fatalf("the XML answer is not one document: %v\n%s", err, r.raw)
			}
			var dates []string
			for _, en := range doc.Entries {
				dates = append(dates, en.Endorsed)
			}
			if want := []string{"2025-05-01T10:00:00Z", "2025-04-01T10:00:00Z", "2025-03-01T10:00:00Z"}; !slices.Equal(dates, want) {
				t.Errorf("XML search: entries %v, want %v", dates, want)
			}
			if !bytes.Contains(r.raw, []byte("<!-- <signed> & \u2028 été -->\r\n<entry>")) {
				t.Errorf("the entries' text is not kept:\n%s", r.raw)
			}
		}
		// A browser goes to the web UI's catalogue with the same search.
		r := e.do(req{method: "GET", path: "/marketplace/metadata?email=a%40b.org&tag=t&status=all&arch=x86_64&created=2025-01-02",
			header: map[string]string{"Accept": "text/html"}}).want(t, "browser search", 303)
		loc, err := url.Parse(r.header.Get("Location"))
		if err != nil || loc.Path != "/webui/MachineImage" {
			t.Fatalf("browser sent to %q", r.header.Get("Location"))
		}
		q := loc.Query()
		if q.Get("email") != "a@b.org" || q.Get("tag") != "t" || !q.Has("status") || q.Get("status") != "" ||
			q.Get("$filter") != "osArch = 'x86_64' and endorsed >= 2025-01-02T00:00:00Z" {
			t.Errorf("catalogue query %v", q)
		}
	})

	t.Run("deprecate", func(t *testing.T) {
		dep := location(debian) + "/deprecate"
		reason := `{"reason": "replaced by 12.1"}`
		e.do(req{method: "POST", path: dep, body: reason}).wantError(t, "anonymous", 401, errs.Unauthorized)
		r := e.do(req{method: "POST", path: dep, as: "bob", body: reason}).wantError(t, "not the uploader", 403, errs.Forbidden)
		if !strings.Contains(r.body["message"].(string), "Only the uploader") {
			t.Errorf("the refusal is not the marketplace's: %s", r.raw)
		}
		e.do(req{method: "POST", path: dep, as: "alice"}).wantError(t, "no reason", 400, errs.Invalid)
		e.do(req{method: "POST", path: dep, as: "alice", body: "[1]"}).wantError(t, "not an object", 400, errs.Invalid)
		e.do(req{method: "POST", path: dep, as: "alice", body: reason, contentType: "text/plain"}).wantError(t, "text", 415, errs.UnsupportedMediaType)
		e.do(req{method: "POST", path: "/marketplace/metadata/" + idDebian + "/images@example.org/2000-01-01T00:00:00Z/deprecate", as: "alice", body: reason}).
			wantError(t, "unknown entry", 404, errs.NotFound)
		r = e.do(req{method: "POST", path: dep, as: "alice", body: reason}).want(t, "deprecate", 200)
		if r.body["deprecated"] != "replaced by 12.1" || r.body["status"] != "deprecated" || r.body["identifier"] != idDebian {
			t.Errorf("deprecate answered %s", r.raw)
		}
		r = e.do(req{method: "POST", path: dep, as: "admin", body: `{"properties": {"reason": "again"}}`}).wantError(t, "twice", 409, errs.Conflict)
		if !strings.Contains(r.body["message"].(string), "replaced by 12.1") {
			t.Errorf("the second deprecation does not quote the first: %s", r.raw)
		}
		// A form, as the original marketplace's page posted it.
		r = e.do(req{method: "POST", path: location(centos) + "/deprecate", as: "admin", body: url.Values{"reason": {"end of life"}}.Encode(),
			contentType: "application/x-www-form-urlencoded"}).want(t, "form", 200)
		if r.body["deprecated"] != "end of life" {
			t.Errorf("deprecate by form answered %s", r.raw)
		}
		// A form from another site is refused when the browser's cookie
		// would make it the person's.
		hr, err := http.NewRequest("POST", e.url+location(debianNewer)+"/deprecate", strings.NewReader("reason=x"))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		hr.Header.Set("Origin", "http://evil.example")
		hr.AddCookie(&http.Cookie{Name: "stratus_session", Value: e.token("alice")})
		send(t, hr).wantError(t, "cross-site deprecate", 403, errs.Forbidden)

		dates, _ := search(t, "email=images%40example.org")
		if want := []string{"2025-04-01T10:00:00Z"}; !slices.Equal(dates, want) {
			t.Errorf("valid entries after deprecation: %v, want %v", dates, want)
		}
		dates, _ = search(t, "status=deprecated")
		if want := []string{"2025-03-01T10:00:00Z", "2025-02-01T10:00:00Z"}; !slices.Equal(dates, want) {
			t.Errorf("deprecated entries: %v, want %v", dates, want)
		}
		e.do(req{method: "GET", path: location(debian)}).wantError(t, "a deprecated entry is not valid", 404, errs.NotFound)
		e.do(req{method: "GET", path: location(debian) + "?status=deprecated"}).want(t, "status=deprecated", 200)
	})

	t.Run("the web UI's upload form", func(t *testing.T) {
		form := func(en string) (string, string) {
			return multipartBody(t, map[string]string{"op": "add"}, "file", []byte(en))
		}
		post := func(body, ct string) response {
			hr, err := http.NewRequest("POST", e.url+"/webui/MachineImage", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			hr.Header.Set("Content-Type", ct)
			hr.Header.Set("Origin", e.url)
			hr.AddCookie(&http.Cookie{Name: "stratus_session", Value: e.token("bob")})
			return send(t, hr)
		}
		fresh := centos
		fresh.Endorsed = "2025-06-01T10:00:00Z"
		r := post(form(fresh.render())).want(t, "upload form", 303)
		page := r.header.Get("Location")
		if !strings.HasPrefix(page, "/webui/MachineImage/") {
			t.Fatalf("the upload led to %q", page)
		}
		r = e.do(req{method: "GET", path: page, as: "bob"}).want(t, "entry page", 200)
		for _, want := range []string{idCentos, "CentOS 7", `href="` + location(fresh) + `?format=xml&amp;status=all"`,
			`href="/webui/Machine?image=` + idCentos + `&amp;op=add"`, `id="deprecate-form"`} {
			if !strings.Contains(string(r.raw), want) {
				t.Errorf("the entry page lacks %q", want)
			}
		}
		r = post(form(strings.Replace(fresh.render(), "CentOS", "tampered", 1))).want(t, "tampered", 400)
		if !strings.Contains(string(r.raw), "Entry refused (signature-digest)") || !strings.Contains(string(r.raw), `id="create-file"`) {
			t.Errorf("the form does not show the refusal:\n%s", r.raw)
		}
	})
}

// FuzzParseSearch reads arbitrary query strings as searches: a search
// either is refused as invalid, or its filter reads back as one
// comparison per parameter given, each holding the parameter's value
// exactly, and a page of at most maxSearchPage entries. Accept headers
// never make negotiate answer anything but the three formats.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		"", "os=debian&tag=x", "email=a%27%20or%20%27b&status=all", "created=2025-01-02&first=3&last=4",
		"identifier=%5C%27&os-version=%27%27&arch=%29", "status=draft&format=xml", "first=99999999999999999999",
		"tag=%E2%80%A8", "created=0000-01-01", "last=1001",
	} {
		f.Add(s, "text/html,application/xml;q=0.9,*/*;q=0.8")
	}
	f.Fuzz(func(t *testing.T, raw, accept string) {
		if f := negotiate(accept); f != "json" && f != "xml" && f != "html" {
			t.Fatalf("negotiate(%q) = %q", accept, f)
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		s, err := parseSearch(q)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("%q: %v is not invalid", raw, err)
			}
			return
		}
		cq := s.cimiQuery()
		if s.first < 1 || s.last < s.first || s.last-s.first >= maxSearchPage {
			t.Fatalf("%q: page %d–%d", raw, s.first, s.last)
		}
		e, err := cimi.ParseFilter(cq.Get("$filter"))
		if err != nil {
			t.Fatalf("%q: the filter %q does not parse: %v", raw, cq.Get("$filter"), err)
		}
		terms := []cimi.Expr{e}
		if l, ok := e.(*cimi.Logical); ok {
			if l.Op != cimi.And {
				t.Fatalf("%q: the filter %q is not a conjunction", raw, cq.Get("$filter"))
			}
			terms = l.Terms
		}
		var want []string
		for _, p := range searchParams {
			if v := q.Get(p.param); v != "" {
				want = append(want, strings.Join(p.attr, "/")+"="+v)
			}
		}
		var got []string
		for _, term := range terms {
			c, ok := term.(*cimi.Comparison)
			if !ok {
				t.Fatalf("%q: the filter %q nests", raw, cq.Get("$filter"))
			}
			if c.Value.Kind == cimi.String && c.Attr.Path[0] != "status" {
				got = append(got, strings.Join(c.Attr.Path, "/")+"="+c.Value.Str)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: the filter %q compares %q, want %q", raw, cq.Get("$filter"), got, want)
		}
	})
}
