package sdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

func TestMarketplaceURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"cloud.example.org", "https://cloud.example.org/marketplace"},
		{"https://cloud.example.org/", "https://cloud.example.org/marketplace"},
		{"https://marketplace.stratuslab.eu/marketplace", "https://marketplace.stratuslab.eu/marketplace"},
		{"http://127.0.0.1:8080/marketplace/metadata/", "http://127.0.0.1:8080/marketplace"},
		{"https://c.org/prefix/marketplace/", "https://c.org/prefix/marketplace"},
		{" ", ""},
	} {
		if got := MarketplaceURL(tc.in); got != tc.want {
			t.Errorf("MarketplaceURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestImageKeys(t *testing.T) {
	t.Parallel()
	k := ImageKey{Identifier: "Hqfgfdtl2xSO64ffzpfxXRIBylX", Email: "jane+mp@example.org", Endorsed: "2026-01-15T11:00:00Z"}
	if got := k.path(); got != "/metadata/Hqfgfdtl2xSO64ffzpfxXRIBylX/jane+mp@example.org/2026-01-15T11:00:00Z" {
		t.Errorf("path = %s", got)
	}
	for _, tc := range []struct {
		loc  string
		want ImageKey
	}{
		{"https://c.org/marketplace/metadata/" + k.String(), k},
		{"https://c.org/marketplace/metadata/Hqfgfdtl2xSO64ffzpfxXRIBylX", ImageKey{Identifier: k.Identifier}},
		{"https://c.org/marketplace/metadata/Hqfgfdtl2xSO64ffzpfxXRIBylX/jane%2Bmp@example.org", ImageKey{Identifier: k.Identifier, Email: k.Email}},
		{"https://c.org/elsewhere", ImageKey{}},
	} {
		if got := keyOf(tc.loc); got != tc.want {
			t.Errorf("keyOf(%q) = %+v, want %+v", tc.loc, got, tc.want)
		}
	}
}

func TestDecodeEntries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body  string
		count int
		ids   string
		ok    bool
	}{
		{`[{"identifier":"A"},{"identifier":"B"}]`, 2, "AB", true},
		{`{"count":57,"operations":[{"rel":"add","href":"x"}],"machineImages":[{"identifier":"A"}]}`, 57, "A", true},
		{`{"count":0}`, 0, "", true},
		{`{"count":"many","entries":[]}`, 0, "", false},
		{`<metadata/>`, 0, "", false},
	} {
		n, es, err := decodeEntries([]byte(tc.body))
		ids := ""
		for _, e := range es {
			ids += e.Identifier
		}
		if (err == nil) != tc.ok || n != tc.count || ids != tc.ids {
			t.Errorf("decodeEntries(%s) = %d %q %v", tc.body, n, ids, err)
		}
	}
}

