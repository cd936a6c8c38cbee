package fakecloud

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// do sends one request as user and returns the status, Location and body.
func do(t *testing.T, srv *httptest.Server, method, path, body string) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("user", UserPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	_ = json.Unmarshal(data, &doc)
	return resp.StatusCode, resp.Header.Get("Location"), doc
}

func TestMachineContract(t *testing.T) {
	t.Parallel()
	c := New()
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	for _, body := range []string{
		`{"image": "short"}`,
		`{"image": "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF", "type": "x1.huge"}`,
		`{"image": "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF", "cpu": 0}`,
		`{"image": "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF", "context": [{"key": "1X", "value": "v"}]}`,
		`{"image": "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF", "network": "dmz"}`,
		`{"image": {"url": "http://x/i.img"}}`,
		`{"image": "00000000-0000-4000-8000-000000000000"}`,
	} {
		if status, _, doc := do(t, srv, "POST", "/cimi/Machine", body); status != 400 || doc["code"] != "invalid" {
			t.Errorf("%s: %d %v", body, status, doc)
		}
	}
	if c.Machine(1) != nil {
		t.Fatal("a refused body allocated a machine")
	}

	status, loc, _ := do(t, srv, "POST", "/cimi/Machine", `{"image": "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF"}`)
	if status != 201 || !strings.HasPrefix(loc, "/cimi/Machine/") {
		t.Fatalf("create: %d %q", status, loc)
	}
	path := loc
	var states []string
	for range 5 {
		_, _, doc := do(t, srv, "GET", path, "")
		states = append(states, doc["detailedState"].(string)+"/"+doc["state"].(string))
		if doc["vmId"] != 1.0 || doc["ip"] != "192.0.2.2" || doc["name"] != "one-1" || doc["memory"] != 1572864.0 {
			t.Errorf("document: %v", doc)
		}
	}
	if want := "Pending/CREATING Prolog/CREATING Boot/STARTING Running/STARTED Running/STARTED"; strings.Join(states, " ") != want {
		t.Errorf("states %q, want %q", states, want)
	}
	if status, _, doc := do(t, srv, "POST", path+"/reboot", `{}`); status != 404 {
		t.Errorf("an unknown action: %d %v", status, doc)
	}
	if status, _, doc := do(t, srv, "POST", path+"/stop", `{"action": "http://schemas.dmtf.org/cimi/1/action/start"}`); status != 400 {
		t.Errorf("a mismatched action: %d %v", status, doc)
	}
	if status, _, _ := do(t, srv, "POST", path+"/stop", `{}`); status != 202 || c.Machine(1)["detailedState"] != "Stopped" {
		t.Errorf("stop: %d %v", status, c.Machine(1)["detailedState"])
	}
	if status, _, _ := do(t, srv, "DELETE", path, ""); status != 200 || c.Machine(1)["detailedState"] != "Done" || c.Machine(1)["state"] != "DELETED" {
		t.Errorf("kill: %d %v", status, c.Machine(1))
	}
	if status, _, _ := do(t, srv, "DELETE", path, ""); status != 409 {
		t.Errorf("kill twice: %d", status)
	}
	// vm IDs go on; vmId filters and orders as a number.
	for range 10 {
		do(t, srv, "POST", "/cimi/Machine", `{"image": "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF"}`)
	}
	_, _, page := do(t, srv, "GET", "/cimi/Machine?$filter=vmId%3E=9&$orderby=vmId:desc&$select=vmId", "")
	var ids []float64
	for _, m := range page["machines"].([]any) {
		ids = append(ids, m.(map[string]any)["vmId"].(float64))
	}
	if len(ids) != 3 || ids[0] != 11 || ids[2] != 9 {
		t.Errorf("vmId>=9 by vmId desc: %v", ids)
	}
	_, _, types := do(t, srv, "GET", "/cimi/MachineConfiguration", "")
	if types["count"] != 7.0 {
		t.Errorf("machine types: %v", types)
	}
}
