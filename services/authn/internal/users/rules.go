package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
)

// Attributes of a user record.
const (
	attrUsername  = "username"
	attrFirstName = "first-name"
	attrLastName  = "last-name"
	attrPassword  = "password"
	attrEnabled   = "enabled"
	attrRoles     = "roles"
	attrAltNames  = "altnames"
	attrX500DN    = "x500dn"
	attrEmail     = "email"
	attrACL       = "acl"
	// attrNotBefore records when the user's sessions were last revoked:
	// tokens issued before it are refused. Kept in the record so that a
	// redelivered edit revokes at the same instant as the first delivery.
	attrNotBefore = "sessions-not-before"
)

// VOPrefix starts the username of a VOMS pseudo-user, "vo:<vo>".
const VOPrefix = "vo:"

// Limits on what a record holds.
const (
	maxUsername = 128
	maxText     = 1024
	maxRoles    = 100
)

// Revoker revokes the sessions of a user; *revocation.List satisfies it.
type Revoker interface {
	RevokeUser(ctx context.Context, user string, notBefore time.Time, ttl time.Duration) error
}

// Rules apply the user rules to the User collection.
type Rules struct {
	users   store.Collection
	revoker Revoker
	ttl     func() time.Duration
	now     func() time.Time
}

// NewRules returns the rules for the records in users; revoker ends the
// sessions of changed users, which can live for ttl() at most.
func NewRules(users store.Collection, revoker Revoker, ttl func() time.Duration, now func() time.Time) *Rules {
	if now == nil {
		now = time.Now
	}
	return &Rules{users: users, revoker: revoker, ttl: ttl, now: now}
}

// Kind returns the User kind for a resource.Provider.
func (r *Rules) Kind() resource.Kind {
	return resource.Kind{
		Name:       Kind,
		Collection: r.users,
		CanCreate:  CanCreate,
		New:        r.New,
		Change:     r.Change,
		Remove:     r.Remove,
		DefaultACL: DefaultACL,
		View:       View,
		Changed:    r.Changed,
	}
}

// CanCreate reports whether who may create users: administrators only.
func CanCreate(who cimi.Identity) bool { return who.IsAdmin() }

// DefaultACL is the ACL of every user record: administrators own it and
// the user may read and change it.
func DefaultACL(_ cimi.Identity, id string, _ map[string]any) cimi.ACL {
	return ACL(strings.TrimPrefix(id, Kind+"/"))
}

// ACL returns the ACL of the record of username.
func ACL(username string) cimi.ACL {
	return cimi.ACL{
		Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role},
		Rules: []cimi.Rule{{Principal: username, Type: cimi.User, Right: cimi.Modify}},
	}
}

// View hides the password hash from every reader: nobody needs it, and a
// hash can be attacked offline.
func View(_ cimi.Identity, doc map[string]any) map[string]any {
	delete(doc, attrPassword)
	return doc
}

// invalid returns an "invalid" error for people.
func invalid(format string, args ...any) error {
	return errs.Errorf(errs.Invalid, format, args...)
}

// New checks a new user record and hashes its password. The id is
// User/<username>, named by the gateway after the body's "username".
func (r *Rules) New(_ context.Context, _ cimi.Identity, id string, body map[string]any) (map[string]any, error) {
	name := strings.TrimPrefix(id, Kind+"/")
	switch u, ok := body[attrUsername]; {
	case !ok:
		body[attrUsername] = name
	case u != name:
		return nil, invalid("The username %v does not match the id %s.", u, id)
	}
	if err := CheckUsername(name); err != nil {
		return nil, err
	}
	for _, a := range []string{attrFirstName, attrLastName} {
		if s, _ := body[a].(string); strings.TrimSpace(s) == "" {
			return nil, invalid("A user needs a %q: give the person's %s name.", a, strings.TrimSuffix(a, "-name"))
		}
	}
	if _, ok := body[attrEnabled]; !ok {
		body[attrEnabled] = false
	}
	delete(body, attrACL)       // always the ACL of DefaultACL
	delete(body, attrNotBefore) // set by authn only
	if err := normalize(body); err != nil {
		return nil, err
	}
	return body, nil
}

// protected are the attributes only administrators may change.
var protected = []string{attrUsername, attrRoles, attrEnabled, attrAltNames}

