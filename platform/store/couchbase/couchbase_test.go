package couchbase

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/couchbase/gocb/v2"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/storetest"
	"stratuslab.dev/platform/testkit"
)

// The contract suite runs against a real cluster when one is configured:
//
//	STRATUS_TEST_COUCHBASE           connection string, e.g. couchbase://localhost
//	STRATUS_TEST_COUCHBASE_USER      a user allowed to manage scopes, collections and indexes
//	STRATUS_TEST_COUCHBASE_PASSWORD  its password
//	STRATUS_TEST_COUCHBASE_BUCKET    an existing bucket (default stratuslab)
//
// Each store of the suite gets a scope of its own, dropped at the end.
func TestContract(t *testing.T) {
	connStr := os.Getenv("STRATUS_TEST_COUCHBASE")
	if connStr == "" {
		t.Skip("Couchbase contract tests did not run: no Couchbase is reachable " +
			"(set STRATUS_TEST_COUCHBASE, STRATUS_TEST_COUCHBASE_USER and STRATUS_TEST_COUCHBASE_PASSWORD to run them)")
	}
	cfg := Config{
		ConnStr:  connStr,
		Username: os.Getenv("STRATUS_TEST_COUCHBASE_USER"),
		Password: os.Getenv("STRATUS_TEST_COUCHBASE_PASSWORD"),
		Bucket:   os.Getenv("STRATUS_TEST_COUCHBASE_BUCKET"),
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		nc, _ := testkit.JetStream(t)
		suffix := make([]byte, 6)
		_, _ = rand.Read(suffix)
		service := "test-" + hex.EncodeToString(suffix)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s, err := Open(ctx, cfg, nc, service)
		if err != nil {
			t.Fatalf("open Couchbase store: %v", err)
		}
		t.Cleanup(func() {
			err := s.bucket.CollectionsV2().DropScope(s.scope, &gocb.DropScopeOptions{})
			if err != nil {
				t.Logf("drop scope %s: %v", s.scope, err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}
