package x509auth

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"stratuslab.dev/platform/x509auth/x509test"
)

func TestLoadPool(t *testing.T) {
	t.Parallel()
	a, b, c := x509test.NewCA(t, "CA A"), x509test.NewCA(t, "CA B"), x509test.NewCA(t, "CA C")
	other := x509test.NewCA(t, "Not loaded")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := write("bundle/cas.pem", x509test.CertPEM(a.Cert, b.Cert))
	write("grid/1a2b3c4d.0", x509test.CertPEM(a.Cert))
	write("grid/ca-b.pem", x509test.CertPEM(b.Cert))
	write("grid/ca-c.crt", x509test.CertPEM(c.Cert))
	write("grid/1a2b3c4d.signing_policy", []byte("access_id_CA X509 '/O=StratusLab Test/CN=CA A'\n"))
	write("grid/1a2b3c4d.r0", []byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"))
	write("grid/README", []byte("not a certificate"))
	write("empty/notes.txt", []byte("nothing here"))
	write("broken/bad.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	write("nocert/key.pem", x509test.KeyPEM(t, a.Key))

	tests := []struct {
		name    string
		path    string
		trusted []*x509test.CA
		wantErr bool
	}{
		{name: "file with two certificates", path: bundle, trusted: []*x509test.CA{a, b}},
		{name: "grid certificates directory", path: filepath.Join(dir, "grid"), trusted: []*x509test.CA{a, b, c}},
		{name: "missing path", path: filepath.Join(dir, "missing"), wantErr: true},
		{name: "directory without certificate files", path: filepath.Join(dir, "empty"), wantErr: true},
		{name: "broken certificate", path: filepath.Join(dir, "broken"), wantErr: true},
		{name: "PEM file without certificate", path: filepath.Join(dir, "nocert", "key.pem"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, err := LoadPool(tt.path)
			if tt.wantErr {
				if err == nil {
					t.Fatal("LoadPool succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadPool: %v", err)
			}
			for _, ca := range append(tt.trusted, other) {
				user, _ := ca.Issue(t, "User of "+ca.Cert.Subject.CommonName)
				_, err := Verify([]*x509.Certificate{user}, Options{Roots: pool})
				if want := ca != other; (err == nil) != want {
					t.Errorf("user of %s trusted = %v, want %v (%v)", ca.Cert.Subject, err == nil, want, err)
				}
			}
		})
	}
}

func TestCertFileName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"ca.pem": true, "ca.crt": true, "1a2b3c4d.0": true, "1a2b3c4d.1": true,
		"1a2b3c4d.r0": false, "1a2b3c4d.signing_policy": false, "README": false, "x.": false, "ca.key": false,
	} {
		if got := certFileName(name); got != want {
			t.Errorf("certFileName(%q) = %v, want %v", name, got, want)
		}
	}
}
