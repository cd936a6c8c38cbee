package ldapauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-ldap/ldap/v3"

	"stratuslab.dev/services/authn/internal/settings"
)

// Timeout bounds connecting to the directory and each request on it.
const Timeout = 10 * time.Second

// ErrRefused is returned (wrapped) when the directory does not accept the
// credentials: no such user, several entries, or a wrong password.
var ErrRefused = errors.New("ldap: credentials refused")

// Result is who the directory says the user is.
type Result struct {
	// User is the user's id attribute (e.g. uid) as the directory spells it.
	User  string
	DN    string
	Roles []string
}

// Login checks username and password against the directory of cfg. It
// returns ErrRefused for credentials the directory does not accept, and
// another error when the directory cannot be asked.
func Login(ctx context.Context, cfg *settings.LDAP, username, password string) (Result, error) {
	if username == "" || (password == "" && !cfg.SkipBind) {
		// An empty password would be an unauthenticated bind, which
		// directories accept for any DN.
		return Result{}, ErrRefused
	}
	conn, err := dial(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	conn.SetTimeout(Timeout)

	found, err := conn.Search(ldap.NewSearchRequest(cfg.UserBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, int(Timeout.Seconds()), false,
		fmt.Sprintf("(&(objectClass=%s)(%s=%s))", ldap.EscapeFilter(cfg.UserObjectClass), cfg.UserIDAttr, ldap.EscapeFilter(username)),
		[]string{cfg.UserIDAttr}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return Result{}, fmt.Errorf("ldap: search for the user: %w", err)
	}
	if err != nil || len(found.Entries) != 1 {
		return Result{}, fmt.Errorf("%w: %d entries match", ErrRefused, entries(found))
	}
	entry := found.Entries[0]
	if !cfg.SkipBind {
		if err := conn.Bind(entry.DN, password); ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return Result{}, fmt.Errorf("%w: wrong password", ErrRefused)
		} else if err != nil {
			return Result{}, fmt.Errorf("ldap: bind: %w", err)
		}
	}
	res := Result{User: entry.GetAttributeValue(cfg.UserIDAttr), DN: entry.DN}
	if res.User == "" {
		res.User = username
	}
	groups, err := conn.Search(ldap.NewSearchRequest(cfg.RoleBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, int(Timeout.Seconds()), false,
		fmt.Sprintf("(&(objectClass=%s)(%s=%s))", ldap.EscapeFilter(cfg.RoleObjectClass), cfg.RoleMemberAttr, ldap.EscapeFilter(entry.DN)),
		[]string{cfg.RoleNameAttr}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return Result{}, fmt.Errorf("ldap: search for the user's groups: %w", err)
	}
	if groups != nil {
		for _, g := range groups.Entries {
			if name := g.GetAttributeValue(cfg.RoleNameAttr); name != "" {
				res.Roles = append(res.Roles, name)
			}
		}
	}
	return res, nil
}

func entries(r *ldap.SearchResult) int {
	if r == nil {
		return 0
	}
	return len(r.Entries)
}

// dial connects to the directory, with LDAPS when ssl? is set.
func dial(ctx context.Context, cfg *settings.LDAP) (*ldap.Conn, error) {
	addr := net.JoinHostPort(cfg.Connection.Host.Address, strconv.Itoa(cfg.Connection.Port()))
	dialer := &net.Dialer{Timeout: Timeout}
	var nc net.Conn
	var err error
	if cfg.Connection.SSL {
		td := &tls.Dialer{NetDialer: dialer, Config: &tls.Config{ServerName: cfg.Connection.Host.Address, MinVersion: tls.VersionTLS12}}
		nc, err = td.DialContext(ctx, "tcp", addr)
	} else {
		nc, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("ldap: connect to %s: %w", addr, err)
	}
	conn := ldap.NewConn(nc, cfg.Connection.SSL)
	conn.Start()
	return conn, nil
}
