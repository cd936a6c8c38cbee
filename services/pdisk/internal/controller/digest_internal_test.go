package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestMarketplaceID: identifiers as client/metadata.Identifier writes them
// (vectors computed with it).
func TestMarketplaceID(t *testing.T) {
	for _, tt := range []struct{ sha1, id string }{
		{"da39a3ee5e6b4b0d3255bfef95601890afd80709", "No5o-5ea0sNMlW_75VgGJCv2AcJ"},
		{"ffffffffffffffffffffffffffffffffffffffff", "P__________________________"},
		{"0000000000000000000000000000000000000001", "AAAAAAAAAAAAAAAAAAAAAAAAAAB"},
	} {
		if got, err := marketplaceID(tt.sha1); err != nil || got != tt.id {
			t.Errorf("marketplaceID(%s) = %q, %v; want %q", tt.sha1, got, err, tt.id)
		}
	}
	for _, bad := range []string{"", "da39", "zz39a3ee5e6b4b0d3255bfef95601890afd80709", "da39a3ee5e6b4b0d3255bfef95601890afd8070900"} {
		if got, err := marketplaceID(bad); err == nil {
			t.Errorf("marketplaceID(%q) = %q; want an error", bad, got)
		}
	}
}

// TestDigestEmptyAndMissing: an empty file has the SHA-1 of nothing; a
// missing one is an error, not an empty digest.
func TestDigestEmptyAndMissing(t *testing.T) {
	name := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n, sum, err := digest(context.Background(), name)
	if err != nil || n != 0 || sum != "da39a3ee5e6b4b0d3255bfef95601890afd80709" {
		t.Errorf("digest of an empty file: %d %s %v", n, sum, err)
	}
	if _, _, err := digest(context.Background(), name+".gone"); err == nil {
		t.Error("digest of a missing file succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := digest(ctx, name); err == nil {
		t.Error("digest with an ended context succeeded")
	}
}
