package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/session"
	"stratuslab.dev/platform/store"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/services/authn/internal/keyring"
	"stratuslab.dev/services/authn/internal/ldapauth"
	"stratuslab.dev/services/authn/internal/revocation"
	"stratuslab.dev/services/authn/internal/settings"
	"stratuslab.dev/services/authn/internal/throttle"
	"stratuslab.dev/services/authn/internal/users"
)

// The answers to refused credentials: one per kind of credential, the
// same whatever was wrong, so that nobody learns which users exist.
const (
	MsgWrongPassword       = "Wrong username or password."
	MsgCertificateRefused  = "Certificate not accepted."
	msgInvalidSessionToken = "The session token is not valid: log in again."
)

// Method names carried by tokens (session.Claims.Method).
const (
	MethodPassword    = "password"
	MethodCertificate = "certificate"
	MethodVOMS        = "voms"
)

// dummyHash is a bcrypt hash (cost 12) of a random string nobody knows. A
// login for a user without a password is compared against it, so that it
// takes as long as a login with a wrong password and the time taken tells
// nothing.
const dummyHash = "$2a$12$EqtJUGO.PRDZrkbaUm7i8O97NTMiYVGu86yV4c7ZXz1EDLileHBW2"

// Service answers the login queries.
type Service struct {
	users    store.Collection
	keys     *keyring.Ring
	revs     *revocation.List
	limiter  *throttle.Limiter
	settings func() settings.Settings
	log      *slog.Logger
	now      func() time.Time
}

// Config are the parts a Service is built from.
type Config struct {
	Users       store.Collection
	Keys        *keyring.Ring
	Revocations *revocation.List
	Limiter     *throttle.Limiter
	// Settings returns the settings in effect.
	Settings func() settings.Settings
	Logger   *slog.Logger
	// Now reads the time; time.Now when nil.
	Now func() time.Time
}

// New returns the service built from c.
func New(c Config) *Service {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{users: c.Users, keys: c.Keys, revs: c.Revocations, limiter: c.Limiter,
		settings: c.Settings, log: c.Logger, now: c.Now}
}

// Endpoints are the service's query operations, for Bus.Serve.
func (s *Service) Endpoints() []bus.Endpoint {
	return []bus.Endpoint{
		bus.Handle("login", func(ctx context.Context, req *authnv1.LoginRequest) (proto.Message, error) {
			return s.Login(ctx, req)
		}),
		bus.Handle("logout", func(ctx context.Context, req *authnv1.LogoutRequest) (proto.Message, error) {
			return s.Logout(ctx, req)
		}),
		bus.Handle("keys", func(ctx context.Context, _ *authnv1.KeysRequest) (proto.Message, error) {
			return s.keys.Public(), nil
		}),
		bus.Handle("revocations", func(ctx context.Context, _ *authnv1.RevocationsRequest) (proto.Message, error) {
			return s.revs.InForce(ctx)
		}),
	}
}

// identity is who a login proved to be.
type identity struct {
	user  string
	roles []string
}

