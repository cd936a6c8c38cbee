package cimi

import (
	"reflect"
	"testing"
)

func TestACLAllows(t *testing.T) {
	t.Parallel()
	var (
		alice   = Identity{User: "alice"}
		bob     = Identity{User: "bob"}
		ops     = Identity{User: "carol", Roles: []string{"ops"}}
		admin   = Identity{User: "root", Roles: []string{RoleAdmin}}
		anon    = Identity{}
		anonOps = Identity{Roles: []string{"ops"}}
		// A user whose name is also a role name must not get that role.
		opsUser = Identity{User: "ops"}
	)
	ownedByAlice := ACL{Owner: Owner{Principal: "alice", Type: User}}
	tests := []struct {
		name string
		acl  ACL
		who  Identity
		want map[Right]bool
	}{
		{"owner holds all", ownedByAlice, alice, rights(true, true, true)},
		{"stranger holds nothing", ownedByAlice, bob, rights(false, false, false)},
		{"anonymous holds nothing", ownedByAlice, anon, rights(false, false, false)},
		{"admin holds all", ownedByAlice, admin, rights(true, true, true)},
		{"owner by role", ACL{Owner: Owner{Principal: "ops", Type: Role}}, ops, rights(true, true, true)},
		{"owner role does not match a user of that name", ACL{Owner: Owner{Principal: "ops", Type: Role}}, opsUser, rights(false, false, false)},
		{"owner user does not match a role of that name", ACL{Owner: Owner{Principal: "ops", Type: User}}, ops, rights(false, false, false)},
		{"view rule", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "bob", Type: User, Right: View}}}, bob, rights(true, false, false)},
		{"modify rule", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "bob", Type: User, Right: Modify}}}, bob, rights(true, true, false)},
		{"all rule", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "bob", Type: User, Right: All}}}, bob, rights(true, true, true)},
		{"most permissive rule wins", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{
			{Principal: "bob", Type: User, Right: View},
			{Principal: RoleUser, Type: Role, Right: Modify},
			{Principal: RoleAnon, Type: Role, Right: View},
		}}, bob, rights(true, true, false)},
		{"order of rules does not matter", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{
			{Principal: "ops", Type: Role, Right: All},
			{Principal: "carol", Type: User, Right: View},
		}}, ops, rights(true, true, true)},
		{"rule for another user", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "carol", Type: User, Right: All}}}, bob, rights(false, false, false)},
		{"role rule", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "ops", Type: Role, Right: Modify}}}, ops, rights(true, true, false)},
		{"role rule, user without the role", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "ops", Type: Role, Right: Modify}}}, bob, rights(false, false, false)},
		{"role rule does not match a user of that name", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "ops", Type: Role, Right: All}}}, opsUser, rights(false, false, false)},
		{"user rule does not match a role of that name", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "ops", Type: User, Right: All}}}, ops, rights(false, false, false)},
		{"::USER matches authenticated", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: RoleUser, Type: Role, Right: View}}}, bob, rights(true, false, false)},
		{"::USER does not match anonymous", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: RoleUser, Type: Role, Right: View}}}, anon, rights(false, false, false)},
		{"::ANON matches anonymous", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: RoleAnon, Type: Role, Right: View}}}, anon, rights(true, false, false)},
		{"::ANON matches authenticated", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: RoleAnon, Type: Role, Right: Modify}}}, bob, rights(true, true, false)},
		{"anonymous with a role", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "ops", Type: Role, Right: View}}}, anonOps, rights(true, false, false)},
		{"::ADMIN rule", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: RoleAdmin, Type: Role, Right: View}}}, bob, rights(false, false, false)},
		{"::ADMIN role holds all without rules", ACL{Owner: Owner{Principal: "x", Type: User}}, admin, rights(true, true, true)},
		{"empty user name never matches", ACL{Owner: Owner{Principal: "", Type: User}, Rules: []Rule{{Principal: "", Type: User, Right: All}}}, anon, rights(false, false, false)},
		{"unknown principal type", ACL{Owner: Owner{Principal: "bob", Type: "GROUP"}, Rules: []Rule{{Principal: "bob", Type: "GROUP", Right: All}}}, bob, rights(false, false, false)},
		{"unknown right grants nothing", ACL{Owner: ownedByAlice.Owner, Rules: []Rule{{Principal: "bob", Type: User, Right: "READ"}}}, bob, rights(false, false, false)},
	}
	for _, tt := range tests {
		for _, right := range []Right{View, Modify, All} {
			if got := tt.acl.Allows(tt.who, right); got != tt.want[right] {
				t.Errorf("%s: Allows(%+v, %s) = %v, want %v", tt.name, tt.who, right, got, tt.want[right])
			}
		}
	}
}

