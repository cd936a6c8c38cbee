package cimi

import "slices"

// PrincipalType says whether an ACL principal names a user or a role.
type PrincipalType string

// Principal types.
const (
	User PrincipalType = "USER"
	Role PrincipalType = "ROLE"
)

// Right is a level of access granted by an ACL rule. Rights are ordered:
// ALL includes MODIFY, which includes VIEW.
type Right string

// Rights, from least to most permissive.
const (
	View   Right = "VIEW"
	Modify Right = "MODIFY"
	All    Right = "ALL"
)

// Well-known roles.
const (
	RoleAdmin = "::ADMIN" // may do everything
	RoleUser  = "::USER"  // any authenticated user
	RoleAnon  = "::ANON"  // everyone, authenticated or not
)

// Owner is the principal that owns a resource; it holds every right.
type Owner struct {
	Principal string        `json:"principal"`
	Type      PrincipalType `json:"type"`
}

// Rule grants a right to a user or a role.
type Rule struct {
	Principal string        `json:"principal"`
	Type      PrincipalType `json:"type"`
	Right     Right         `json:"right"`
}

// ACL is the access control list carried by every resource.
type ACL struct {
	Owner Owner  `json:"owner"`
	Rules []Rule `json:"rules,omitempty"`
}

// Identity is who a request runs as: a user name (empty when anonymous) and
// the roles it holds. Authenticated identities implicitly hold ::USER and
// every identity holds ::ANON.
type Identity struct {
	User  string   `json:"user,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// IsAdmin reports whether the identity holds the ::ADMIN role.
func (id Identity) IsAdmin() bool {
	return slices.Contains(id.Roles, RoleAdmin)
}

// Principals lists every principal an ACL may name for this identity: the
// user, its roles, ::USER when authenticated and ::ANON always.
func (id Identity) Principals() []string {
	p := make([]string, 0, len(id.Roles)+3)
	if id.User != "" {
		p = append(p, id.User, RoleUser)
	}
	p = append(p, id.Roles...)
	return append(p, RoleAnon)
}

func rank(r Right) int {
	switch r {
	case View:
		return 1
	case Modify:
		return 2
	case All:
		return 3
	}
	return 0
}

// Allows reports whether the identity holds at least the right want on a
// resource protected by this ACL. Admins hold every right; the owner holds
// ALL; otherwise the most permissive matching rule decides.
func (a ACL) Allows(id Identity, want Right) bool {
	if id.IsAdmin() {
		return true
	}
	if a.matches(id, a.Owner.Principal, a.Owner.Type) {
		return true
	}
	best := 0
	for _, r := range a.Rules {
		if a.matches(id, r.Principal, r.Type) {
			best = max(best, rank(r.Right))
		}
	}
	return best > 0 && best >= rank(want)
}

func (a ACL) matches(id Identity, principal string, typ PrincipalType) bool {
	switch typ {
	case User:
		return id.User != "" && id.User == principal
	case Role:
		return id.HoldsRole(principal)
	}
	return false
}

// HoldsRole reports whether the identity holds a role: one of its roles,
// ::USER when authenticated, ::ANON always. Unlike Principals it never
// matches the user name, so a user named like a role does not get the
// role's rights.
func (id Identity) HoldsRole(role string) bool {
	switch {
	case role == RoleAnon:
		return true
	case role == RoleUser && id.User != "":
		return true
	}
	return slices.Contains(id.Roles, role)
}

// OwnedBy returns the default ACL of a resource created by id: the caller
// owns it and administrators may do everything.
func OwnedBy(id Identity) ACL {
	if id.User == "" {
		return ACL{Owner: Owner{Principal: RoleAdmin, Type: Role}}
	}
	return ACL{
		Owner: Owner{Principal: id.User, Type: User},
		Rules: []Rule{{Principal: RoleAdmin, Type: Role, Right: All}},
	}
}