// Login verifies the credentials of req and opens a session.
func (s *Service) Login(ctx context.Context, req *authnv1.LoginRequest) (*authnv1.LoginResponse, error) {
	var method, who, refused string
	switch req.GetMethod() {
	case authnv1.Method_METHOD_PASSWORD:
		// Lower case: directories compare names without case, and an
		// attacker must not get fresh counts by varying it.
		method, who, refused = MethodPassword, "user:"+strings.ToLower(req.GetUsername()), MsgWrongPassword
	case authnv1.Method_METHOD_CERTIFICATE:
		method, who, refused = MethodCertificate, "dn:"+users.NormalizeDN(req.GetDn()), MsgCertificateRefused
	case authnv1.Method_METHOD_VOMS:
		method, who, refused = MethodVOMS, "dn:"+users.NormalizeDN(req.GetDn()), MsgCertificateRefused
	default:
		return nil, errs.Errorf(errs.Invalid, "The login method %v is not one authn knows: use password, certificate or VOMS.", req.GetMethod())
	}
	var source string
	if req.GetSource() != "" {
		source = "source:" + req.GetSource()
	}
	if wait := s.limiter.Wait(who, source); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		return nil, errs.Errorf(errs.TooManyRequests, "Too many failed logins: wait %d second%s before trying again.", secs, plural(secs))
	}
	cfg := s.settings()
	var id identity
	var err error
	switch method {
	case MethodPassword:
		id, err = s.password(ctx, cfg, req.GetUsername(), req.GetPassword())
	case MethodCertificate:
		id, err = s.certificate(ctx, cfg, req.GetDn())
	case MethodVOMS:
		id, err = s.voms(ctx, cfg, req)
	}
	if errors.Is(err, errRefused) {
		s.limiter.Fail(who, source)
		s.log.InfoContext(ctx, "login refused", "method", method, "user", logName(req), "source", req.GetSource(), "reason", err.Error())
		return nil, errs.New(errs.Unauthorized, refused)
	}
	if err != nil {
		return nil, err
	}
	s.limiter.Succeed(who)
	return s.open(ctx, cfg, method, id)
}

// logName is the name a refused login is logged under, cut short: never
// a password.
func logName(req *authnv1.LoginRequest) string {
	name := req.GetDn()
	if req.GetMethod() == authnv1.Method_METHOD_PASSWORD {
		name = req.GetUsername()
	}
	if len(name) > maxLogName {
		name = strings.ToValidUTF8(name[:maxLogName], "") + "…"
	}
	return name
}

// maxLogName bounds the names logged for refused logins.
const maxLogName = 256

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// errRefused marks credentials that do not prove who the caller is; the
// reason after it is for the log only.
var errRefused = errors.New("refused")

func refusedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errRefused}, args...)...)
}

// open signs the token of a new session.
func (s *Service) open(ctx context.Context, cfg settings.Settings, method string, id identity) (*authnv1.LoginResponse, error) {
	now := s.now()
	exp := now.Add(cfg.SessionTTL.D())
	claims := session.Claims{ID: uuid.NewString(), User: id.user, Roles: id.roles, Method: method,
		IssuedAt: now.UnixMilli(), Expires: exp.UnixMilli()}
	tok, err := s.keys.Sign(claims)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "session opened", "user", id.user, "method", method, "expires", exp.UTC())
	return &authnv1.LoginResponse{Token: tok, User: id.user, Roles: id.roles,
		Expires: timestamppb.New(time.UnixMilli(claims.Expires)), Method: methodOf(method)}, nil
}

func methodOf(name string) authnv1.Method {
	switch name {
	case MethodPassword:
		return authnv1.Method_METHOD_PASSWORD
	case MethodCertificate:
		return authnv1.Method_METHOD_CERTIFICATE
	case MethodVOMS:
		return authnv1.Method_METHOD_VOMS
	}
	return authnv1.Method_METHOD_UNSPECIFIED
}

// password checks a username and password: against the local record when
// local passwords are enabled, then against LDAP when it is enabled. A
// local record that is disabled refuses the user outright, LDAP or not.
func (s *Service) password(ctx context.Context, cfg settings.Settings, username, password string) (identity, error) {
	var local users.User
	var err error
	if users.CheckUsername(username) == nil { // other names can only be LDAP's
		local, err = users.Get(ctx, s.users, username)
	}
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		local = users.User{}
	case err != nil:
		return identity{}, errs.Wrap(errs.Unavailable, err, "The user records cannot be read now: retry later")
	case local.Username != "" && !local.Enabled:
		_ = bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte(password))
		return identity{}, refusedf("user %s is disabled", username)
	}
	if cfg.LocalDB.PasswordEnabled {
		hash := local.Password
		if hash == "" {
			hash = dummyHash
		}
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil && local.Password != "" && password != "" {
			return identity{user: local.Username, roles: cleanRoles(local.Roles)}, nil
		}
	}
	if cfg.LDAP != nil && cfg.LDAP.PasswordEnabled {
		res, err := ldapauth.Login(ctx, cfg.LDAP, username, password)
		if errors.Is(err, ldapauth.ErrRefused) {
			return identity{}, refusedf("%v", err)
		} else if err != nil {
			s.log.WarnContext(ctx, "LDAP directory unavailable for a login", "error", err)
			return identity{}, errs.Wrap(errs.Unavailable, err, "The user directory cannot be reached now: retry later")
		}
		return identity{user: res.User, roles: cleanRoles(res.Roles)}, nil
	}
	if local.Username == "" {
		return identity{}, refusedf("no local user %s", username)
	}
	return identity{}, refusedf("wrong password for %s", username)
}

