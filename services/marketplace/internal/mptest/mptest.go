// Package mptest makes what the marketplace's tests upload: real X.509
// certificates (a CA, endorsers it issues, self-signed endorsers) and
// entries built, endorsed and signed with the metadata and xmlsig packages,
// as `stratus build-metadata` and `sign-metadata` make them. Only tests
// import it.
package mptest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

// Credential is a key and its certificate.
type Credential struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// CertPEM is the certificate in PEM.
func (c Credential) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM is the private key in PEM (PKCS#1).
func (c Credential) KeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(c.Key)})
}

// serial numbers certificates; a random 64-bit value is unique enough.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		panic(err)
	}
	return n
}

// NewCA makes a certification authority valid from a year ago for ten
// years. Like NewEndorser, it panics if the system cannot make keys:
// tests make their certificates once, outside any one test.
func NewCA(name string) Credential {
	key := newKey(2048)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"StratusLab Test"}, Country: []string{"EU"}},
		NotBefore:             time.Now().AddDate(-1, 0, 0),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return sign(tmpl, key, tmpl, key)
}

// NewEndorser makes an endorser's certificate for email with an RSA key
// of bits bits, issued by ca, or self-signed when ca has no key.
func NewEndorser(ca Credential, name, email string, bits int) Credential {
	key := newKey(bits)
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: name, OrganizationalUnit: []string{"Appliances"}, Organization: []string{"StratusLab Test"}, Country: []string{"EU"}},
		NotBefore:      time.Now().AddDate(0, -1, 0),
		NotAfter:       time.Now().AddDate(2, 0, 0),
		EmailAddresses: []string{email},
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageClientAuth},
	}
	if ca.Key == nil {
		return sign(tmpl, key, tmpl, key)
	}
	return sign(tmpl, key, ca.Cert, ca.Key)
}

func newKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(fmt.Sprintf("mptest: generate a %d-bit RSA key: %v", bits, err))
	}
	return k
}

func sign(tmpl *x509.Certificate, key *rsa.PrivateKey, parent *x509.Certificate, parentKey *rsa.PrivateKey) Credential {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		panic(fmt.Sprintf("mptest: make the certificate of %s: %v", tmpl.Subject.CommonName, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(fmt.Sprintf("mptest: read the certificate of %s: %v", tmpl.Subject.CommonName, err))
	}
	return Credential{Key: key, Cert: cert}
}

// ParseCertPEM reads the first certificate of PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("mptest: no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Image describes the entry of a made-up image.
type Image struct {
	// Content is the image's bytes; its SHA-1 names the entry.
	Content string
	// OS, OSVersion, OSArch default to debian, 12, x86_64.
	OS, OSVersion, OSArch string
	Tag, Title            string
	// Created is when the image was made (and the entry built); zero:
	// an hour ago.
	Created time.Time
	// Validity after Created; zero: six months. An entry made long
	// enough ago with a short validity has expired.
	Validity time.Duration
	// Deprecated, when set, is the entry's slterms:deprecated.
	Deprecated string
	// Locations default to one https URL.
	Locations []string
}

// Entry builds the unsigned entry of im with metadata.Build.
func Entry(tb testing.TB, im Image) *metadata.Entry {
	tb.Helper()
	opts := metadata.BuildOptions{
		OS: or(im.OS, "debian"), OSVersion: or(im.OSVersion, "12"), OSArch: or(im.OSArch, "x86_64"),
		Tag: im.Tag, Title: or(im.Title, "Test image"), Creator: "Test Author", Email: "author@example.org", Version: "1.0",
		Locations: im.Locations, Validity: im.Validity, Now: im.Created,
	}
	if len(opts.Locations) == 0 {
		opts.Locations = []string{"https://appliances.example.org/images/" + strings.ReplaceAll(or(im.Content, "x"), " ", "-") + ".img"}
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now().Add(-time.Hour)
	}
	if opts.Validity == 0 {
		opts.Validity = 183 * 24 * time.Hour
	}
	e, err := metadata.Build(opts, bytes.NewReader([]byte(or(im.Content, "image"))))
	if err != nil {
		tb.Fatalf("build the entry of %q: %v", im.Content, err)
	}
	e.Deprecated = im.Deprecated
	return e
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Sign endorses e with signer's certificate at endorsed and returns the
// signed document, as stratus sign-metadata does.
func Sign(tb testing.TB, e *metadata.Entry, signer Credential, endorsed time.Time) []byte {
	tb.Helper()
	if err := metadata.Endorse(e, signer.Cert, endorsed); err != nil {
		tb.Fatal(err)
	}
	return SignAsIs(tb, e, signer)
}

// SignAsIs signs e as it is, endorsement included (to sign an entry
// claiming another endorser).
func SignAsIs(tb testing.TB, e *metadata.Entry, signer Credential) []byte {
	tb.Helper()
	doc, err := metadata.Render(e)
	if err != nil {
		tb.Fatal(err)
	}
	signed, err := xmlsig.Sign(doc, signer.Key, []*x509.Certificate{signer.Cert}, xmlsig.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return signed
}
