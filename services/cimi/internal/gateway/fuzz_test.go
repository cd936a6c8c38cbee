package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzGateway sends arbitrary methods, paths, query strings, content types
// and bodies through the gateway, with a live backend behind it, as an
// administrator (who reaches the owner with every write) or anonymously.
// Nothing may answer a 5xx other than 503 or 504, and nothing may panic.
// The seed corpus is in testdata/fuzz/FuzzGateway.
func FuzzGateway(f *testing.F) {
	seeds := []struct {
		method      uint8
		path, query string
		ct          string
		body        string
		admin       bool
	}{
		{0, "/cimi/ServiceMessage", "$filter=name='x'&$orderby=name:desc&$first=1&$last=5&$select=name", "", "", false},
		{1, "/cimi/ServiceMessage", "", "application/json", `{"name":"a","description":"b"}`, true},
		{1, "/cimi/ServiceConfiguration", "", "application/json", `{"service":"cimi","write-wait":"1s"}`, true},
		{1, "/cimi/User", "", "application/json", `{"username":"bob","password":"x"}`, true},
		{2, "/cimi/ServiceMessage/x", "$select=name", "application/json", `{"name":1}`, true},
		{3, "/cimi/ServiceMessage/x", "", "", "", true},
		{1, "/cimi/ServiceMessage/x/start", "", "", `{"action":"stop"}`, true},
		{1, "/cimi/login", "", "application/x-www-form-urlencoded", "username=a&password=b&redirectURL=//x", false},
		{1, "/cimi/logout", "", "", "", true},
		{0, "/cimi/authn", "", "", "", false},
		{0, "/cimi/Job", "$filter=state='SUCCESS' or (progress>10 and created<2026-01-01T00:00:00Z)", "", "", true},
		{4, "/cimi/%2F..%2F", "%zz&$first=-1", "text/plain", "\x00\xff", false},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.ct, []byte(s.body), s.admin)
	}
	e := newEnv(f, envOptions{writeWait: 100 * time.Millisecond})
	admin := e.token("admin")
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	f.Fuzz(func(t *testing.T, method uint8, path, query, ct string, body []byte, asAdmin bool) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u, err := url.Parse(e.url + path)
		if err != nil || u.Host != strings.TrimPrefix(e.url, "http://") {
			return // not a request a client could send to us
		}
		u.RawQuery = query
		hr, err := http.NewRequest(methods[int(method)%len(methods)], u.String(), bytes.NewReader(body))
		if err != nil {
			return
		}
		if ct != "" {
			hr.Header.Set("Content-Type", ct)
		}
		// Logging out would revoke the administrator's token for every
		// later input.
		if asAdmin && !strings.Contains(u.Path, "logout") {
			hr.Header.Set("Authorization", "Bearer "+admin)
		}
		resp, err := client.Do(hr)
		if err != nil {
			return // the client refused to send it (bad header, ...)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != 503 && resp.StatusCode != 504 {
			t.Fatalf("%s %s (Content-Type %q, body %q): %d %s", hr.Method, u, ct, body, resp.StatusCode, raw)
		}
		// Remove what was created, or the growing collections make every
		// later query slower.
		if loc := resp.Header.Get("Location"); resp.StatusCode == 201 && hr.Method == "POST" && loc != "" {
			dr, err := http.NewRequest("DELETE", loc, nil)
			if err != nil {
				t.Fatal(err)
			}
			dr.Header.Set("Authorization", "Bearer "+admin)
			if resp, err := client.Do(dr); err == nil {
				resp.Body.Close()
			}
		}
	})
}
