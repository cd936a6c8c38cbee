// Package settings is the live configuration of the marketplace, the
// document ServiceConfiguration/marketplace: who may endorse entries, which
// certification authorities vouch for endorsers, whether old 1024-bit keys
// still verify, and how long a capture's draft stays visible.
package settings

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
	"stratuslab.dev/platform/config"
)

// Service is the value the "service" attribute must hold.
const Service = "marketplace"

// AnyEndorser in Endorsers lets every certificate holder endorse.
const AnyEndorser = "*"

// Settings is ServiceConfiguration/marketplace.
type Settings struct {
	// Service must be "marketplace".
	Service string `json:"service"`
	// Endorsers are the e-mail addresses whose entries are accepted, or
	// "*" for anyone with a certificate (the default).
	Endorsers []string `json:"endorsers"`
	// TrustedCAs is a PEM bundle of certification authorities; when set,
	// an entry's signing certificate must chain to one of them. Empty:
	// any certificate, self-signed included, proves who signed.
	TrustedCAs string `json:"trusted-cas,omitempty"`
	// AllowLegacyKeys accepts signatures made with 1024-bit RSA keys, as
	// the original grid certificates had; 2048 bits are required
	// otherwise.
	AllowLegacyKeys bool `json:"allow-legacy-keys"`
	// DraftValidity is how long the draft of a captured image is valid
	// (dcterms:valid) when it is made.
	DraftValidity config.Duration `json:"draft-validity"`
}

// Defaults are the settings of a new cloud: anyone may endorse, no CA is
// required, 2048-bit keys, drafts valid two days (the user guide's "more
// than 2 days" advice).
func Defaults() Settings {
	return Settings{
		Service:       Service,
		Endorsers:     []string{AnyEndorser},
		DraftValidity: config.Duration(48 * time.Hour),
	}
}

// Validate refuses settings that cannot work, saying what to fix.
func (s Settings) Validate() error {
	if s.Service != Service {
		return fmt.Errorf("service must be %q, not %q", Service, s.Service)
	}
	if len(s.Endorsers) == 0 {
		return errors.New(`endorsers must list e-mail addresses, or be ["*"] to accept every endorser`)
	}
	for _, e := range s.Endorsers {
		if e != AnyEndorser && !metadata.ValidEmail(e) {
			return fmt.Errorf("endorsers: %q is neither an e-mail address nor \"*\"", e)
		}
	}
	if _, err := s.Roots(); err != nil {
		return err
	}
	if d := s.DraftValidity.D(); d < time.Hour || d > 365*24*time.Hour {
		return fmt.Errorf("draft-validity must be between an hour and a year, not %s", d)
	}
	return nil
}

// Roots returns the trusted CAs, or nil when none are set (no chain is
// required).
func (s Settings) Roots() (*x509.CertPool, error) {
	if strings.TrimSpace(s.TrustedCAs) == "" {
		return nil, nil
	}
	pool := x509.NewCertPool()
	rest := []byte(s.TrustedCAs)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trusted-cas: certificate %d cannot be read: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("trusted-cas holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return pool, nil
}

// Allows reports whether entries endorsed by email are accepted.
func (s Settings) Allows(email string) bool {
	for _, e := range s.Endorsers {
		if e == AnyEndorser || strings.EqualFold(e, email) {
			return true
		}
	}
	return false
}

// MinRSABits is the shortest RSA key a signature may be made with.
func (s Settings) MinRSABits() int {
	if s.AllowLegacyKeys {
		return xmlsig.LegacyMinRSABits
	}
	return xmlsig.DefaultMinRSABits
}
