package users

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
)

func collection(t *testing.T) store.Collection {
	t.Helper()
	_, js := testkit.JetStream(t)
	st, err := embedded.Open(context.Background(), js, "authn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c, err := st.Collection(context.Background(), Kind)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	coll := collection(t)
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	created, err := EnsureAdmin(ctx, coll, dir, log)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	file := filepath.Join(dir, PasswordFile)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", file, fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(file)
	password := strings.TrimSpace(string(raw))
	if len(password) < 20 {
		t.Errorf("password %q is too short", password)
	}
	if !strings.Contains(logs.String(), "User/admin entry created; initial password is "+password) {
		t.Errorf("log does not give the password:\n%s", logs.String())
	}

	doc, err := coll.Get(ctx, ID(AdminName))
	if err != nil {
		t.Fatal(err)
	}
	var u User
	if err := json.Unmarshal(doc.Body, &u); err != nil {
		t.Fatal(err)
	}
	if !u.Enabled || len(u.Roles) != 1 || u.Roles[0] != "::ADMIN" || u.Username != "admin" {
		t.Errorf("admin record %s", doc.Body)
	}
	if strings.Contains(string(doc.Body), password) {
		t.Error("the stored record holds the clear password")
	}
	if err := bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(password)); err != nil {
		t.Errorf("stored hash does not match the password: %v", err)
	}
	if cost, err := bcrypt.Cost([]byte(u.Password)); err != nil || cost < 12 {
		t.Errorf("bcrypt cost %d, %v; want at least 12", cost, err)
	}
	// The same ACL as a user created through CIMI: administrators own it,
	// the user may change it.
	if u.ACL.Owner.Principal != "::ADMIN" || !u.ACL.Allows(cimi.Identity{User: "admin"}, cimi.Modify) || u.ResourceURI != cimi.ResourceURI(Kind) {
		t.Errorf("admin record acl %+v, resourceURI %q", u.ACL, u.ResourceURI)
	}

	// A restart, or a second replica, changes nothing.
	logs.Reset()
	if created, err := EnsureAdmin(ctx, coll, dir, log); err != nil || created {
		t.Fatalf("second start: created %v, %v", created, err)
	}
	if again, _ := os.ReadFile(file); string(again) != string(raw) {
		t.Error("the password file changed on the second start")
	}
	if strings.Contains(logs.String(), "password") {
		t.Errorf("the second start logged %q", logs.String())
	}
}

func TestEnsureAdminConcurrentReplicas(t *testing.T) {
	t.Parallel()
	coll := collection(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 4 {
		wg.Go(func() {
			ok, err := EnsureAdmin(context.Background(), coll, t.TempDir(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d replicas created the administrator, want 1", created)
	}
}
