package login

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/session"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/authn/internal/authntest"
	"stratuslab.dev/services/authn/internal/keyring"
	"stratuslab.dev/services/authn/internal/ldaptest"
	"stratuslab.dev/services/authn/internal/revocation"
	"stratuslab.dev/services/authn/internal/settings"
	"stratuslab.dev/services/authn/internal/throttle"
	"stratuslab.dev/services/authn/internal/users"
)

// fixture is a login service on a real store and bus, with a settable
// clock and settings.
type fixture struct {
	env   *authntest.Env
	svc   *Service
	keys  *keyring.Ring
	revs  *revocation.List
	clock *authntest.Clock
	cfg   atomic.Pointer[settings.Settings]
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := authntest.New(t)
	f := &fixture{env: env, clock: authntest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))}
	def := settings.Defaults()
	f.cfg.Store(&def)
	f.keys = keyring.New(env.Collection(keyring.Kind), env.Bus, authntest.Quiet(), f.clock.Now)
	if err := f.keys.Rotate(context.Background(), time.Hour*24, time.Hour); err != nil {
		t.Fatal(err)
	}
	f.revs = revocation.New(env.Collection(revocation.Kind), env.Bus, f.clock.Now)
	f.svc = New(Config{
		Users:       env.Collection(users.Kind),
		Keys:        f.keys,
		Revocations: f.revs,
		Limiter:     throttle.New(throttle.DefaultPolicy(), f.clock.Now),
		Settings:    func() settings.Settings { return *f.cfg.Load() },
		Logger:      authntest.Quiet(),
		Now:         f.clock.Now,
	})
	return f
}

func (f *fixture) set(change func(*settings.Settings)) {
	s := *f.cfg.Load()
	change(&s)
	f.cfg.Store(&s)
}

// addUser stores a user record; password is hashed cheaply (the cost does
// not matter to a comparison).
func (f *fixture) addUser(t *testing.T, u users.User, password string) {
	t.Helper()
	if password != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		u.Password = string(h)
	}
	u.ID = users.ID(u.Username)
	u.ACL = users.ACL(u.Username)
	body, _ := json.Marshal(u)
	if _, err := f.env.Collection(users.Kind).Create(context.Background(), u.ID, body); err != nil {
		t.Fatal(err)
	}
}

func user(name string, enabled bool, roles ...string) users.User {
	return users.User{Username: name, Enabled: enabled, Roles: roles}
}

// check verifies a successful login: the token verifies with the published
// keys and says what the response says.
func (f *fixture) check(t *testing.T, resp *authnv1.LoginResponse, wantUser string, wantRoles []string, method string) {
	t.Helper()
	ks := session.KeySet{}
	for _, k := range f.keys.Public().GetKeys() {
		ks[k.GetKid()] = k.GetEd25519()
	}
	c, err := session.Parse(resp.GetToken(), ks, f.clock.Now())
	if err != nil {
		t.Fatalf("token does not verify with the published keys: %v", err)
	}
	if c.User != wantUser || resp.GetUser() != wantUser || !slices.Equal(c.Roles, wantRoles) || !slices.Equal(resp.GetRoles(), wantRoles) {
		t.Errorf("logged in as %s %v (token %s %v), want %s %v", resp.GetUser(), resp.GetRoles(), c.User, c.Roles, wantUser, wantRoles)
	}
	ttl := f.cfg.Load().SessionTTL.D()
	if c.Method != method || c.IssuedAt != f.clock.Now().UnixMilli() || !c.Expiry().Equal(f.clock.Now().Add(ttl)) || !resp.GetExpires().AsTime().Equal(c.Expiry()) {
		t.Errorf("claims %+v, response expiry %v", c, resp.GetExpires().AsTime())
	}
}

// refused asserts an unauthorized answer with exactly msg.
func refused(t *testing.T, err error, msg string) {
	t.Helper()
	if errs.CodeOf(err) != errs.Unauthorized || errs.MessageOf(err) != msg {
		t.Fatalf("answer %v (code %q, message %q), want unauthorized %q", err, errs.CodeOf(err), errs.MessageOf(err), msg)
	}
}

