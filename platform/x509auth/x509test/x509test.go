package x509test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"testing"
	"time"
)

// Object identifiers written by this package; x509auth reads the same.
var (
	oidProxyCertInfo = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 14}
	// OIDInheritAll is the RFC 3820 policy language of ordinary proxies.
	OIDInheritAll = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 21, 1}
	// OIDIndependent is the RFC 3820 policy language of proxies that do not
	// carry their issuer's identity.
	OIDIndependent   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 21, 2}
	oidCommonName    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidVOMSExtension = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 8005, 100, 100, 5}
	oidVOMSAttribute = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 8005, 100, 100, 4}
	oidVOMSCerts     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 8005, 100, 100, 10}
	oidNoRevAvail    = asn1.ObjectIdentifier{2, 5, 29, 56}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidRSASHA256     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
)

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Option changes a certificate template before it is signed.
type Option func(*x509.Certificate)

// Validity sets the validity period.
func Validity(notBefore, notAfter time.Time) Option {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// Subject replaces the subject name.
func Subject(n pkix.Name) Option {
	return func(c *x509.Certificate) { c.Subject, c.RawSubject = n, nil }
}

// ExtKeyUsage replaces the extended key usages.
func ExtKeyUsage(u ...x509.ExtKeyUsage) Option {
	return func(c *x509.Certificate) { c.ExtKeyUsage = u }
}

// DNSNames sets the DNS names, for host certificates.
func DNSNames(names ...string) Option {
	return func(c *x509.Certificate) { c.DNSNames = names }
}

// ProxyCertInfo replaces the RFC 3820 ProxyCertInfo extension of a proxy;
// a negative pathLen leaves the path length out.
func ProxyCertInfo(pathLen int, policy asn1.ObjectIdentifier) Option {
	return func(c *x509.Certificate) {
		c.ExtraExtensions = append(withoutExt(c.ExtraExtensions, oidProxyCertInfo), pkix.Extension{
			Id: oidProxyCertInfo, Critical: true, Value: proxyCertInfo(pathLen, policy),
		})
	}
}

// NewCA returns a self-signed CA named "CN=<name>,O=StratusLab Test".
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{Organization: []string{"StratusLab Test"}, CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return &CA{Cert: create(t, tmpl, tmpl, key.Public(), key), Key: key}
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue returns a user certificate "CN=<cn>,O=StratusLab Test" for client
// authentication, valid from an hour ago for a year, and its key.
func (ca *CA) Issue(t testing.TB, cn string, opts ...Option) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{Organization: []string{"StratusLab Test"}, CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, o := range opts {
		o(tmpl)
	}
	return create(t, tmpl, ca.Cert, key.Public(), ca.Key), key
}

// NewProxy returns a proxy of issuerCert signed with issuerKey, valid from
// five minutes ago for twelve hours: an RFC 3820 proxy (ProxyCertInfo with
// policy inheritAll, subject + CN=<serial>) or a legacy Globus one (subject
// + CN=proxy). A non-nil vomsAC (from NewVOMSAC) is embedded in the VOMS
// extension. Passing a key other than issuerCert's yields a proxy whose
// signature does not verify.
func NewProxy(t testing.TB, issuerCert *x509.Certificate, issuerKey crypto.Signer, rfc3820 bool, vomsAC []byte, opts ...Option) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	sn := serial(t)
	cn := "proxy"
	if rfc3820 {
		cn = sn.String()
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		RawSubject:   appendCN(t, issuerCert.RawSubject, cn),
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(12 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if rfc3820 {
		ProxyCertInfo(-1, OIDInheritAll)(tmpl)
	}
	if vomsAC != nil {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidVOMSExtension, Value: VOMSExtension(t, vomsAC)})
	}
	for _, o := range opts {
		o(tmpl)
	}
	// CreateCertificate refuses a key that does not match the parent, so
	// the parent is a copy holding the signing key's public half.
	parent := *issuerCert
	parent.PublicKey = issuerKey.Public()
	return create(t, tmpl, &parent, key.Public(), issuerKey), key
}

// ACOption changes a VOMS attribute certificate made by NewVOMSAC.
type ACOption func(*acParams)

type acParams struct {
	notBefore   time.Time
	embedSigner bool
}

// WithoutSigner leaves the VOMS server's certificate out of the attribute
// certificate, as old VOMS servers did.
func WithoutSigner() ACOption { return func(p *acParams) { p.embedSigner = false } }

// ACNotBefore sets the start of the attribute certificate's validity
// (default: five minutes ago).
func ACNotBefore(t time.Time) ACOption { return func(p *acParams) { p.notBefore = t } }

// NewVOMSAC returns the DER RFC 3281 attribute certificate that the VOMS
// server server (signing with key) issues to holder for vo with fqans
// (default "/<vo>/Role=NULL/Capability=NULL"), valid until notAfter. The
// server's certificate is embedded unless WithoutSigner is given.
func NewVOMSAC(t testing.TB, server *x509.Certificate, key crypto.Signer, holder *x509.Certificate, vo string, fqans []string, notAfter time.Time, opts ...ACOption) []byte {
	t.Helper()
	p := acParams{notBefore: time.Now().Add(-5 * time.Minute), embedSigner: true}
	for _, o := range opts {
		o(&p)
	}
	if len(fqans) == 0 {
		fqans = []string{"/" + vo + "/Role=NULL/Capability=NULL"}
	}
	alg := pkix.AlgorithmIdentifier{Algorithm: oidECDSASHA256}
	if _, ok := key.(*rsa.PrivateKey); ok {
		alg = pkix.AlgorithmIdentifier{Algorithm: oidRSASHA256, Parameters: asn1.NullRawValue}
	}
	host := server.Subject.CommonName
	if len(server.DNSNames) > 0 {
		host = server.DNSNames[0]
	}
	var values []asn1.RawValue
	for _, f := range fqans {
		values = append(values, asn1.RawValue{Tag: asn1.TagOctetString, Bytes: []byte(f)})
	}
	uri := mustMarshal(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(fmt.Sprintf("%s://%s:15000", vo, host))})
	attr := mustMarshal(t, ietfAttrSyntax{
		PolicyAuthority: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: uri},
		Values:          values,
	})
	exts := []pkix.Extension{{Id: oidNoRevAvail, Value: asn1.NullBytes}}
	if p.embedSigner {
		inner := mustMarshal(t, []asn1.RawValue{{FullBytes: server.Raw}})
		exts = append(exts, pkix.Extension{Id: oidVOMSCerts, Value: mustMarshal(t, []asn1.RawValue{{FullBytes: inner}})})
	}
	issuerNames := mustMarshal(t, []asn1.RawValue{directoryName(server.RawSubject)})
	info := mustMarshal(t, acInfo{
		Version: 1,
		Holder: acHolder{BaseCertificateID: issuerSerial{
			Issuer: []asn1.RawValue{directoryName(holder.RawIssuer)},
			Serial: holder.SerialNumber,
		}},
		Issuer:       asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: issuerNames},
		Signature:    alg,
		SerialNumber: serial(t),
		Validity: acValidity{
			NotBefore: p.notBefore.UTC().Truncate(time.Second),
			NotAfter:  notAfter.UTC().Truncate(time.Second),
		},
		Attributes: []acAttribute{{Type: oidVOMSAttribute, Values: []asn1.RawValue{{FullBytes: attr}}}},
		Extensions: exts,
	})
	digest := sha256.Sum256(info)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("x509test: signing an attribute certificate: %v", err)
	}
	return mustMarshal(t, attributeCertificate{
		Info:               asn1.RawValue{FullBytes: info},
		SignatureAlgorithm: alg,
		SignatureValue:     asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
}

// VOMSExtension encodes attribute certificates as the value of the VOMS
// proxy extension: a SEQUENCE of one SEQUENCE OF AttributeCertificate, as
// voms-proxy-init writes it.
func VOMSExtension(t testing.TB, acs ...[]byte) []byte {
	t.Helper()
	var raws []asn1.RawValue
	for _, ac := range acs {
		raws = append(raws, asn1.RawValue{FullBytes: ac})
	}
	inner := mustMarshal(t, raws)
	return mustMarshal(t, []asn1.RawValue{{FullBytes: inner}})
}

// CertPEM encodes certificates as PEM, in order.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as PKCS #8 PEM.
func KeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("x509test: encoding a key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteCertPEM writes certificates to a PEM file.
func WriteCertPEM(t testing.TB, path string, certs ...*x509.Certificate) {
	t.Helper()
	if err := os.WriteFile(path, CertPEM(certs...), 0o644); err != nil {
		t.Fatalf("x509test: %v", err)
	}
}

// WriteKeyPEM writes a private key to a PKCS #8 PEM file readable only by
// its owner.
func WriteKeyPEM(t testing.TB, path string, key crypto.Signer) {
	t.Helper()
	if err := os.WriteFile(path, KeyPEM(t, key), 0o600); err != nil {
		t.Fatalf("x509test: %v", err)
	}
}

// ProxyFile returns a proxy file as grid tools write it: the proxy
// certificate, its key, then the rest of the chain.
func ProxyFile(t testing.TB, key crypto.Signer, chain ...*x509.Certificate) []byte {
	t.Helper()
	if len(chain) == 0 {
		t.Fatalf("x509test: ProxyFile needs the proxy certificate")
	}
	out := CertPEM(chain[0])
	out = append(out, KeyPEM(t, key)...)
	return append(out, CertPEM(chain[1:]...)...)
}

// TLSCertificate returns a client or server certificate for crypto/tls: the
// chain leaf first, and the leaf's key.
func TLSCertificate(key crypto.Signer, chain ...*x509.Certificate) tls.Certificate {
	c := tls.Certificate{PrivateKey: key}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	if len(chain) > 0 {
		c.Leaf = chain[0]
	}
	return c
}

// The RFC 3281 structures, for encoding.
type (
	attributeCertificate struct {
		Info               asn1.RawValue
		SignatureAlgorithm pkix.AlgorithmIdentifier
		SignatureValue     asn1.BitString
	}
	acInfo struct {
		Version      int
		Holder       acHolder
		Issuer       asn1.RawValue
		Signature    pkix.AlgorithmIdentifier
		SerialNumber *big.Int
		Validity     acValidity
		Attributes   []acAttribute
		Extensions   []pkix.Extension `asn1:"optional"`
	}
	acHolder struct {
		BaseCertificateID issuerSerial `asn1:"tag:0"`
	}
	issuerSerial struct {
		Issuer []asn1.RawValue
		Serial *big.Int
	}
	acValidity struct {
		NotBefore time.Time `asn1:"generalized"`
		NotAfter  time.Time `asn1:"generalized"`
	}
	acAttribute struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}
	ietfAttrSyntax struct {
		PolicyAuthority asn1.RawValue
		Values          []asn1.RawValue
	}
)

// directoryName is the GeneralName [4] EXPLICIT Name.
func directoryName(name []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}
}

