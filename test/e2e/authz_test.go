package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/sdk"
)

// TestAuthorization probes every collection of the CloudEntryPoint as two
// ordinary users and as an anonymous caller: nobody reads, lists, edits or
// deletes what belongs to someone else, and anonymous callers see only
// what ::ANON may (the entry point and the service messages).
func TestAuthorization(t *testing.T) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")

	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	for _, u := range []string{"alice", "bob"} {
		create(ctx, t, admin, "User", map[string]any{
			"username": u, "password": u + "-secret-pw", "enabled": true,
			"first-name": u, "last-name": "Tester", "email": u + "@example.org",
		})
	}
	msg := create(ctx, t, admin, "ServiceMessage", map[string]any{"name": "Maintenance", "description": "Monday."})

	alice := login(ctx, t, base, "alice")
	bob := login(ctx, t, base, "bob")
	anon := sdk.New(base)

	// Alice leaves traces of her own: an edit of her record makes a Job
	// and audit Events owned by her.
	res, err := alice.Edit(ctx, "User/alice", map[string]any{
		"username": "alice", "first-name": "Alice", "last-name": "Tester", "email": "alice@example.net",
		"enabled": true, "roles": []string{},
	})
	if err != nil {
		t.Fatalf("alice edits her own record: %v", err)
	}
	if !res.Done {
		if _, err := alice.WaitJob(ctx, res.JobID); err != nil {
			t.Fatal(err)
		}
	}
	owned := map[string]bool{"User/alice": true}
	if res.JobID != "" {
		owned[res.JobID] = true
	}
	cep, err := admin.Entry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cep.Collections) < 5 {
		t.Fatalf("the entry point lists %d collections: %v", len(cep.Collections), cep.Collections)
	}
	eventually(ctx, t, "alice's audit trail", func() bool {
		_, docs, err := alice.Query(ctx, "Event", sdk.Query{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			owned[idOf(t, d)] = true
		}
		return len(docs) > 0
	})
	// Public: the service message and the machine types everyone chooses
	// from.
	public := func(id string) bool { return id == msg || strings.HasPrefix(id, "MachineConfiguration/") }
	// Everything alice can list is hers or public.
	for _, href := range cep.Collections {
		_, docs, err := alice.Query(ctx, href, sdk.Query{})
		if err != nil {
			t.Fatalf("alice lists %s: %v", href, err)
		}
		for _, d := range docs {
			if id := idOf(t, d); !public(id) && !strings.HasPrefix(id, "Job/") && !strings.HasPrefix(id, "Event/") && id != "User/alice" {
				t.Errorf("alice lists %s, which is not hers", id)
			}
		}
	}

	for _, who := range []struct {
		name string
		c    *sdk.Client
	}{{"bob", bob}, {"anonymous", anon}} {
		for _, href := range cep.Collections {
			_, docs, err := who.c.Query(ctx, href, sdk.Query{})
			if err != nil {
				t.Errorf("%s lists %s: %v", who.name, href, err)
				continue
			}
			for _, d := range docs {
				id := idOf(t, d)
				if owned[id] {
					t.Errorf("%s lists alice's %s", who.name, id)
				}
				if who.c == anon && !public(id) {
					t.Errorf("anonymous lists %s, which ::ANON may not see", id)
				}
			}
		}
		for id := range owned {
			var doc map[string]any
			if err := who.c.Get(ctx, id, &doc); !sdk.IsCode(err, "not_found") {
				t.Errorf("%s reads alice's %s: %v, want not_found", who.name, id, err)
			}
			if _, err := who.c.Edit(ctx, id, map[string]any{"name": "taken"}); !refused(err) {
				t.Errorf("%s edits alice's %s: %v, want a refusal", who.name, id, err)
			}
			if _, err := who.c.Delete(ctx, id); !refused(err) {
				t.Errorf("%s deletes alice's %s: %v, want a refusal", who.name, id, err)
			}
		}
		if _, err := who.c.Create(ctx, "ServiceMessage", map[string]any{"name": "spam"}); !refused(err) {
			t.Errorf("%s creates a ServiceMessage: %v, want a refusal", who.name, err)
		}
		if _, err := who.c.Create(ctx, "User", map[string]any{"username": "mallory", "first-name": "M", "last-name": "M"}); !refused(err) {
			t.Errorf("%s creates a User: %v, want a refusal", who.name, err)
		}
		if _, err := who.c.Edit(ctx, msg, map[string]any{"name": "defaced"}); !refused(err) {
			t.Errorf("%s edits the service message: %v, want a refusal", who.name, err)
		}
	}
	// A user may not raise their own roles.
	if _, err := bob.Edit(ctx, "User/bob", map[string]any{"username": "bob", "first-name": "bob", "last-name": "Tester",
		"enabled": true, "roles": []string{"::ADMIN"}}); !sdk.IsCode(err, "forbidden") {
		t.Errorf("bob makes himself an administrator: %v, want forbidden", err)
	}
	var m map[string]any
	if err := anon.Get(ctx, msg, &m); err != nil || m["name"] != "Maintenance" {
		t.Errorf("anonymous reads the service message: %v %v", m, err)
	}
	if _, err := anon.Authn(ctx); err != nil {
		t.Errorf("anonymous reads /cimi/authn: %v", err)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

// refused reports whether err is the cloud saying no: 401, 403, 404 or
// 405, never success and never a server error.
func refused(err error) bool {
	var e *sdk.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
		return true
	}
	return false
}

func create(ctx context.Context, t *testing.T, c *sdk.Client, kind string, body map[string]any) string {
	t.Helper()
	res, err := c.Create(ctx, kind, body)
	if err != nil {
		t.Fatalf("create %s: %v", kind, err)
	}
	if !res.Done {
		if _, err := c.WaitJob(ctx, res.JobID); err != nil {
			t.Fatalf("create %s: %v", kind, err)
		}
	}
	return res.ID
}

func login(ctx context.Context, t *testing.T, base, user string) *sdk.Client {
	t.Helper()
	c := sdk.New(base)
	if _, err := c.Login(ctx, user, user+"-secret-pw"); err != nil {
		t.Fatalf("%s logs in: %v", user, err)
	}
	return c
}

// waitAdmin waits until the gateway authenticates (it loads authn's keys
// shortly after start).
func waitAdmin(ctx context.Context, t *testing.T, c *sdk.Client) {
	t.Helper()
	eventually(ctx, t, "the administrator is authenticated", func() bool {
		a, err := c.Authn(ctx)
		return err == nil && a.Identity == "admin"
	})
}

func eventually(ctx context.Context, t *testing.T, what string, ok func() bool) {
	t.Helper()
	for ctx.Err() == nil {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func idOf(t *testing.T, doc json.RawMessage) string {
	t.Helper()
	var d struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	return d.ID
}
