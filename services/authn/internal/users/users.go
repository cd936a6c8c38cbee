package users

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// Kind is the document kind, and collection, of user records.
const Kind = "User"

// AdminName is the user created at first start.
const AdminName = "admin"

// PasswordFile is the file, in the data directory, that receives the
// administrator's first password.
const PasswordFile = "admin-password"

// bcryptCost is the work factor of stored password hashes: the original
// StratusLab tools used 12, and so do we.
const bcryptCost = 12

// User is the stored form of a user record. Unknown attributes written by
// administrators are kept by whoever updates the document as raw JSON; this
// struct names the ones authn reads.
type User struct {
	cimi.Common
	Username  string   `json:"username"`
	FirstName string   `json:"first-name,omitempty"`
	LastName  string   `json:"last-name,omitempty"`
	Email     string   `json:"email,omitempty"`
	Password  string   `json:"password,omitempty"` // bcrypt hash
	Enabled   bool     `json:"enabled"`
	Roles     []string `json:"roles,omitempty"`
	AltNames  struct {
		X500DN string `json:"x500dn,omitempty"`
	} `json:"altnames,omitzero"`
}

// ID returns the document id of a user.
func ID(username string) string { return Kind + "/" + username }

// EnsureAdmin creates the administrator account when the cloud has no user
// at all, with a random password that it writes once to the log and to
// dataDir/admin-password (mode 0600). It returns whether it created the
// account. Replicas starting together create it once: the create is
// conditional, and only the replica whose create succeeded reports the
// password.
func EnsureAdmin(ctx context.Context, users store.Collection, dataDir string, log *slog.Logger) (bool, error) {
	page, err := users.Query(ctx, cimi.Query{Last: 1}, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		return false, fmt.Errorf("users: look for existing users: %w", err)
	}
	if page.Count > 0 {
		return false, nil
	}
	password := rand.Text()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return false, fmt.Errorf("users: hash the administrator password: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	admin := User{
		Common: cimi.Common{
			ID:          ID(AdminName),
			ResourceURI: cimi.ResourceURI(Kind),
			Description: "administrator created at first start",
			Created:     now,
			Updated:     now,
			ACL:         ACL(AdminName),
		},
		Username: AdminName,
		Password: string(hash),
		Enabled:  true,
		Roles:    []string{cimi.RoleAdmin},
	}
	body, err := json.Marshal(admin)
	if err != nil {
		return false, fmt.Errorf("users: encode %s: %w", admin.ID, err)
	}
	if _, err := users.Create(ctx, admin.ID, body); errors.Is(err, store.ErrExists) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("users: create %s: %w", admin.ID, err)
	}
	path := filepath.Join(dataDir, PasswordFile)
	if err := writeSecret(path, password+"\n"); err != nil {
		// The password is still in the log line below: the account is
		// usable, but the administrator must know where to look.
		log.Error("cannot write the administrator password file", "path", path, "error", err)
	}
	// The one time a password is logged, as the original service did: the
	// administrator has no other way to learn it when the file is lost.
	log.Warn(fmt.Sprintf("%s entry created; initial password is %s", admin.ID, password), "password_file", path)
	return true, nil
}

// Get returns the record of username; the error wraps store.ErrNotFound
// when there is none.
func Get(ctx context.Context, users store.Collection, username string) (User, error) {
	doc, err := users.Get(ctx, ID(username))
	if err != nil {
		return User{}, err
	}
	return decode(doc)
}

func decode(doc store.Document) (User, error) {
	var u User
	if err := json.Unmarshal(doc.Body, &u); err != nil {
		return User{}, fmt.Errorf("users: %s is damaged: %w", doc.ID, err)
	}
	return u, nil
}

// ByDN returns the enabled users whose certificate DN is dn (compared after
// NormalizeDN).
func ByDN(ctx context.Context, users store.Collection, dn string) ([]User, error) {
	dn = NormalizeDN(dn)
	if dn == "" {
		return nil, nil
	}
	q := cimi.Query{Filter: &cimi.Logical{Op: cimi.And, Terms: []cimi.Expr{
		&cimi.Comparison{Attr: cimi.Attribute{Path: []string{attrAltNames, attrX500DN}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: dn}},
		&cimi.Comparison{Attr: cimi.Attribute{Path: []string{attrEnabled}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.Bool, Bool: true}},
	}}, Last: 10}
	page, err := users.Query(ctx, q, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		return nil, fmt.Errorf("users: find users by DN: %w", err)
	}
	out := make([]User, 0, len(page.Docs))
	for _, d := range page.Docs {
		u, err := decode(d)
		if err != nil {
			return nil, err
		}
		if u.Enabled && NormalizeDN(u.AltNames.X500DN) == dn {
			out = append(out, u)
		}
	}
	return out, nil
}

// writeSecret writes data to a new file only its owner can read.
func writeSecret(path, data string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil { // an older file may have kept wider rights
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
