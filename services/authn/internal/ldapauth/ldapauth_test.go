package ldapauth

import (
	"context"
	"errors"
	"slices"
	"testing"

	"stratuslab.dev/services/authn/internal/ldaptest"
	"stratuslab.dev/services/authn/internal/settings"
)

// Config returns the seed's example LDAP settings for the server.
func config(s *ldaptest.Server) *settings.LDAP {
	return &settings.LDAP{
		PasswordEnabled: true,
		Connection:      settings.LDAPConnection{Host: settings.LDAPHost{Address: s.Host, Port: s.Port}},
		UserObjectClass: "inetOrgPerson", UserBaseDN: ldaptest.UsersDN, UserIDAttr: "uid",
		RoleObjectClass: "groupOfUniqueNames", RoleBaseDN: ldaptest.GroupsDN,
		RoleMemberAttr: "uniqueMember", RoleNameAttr: "cn",
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	s := ldaptest.Start(t)
	s.AddUsers(t,
		ldaptest.User{UID: "jdoe", Password: "ldap pass"},
		ldaptest.User{UID: "nogroup", Password: "other pass"},
		ldaptest.User{UID: "x*)(uid=*", Password: "tricky"},
	)
	s.AddGroups(t,
		ldaptest.Group{CN: "cloud-users", Members: []string{"jdoe", "nogroup"}},
		ldaptest.Group{CN: "::ADMIN", Members: []string{"jdoe"}},
	)
	cfg := config(s)
	skip := config(s)
	skip.SkipBind = true
	tests := []struct {
		name, user, password string
		cfg                  *settings.LDAP
		wantRoles            []string
		wantErr              error
	}{
		{"roles from groups", "jdoe", "ldap pass", cfg, []string{"::ADMIN", "cloud-users"}, nil},
		{"one group", "nogroup", "other pass", cfg, []string{"cloud-users"}, nil},
		{"filter characters escaped", "x*)(uid=*", "tricky", cfg, nil, nil},
		{"wildcard is no user", "*", "ldap pass", cfg, nil, ErrRefused},
		{"wrong password", "jdoe", "guess", cfg, nil, ErrRefused},
		{"empty password", "jdoe", "", cfg, nil, ErrRefused},
		{"unknown user", "nobody", "ldap pass", cfg, nil, ErrRefused},
		{"skip-bind trusts the search", "jdoe", "anything", skip, []string{"::ADMIN", "cloud-users"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := Login(context.Background(), tt.cfg, tt.user, tt.password)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Login = %+v, %v; want %v", res, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			slices.Sort(res.Roles)
			if res.User != tt.user || !slices.Equal(res.Roles, tt.wantRoles) {
				t.Errorf("Login = %+v, want user %s roles %v", res, tt.user, tt.wantRoles)
			}
		})
	}

	// A directory that cannot be reached is an error, not a refusal.
	down := config(s)
	down.Connection.Host.Port = 1
	if _, err := Login(context.Background(), down, "jdoe", "ldap pass"); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("unreachable directory: %v", err)
	}
}
