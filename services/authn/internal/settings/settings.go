package settings

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"stratuslab.dev/platform/config"
)

// Service is the value the "service" attribute must hold.
const Service = "authn"

// Defaults of the extensions.
const (
	DefaultSessionTTL  = time.Hour
	DefaultKeyRotation = 24 * time.Hour
)

// Bounds of the extensions: a session shorter than a minute is useless and
// one longer than a week outlives any reason to trust it; a key replaced
// more often than every minute cannot reach every gateway in time.
const (
	MinSessionTTL  = time.Minute
	MaxSessionTTL  = 7 * 24 * time.Hour
	MinKeyRotation = time.Minute
	MaxKeyRotation = 365 * 24 * time.Hour
)

// Settings are the attributes of ServiceConfiguration/authn. Without the
// document only local passwords are accepted.
type Settings struct {
	// Service must be "authn".
	Service string  `json:"service"`
	LocalDB LocalDB `json:"localdb"`
	// LDAP is optional.
	LDAP *LDAP `json:"ldap,omitempty"`
	VOMS VOMS  `json:"voms"`
	// SessionTTL is how long a session token is valid, e.g. "1h"
	// (extension; default one hour).
	SessionTTL Duration `json:"session-ttl"`
	// KeyRotation is how often a new token signing key replaces the
	// current one, e.g. "24h" (extension; default one day). Old keys verify
	// the tokens they signed until those expire.
	KeyRotation Duration `json:"key-rotation"`
}

// LocalDB enables the local user records (User/<username>).
type LocalDB struct {
	PasswordEnabled bool `json:"password-enabled"`
	CertEnabled     bool `json:"cert-enabled"`
}

// LDAP describes an LDAP directory of users and groups.
type LDAP struct {
	PasswordEnabled bool `json:"password-enabled"`
	// CertEnabled is accepted for compatibility but not supported, as in
	// the original service.
	CertEnabled bool           `json:"cert-enabled"`
	Connection  LDAPConnection `json:"connection"`
	// Users are entries of UserObjectClass under UserBaseDN, named by
	// UserIDAttr (e.g. inetOrgPerson, ou=users,o=cloud, uid).
	UserObjectClass string `json:"user-object-class"`
	UserBaseDN      string `json:"user-base-dn"`
	UserIDAttr      string `json:"user-id-attr"`
	// Roles are the RoleNameAttr of the entries of RoleObjectClass under
	// RoleBaseDN whose RoleMemberAttr holds the user's DN (e.g.
	// groupOfUniqueNames, ou=groups,o=cloud, uniqueMember, cn).
	RoleObjectClass string `json:"role-object-class"`
	RoleBaseDN      string `json:"role-base-dn"`
	RoleMemberAttr  string `json:"role-member-attr"`
	RoleNameAttr    string `json:"role-name-attr"`
	// SkipBind trusts the directory's answer that the user exists without
	// checking the password by binding as the user. Only for directories
	// that cannot bind users; it accepts any password.
	SkipBind bool `json:"skip-bind?"`
}

// LDAPConnection says where the directory is.
type LDAPConnection struct {
	Host LDAPHost `json:"host"`
	// SSL connects with LDAPS (TLS from the start).
	SSL bool `json:"ssl?"`
}

// LDAPHost is the directory's address and port (389, or 636 with SSL,
// when zero).
type LDAPHost struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
}

// VOMS enables logins with VOMS proxies of the VOs that have an enabled
// pseudo-user "vo:<vo>".
type VOMS struct {
	Enabled bool `json:"enabled"`
}

// Defaults returns the settings in effect without a document: local
// passwords only, one-hour sessions, keys replaced daily.
func Defaults() Settings {
	return Settings{
		Service:     Service,
		LocalDB:     LocalDB{PasswordEnabled: true},
		SessionTTL:  Duration(DefaultSessionTTL),
		KeyRotation: Duration(DefaultKeyRotation),
	}
}

// Validate refuses settings that cannot work, saying what to fix.
func (s Settings) Validate() error {
	var problems []string
	if s.Service != Service {
		problems = append(problems, fmt.Sprintf(`"service" must be %q, not %q`, Service, s.Service))
	}
	if d := s.SessionTTL.D(); d < MinSessionTTL || d > MaxSessionTTL {
		problems = append(problems, fmt.Sprintf(`"session-ttl" must be between %v and %v, not %v`, MinSessionTTL, MaxSessionTTL, d))
	}
	if d := s.KeyRotation.D(); d < MinKeyRotation || d > MaxKeyRotation {
		problems = append(problems, fmt.Sprintf(`"key-rotation" must be between %v and %v, not %v`, MinKeyRotation, MaxKeyRotation, d))
	}
	if s.LDAP != nil && s.LDAP.PasswordEnabled {
		problems = append(problems, s.LDAP.problems()...)
	}
	if len(problems) > 0 {
		return errors.New("ServiceConfiguration/authn: " + strings.Join(problems, "; "))
	}
	return nil
}

// problems lists what an enabled LDAP configuration lacks.
func (l *LDAP) problems() []string {
	var p []string
	required := []struct{ name, value string }{
		{"ldap/connection/host/address", l.Connection.Host.Address},
		{"ldap/user-object-class", l.UserObjectClass},
		{"ldap/user-base-dn", l.UserBaseDN},
		{"ldap/user-id-attr", l.UserIDAttr},
		{"ldap/role-object-class", l.RoleObjectClass},
		{"ldap/role-base-dn", l.RoleBaseDN},
		{"ldap/role-member-attr", l.RoleMemberAttr},
		{"ldap/role-name-attr", l.RoleNameAttr},
	}
	for _, r := range required {
		if strings.TrimSpace(r.value) == "" {
			p = append(p, fmt.Sprintf("%q is required when LDAP passwords are enabled", r.name))
		}
	}
	names := []struct{ name, value string }{
		{"ldap/user-object-class", l.UserObjectClass},
		{"ldap/user-id-attr", l.UserIDAttr},
		{"ldap/role-object-class", l.RoleObjectClass},
		{"ldap/role-member-attr", l.RoleMemberAttr},
		{"ldap/role-name-attr", l.RoleNameAttr},
	}
	for _, n := range names {
		if n.value != "" && !attributeName(n.value) {
			p = append(p, fmt.Sprintf("%q must be an LDAP attribute or class name such as uid, not %q", n.name, n.value))
		}
	}
	if port := l.Connection.Host.Port; port < 0 || port > 65535 {
		p = append(p, fmt.Sprintf(`"ldap/connection/host/port" %d is not a TCP port`, port))
	}
	return p
}

// attributeName reports whether s is an LDAP attribute or object class
// name (a letter, then letters, digits and '-') or an OID; they are written
// into search filters, so nothing else may pass.
func attributeName(s string) bool {
	if s == "" {
		return false
	}
	oid := s[0] >= '0' && s[0] <= '9'
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case oid && (c >= '0' && c <= '9' || c == '.'):
		case !oid && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0 || c == '-' && i > 0):
		default:
			return false
		}
	}
	return true
}

// Port returns the directory's port, the LDAP or LDAPS default when unset.
func (c LDAPConnection) Port() int {
	switch {
	case c.Host.Port != 0:
		return c.Host.Port
	case c.SSL:
		return 636
	}
	return 389
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("90m", "1h"); a number is read as seconds.
type Duration = config.Duration