func proxyCertInfo(pathLen int, policy asn1.ObjectIdentifier) []byte {
	type proxyPolicy struct{ Language asn1.ObjectIdentifier }
	var der []byte
	var err error
	if pathLen >= 0 {
		der, err = asn1.Marshal(struct {
			PathLen int
			Policy  proxyPolicy
		}{pathLen, proxyPolicy{policy}})
	} else {
		der, err = asn1.Marshal(struct{ Policy proxyPolicy }{proxyPolicy{policy}})
	}
	if err != nil {
		panic(err) // fixed, valid structures cannot fail to encode
	}
	return der
}

func withoutExt(exts []pkix.Extension, id asn1.ObjectIdentifier) []pkix.Extension {
	var out []pkix.Extension
	for _, e := range exts {
		if !e.Id.Equal(id) {
			out = append(out, e)
		}
	}
	return out
}

// appendCN returns the DER name base with one more RDN, CN=cn, keeping the
// encoding of base's RDNs as they are.
func appendCN(t testing.TB, base []byte, cn string) []byte {
	t.Helper()
	var rdns []asn1.RawValue
	if _, err := asn1.Unmarshal(base, &rdns); err != nil {
		t.Fatalf("x509test: parsing a name: %v", err)
	}
	last := mustMarshal(t, pkix.RelativeDistinguishedNameSET{{Type: oidCommonName, Value: cn}})
	return mustMarshal(t, append(rdns, asn1.RawValue{FullBytes: last}))
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatalf("x509test: creating a certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x509test: parsing a certificate: %v", err)
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("x509test: generating a key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("x509test: %v", err)
	}
	return n.Add(n, big.NewInt(1))
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatalf("x509test: encoding: %v", err)
	}
	return der
}
