package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/session"
	"stratuslab.dev/platform/testkit"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// waitLimit bounds every wait; reaching it is a failure.
const waitLimit = 30 * time.Second

// eventually retries fn until it returns nil or waitLimit passes.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The service end to end on the bus: the administrator created at first
// start logs in, creates a user through the CIMI resource protocol, the
// user logs in and reads their record, and disabling the user revokes
// their sessions.
func TestService(t *testing.T) {
	t.Parallel()
	srv := testkit.NATS(t, "")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.Open(ctx, Name, config.Bootstrap{DataDir: dir, AdminListen: "127.0.0.1:0", LogLevel: "error"}, daemon.Options{Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- New(d).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		d.Close(context.Background())
	})
	b := d.Bus

	var password string
	eventually(t, "administrator password file", func() error {
		raw, err := os.ReadFile(filepath.Join(dir, PasswordFile))
		password = strings.TrimSpace(string(raw))
		return err
	})
	login := func(user, pass string) (*authnv1.LoginResponse, error) {
		var resp authnv1.LoginResponse
		err := b.Request(ctx, subject.SvcAuthnLogin, nil, &authnv1.LoginRequest{Method: authnv1.Method_METHOD_PASSWORD, Username: user, Password: pass}, &resp)
		return &resp, err
	}
	var adminLogin *authnv1.LoginResponse
	eventually(t, "admin login", func() error {
		adminLogin, err = login("admin", password)
		return err
	})
	var keys authnv1.KeysResponse
	if err := b.Request(ctx, subject.SvcAuthnKeys, nil, &authnv1.KeysRequest{}, &keys); err != nil {
		t.Fatal(err)
	}
	ks := session.KeySet{}
	for _, k := range keys.Keys {
		ks[k.Kid] = k.Ed25519
	}
	if c, err := session.Parse(adminLogin.Token, ks, time.Now()); err != nil || c.User != "admin" || len(c.Roles) != 1 || c.Roles[0] != "::ADMIN" {
		t.Fatalf("admin token %+v, %v", c, err)
	}

	admin := &commonv1.Actor{User: "admin", Roles: adminLogin.Roles}
	send := func(actor *commonv1.Actor, verb, id string, body any, selects ...string) {
		t.Helper()
		data, _ := json.Marshal(body)
		meta := &commonv1.Meta{CommandId: uuid.NewString(), Actor: actor}
		cmd := &cimiv1.ResourceCommand{Meta: meta, Kind: "User", Id: id, Body: data, Select: selects}
		if err := b.Send(ctx, subject.Command(Name, subject.ResourceUser, verb), meta, cmd); err != nil {
			t.Fatal(err)
		}
	}
	get := func(actor *commonv1.Actor, id string) (map[string]any, error) {
		var doc cimiv1.ResourceDocument
		if err := b.Request(ctx, subject.Query(Name, subject.OpCimiGet), actor, &cimiv1.GetResourceRequest{Actor: actor, Id: id}, &doc); err != nil {
			return nil, err
		}
		var m map[string]any
		return m, json.Unmarshal(doc.Json, &m)
	}

	send(admin, subject.VerbCimiCreate, "User/alice", map[string]any{"username": "alice", "first-name": "Alice", "last-name": "Liddell",
		"password": "alice password", "enabled": true, "roles": []string{"biomed"}})
	var aliceLogin *authnv1.LoginResponse
	eventually(t, "alice logs in", func() error {
		aliceLogin, err = login("alice", "alice password")
		return err
	})
	alice := &commonv1.Actor{User: "alice", Roles: aliceLogin.Roles}
	doc, err := get(alice, "User/alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["password"]; ok || doc["username"] != "alice" || doc["enabled"] != true {
		t.Errorf("alice reads her record as %v", doc)
	}
	if _, err := get(&commonv1.Actor{User: "bob"}, "User/alice"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("bob reads alice's record: %v", err)
	}

	// Disabling alice revokes her sessions at once and refuses her logins.
	send(admin, subject.VerbCimiEdit, "User/alice", map[string]any{"enabled": false}, "enabled")
	eventually(t, "alice's sessions revoked", func() error {
		var revs authnv1.RevocationsResponse
		if err := b.Request(ctx, subject.SvcAuthnRevocations, nil, &authnv1.RevocationsRequest{}, &revs); err != nil {
			return err
		}
		for _, u := range revs.Users {
			if u.User == "alice" && !u.NotBefore.AsTime().Before(time.UnixMilli(mustParse(t, aliceLogin.Token, ks).IssuedAt)) {
				return nil
			}
		}
		return fmt.Errorf("revocations in force: %v", &revs)
	})
	if _, err := login("alice", "alice password"); errs.CodeOf(err) != errs.Unauthorized {
		t.Errorf("disabled alice logs in: %v", err)
	}

	// Logout revokes the token everywhere.
	if err := b.Request(ctx, subject.SvcAuthnLogout, nil, &authnv1.LogoutRequest{Token: adminLogin.Token}, &authnv1.LogoutResponse{}); err != nil {
		t.Fatal(err)
	}
	var revs authnv1.RevocationsResponse
	if err := b.Request(ctx, subject.SvcAuthnRevocations, nil, &authnv1.RevocationsRequest{}, &revs); err != nil || len(revs.Sessions) != 1 {
		t.Errorf("revocations after logout: %v, %v", &revs, err)
	}
}

func mustParse(t *testing.T, token string, ks session.KeySet) session.Claims {
	t.Helper()
	c, err := session.Parse(token, ks, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
