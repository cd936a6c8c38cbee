package settings_test

import (
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/services/marketplace/internal/mptest"
	"stratuslab.dev/services/marketplace/internal/settings"
)

// TestDocument reads a ServiceConfiguration/marketplace document over the
// defaults, as the live settings do.
func TestDocument(t *testing.T) {
	t.Parallel()
	ca := mptest.NewCA("Settings Test CA")
	doc := map[string]any{
		"id": "ServiceConfiguration/marketplace", "service": "marketplace",
		"endorsers": []string{"images@example.org", "Jane@Example.org"}, "trusted-cas": string(ca.CertPEM()),
		"allow-legacy-keys": true, "draft-validity": "72h",
	}
	data, _ := json.Marshal(doc)
	s := settings.Defaults()
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	roots, err := s.Roots()
	if err != nil || roots == nil {
		t.Fatalf("roots: %v", err)
	}
	if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the CA does not verify against the roots read: %v", err)
	}
	if !s.Allows("jane@example.org") || !s.Allows("images@example.org") || s.Allows("other@example.org") {
		t.Error("allow-list")
	}
	if s.MinRSABits() != 1024 || s.DraftValidity.D() != 72*time.Hour {
		t.Errorf("legacy %d, draft validity %s", s.MinRSABits(), s.DraftValidity.D())
	}
	def := settings.Defaults()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	if r, err := def.Roots(); r != nil || err != nil || !def.Allows("anyone@example.org") || def.MinRSABits() != 2048 {
		t.Errorf("defaults: roots %v %v", r, err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		edit func(s *settings.Settings)
		want string
	}{
		{"another service", func(s *settings.Settings) { s.Service = "pdisk" }, `service must be "marketplace"`},
		{"no endorser", func(s *settings.Settings) { s.Endorsers = nil }, "endorsers must list"},
		{"not an e-mail", func(s *settings.Settings) { s.Endorsers = []string{"jane"} }, `"jane" is neither`},
		{"not PEM", func(s *settings.Settings) { s.TrustedCAs = "hello" }, "no PEM certificate"},
		{"bad certificate", func(s *settings.Settings) {
			s.TrustedCAs = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}, "certificate 1 cannot be read"},
		{"draft validity too short", func(s *settings.Settings) { s.DraftValidity = 0 }, "draft-validity"},
	} {
		s := settings.Defaults()
		tt.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}