// Change computes an edit of a user record. Without selects the body
// replaces every attribute, except that a body without "password" keeps
// the current one (reads never show it); send "password": "" or null to
// remove it. Non-administrators may not change the protected attributes; a
// body that leaves them out keeps them.
func (r *Rules) Change(ctx context.Context, who cimi.Identity, current, body map[string]any, selects []string) (map[string]any, error) {
	next := resource.Replace(current, body, selects)
	if _, ok := body[attrPassword]; !ok {
		restore(next, current, attrPassword)
	}
	restore(next, current, attrNotBefore)
	if _, ok := body[attrUsername]; !ok {
		restore(next, current, attrUsername)
	}
	if !who.IsAdmin() {
		for _, a := range protected {
			if _, ok := body[a]; !ok {
				restore(next, current, a)
			} else if !same(a, current[a], next[a]) {
				return nil, errs.Errorf(errs.Forbidden,
					"You may change your own names, e-mail and password, but not your %q: ask an administrator.", a)
			}
		}
	}
	if !same(attrUsername, current[attrUsername], next[attrUsername]) {
		return nil, invalid("A username cannot change: create a user with the new name and delete %v.", current["id"])
	}
	if err := normalize(next); err != nil {
		return nil, err
	}
	if isActiveAdmin(current) && !isActiveAdmin(next) {
		if err := r.keepOneAdmin(ctx, current, "disable or demote"); err != nil {
			return nil, err
		}
	}
	if revokes(current, next) {
		next[attrNotBefore] = r.now().UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	}
	return next, nil
}

// restore sets attribute a of next back to its value in current.
func restore(next, current map[string]any, a string) {
	if v, ok := current[a]; ok {
		next[a] = v
	} else {
		delete(next, a)
	}
}

// same compares two values of attribute a; roles compare as sets.
func same(a string, x, y any) bool {
	if a == attrRoles {
		return slices.Equal(roleSet(x), roleSet(y))
	}
	bx, errx := json.Marshal(x)
	by, erry := json.Marshal(y)
	return errx == nil && erry == nil && string(bx) == string(by)
}