func rights(view, modify, all bool) map[Right]bool {
	return map[Right]bool{View: view, Modify: modify, All: all}
}

func TestIdentityPrincipals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		who  Identity
		want []string
	}{
		{Identity{}, []string{RoleAnon}},
		{Identity{User: "alice"}, []string{"alice", RoleUser, RoleAnon}},
		{Identity{User: "alice", Roles: []string{"ops", RoleAdmin}}, []string{"alice", RoleUser, "ops", RoleAdmin, RoleAnon}},
		{Identity{Roles: []string{"ops"}}, []string{"ops", RoleAnon}},
	}
	for _, tt := range tests {
		if got := tt.who.Principals(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v.Principals() = %v, want %v", tt.who, got, tt.want)
		}
	}
}

func TestIdentityRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		who   Identity
		role  string
		holds bool
	}{
		{Identity{}, RoleAnon, true},
		{Identity{}, RoleUser, false},
		{Identity{}, RoleAdmin, false},
		{Identity{User: "alice"}, RoleAnon, true},
		{Identity{User: "alice"}, RoleUser, true},
		{Identity{User: "alice"}, "alice", false},
		{Identity{User: "alice", Roles: []string{"ops"}}, "ops", true},
		{Identity{User: "alice", Roles: []string{"ops"}}, "dev", false},
		{Identity{User: "root", Roles: []string{RoleAdmin}}, RoleAdmin, true},
	}
	for _, tt := range tests {
		if got := tt.who.HoldsRole(tt.role); got != tt.holds {
			t.Errorf("%+v.HoldsRole(%q) = %v, want %v", tt.who, tt.role, got, tt.holds)
		}
		if got, want := tt.who.IsAdmin(), tt.role == RoleAdmin && tt.holds; tt.role == RoleAdmin && got != want {
			t.Errorf("%+v.IsAdmin() = %v, want %v", tt.who, got, want)
		}
	}
}

func TestOwnedBy(t *testing.T) {
	t.Parallel()
	alice := Identity{User: "alice", Roles: []string{"ops"}}
	acl := OwnedBy(alice)
	want := ACL{
		Owner: Owner{Principal: "alice", Type: User},
		Rules: []Rule{{Principal: RoleAdmin, Type: Role, Right: All}},
	}
	if !reflect.DeepEqual(acl, want) {
		t.Fatalf("OwnedBy(alice) = %+v, want %+v", acl, want)
	}
	if !acl.Allows(alice, All) {
		t.Error("the creator cannot do everything on its own resource")
	}
	if acl.Allows(Identity{User: "bob", Roles: []string{"ops"}}, View) {
		t.Error("another user sharing the creator's role can see the resource")
	}

	anonACL := OwnedBy(Identity{})
	if want := (ACL{Owner: Owner{Principal: RoleAdmin, Type: Role}}); !reflect.DeepEqual(anonACL, want) {
		t.Fatalf("OwnedBy(anonymous) = %+v, want %+v", anonACL, want)
	}
	if anonACL.Allows(Identity{}, View) {
		t.Error("an anonymous creator can see a resource owned by ::ADMIN")
	}
	if !anonACL.Allows(Identity{User: "root", Roles: []string{RoleAdmin}}, All) {
		t.Error("an administrator cannot manage a resource created anonymously")
	}
}
