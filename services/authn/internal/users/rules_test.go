package users

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/authn/internal/authntest"
	"stratuslab.dev/services/authn/internal/revocation"
)

var (
	admin = cimi.Identity{User: "admin", Roles: []string{cimi.RoleAdmin}}
	alice = cimi.Identity{User: "alice"}
)

// fixture is a User collection holding an administrator and alice, with
// rules whose revocations go to a real list.
type fixture struct {
	env   *authntest.Env
	rules *Rules
	revs  *revocation.List
	clock *authntest.Clock
	hash  string // a bcrypt hash of "old secret" (cheap cost: fixtures only)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := authntest.New(t)
	clock := authntest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	revs := revocation.New(env.Collection(revocation.Kind), env.Bus, clock.Now)
	f := &fixture{env: env, revs: revs, clock: clock,
		rules: NewRules(env.Collection(Kind), revs, func() time.Duration { return time.Hour }, clock.Now)}
	h, err := bcrypt.GenerateFromPassword([]byte("old secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f.hash = string(h)
	f.put(t, map[string]any{"username": "admin", "enabled": true, "roles": []any{cimi.RoleAdmin}, "password": f.hash})
	f.put(t, map[string]any{"username": "alice", "first-name": "Alice", "last-name": "Liddell", "enabled": true,
		"roles": []any{"::USER", "biomed"}, "password": f.hash, "email": "alice@example.org"})
	return f
}

func (f *fixture) put(t *testing.T, doc map[string]any) {
	t.Helper()
	id := ID(doc["username"].(string))
	doc["id"] = id
	doc["acl"] = ACL(doc["username"].(string))
	body, _ := json.Marshal(doc)
	if _, err := f.rules.users.Create(context.Background(), id, body); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) get(t *testing.T, name string) map[string]any {
	t.Helper()
	d, err := f.rules.users.Get(context.Background(), ID(name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(d.Body, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestNew(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	valid := func() map[string]any {
		return map[string]any{"username": "bob", "first-name": "Bob", "last-name": "Builder"}
	}
	with := func(k string, v any) map[string]any { m := valid(); m[k] = v; return m }
	tests := []struct {
		name  string
		id    string
		body  map[string]any
		code  errs.Code
		check func(t *testing.T, doc map[string]any)
	}{
		{"minimal, disabled by default", "User/bob", valid(), "", func(t *testing.T, doc map[string]any) {
			if doc["enabled"] != false {
				t.Errorf("enabled = %v", doc["enabled"])
			}
		}},
		{"clear password hashed at cost 12", "User/bob", with("password", "s3cret pass"), "", func(t *testing.T, doc map[string]any) {
			h, _ := doc["password"].(string)
			if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != 12 {
				t.Fatalf("password stored as %q (cost %d, %v)", h, cost, err)
			}
			if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret pass")) != nil {
				t.Error("hash does not match the password")
			}
		}},
		{"hash kept", "User/bob", with("password", f.hash), "", func(t *testing.T, doc map[string]any) {
			if doc["password"] != f.hash {
				t.Errorf("hash replaced by %v", doc["password"])
			}
		}},
		{"acl and revocation time ignored", "User/bob", with("acl", map[string]any{"owner": map[string]any{"principal": "bob", "type": "USER"}}), "", func(t *testing.T, doc map[string]any) {
			if _, ok := doc["acl"]; ok {
				t.Error("the body chose the acl")
			}
		}},
		{"DN trimmed, roles deduplicated", "User/bob", with("altnames", map[string]any{"x500dn": " CN=Bob,O=Example "}), "", func(t *testing.T, doc map[string]any) {
			if dnOf(doc) != "CN=Bob,O=Example" {
				t.Errorf("dn %q", dnOf(doc))
			}
		}},
		{"VO pseudo-user", "User/vo:vo.lal.in2p3.fr", map[string]any{"username": "vo:vo.lal.in2p3.fr", "first-name": "LAL", "last-name": "Virtual Organization", "enabled": true}, "", nil},
		{"e-mail address as username", "User/jane.doe@example.org", map[string]any{"username": "jane.doe@example.org", "first-name": "J", "last-name": "D"}, "", nil},
		{"no last name", "User/bob", map[string]any{"username": "bob", "first-name": "Bob"}, errs.Invalid, nil},
		{"bad username", "User/bo b", map[string]any{"username": "bo b", "first-name": "B", "last-name": "B"}, errs.Invalid, nil},
		{"empty VO", "User/vo:", map[string]any{"username": "vo:", "first-name": "B", "last-name": "B"}, errs.Invalid, nil},
		{"username differs from id", "User/carol", valid(), errs.Invalid, nil},
		{"enabled not a boolean", "User/bob", with("enabled", "yes"), errs.Invalid, nil},
		{"roles not a list", "User/bob", with("roles", "::ADMIN"), errs.Invalid, nil},
		{"password too long", "User/bob", with("password", string(make([]byte, 80))), errs.Invalid, nil},
		{"password not text", "User/bob", with("password", 42), errs.Invalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, err := f.rules.New(context.Background(), admin, tt.id, tt.body)
			if errs.CodeOf(err) != tt.code {
				t.Fatalf("New = %v (code %q), want code %q", err, errs.CodeOf(err), tt.code)
			}
			if err == nil && tt.check != nil {
				tt.check(t, doc)
			}
		})
	}
	if CanCreate(alice) || !CanCreate(admin) {
		t.Error("only administrators may create users")
	}
}

func TestChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		who     cimi.Identity
		user    string
		body    map[string]any
		selects []string
		code    errs.Code
		revokes bool
		check   func(t *testing.T, f *fixture, doc map[string]any)
	}{
		{"self edits e-mail; password kept", alice, "alice",
			map[string]any{"first-name": "Alice", "last-name": "L", "email": "a@example.org", "enabled": true, "roles": []any{"biomed", "::USER"}}, nil, "", false,
			func(t *testing.T, f *fixture, doc map[string]any) {
				if doc["password"] != f.hash || doc["email"] != "a@example.org" || doc["username"] != "alice" {
					t.Errorf("edited %v", doc)
				}
			}},
		{"self changes password with $select", alice, "alice", map[string]any{"password": "new secret"}, []string{"password"}, "", true,
			func(t *testing.T, f *fixture, doc map[string]any) {
				if bcrypt.CompareHashAndPassword([]byte(doc["password"].(string)), []byte("new secret")) != nil || doc["email"] != "alice@example.org" {
					t.Errorf("edited %v", doc)
				}
			}},
		{"self leaves protected attributes out", alice, "alice", map[string]any{"first-name": "A", "last-name": "L"}, nil, "", false,
			func(t *testing.T, f *fixture, doc map[string]any) {
				if doc["enabled"] != true || len(doc["roles"].([]any)) != 2 || doc["email"] != nil {
					t.Errorf("edited %v", doc)
				}
			}},
		{"self grants a role", alice, "alice", map[string]any{"roles": []any{"::ADMIN"}}, []string{"roles"}, errs.Forbidden, false, nil},
		{"self enables or disables", alice, "alice", map[string]any{"enabled": false}, nil, errs.Forbidden, false, nil},
		{"self renames", alice, "alice", map[string]any{"username": "mallory"}, nil, errs.Forbidden, false, nil},
		{"self sets a certificate DN", alice, "alice", map[string]any{"altnames": map[string]any{"x500dn": "CN=Admin"}}, nil, errs.Forbidden, false, nil},
		{"admin grants a role", admin, "alice", map[string]any{"roles": []any{"biomed", "atlas"}}, []string{"roles"}, "", true, nil},
		{"admin disables", admin, "alice", map[string]any{"enabled": false}, []string{"enabled"}, "", true, nil},
		{"admin sets a DN", admin, "alice", map[string]any{"altnames": map[string]any{"x500dn": "CN=Alice"}}, []string{"altnames"}, "", true, nil},
		{"admin renames", admin, "alice", map[string]any{"username": "alicia"}, []string{"username"}, errs.Invalid, false, nil},
		{"admin removes the password", admin, "alice", map[string]any{"password": nil}, []string{"password"}, "", true,
			func(t *testing.T, f *fixture, doc map[string]any) {
				if _, ok := doc["password"]; ok {
					t.Errorf("password kept: %v", doc)
				}
			}},
		{"last admin disables itself", admin, "admin", map[string]any{"enabled": false}, []string{"enabled"}, errs.Conflict, false, nil},
		{"last admin drops the role", admin, "admin", map[string]any{"roles": []any{}}, []string{"roles"}, errs.Conflict, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			current := f.get(t, tt.user)
			next, err := f.rules.Change(ctx, tt.who, current, tt.body, tt.selects)
			if errs.CodeOf(err) != tt.code {
				t.Fatalf("Change = %v (code %q), want code %q", err, errs.CodeOf(err), tt.code)
			}
			if err != nil {
				return
			}
			_, revoked := next["sessions-not-before"]
			if revoked != tt.revokes {
				t.Errorf("sessions revoked %v, want %v", revoked, tt.revokes)
			}
			if tt.check != nil {
				tt.check(t, f, next)
			}
			// The Changed hook records and publishes the revocation.
			if err := f.rules.Changed(ctx, tt.who, current, next); err != nil {
				t.Fatal(err)
			}
			inForce, err := f.revs.InForce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ev authnv1.UserSessionsRevoked
			published := f.env.Last(subject.EvtAuthnUserSessionsRevoked, &ev)
			if tt.revokes != (len(inForce.Users) == 1) || tt.revokes != published {
				t.Errorf("revocations in force %v, published %v; want %v", inForce, published, tt.revokes)
			}
			if tt.revokes && (ev.User != tt.user || !ev.NotBefore.AsTime().Equal(f.clock.Now())) {
				t.Errorf("revocation %v", &ev)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if err := f.rules.Remove(ctx, alice, f.get(t, "alice")); errs.CodeOf(err) != errs.Forbidden {
		t.Errorf("alice deletes herself: %v", err)
	}
	if err := f.rules.Remove(ctx, admin, f.get(t, "admin")); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("deleting the last administrator: %v", err)
	}
	f.put(t, map[string]any{"username": "root", "enabled": true, "roles": []any{cimi.RoleAdmin}})
	if err := f.rules.Remove(ctx, admin, f.get(t, "admin")); err != nil {
		t.Errorf("deleting one of two administrators: %v", err)
	}
	if err := f.rules.Remove(ctx, admin, f.get(t, "alice")); err != nil {
		t.Errorf("admin deletes alice: %v", err)
	}
	// A deleted user's sessions end.
	if err := f.rules.Changed(ctx, admin, f.get(t, "alice"), nil); err != nil {
		t.Fatal(err)
	}
	var ev authnv1.UserSessionsRevoked
	if !f.env.Last(subject.EvtAuthnUserSessionsRevoked, &ev) || ev.User != "alice" {
		t.Errorf("deletion did not revoke: %v", &ev)
	}
}

func TestChangedRedelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	before := f.get(t, "alice")
	after, err := f.rules.Change(ctx, admin, before, map[string]any{"enabled": false}, []string{"enabled"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rules.Changed(ctx, admin, before, after); err != nil {
		t.Fatal(err)
	}
	at := f.clock.Now()
	f.clock.Add(time.Minute)
	// A redelivered command sees before == after and revokes at the same
	// instant, not now.
	if err := f.rules.Changed(ctx, admin, after, after); err != nil {
		t.Fatal(err)
	}
	var ev authnv1.UserSessionsRevoked
	if !f.env.Last(subject.EvtAuthnUserSessionsRevoked, &ev) || !ev.NotBefore.AsTime().Equal(at) {
		t.Errorf("redelivery revoked at %v, want %v", ev.NotBefore.AsTime(), at)
	}
	// A later edit that changes nothing sensitive revokes nothing more.
	later := map[string]any{}
	for k, v := range after {
		later[k] = v
	}
	later["email"] = "new@example.org"
	if err := f.rules.Changed(ctx, admin, after, later); err != nil {
		t.Fatal(err)
	}
	if n := f.env.Count(subject.EvtAuthnUserSessionsRevoked); n != 1 {
		t.Errorf("%d revocations published, want 1", n)
	}
}

func TestView(t *testing.T) {
	t.Parallel()
	doc := View(alice, map[string]any{"username": "alice", "password": "$2a$..."})
	if _, ok := doc["password"]; ok {
		t.Error("the password hash is shown")
	}
	acl := DefaultACL(admin, "User/alice", nil)
	if !acl.Allows(alice, cimi.Modify) || acl.Allows(cimi.Identity{User: "bob"}, cimi.View) || acl.Owner.Principal != cimi.RoleAdmin {
		t.Errorf("acl %+v", acl)
	}
}
