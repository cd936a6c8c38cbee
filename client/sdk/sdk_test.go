package sdk

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
	"stratuslab.dev/client/internal/fakecloud"
)

func newCloud(t *testing.T) (*fakecloud.Cloud, *httptest.Server) {
	t.Helper()
	fc := fakecloud.New()
	srv := httptest.NewServer(fc)
	t.Cleanup(srv.Close)
	return fc, srv
}

func admin(srv *httptest.Server) *Client {
	return New(srv.URL, WithBasicAuth("admin", fakecloud.AdminPassword))
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"cloud.lal.stratuslab.eu", "https://cloud.lal.stratuslab.eu"},
		{" cloud.example.org:8443/ ", "https://cloud.example.org:8443"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/cimi/cloudEntryPoint", "http://127.0.0.1:8080"},
		{"https://c.org/cimi/", "https://c.org"},
		{"https://c.org/prefix/cimi", "https://c.org/prefix"},
		{"", ""},
	} {
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCloudEntryPoint(t *testing.T) {
	t.Parallel()
	_, srv := newCloud(t)
	ctx := context.Background()
	cep, err := New(srv.URL + "/").CloudEntryPoint(ctx)
	if err != nil || cep["id"] != "CloudEntryPoint" {
		t.Fatalf("CloudEntryPoint = %v, %v", cep, err)
	}
	c := New(srv.URL)
	for _, tc := range []struct{ name, want string }{
		{"serviceMessages", "ServiceMessage"},
		{"ServiceMessage", "ServiceMessage"},
		{"servicemessage", "ServiceMessage"},
		{"users", "User"},
	} {
		if got, err := c.Collection(ctx, tc.name); err != nil || got != tc.want {
			t.Errorf("Collection(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	_, err = c.Collection(ctx, "disks")
	if !IsCode(err, "not_found") || !strings.Contains(err.Error(), "ServiceMessage") {
		t.Errorf("unknown collection: %v", err)
	}
	if _, err := New("").CloudEntryPoint(ctx); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("no endpoint: %v", err)
	}
}

func TestCRUD(t *testing.T) {
	t.Parallel()
	_, srv := newCloud(t)
	ctx := context.Background()
	c := admin(srv)

	res, err := c.Create(ctx, "ServiceMessage", map[string]any{"name": "maintenance", "description": "Tuesday"})
	if err != nil || !res.Done || res.Status != 201 || !strings.HasPrefix(res.ID, "ServiceMessage/") || res.JobID != "" {
		t.Fatalf("Create = %+v, %v", res, err)
	}
	var doc map[string]any
	if err := c.Get(ctx, res.ID, &doc); err != nil || doc["description"] != "Tuesday" {
		t.Fatalf("Get = %v, %v", doc, err)
	}
	doc["description"] = "Wednesday"
	ed, err := c.Edit(ctx, res.ID, doc)
	if err != nil || !ed.Done || ed.ID != res.ID || !bytes.Contains(ed.Document, []byte("Wednesday")) {
		t.Fatalf("Edit = %+v, %v", ed, err)
	}
	var raw json.RawMessage
	if err := c.Get(ctx, res.ID, &raw); err != nil || !bytes.Contains(raw, []byte("Wednesday")) {
		t.Fatalf("Get raw = %s, %v", raw, err)
	}
	n, items, err := c.Query(ctx, "ServiceMessage", Query{Filter: "name='maintenance'", Select: []string{"name"}})
	if err != nil || n != 1 || len(items) != 1 || bytes.Contains(items[0], []byte("Wednesday")) {
		t.Fatalf("Query = %d %s, %v", n, items, err)
	}
	type msg struct{ ID, Name, Description string }
	n, typed, err := QueryAs[msg](ctx, c, "ServiceMessage", Query{})
	if err != nil || n != 1 || typed[0].Description != "Wednesday" || typed[0].ID != res.ID {
		t.Fatalf("QueryAs = %d %+v, %v", n, typed, err)
	}
	if del, err := c.Delete(ctx, res.ID); err != nil || !del.Done || del.ID != res.ID {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	err = c.Get(ctx, res.ID, &doc)
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "not_found" || !strings.Contains(e.Message, "does not exist") {
		t.Fatalf("Get after delete: %#v", err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	_, srv := newCloud(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		client *Client
		call   func(*Client) error
		status int
		code   string
	}{
		{"anonymous", New(srv.URL), func(c *Client) error { return c.Get(ctx, "User/admin", nil) }, 401, "unauthorized"},
		{"wrong password", New(srv.URL, WithBasicAuth("admin", "nope")), func(c *Client) error { return c.Get(ctx, "User/admin", nil) }, 401, "unauthorized"},
		{"bad token", New(srv.URL, WithToken("forged")), func(c *Client) error { _, err := c.Authn(ctx); return err }, 401, "unauthorized"},
		{"no collection", admin(srv), func(c *Client) error { _, _, err := c.Query(ctx, "Nothing", Query{}); return err }, 404, "not_found"},
		{"bad filter", admin(srv), func(c *Client) error { _, _, err := c.Query(ctx, "User", Query{Filter: "name"}); return err }, 400, "bad_filter"},
		{"conflict", admin(srv), func(c *Client) error {
			_, err := c.Create(ctx, "ServiceMessage", map[string]string{"name": "conflict"})
			return err
		}, 409, "conflict"},
		{"bad login", New(srv.URL), func(c *Client) error { _, err := c.Login(ctx, "admin", "nope"); return err }, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.call(tc.client)
			var e *Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code || e.Message == "" {
				t.Fatalf("got %#v, want %d %s", err, tc.status, tc.code)
			}
		})
	}
}

func TestDecodeErrorFromProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		body     string
		code     string
		contains string
	}{
		{502, "<html>Bad Gateway</html>", "unavailable", "Bad Gateway"},
		{429, "", "too_many_requests", "Too Many Requests"},
		{401, `{"status":401,"code":"unauthorized","message":"Log in."}`, "unauthorized", "Log in."},
		{400, "plain words", "invalid", "plain words"},
	} {
		e := decodeError(tc.status, []byte(tc.body))
		if e.Status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.contains) {
			t.Errorf("decodeError(%d, %q) = %+v", tc.status, tc.body, e)
		}
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	fc, srv := newCloud(t)
	ctx := context.Background()
	c := New(srv.URL)
	s, err := c.Login(ctx, "user", fakecloud.UserPassword)
	if err != nil || s.Identity != "user" || s.Token == "" || c.Token() != s.Token || s.Expires.IsZero() {
		t.Fatalf("Login = %+v, %v", s, err)
	}
	a, err := c.Authn(ctx)
	if err != nil || a.Identity != "user" || len(a.Roles) != 1 {
		t.Fatalf("Authn = %+v, %v", a, err)
	}
	again := New(srv.URL, WithToken(s.Token))
	if a, err := again.Authn(ctx); err != nil || a.Identity != "user" {
		t.Fatalf("Authn with saved token = %+v, %v", a, err)
	}
	if err := c.Logout(ctx); err != nil || c.Token() != "" {
		t.Fatalf("Logout: %v, token %q", err, c.Token())
	}
	if _, err := again.Authn(ctx); !IsCode(err, "unauthorized") {
		t.Fatalf("token after logout: %v", err)
	}
	reqs := strings.Join(fc.Requests(), "\n")
	if !strings.Contains(reqs, "POST /cimi/login") || !strings.Contains(reqs, "POST /cimi/logout") {
		t.Errorf("requests: %s", reqs)
	}
}

func TestQueryAll(t *testing.T) {
	t.Parallel()
	fc, srv := newCloud(t)
	for i := 1; i <= 25; i++ {
		fc.Put("User/"+strconv.Itoa(i), map[string]any{"name": "u" + strconv.Itoa(i), "n": i})
	}
	ctx := context.Background()
	c := admin(srv)
	for _, tc := range []struct {
		name  string
		q     Query
		page  int
		first int
		n     int
	}{
		{"all in pages of 10", Query{}, 10, 1, 25},
		{"exact pages", Query{}, 5, 1, 25},
		{"one big page", Query{}, 0, 1, 25},
		{"a window", Query{First: 5, Last: 12}, 3, 5, 8},
		{"first only", Query{First: 20}, 4, 20, 6},
		{"filter", Query{Filter: "name='u7'"}, 10, 7, 1},
	} {
		var got []int
		for raw, err := range c.QueryAll(ctx, "User", tc.q, tc.page) {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var d struct{ N int }
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			got = append(got, d.N)
		}
		if len(got) != tc.n || got[0] != tc.first {
			t.Errorf("%s: got %v", tc.name, got)
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1]+1 {
				t.Errorf("%s: not consecutive: %v", tc.name, got)
			}
		}
	}
	type user struct{ Name string }
	seen := 0
	for u, err := range All[user](ctx, c, "User", Query{}, 7) {
		if err != nil || u.Name == "" {
			t.Fatalf("All: %+v, %v", u, err)
		}
		if seen++; seen == 3 {
			break
		}
	}
	for _, err := range All[user](ctx, New(srv.URL), "User", Query{}, 7) {
		if !IsCode(err, "unauthorized") {
			t.Fatalf("All anonymous: %v", err)
		}
	}
}

func TestJobs(t *testing.T) {
	t.Parallel()
	_, srv := newCloud(t)
	ctx := context.Background()
	c := admin(srv)

	res, err := c.Create(ctx, "Machine", map[string]any{"name": "vm"})
	if err != nil || res.Done || res.Status != 202 || res.JobID == "" || res.ID == "" {
		t.Fatalf("Create = %+v, %v", res, err)
	}
	var progress []int
	j, err := c.WaitJob(ctx, res.JobID, func(j *Job) { progress = append(progress, j.Progress) })
	if err != nil || j.State != JobSuccess || j.TargetResource == nil || j.TargetResource.Href != res.ID {
		t.Fatalf("WaitJob = %+v, %v", j, err)
	}
	if len(progress) != 3 || progress[2] != 100 {
		t.Errorf("progress seen: %v", progress)
	}

	doomed, err := c.Create(ctx, "Machine", map[string]any{"name": "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	j, err = c.WaitJob(ctx, doomed.JobID)
	var je *JobError
	if !errors.As(err, &je) || j.State != JobFailed || !strings.Contains(err.Error(), "no host has room") {
		t.Fatalf("failed job: %+v, %v", j, err)
	}

	act, err := c.Action(ctx, res.ID, "stop", map[string]any{"force": true})
	if err != nil || act.Done || act.JobID == "" {
		t.Fatalf("Action = %+v, %v", act, err)
	}
	if _, err := c.Action(ctx, "Machine/999", "stop", nil); !IsCode(err, "not_found") {
		t.Fatalf("Action on nothing: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.WaitJob(cctx, act.JobID); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitJob cancelled: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, tc := range []struct{ endpoint, want string }{
		{"http://" + addr, "cannot reach http://" + addr + ": connection refused"},
		{"http://no-such-host.invalid", "cannot reach http://no-such-host.invalid: no such host"},
	} {
		_, err := New(tc.endpoint, WithTimeout(5*time.Second)).CloudEntryPoint(context.Background())
		var ne *NetError
		if !errors.As(err, &ne) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.endpoint, err)
		}
	}
}

// certPair writes a self-signed certificate and its key for cn as PEM files.
func certPair(t *testing.T, dir, cn string) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, cn+"-cert.pem"), filepath.Join(dir, cn+"-key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile, cert, key
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(fakecloud.New())
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	certFile, keyFile, cert, key := certPair(t, dir, "alice")
	proxy := filepath.Join(dir, "proxy.pem")
	c1, _ := os.ReadFile(certFile)
	k1, _ := os.ReadFile(keyFile)
	writeFile(t, proxy, append(c1, k1...))
	p12, err := pkcs12.Modern.Encode(key, cert, nil, "p12pass")
	if err != nil {
		t.Fatal(err)
	}
	p12File := filepath.Join(dir, "alice.p12")
	writeFile(t, p12File, p12)
	ctx := context.Background()

	for _, tc := range []struct {
		name    string
		opts    []Option
		openErr string
		callErr string
		who     string
	}{
		{"untrusted", nil, "", "not signed by an authority you trust", ""},
		{"ca file", []Option{WithCAFile(ca)}, "", "", ""},
		{"insecure", []Option{WithInsecure(true)}, "", "", ""},
		{"missing ca", []Option{WithCAFile(filepath.Join(dir, "none"))}, "cannot read the CA file", "", ""},
		{"not a ca", []Option{WithCAFile(keyFile)}, "holds no PEM certificate", "", ""},
		{"pem cert", []Option{WithCAFile(ca), WithCertificate(certFile, keyFile)}, "", "", "cert:alice"},
		{"proxy file", []Option{WithCAFile(ca), WithCertificate(proxy, "")}, "", "", "cert:alice"},
		{"p12", []Option{WithCAFile(ca), WithPKCS12(p12File, "p12pass")}, "", "", "cert:alice"},
		{"p12 wrong password", []Option{WithPKCS12(p12File, "nope")}, "wrong p12_password", "", ""},
		{"bad pem key", []Option{WithCertificate(certFile, ca)}, "cannot load the client certificate", "", ""},
	} {
		c, err := Open(srv.URL, tc.opts...)
		if tc.openErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.openErr) {
				t.Errorf("%s: Open error %v", tc.name, err)
			}
			if _, err := c.CloudEntryPoint(ctx); err == nil {
				t.Errorf("%s: a client with a bad option still works", tc.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err = c.CloudEntryPoint(ctx)
		if tc.callErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.callErr) {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.who != "" {
			if a, err := c.Authn(ctx); err != nil || a.Identity != tc.who {
				t.Errorf("%s: Authn = %+v, %v", tc.name, a, err)
			}
		}
	}
}

func TestTrace(t *testing.T) {
	t.Parallel()
	_, srv := newCloud(t)
	ctx := context.Background()
	for _, level := range []int{1, 2, 3} {
		var buf bytes.Buffer
		c := New(srv.URL, WithTrace(&buf, level), WithBasicAuth("admin", fakecloud.AdminPassword))
		if _, err := c.Create(ctx, "ServiceMessage", map[string]any{"name": "n", "password": "hidden-value"}); err != nil {
			t.Fatal(err)
		}
		s, err := c.Login(ctx, "admin", fakecloud.AdminPassword)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authn(ctx); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, secret := range []string{fakecloud.AdminPassword, "hidden-value", s.Token} {
			if strings.Contains(out, secret) {
				t.Errorf("level %d: the trace shows a secret %q:\n%s", level, secret, out)
			}
		}
		want := map[int][]string{
			1: {"> POST " + srv.URL + "/cimi/ServiceMessage", "< 201 Created"},
			2: {"> Authorization: ***", "< Location: /cimi/ServiceMessage/", "< Set-Cookie: ***"},
			3: {`"name":"n"`, `"password":"***"`, `"token":"***"`},
		}
		for l := 1; l <= 3; l++ {
			for _, w := range want[l] {
				if got := strings.Contains(out, w); got != (l <= level) {
					t.Errorf("level %d: %q shown = %v:\n%s", level, w, got, out)
				}
			}
		}
	}
}

func TestRedactCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxTraceBody+10)
	if got := Redact([]byte(long)); len(got) > maxTraceBody+40 || !strings.HasSuffix(got, "bytes)") {
		t.Errorf("long body not cut: %d", len(got))
	}
	if got := Redact([]byte(`[{"p12_password":"a","list":[{"secretKey":"b"}]}]`)); strings.Contains(got, `"a"`) || strings.Contains(got, `"b"`) || !strings.Contains(got, `"***"`) {
		t.Errorf("nested secrets shown: %s", got)
	}
}

func TestServerHTTPHandlerStillAnswers(t *testing.T) {
	t.Parallel()
	// A CIMI error without a JSON body from a bare handler still reads as an error.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	err := New(srv.URL).Get(context.Background(), "X/1", nil)
	if !IsCode(err, "not_found") {
		t.Fatalf("%v", err)
	}
}

func TestEditSelect(t *testing.T) {
	t.Parallel()
	_, srv := newCloud(t)
	ctx := context.Background()
	c := admin(srv)
	res, err := c.Create(ctx, "ServiceMessage", map[string]any{"name": "maintenance", "description": "Tuesday", "author": "ops"})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := c.EditSelect(ctx, res.ID, map[string]any{"name": "outage", "description": "ignored"}, "name", "author")
	if err != nil || !ed.Done || ed.ID != res.ID {
		t.Fatalf("EditSelect = %+v, %v", ed, err)
	}
	var doc map[string]any
	if err := c.Get(ctx, res.ID, &doc); err != nil || doc["name"] != "outage" || doc["description"] != "Tuesday" || doc["author"] != nil {
		t.Errorf("after EditSelect name,author: %v, %v", doc, err)
	}
	// No attributes: a whole edit.
	if _, err := c.EditSelect(ctx, res.ID, map[string]any{"name": "all"}); err != nil {
		t.Fatal(err)
	}
	var whole map[string]any
	if err := c.Get(ctx, res.ID, &whole); err != nil || whole["name"] != "all" || whole["description"] != nil {
		t.Errorf("after EditSelect without attributes: %v, %v", whole, err)
	}
}
