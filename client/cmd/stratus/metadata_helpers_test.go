package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
)

// Endorsers of the tests. Jane's credentials are made with openssl (a CA,
// a certificate with her e-mail in its subject, a PKCS#12 export as grid
// users have); John's with crypto/x509 (his e-mail in subjectAltName, PEM
// files). Each has its own CA, so that trust can be tested.
const (
	janeEmail = "jane.tester@example.org"
	johnEmail = "john.roe@example.org"
	p12Pass   = "p12 secret"
)

// credential is what an endorser's files hold.
type credential struct {
	email    string
	p12Data  []byte // PKCS#12 of key and certificate, password p12Pass; nil for John
	certData []byte // PEM
	keyData  []byte // PEM
	caData   []byte // PEM
	cert     *x509.Certificate
	key      any
}

// credentialFiles are a credential written in a test's directory.
type credentialFiles struct {
	*credential
	p12, certFile, keyFile, ca string
}

// need fails the test when a program it runs is missing: a skipped
// interoperability check would hide that nothing was checked.
func need(t testing.TB, prog, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Fatalf("this test runs %s: install the Debian package %s (scripts/deps.sh does)", prog, pkg)
	}
}

// testPKI makes both credentials once per test binary: key generation is
// the slowest part of the tests.
var testPKI = sync.OnceValues(func() ([2]*credential, error) {
	jane, err := opensslCredential()
	if err != nil {
		return [2]*credential{}, err
	}
	john, err := goCredential()
	return [2]*credential{jane, john}, err
})

// opensslCredential makes a CA and Jane's certificate with openssl.
func opensslCredential() (*credential, error) {
	dir, err := os.MkdirTemp("", "stratus-pki-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "30",
			"-subj", "/C=EU/O=StratusLab Test/CN=StratusLab Test CA"},
		{"req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("jane.key"), "-out", p("jane.csr"),
			"-subj", "/C=EU/O=StratusLab Test/CN=Jane Tester/emailAddress=" + janeEmail},
		{"x509", "-req", "-in", p("jane.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-set_serial", "4242", "-days", "30", "-out", p("jane.pem")},
		{"pkcs12", "-export", "-inkey", p("jane.key"), "-in", p("jane.pem"), "-certfile", p("ca.pem"), "-out", p("jane.p12"), "-passout", "pass:" + p12Pass},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	c := &credential{email: janeEmail}
	for dst, name := range map[*[]byte]string{&c.p12Data: "jane.p12", &c.certData: "jane.pem", &c.keyData: "jane.key", &c.caData: "ca.pem"} {
		if *dst, err = os.ReadFile(p(name)); err != nil {
			return nil, err
		}
	}
	block, _ := pem.Decode(c.certData)
	if block == nil {
		return nil, fmt.Errorf("openssl wrote no certificate")
	}
	if c.cert, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, err
	}
	kb, _ := pem.Decode(c.keyData)
	if kb == nil {
		return nil, fmt.Errorf("openssl wrote no key")
	}
	c.key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	return c, err
}

// goCredential makes a CA and John's certificate with crypto/x509.
func goCredential() (*credential, error) {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Country: []string{"EU"}, Organization: []string{"Example Grid"}, CommonName: "Example Grid CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{Country: []string{"EU"}, Organization: []string{"Example Grid"}, CommonName: "John Roe"},
		EmailAddresses: []string{johnEmail}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &credential{
		email:    johnEmail,
		certData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyData:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		caData:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert:     cert, key: key,
	}, nil
}

// endorsers writes both credentials into dir.
func endorsers(t *testing.T, dir string) (jane, john credentialFiles) {
	t.Helper()
	need(t, "openssl", "openssl")
	pki, err := testPKI()
	if err != nil {
		t.Fatal(err)
	}
	write := func(c *credential, name string) credentialFiles {
		f := credentialFiles{credential: c}
		for dst, v := range map[*string]struct {
			suffix string
			data   []byte
		}{&f.p12: {".p12", c.p12Data}, &f.certFile: {"-cert.pem", c.certData}, &f.keyFile: {"-key.pem", c.keyData}, &f.ca: {"-ca.pem", c.caData}} {
			if v.data == nil {
				continue
			}
			*dst = filepath.Join(dir, name+v.suffix)
			if err := os.WriteFile(*dst, v.data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	return write(pki[0], "jane"), write(pki[1], "john")
}

// imageFile writes an image file of n bytes, the same for the same seed,
// and returns its path and its identifier as sha1sum computes it.
func imageFile(t *testing.T, dir, seed string, n int) (string, string) {
	t.Helper()
	data := []byte(strings.Repeat(seed+"\n", n/(len(seed)+1)+1)[:n])
	path := filepath.Join(dir, seed+".img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, identifierBySha1sum(t, path)
}

// identifierBySha1sum computes the identifier of a file from what the
// sha1sum program prints, independently of the client's hashing.
func identifierBySha1sum(t *testing.T, path string) string {
	t.Helper()
	need(t, "sha1sum", "coreutils")
	out, err := exec.Command("sha1sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var sum [sha1.Size]byte
	field, _, _ := strings.Cut(string(out), " ")
	if n, err := hex.Decode(sum[:], []byte(field)); err != nil || n != sha1.Size {
		t.Fatalf("sha1sum printed %q: %v", out, err)
	}
	return metadata.Identifier(sum)
}

// xmlsecVerify runs xmlsec1 --verify on a signed file, trusting ca.
func xmlsecVerify(t *testing.T, file, ca string) (string, error) {
	t.Helper()
	need(t, "xmlsec1", "xmlsec1")
	out, err := exec.Command("xmlsec1", "--verify", "--trusted-pem", ca, file).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