// roleSet returns the roles of a value, sorted and without duplicates.
func roleSet(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// normalize checks the attributes authn reads and puts them in their
// stored form: a bcrypt hash for the password, a trimmed DN.
func normalize(doc map[string]any) error {
	for _, a := range []string{attrFirstName, attrLastName, attrEmail} {
		if v, ok := doc[a]; ok && v != nil {
			if err := checkText(a, v); err != nil {
				return err
			}
		}
	}
	if v, ok := doc[attrEnabled]; ok {
		if _, isBool := v.(bool); !isBool {
			return invalid("%q must be true or false.", attrEnabled)
		}
	}
	if v, ok := doc[attrRoles]; ok && v != nil {
		list, isList := v.([]any)
		if !isList || len(list) > maxRoles {
			return invalid("%q must be a list of at most %d role names, e.g. [\"::ADMIN\"].", attrRoles, maxRoles)
		}
		for _, x := range list {
			if s, isStr := x.(string); !isStr || s == "" || strings.TrimSpace(s) != s || len(s) > maxUsername*2 {
				return invalid("%q must hold role names: non-empty text without surrounding spaces.", attrRoles)
			}
		}
		doc[attrRoles] = anyStrings(roleSet(v))
	}
	if v, ok := doc[attrAltNames]; ok && v != nil {
		alt, isMap := v.(map[string]any)
		if !isMap {
			return invalid(`%q must be an object such as {"x500dn": "CN=Jane Doe,O=Example"}.`, attrAltNames)
		}
		if dn, ok := alt[attrX500DN]; ok && dn != nil {
			s, isStr := dn.(string)
			if !isStr || len(s) > maxText || !utf8.ValidString(s) {
				return invalid("%q must be the certificate's subject DN in RFC 2253 form.", "altnames/x500dn")
			}
			alt[attrX500DN] = NormalizeDN(s)
		}
	}
	return hashPassword(doc)
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// checkText refuses an attribute that is not short UTF-8 text.
func checkText(a string, v any) error {
	s, ok := v.(string)
	if !ok || len(s) > maxText || !utf8.ValidString(s) {
		return invalid("%q must be text of at most %d bytes.", a, maxText)
	}
	return nil
}

// hashPassword replaces a clear password by its bcrypt hash; an empty or
// null password is removed.
func hashPassword(doc map[string]any) error {
	v, ok := doc[attrPassword]
	if !ok {
		return nil
	}
	s, isStr := v.(string)
	switch {
	case v == nil || (isStr && s == ""):
		delete(doc, attrPassword)
		return nil
	case !isStr:
		return invalid("%q must be text: the password, or its bcrypt hash.", attrPassword)
	case IsHash(s):
		return nil
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(s), bcryptCost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return invalid("The password is longer than 72 bytes, the most bcrypt can use: choose a shorter one.")
	} else if err != nil {
		return fmt.Errorf("users: hash a password: %w", err)
	}
	doc[attrPassword] = string(hash)
	return nil
}

// IsHash reports whether s is a bcrypt hash rather than a clear password.
func IsHash(s string) bool {
	if !strings.HasPrefix(s, "$2a$") && !strings.HasPrefix(s, "$2b$") && !strings.HasPrefix(s, "$2y$") {
		return false
	}
	_, err := bcrypt.Cost([]byte(s))
	return err == nil && len(s) == 60
}

// NormalizeDN returns a DN as stored and compared: without surrounding
// spaces.
func NormalizeDN(dn string) string { return strings.TrimSpace(dn) }

// CheckUsername refuses a username that cannot name a user: it is made of
// ASCII letters, digits, '.', '_', '-' and '@', optionally after "vo:" for
// the pseudo-user of a VOMS virtual organisation.
func CheckUsername(name string) error {
	rest := strings.TrimPrefix(name, VOPrefix)
	if rest == "" || len(name) > maxUsername {
		return invalid("A username must be 1 to %d characters long.", maxUsername)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-@", c) >= 0) {
			return invalid("The username %q holds %q: use letters, digits, '.', '_', '-' and '@' (and \"vo:\" before the name of a virtual organisation).", name, c)
		}
	}
	return nil
}

// isActiveAdmin reports whether a record is an enabled administrator.
func isActiveAdmin(doc map[string]any) bool {
	enabled, _ := doc[attrEnabled].(bool)
	return enabled && slices.Contains(roleSet(doc[attrRoles]), cimi.RoleAdmin)
}

// keepOneAdmin refuses to lose the administrator doc when no other enabled
// administrator exists. Two administrators demoting each other at the same
// moment can still both succeed; the store has no multi-document check.
func (r *Rules) keepOneAdmin(ctx context.Context, doc map[string]any, what string) error {
	q := cimi.Query{Filter: &cimi.Logical{Op: cimi.And, Terms: []cimi.Expr{
		&cimi.Comparison{Attr: cimi.Attribute{Path: []string{attrEnabled}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.Bool, Bool: true}},
		&cimi.Comparison{Attr: cimi.Attribute{Path: []string{attrRoles}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: cimi.RoleAdmin}},
	}}}
	page, err := r.users.Query(ctx, q, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		return fmt.Errorf("users: count administrators: %w", err)
	}
	for _, d := range page.Docs {
		if d.ID != doc["id"] {
			return nil
		}
	}
	return errs.Errorf(errs.Conflict,
		"%v is the last enabled administrator: you cannot %s it until another enabled user has the role %s.",
		doc["id"], what, cimi.RoleAdmin)
}

// Remove allows administrators only to delete a user, and never the last
// enabled administrator.
func (r *Rules) Remove(ctx context.Context, who cimi.Identity, current map[string]any) error {
	if !who.IsAdmin() {
		return errs.New(errs.Forbidden, "Only administrators may delete users.")
	}
	if isActiveAdmin(current) {
		return r.keepOneAdmin(ctx, current, "delete")
	}
	return nil
}

// revokes reports whether an edit from before to after must end the
// user's sessions: disabled, or password, roles or certificate DN changed.
func revokes(before, after map[string]any) bool {
	wasEnabled, _ := before[attrEnabled].(bool)
	isEnabled, _ := after[attrEnabled].(bool)
	return wasEnabled && !isEnabled ||
		!same(attrPassword, before[attrPassword], after[attrPassword]) ||
		!same(attrRoles, before[attrRoles], after[attrRoles]) ||
		!same(attrX500DN, dnOf(before), dnOf(after))
}

func dnOf(doc map[string]any) string {
	alt, _ := doc[attrAltNames].(map[string]any)
	s, _ := alt[attrX500DN].(string)
	return s
}

// Changed revokes the user's sessions after an edit that set a new
// sessions-not-before (at that instant, so that a redelivered command
// changes nothing), and at once when the user is deleted.
func (r *Rules) Changed(ctx context.Context, _ cimi.Identity, before, after map[string]any) error {
	switch {
	case before == nil:
		return nil // a new user has no session
	case after == nil:
		return r.revoke(ctx, before, r.now())
	}
	nb, _ := after[attrNotBefore].(string)
	if nb == "" || (nb == before[attrNotBefore] && !reflect.DeepEqual(before, after)) {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, nb)
	if err != nil {
		return nil // not written by Change: nothing to honour
	}
	return r.revoke(ctx, after, t)
}

func (r *Rules) revoke(ctx context.Context, doc map[string]any, at time.Time) error {
	name, _ := doc[attrUsername].(string)
	if name == "" {
		id, _ := doc["id"].(string)
		name = strings.TrimPrefix(id, Kind+"/")
	}
	return r.revoker.RevokeUser(ctx, name, at, r.ttl())
}
