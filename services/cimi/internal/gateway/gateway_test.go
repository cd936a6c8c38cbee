package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCloudEntryPoint(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	g := New(slog.New(slog.DiscardHandler), created, []Collection{{Attr: "serviceMessages", Href: "ServiceMessage"}}, nil)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	for _, path := range []string{"/cimi/cloudEntryPoint", "/cimi/", "/cimi"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var cep map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&cep); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		if v := resp.Header.Get("CIMI-Specification-Version"); v != SpecificationVersion {
			t.Errorf("%s: CIMI-Specification-Version = %q", path, v)
		}
		want := map[string]any{
			"id":              "CloudEntryPoint",
			"resourceURI":     "http://schemas.dmtf.org/cimi/1/CloudEntryPoint",
			"baseURI":         srv.URL + "/cimi/",
			"created":         "2026-11-21T10:00:00Z",
			"serviceMessages": map[string]any{"href": "ServiceMessage"},
		}
		for k, v := range want {
			if got, _ := json.Marshal(cep[k]); string(got) != mustJSON(t, v) {
				t.Errorf("%s: %s = %s, want %s", path, k, got, mustJSON(t, v))
			}
		}
	}
}

func TestUnknownPathIsCIMIError(t *testing.T) {
	t.Parallel()
	g := New(slog.New(slog.DiscardHandler), time.Now(), nil, nil)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/cimi/Nothing")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status  int
		Code    string
		Message string
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 404 || body.Status != 404 || body.Code != "not_found" || body.Message == "" {
		t.Errorf("got %d %+v", resp.StatusCode, body)
	}
	if resp.Header.Get("CIMI-Specification-Version") == "" {
		t.Error("no CIMI-Specification-Version header on an error")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