// certificate finds the enabled local user whose certificate DN is dn.
func (s *Service) certificate(ctx context.Context, cfg settings.Settings, dn string) (identity, error) {
	if !cfg.LocalDB.CertEnabled {
		return identity{}, refusedf("certificate logins are disabled")
	}
	found, err := users.ByDN(ctx, s.users, dn)
	if err != nil {
		return identity{}, errs.Wrap(errs.Unavailable, err, "The user records cannot be read now: retry later")
	}
	switch len(found) {
	case 0:
		return identity{}, refusedf("no enabled user has the DN %q", dn)
	case 1:
		return identity{user: found[0].Username, roles: cleanRoles(found[0].Roles)}, nil
	}
	s.log.WarnContext(ctx, "several enabled users have the same certificate DN; refusing it until an administrator fixes their records", "dn", dn)
	return identity{}, refusedf("%d users have the DN %q", len(found), dn)
}

// voms accepts the holder of a VOMS proxy of a VO whose pseudo-user
// vo:<vo> exists and is enabled: the user is the DN, the roles the FQANs
// and the pseudo-user's roles.
func (s *Service) voms(ctx context.Context, cfg settings.Settings, req *authnv1.LoginRequest) (identity, error) {
	dn := users.NormalizeDN(req.GetDn())
	if !cfg.VOMS.Enabled {
		return identity{}, refusedf("VOMS logins are disabled")
	}
	if dn == "" || req.GetVo() == "" {
		return identity{}, refusedf("no DN or VO")
	}
	if err := users.CheckUsername(users.VOPrefix + req.GetVo()); err != nil {
		return identity{}, refusedf("VO %q cannot be a user name", req.GetVo())
	}
	vo, err := users.Get(ctx, s.users, users.VOPrefix+req.GetVo())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return identity{}, refusedf("VO %s has no pseudo-user", req.GetVo())
	case err != nil:
		return identity{}, errs.Wrap(errs.Unavailable, err, "The user records cannot be read now: retry later")
	case !vo.Enabled:
		return identity{}, refusedf("VO %s is disabled", req.GetVo())
	}
	roles := slices.Clone(vo.Roles)
	for _, f := range req.GetFqans() {
		// FQANs are paths, "/vo/group/Role=x"; anything else could pose as
		// one of the special roles.
		if strings.HasPrefix(f, "/") {
			roles = append(roles, f)
		}
	}
	return identity{user: dn, roles: cleanRoles(roles)}, nil
}

// cleanRoles returns the roles to put in a token: without the implied
// ::USER and ::ANON, without duplicates, sorted.
func cleanRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if r != "" && r != "::USER" && r != "::ANON" {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Logout revokes the token of req until it expires. A token that has
// already expired needs nothing; one authn did not sign is refused.
func (s *Service) Logout(ctx context.Context, req *authnv1.LogoutRequest) (*authnv1.LogoutResponse, error) {
	c, err := session.Parse(req.GetToken(), s.keys, s.now())
	switch {
	case errors.Is(err, session.ErrExpired):
		return &authnv1.LogoutResponse{}, nil
	case err != nil:
		return nil, errs.New(errs.Unauthorized, msgInvalidSessionToken)
	}
	if err := s.revs.RevokeSession(ctx, c.ID, c.Expiry()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "session closed", "user", c.User)
	return &authnv1.LogoutResponse{}, nil
}