// TestMarketplaceCredentials: the password goes to a Marketplace on the
// client's site, never to another.
func TestMarketplaceCredentials(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]string{} // server → Authorization
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name] = r.Header.Get("Authorization")
			mu.Unlock()
			if r.URL.Path != "/marketplace/metadata" || r.URL.Query().Get("os") != "debian" {
				http.Error(w, "wrong request "+r.URL.String(), http.StatusBadRequest)
				return
			}
			_, _ = w.Write([]byte(`{"count":0,"machineImages":[]}`))
		})
	}
	own, other := httptest.NewServer(handler("own")), httptest.NewServer(handler("other"))
	defer own.Close()
	defer other.Close()
	c := New(own.URL, WithBasicAuth("user", "secret"))
	for name, base := range map[string]string{"own": own.URL, "other": other.URL} {
		if _, _, err := c.Marketplace(base).Search(context.Background(), ImageQuery{OS: "debian"}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if !strings.HasPrefix(seen["own"], "Basic ") || seen["other"] != "" {
		t.Errorf("Authorization sent: %q", seen)
	}
	if !c.Marketplace(own.URL+"/marketplace").SendsCredentials() || c.Marketplace(other.URL).SendsCredentials() {
		t.Errorf("SendsCredentials is wrong")
	}
	var ne *NetError
	if _, _, err := c.Marketplace("http://127.0.0.1:1").Search(context.Background(), ImageQuery{}); !errors.As(err, &ne) || ne.Endpoint != "http://127.0.0.1:1" {
		t.Errorf("unreachable Marketplace: %v", err)
	}
}

// signedEntry makes a signed entry of an image of n bytes.
func signedEntry(t *testing.T, n int, tag string) (*metadata.Entry, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Jane"}, EmailAddresses: []string{"jane@example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	e, err := metadata.Build(metadata.BuildOptions{Email: "jane@example.org", OS: "debian", OSVersion: "12", OSArch: "x86_64", Tag: tag,
		Locations: []string{"https://example.org/i.img"}}, bytes.NewReader(bytes.Repeat([]byte{'x'}, n)))
	if err != nil {
		t.Fatal(err)
	}
	if err := metadata.Endorse(e, cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	doc, err := metadata.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := xmlsig.Sign(doc, key, []*x509.Certificate{cert}, xmlsig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e, signed
}

func TestMarketplaceRoundTrip(t *testing.T) {
	t.Parallel()
	fc, srv := newCloud(t)
	ctx := context.Background()
	user := New(srv.URL, WithBasicAuth("user", "user-secret")).Marketplace(srv.URL)
	e, doc := signedEntry(t, 1000, "test-tag")

	up, err := user.Upload(ctx, doc)
	want := ImageKey{Identifier: e.Identifier, Email: "jane@example.org", Endorsed: e.Endorsement.Created}
	if err != nil || up.Key != want || up.Location != srv.URL+"/marketplace/metadata/"+want.String() || !strings.HasPrefix(up.ID, "MachineImage/") {
		t.Fatalf("Upload = %+v, %v", up, err)
	}
	// Refusals are the Marketplace's: a stable code, and the rule broken
	// named in the message.
	if _, err := user.Upload(ctx, doc); !IsCode(err, "conflict") || !strings.HasPrefix(err.Error(), "Entry refused (already-uploaded): ") {
		t.Errorf("second upload: %v", err)
	}
	if _, err := user.Upload(ctx, bytes.Replace(doc, []byte("test-tag"), []byte("evil-tag"), 1)); !IsCode(err, "invalid") || !strings.HasPrefix(err.Error(), "Entry refused (signature-digest): ") {
		t.Errorf("tampered upload: %v", err)
	}
	anon := New(srv.URL).Marketplace(srv.URL)
	if _, err := anon.Upload(ctx, doc); !IsCode(err, "unauthorized") {
		t.Errorf("anonymous upload: %v", err)
	}

	got, err := anon.Get(ctx, ImageKey{Identifier: e.Identifier}, "")
	if err != nil || got.Key() != want || got.Status != "valid" || got.Tag != "test-tag" || got.Bytes != 1000 || got.OSArch != "x86_64" {
		t.Errorf("Get = %+v, %v", got, err)
	}
	if xml, err := anon.GetXML(ctx, want, ""); err != nil || !bytes.Equal(xml, doc) {
		t.Errorf("GetXML: %v", err)
	}
	if n, es, err := anon.Search(ctx, ImageQuery{Tag: "test-tag", Email: "jane@example.org"}); err != nil || n != 1 || len(es) != 1 || es[0].Identifier != e.Identifier {
		t.Errorf("Search = %d %v %v", n, es, err)
	}
	if n, _, err := anon.Search(ctx, ImageQuery{OS: "centos"}); err != nil || n != 0 {
		t.Errorf("Search centos = %d %v", n, err)
	}

	if _, err := anon.Deprecate(ctx, want, "old"); !IsCode(err, "unauthorized") {
		t.Errorf("anonymous deprecate: %v", err)
	}
	if _, err := user.Deprecate(ctx, ImageKey{Identifier: e.Identifier}, "old"); err == nil {
		t.Errorf("deprecate without email and date")
	}
	dep, err := user.Deprecate(ctx, want, "old")
	if err != nil || dep.Status != "deprecated" || dep.Deprecated != "old" || dep.DeprecatedBy != "user" {
		t.Errorf("Deprecate = %+v, %v", dep, err)
	}
	if _, err := anon.Get(ctx, ImageKey{Identifier: e.Identifier}, ""); !IsCode(err, "not_found") {
		t.Errorf("a deprecated entry is valid: %v", err)
	}
	if got, err := anon.Get(ctx, ImageKey{Identifier: e.Identifier}, "deprecated"); err != nil || got.Status != "deprecated" {
		t.Errorf("Get deprecated = %+v, %v", got, err)
	}
	if reqs := fc.Requests(); !strings.HasPrefix(reqs[len(reqs)-1], "GET /marketplace/metadata/"+e.Identifier) {
		t.Errorf("last request %q", reqs[len(reqs)-1])
	}
}
