package xmlsig

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// oidEmail is PKCS#9 emailAddress, which grid certificates put in the
// subject.
var oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// credential is a key and its certificate.
type credential struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// testPKI is the certificates the tests sign and verify with: a grid-like
// CA, an endorser with an e-mail address in its subject, an impostor with
// the same subject and another key, a 1024-bit legacy endorser, a chain
// through an intermediate CA, and a CA nobody trusts.
type testPKI struct {
	ca, endorser, impostor, legacy, otherCA, inter, interEndorser, noSign credential
}

// pki generates the test PKI once per test binary: RSA key generation is
// the slowest part of the tests.
var pki = sync.OnceValue(func() *testPKI {
	p := &testPKI{}
	p.ca = newCA("Example Grid CA", nil)
	p.otherCA = newCA("Unrelated CA", nil)
	p.endorser = newEndorser(p.ca, "Jane Doe", "jane.doe@example.org", 2048, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
	p.impostor = newEndorser(p.ca, "Jane Doe", "jane.doe@example.org", 2048, x509.KeyUsageDigitalSignature)
	p.legacy = newEndorser(p.ca, "Old Timer", "old.timer@example.org", 1024, x509.KeyUsageDigitalSignature)
	p.inter = newCA("Example Grid Issuing CA", &p.ca)
	p.interEndorser = newEndorser(p.inter, "John Roe", "john.roe@example.org", 2048, 0)
	p.noSign = newEndorser(p.ca, "Key Encipherer", "enc@example.org", 2048, x509.KeyUsageKeyEncipherment)
	return p
})

func mustKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic(err)
	}
	return n
}

func newCA(cn string, parent *credential) credential {
	key := mustKey(2048)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Country: []string{"EU"}, Organization: []string{"Example Grid"}, CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	issuer, issuerKey := tmpl, key
	if parent != nil {
		issuer, issuerKey = parent.cert, parent.key
	}
	return credential{key, mustCert(tmpl, issuer, &key.PublicKey, issuerKey)}
}

func newEndorser(ca credential, cn, email string, bits int, usage x509.KeyUsage) credential {
	key := mustKey(bits)
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			Country: []string{"EU"}, Organization: []string{"Example Grid"}, CommonName: cn,
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmail, Value: email}},
		},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:    usage,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
	}
	return credential{key, mustCert(tmpl, ca.cert, &key.PublicKey, ca.key)}
}

func mustCert(tmpl, issuer *x509.Certificate, pub *rsa.PublicKey, issuerKey *rsa.PrivateKey) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, issuerKey)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func keyPEM(t testing.TB, k *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// need fails the test when a program it runs is missing: a skipped
// interoperability test would hide that nothing was checked.
func need(t testing.TB, prog, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Fatalf("this test runs %s: install the Debian package %s (scripts/deps.sh does)", prog, pkg)
	}
}

// writeFile writes data to name in dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a program and returns its combined output.
func run(prog string, args ...string) (string, error) {
	out, err := exec.Command(prog, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func readEntry(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/entry.xml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readTestdata(name string) ([]byte, error) { return os.ReadFile(name) }
