package pdisk

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stratuslab.dev/platform/x509auth/x509test"
)

// TestImageRoots: image_cas adds its certificates (a file or a directory)
// to the pool downloads trust; a path that holds none is an error naming
// it, and an empty one keeps the system's CAs (nil).
func TestImageRoots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := x509test.NewCA(t, "Site Images CA")
	leaf, _ := ca.Issue(t, "images.example.org", x509test.ExtKeyUsage(x509.ExtKeyUsageServerAuth))
	caFile := filepath.Join(dir, "ca.pem")
	x509test.WriteCertPEM(t, caFile, ca.Cert)
	caDir := filepath.Join(dir, "cas")
	if err := os.Mkdir(caDir, 0o755); err != nil {
		t.Fatal(err)
	}
	x509test.WriteCertPEM(t, filepath.Join(caDir, "site.crt"), ca.Cert)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name, path string
		err        string // part of the error; "" for none
	}{
		{name: "unset", path: ""},
		{name: "file", path: caFile},
		{name: "directory", path: caDir},
		{name: "missing file", path: missing, err: missing},
		{name: "no certificate", path: junk, err: junk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, err := imageRoots(tt.path)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "image_cas") {
					t.Fatalf("error %v, want one naming image_cas and %s", err, tt.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tt.path == "":
				if pool != nil {
					t.Error("with image_cas unset, a pool replaces the system's")
				}
				return
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				t.Errorf("a certificate of the site's CA: %v", err)
			}
		})
	}
}