func pw(user, password string) *authnv1.LoginRequest {
	return &authnv1.LoginRequest{Method: authnv1.Method_METHOD_PASSWORD, Username: user, Password: password}
}

func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addUser(t, user("alice", true, "biomed", "::USER", "biomed"), "alice pass")
	f.addUser(t, user("root", true, cimi.RoleAdmin), "root pass")
	f.addUser(t, user("carol", false), "carol pass")
	f.addUser(t, user("nopass", true), "")
	tests := []struct {
		name      string
		req       *authnv1.LoginRequest
		wantUser  string
		wantRoles []string
	}{
		{"user", pw("alice", "alice pass"), "alice", []string{"biomed"}},
		{"administrator", pw("root", "root pass"), "root", []string{cimi.RoleAdmin}},
		{"wrong password", pw("alice", "alice pas"), "", nil},
		{"unknown user", pw("mallory", "alice pass"), "", nil},
		{"disabled user", pw("carol", "carol pass"), "", nil},
		{"user without password", pw("nopass", ""), "", nil},
		{"empty password", pw("alice", ""), "", nil},
		{"empty username", pw("", ""), "", nil},
		{"username no record can have", pw("User/x\x00", "alice pass"), "", nil},
		{"overlong username", pw(strings.Repeat("a", 10000), "alice pass"), "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := f.svc.Login(context.Background(), tt.req)
			if tt.wantUser == "" {
				refused(t, err, MsgWrongPassword)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f.check(t, resp, tt.wantUser, tt.wantRoles, MethodPassword)
		})
	}
}

func TestLocalPasswordsDisabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addUser(t, user("alice", true), "alice pass")
	f.set(func(s *settings.Settings) { s.LocalDB.PasswordEnabled = false })
	_, err := f.svc.Login(context.Background(), pw("alice", "alice pass"))
	refused(t, err, MsgWrongPassword)
}

func TestLDAPLogin(t *testing.T) {
	t.Parallel()
	srv := ldaptest.Start(t)
	srv.AddUsers(t,
		ldaptest.User{UID: "jdoe", Password: "ldap pass"},
		ldaptest.User{UID: "carol", Password: "carol ldap pass"},
	)
	srv.AddGroups(t, ldaptest.Group{CN: "cloud-users", Members: []string{"jdoe", "carol"}}, ldaptest.Group{CN: "atlas", Members: []string{"jdoe"}})
	f := newFixture(t)
	f.addUser(t, user("alice", true), "alice pass")
	f.addUser(t, user("carol", false), "carol pass") // disabled here, even if LDAP knows her
	f.set(func(s *settings.Settings) {
		s.LDAP = &settings.LDAP{
			PasswordEnabled: true,
			Connection:      settings.LDAPConnection{Host: settings.LDAPHost{Address: srv.Host, Port: srv.Port}},
			UserObjectClass: "inetOrgPerson", UserBaseDN: ldaptest.UsersDN, UserIDAttr: "uid",
			RoleObjectClass: "groupOfUniqueNames", RoleBaseDN: ldaptest.GroupsDN, RoleMemberAttr: "uniqueMember", RoleNameAttr: "cn",
		}
	})
	tests := []struct {
		name      string
		req       *authnv1.LoginRequest
		wantUser  string
		wantRoles []string
	}{
		{"LDAP user with roles from groups", pw("jdoe", "ldap pass"), "jdoe", []string{"atlas", "cloud-users"}},
		{"local user still works", pw("alice", "alice pass"), "alice", []string{}},
		{"LDAP wrong password", pw("jdoe", "guess"), "", nil},
		{"unknown everywhere", pw("nobody", "ldap pass"), "", nil},
		{"disabled locally, known to LDAP", pw("carol", "carol ldap pass"), "", nil},
		{"disabled locally, local password", pw("carol", "carol pass"), "", nil},
	}
	t.Run("logins", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				resp, err := f.svc.Login(context.Background(), tt.req)
				if tt.wantUser == "" {
					refused(t, err, MsgWrongPassword)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				f.check(t, resp, tt.wantUser, tt.wantRoles, MethodPassword)
			})
		}
	})

	// A directory that is down is "unavailable", not a wrong password.
	f.set(func(s *settings.Settings) { s.LDAP.Connection.Host.Port = 1 })
	if _, err := f.svc.Login(context.Background(), pw("jdoe", "ldap pass")); errs.CodeOf(err) != errs.Unavailable {
		t.Errorf("directory down: %v", err)
	}
}

func TestCertificateLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	alice := user("alice", true, "biomed")
	alice.AltNames.X500DN = "CN=Alice Liddell,O=Example,C=FR"
	carol := user("carol", false)
	carol.AltNames.X500DN = "CN=Carol,O=Example,C=FR"
	f.addUser(t, alice, "")
	f.addUser(t, carol, "")
	cert := func(dn string) *authnv1.LoginRequest {
		return &authnv1.LoginRequest{Method: authnv1.Method_METHOD_CERTIFICATE, Dn: dn}
	}
	if _, err := f.svc.Login(context.Background(), cert(alice.AltNames.X500DN)); err == nil {
		t.Fatal("certificate accepted while certificate logins are disabled")
	} else {
		refused(t, err, MsgCertificateRefused)
	}
	f.set(func(s *settings.Settings) { s.LocalDB.CertEnabled = true })
	tests := []struct {
		name, dn, wantUser string
	}{
		{"known DN", "CN=Alice Liddell,O=Example,C=FR", "alice"},
		{"spaces around", "  CN=Alice Liddell,O=Example,C=FR ", "alice"},
		{"other DN", "CN=Alice Liddell,O=Other,C=FR", ""},
		{"disabled user", "CN=Carol,O=Example,C=FR", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := f.svc.Login(context.Background(), cert(tt.dn))
			if tt.wantUser == "" {
				refused(t, err, MsgCertificateRefused)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f.check(t, resp, tt.wantUser, []string{"biomed"}, MethodCertificate)
		})
	}
}

func TestVOMSLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addUser(t, user("vo:vo.lal.in2p3.fr", true, "lal-users"), "")
	f.addUser(t, user("vo:biomed", false), "")
	const dn = "CN=Jane Grid,O=GRID-FR,C=FR"
	voms := func(vo string, fqans ...string) *authnv1.LoginRequest {
		return &authnv1.LoginRequest{Method: authnv1.Method_METHOD_VOMS, Dn: dn, Vo: vo, Fqans: fqans}
	}
	_, err := f.svc.Login(context.Background(), voms("vo.lal.in2p3.fr"))
	refused(t, err, MsgCertificateRefused) // VOMS disabled by default
	f.set(func(s *settings.Settings) { s.VOMS.Enabled = true })
	tests := []struct {
		name      string
		req       *authnv1.LoginRequest
		wantRoles []string // nil: refused
	}{
		{"FQANs become roles", voms("vo.lal.in2p3.fr", "/vo.lal.in2p3.fr/Role=admin/Capability=NULL", "/vo.lal.in2p3.fr", "::ADMIN"),
			[]string{"/vo.lal.in2p3.fr", "/vo.lal.in2p3.fr/Role=admin/Capability=NULL", "lal-users"}},
		{"disabled VO", voms("biomed", "/biomed"), nil},
		{"unknown VO", voms("atlas", "/atlas"), nil},
		{"VO that is no username", voms("a b"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := f.svc.Login(context.Background(), tt.req)
			if tt.wantRoles == nil {
				refused(t, err, MsgCertificateRefused)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f.check(t, resp, dn, tt.wantRoles, MethodVOMS)
		})
	}
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.addUser(t, user("alice", true), "alice pass")
	f.addUser(t, user("bob", true), "bob pass")
	slowed := func(err error) bool { return errs.CodeOf(err) == errs.TooManyRequests }

	for range 5 {
		_, err := f.svc.Login(ctx, &authnv1.LoginRequest{Method: authnv1.Method_METHOD_PASSWORD, Username: "alice", Password: "guess", Source: "198.51.100.7"})
		refused(t, err, MsgWrongPassword)
	}
	// Even the right password waits now, from anywhere.
	if _, err := f.svc.Login(ctx, pw("alice", "alice pass")); !slowed(err) {
		t.Fatalf("sixth attempt: %v, want too_many_requests", err)
	} else if errs.MessageOf(err) != "Too many failed logins: wait 1 second before trying again." {
		t.Errorf("message %q", errs.MessageOf(err))
	}
	// The source that failed is slowed down for other users too.
	if _, err := f.svc.Login(ctx, &authnv1.LoginRequest{Method: authnv1.Method_METHOD_PASSWORD, Username: "bob", Password: "bob pass", Source: "198.51.100.7"}); !slowed(err) {
		t.Fatalf("same source, other user: %v", err)
	}
	if _, err := f.svc.Login(ctx, pw("bob", "bob pass")); err != nil {
		t.Fatalf("other user, other source: %v", err)
	}
	f.clock.Add(time.Second)
	resp, err := f.svc.Login(ctx, pw("alice", "alice pass"))
	if err != nil {
		t.Fatalf("after the delay: %v", err)
	}
	f.check(t, resp, "alice", []string{}, MethodPassword)
	// The success cleared alice's count: one more failure is not slowed.
	_, err = f.svc.Login(ctx, pw("alice", "guess"))
	refused(t, err, MsgWrongPassword)
	if _, err := f.svc.Login(ctx, pw("alice", "alice pass")); err != nil {
		t.Errorf("after a success and one failure: %v", err)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.addUser(t, user("alice", true), "alice pass")
	resp, err := f.svc.Login(ctx, pw("alice", "alice pass"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := session.Parse(resp.GetToken(), f.keys, f.clock.Now())
	if _, err := f.svc.Logout(ctx, &authnv1.LogoutRequest{Token: resp.GetToken()}); err != nil {
		t.Fatal(err)
	}
	revs, err := f.revs.InForce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs.Sessions) != 1 || revs.Sessions[0].TokenId != c.ID || !revs.Sessions[0].Expires.AsTime().Equal(c.Expiry()) {
		t.Fatalf("revocations after logout: %v", revs)
	}
	var ev authnv1.SessionRevoked
	if !f.env.Last(subject.EvtAuthnSessionRevoked, &ev) || ev.TokenId != c.ID {
		t.Errorf("logout not published: %v", &ev)
	}
	_, err = f.svc.Logout(ctx, &authnv1.LogoutRequest{Token: "st1.k.forged.sig"})
	if errs.CodeOf(err) != errs.Unauthorized {
		t.Errorf("logout with a forged token: %v", err)
	}
	f.clock.Add(2 * time.Hour)
	if _, err := f.svc.Logout(ctx, &authnv1.LogoutRequest{Token: resp.GetToken()}); err != nil {
		t.Errorf("logout of an expired token: %v", err)
	}
}

// The queries answer over the bus with their codes and messages intact.
func TestOverTheBus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addUser(t, user("alice", true), "alice pass")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.env.Bus.Serve(ctx, bus.ServiceInfo{Name: subject.Authn}, f.svc.Endpoints()...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	caller, _ := f.env.Replica()
	var resp authnv1.LoginResponse
	var err error
	for range 100 { // until Serve has registered
		if err = caller.Request(context.Background(), subject.SvcAuthnLogin, nil, pw("alice", "alice pass"), &resp); !errors.Is(err, bus.ErrUnavailable) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.check(t, &resp, "alice", []string{}, MethodPassword)
	err = caller.Request(context.Background(), subject.SvcAuthnLogin, nil, pw("alice", "nope"), &resp)
	refused(t, err, MsgWrongPassword)
	var keys authnv1.KeysResponse
	if err := caller.Request(context.Background(), subject.SvcAuthnKeys, nil, &authnv1.KeysRequest{}, &keys); err != nil || len(keys.Keys) != 1 {
		t.Errorf("keys: %v, %v", &keys, err)
	}
	var revs authnv1.RevocationsResponse
	if err := caller.Request(context.Background(), subject.SvcAuthnRevocations, nil, &authnv1.RevocationsRequest{}, &revs); err != nil {
		t.Errorf("revocations: %v", err)
	}
}
