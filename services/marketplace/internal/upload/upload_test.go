package upload_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/marketplace/internal/mptest"
	"stratuslab.dev/services/marketplace/internal/upload"
)

// pki is the test's certificates, made once per test binary: RSA key
// generation is the slow part.
type pki struct {
	ca, otherCA              mptest.Credential
	alice, bob, outsider     mptest.Credential // alice and bob from ca, outsider from otherCA
	selfSigned, legacy       mptest.Credential
	aliceImpostorSameSubject mptest.Credential // another key, same name and e-mail, from otherCA
}

var testPKI = sync.OnceValue(func() *pki {
	p := &pki{}
	p.ca = mptest.NewCA("Marketplace Test CA")
	p.otherCA = mptest.NewCA("Unrelated CA")
	p.alice = mptest.NewEndorser(p.ca, "Alice Appliance", "alice@example.org", 2048)
	p.bob = mptest.NewEndorser(p.ca, "Bob Builder", "bob@example.org", 2048)
	p.outsider = mptest.NewEndorser(p.otherCA, "Olga Outsider", "olga@example.net", 2048)
	p.selfSigned = mptest.NewEndorser(mptest.Credential{}, "Sam Self", "sam@example.com", 2048)
	p.legacy = mptest.NewEndorser(p.ca, "Old Grid User", "old@example.org", 1024)
	p.aliceImpostorSameSubject = mptest.NewEndorser(p.otherCA, "Alice Appliance", "alice@example.org", 2048)
	return p
})

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// refusal asserts err is a Refusal of code naming rule, whose message
// holds msg.
func refusal(t *testing.T, err error, code errs.Code, rule, msg string) {
	t.Helper()
	var r *upload.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got %v, want a refusal (%s)", err, rule)
	}
	if errs.CodeOf(err) != code || !r.Has(rule) || !strings.Contains(r.Message(), msg) {
		t.Fatalf("got %s %q (rules %v), want %s naming %s with %q", errs.CodeOf(err), r.Message(), r.Rules(), code, rule, msg)
	}
	if !strings.HasPrefix(errs.MessageOf(err), "Entry refused (") || !strings.Contains(errs.MessageOf(err), rule) {
		t.Fatalf("the message %q does not name the rule %s", errs.MessageOf(err), rule)
	}
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	p := testPKI()
	now := time.Now()
	good := func() *metadata.Entry { return mptest.Entry(t, mptest.Image{Content: "debian 12 base"}) }
	signed := mptest.Sign(t, good(), p.alice, now)

	tampered := bytes.Replace(signed, []byte("Test image"), []byte("Trojan image"), 1)
	claimsAlice := good()
	if err := metadata.Endorse(claimsAlice, p.alice.Cert, now); err != nil {
		t.Fatal(err)
	}
	bobSignsForAlice := mptest.SignAsIs(t, claimsAlice, p.bob)
	expired := mptest.Sign(t, mptest.Entry(t, mptest.Image{Content: "old", Created: now.AddDate(0, -2, 0), Validity: 24 * time.Hour}), p.alice, now.AddDate(0, -2, 0).Add(time.Hour))
	wrongSHA1 := good()
	wrongSHA1.Checksums[1].Value = strings.Repeat("0", 40)
	badIdentifier := mptest.Sign(t, wrongSHA1, p.alice, now)
	unsigned, err := metadata.Render(good())
	if err != nil {
		t.Fatal(err)
	}
	doctype := []byte(strings.Replace(string(signed), "<rdf:RDF", "<!DOCTYPE rdf:RDF [<!ENTITY x \"y\">]>\n<rdf:RDF", 1))
	huge := append(bytes.Clone(signed), bytes.Repeat([]byte(" "), metadata.MaxDocumentSize)...)
	future := mptest.Sign(t, good(), p.alice, now.Add(time.Hour))
	httpLocation := good()
	httpLocation.Locations = []string{"ftp://example.org/image.img"}
	ftp := mptest.Sign(t, httpLocation, p.alice, now)

	anyone := upload.Policy{}
	tests := []struct {
		name   string
		doc    []byte
		policy upload.Policy
		rule   string
		msg    string
	}{
		{"not well-formed", signed[:len(signed)/2], anyone, metadata.RuleWellFormed, ""},
		{"a DOCTYPE", doctype, anyone, metadata.RuleNoDoctype, ""},
		{"over 1 MiB", huge, anyone, metadata.RuleDocumentSize, "at most 1048576 bytes"},
		{"no signature", unsigned, anyone, metadata.RuleSignaturePresent, "sign it with stratus sign-metadata"},
		{"tampered", tampered, anyone, metadata.RuleSignatureDigest, "modified after signing"},
		{"signed by bob, claiming alice", bobSignsForAlice, anyone, metadata.RuleEndorserMatchesCertificate, "alice@example.org"},
		{"signed by an impostor of alice's name from another CA", mptest.Sign(t, good(), p.aliceImpostorSameSubject, now),
			upload.Policy{Roots: pool(p.ca.Cert)}, metadata.RuleTrustedCA, "trusted-cas"},
		{"expired", expired, anyone, metadata.RuleNotExpired, "the entry expired at"},
		{"identifier is not the SHA-1's", badIdentifier, anyone, metadata.RuleIdentifierMatchesSHA1, ""},
		{"endorsed in the future", future, anyone, metadata.RuleNotInFuture, "in the future"},
		{"a location that is not http", ftp, anyone, metadata.RuleLocationURL, "ftp://"},
		{"untrusted CA", mptest.Sign(t, good(), p.outsider, now), upload.Policy{Roots: pool(p.ca.Cert)}, metadata.RuleTrustedCA, ""},
		{"self-signed when a CA is required", mptest.Sign(t, good(), p.selfSigned, now), upload.Policy{Roots: pool(p.ca.Cert)}, metadata.RuleTrustedCA, ""},
		{"not in the allow-list", signed, upload.Policy{Allows: func(e string) bool { return e == "bob@example.org" }},
			metadata.RuleEndorserAllowed, "alice@example.org is not one of the endorsers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := upload.Check(tt.doc, tt.policy, now)
			if c != nil {
				t.Fatalf("accepted %s", c.Entry.Identifier)
			}
			refusal(t, err, errs.Invalid, tt.rule, tt.msg)
		})
	}
}

func TestCheckAccepts(t *testing.T) {
	t.Parallel()
	p := testPKI()
	now := time.Now()
	deprecating := mptest.Entry(t, mptest.Image{Content: "withdrawn", Created: now.AddDate(0, -2, 0), Validity: 24 * time.Hour, Deprecated: "security hole"})
	private := mptest.Entry(t, mptest.Image{Content: "private"})
	private.Locations = []string{"pdisk:0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10"}
	tests := []struct {
		name   string
		doc    []byte
		policy upload.Policy
	}{
		{"signed by a CA's endorser, CA trusted", mptest.Sign(t, mptest.Entry(t, mptest.Image{}), p.alice, now), upload.Policy{Roots: pool(p.ca.Cert)}},
		{"self-signed, no CA required", mptest.Sign(t, mptest.Entry(t, mptest.Image{}), p.selfSigned, now), upload.Policy{}},
		{"in the allow-list", mptest.Sign(t, mptest.Entry(t, mptest.Image{}), p.alice, now), upload.Policy{Allows: func(e string) bool { return e == "alice@example.org" }}},
		{"expired but deprecating", mptest.Sign(t, deprecating, p.alice, now.AddDate(0, -2, 0).Add(time.Hour)), upload.Policy{}},
		// The author withdraws an image whose entry expired: endorsed now,
		// after the entry's validity ended.
		{"deprecated after it expired", mptest.Sign(t, deprecating, p.alice, now), upload.Policy{}},
		{"a pdisk location", mptest.Sign(t, private, p.alice, now), upload.Policy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := upload.Check(tt.doc, tt.policy, now)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.XML, tt.doc) || c.Certificate == nil || c.Entry.Identifier == "" || c.Entry.Endorsement.Endorser.Email == "" {
				t.Fatalf("checked entry incomplete: %+v", c)
			}
		})
	}
}

// TestCheckReadsWhatIsSigned: content outside what the signature covers
// never reaches the entry. A comment is not covered by inclusive C14N
// without comments; the entry read is the same with or without it.
func TestCheckReadsWhatIsSigned(t *testing.T) {
	t.Parallel()
	p := testPKI()
	signed := mptest.Sign(t, mptest.Entry(t, mptest.Image{Title: "Signed title"}), p.alice, time.Now())
	withComment := bytes.Replace(signed, []byte("<dcterms:title>"), []byte("<!-- unsigned note --><dcterms:title>"), 1)
	c, err := upload.Check(withComment, upload.Policy{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Entry.Title != "Signed title" || !bytes.Contains(c.XML, []byte("unsigned note")) {
		t.Fatalf("entry %+v", c.Entry)
	}
}

// TestLegacyKeys: a 1024-bit signature (made by xmlsec1, since our signer
// refuses short keys) is refused unless the site allows legacy keys.
func TestLegacyKeys(t *testing.T) {
	t.Parallel()
	p := testPKI()
	now := time.Now()
	e := mptest.Entry(t, mptest.Image{Content: "grid era"})
	if err := metadata.Endorse(e, p.legacy.Cert, now); err != nil {
		t.Fatal(err)
	}
	doc := xmlsecSign(t, e, p.legacy)
	_, err := upload.Check(doc, upload.Policy{}, now)
	refusal(t, err, errs.Invalid, metadata.RuleSignatureKeySize, "1024 bits")
	if _, err := upload.Check(doc, upload.Policy{MinRSABits: 1024}, now); err != nil {
		t.Fatalf("legacy keys allowed: %v", err)
	}
}

// TestToolsMadeEntry: a certificate made by openssl and a signature made
// by xmlsec1, as an endorser without our tools would make them, pass.
func TestToolsMadeEntry(t *testing.T) {
	t.Parallel()
	need(t, "openssl")
	need(t, "xmlsec1")
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	run(t, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "30",
		"-subj", "/C=EU/O=Tools Test/CN=Terry Tool/emailAddress=terry@example.org")
	pemCert, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	cred := mptest.Credential{Cert: parseCert(t, pemCert)}
	e := mptest.Entry(t, mptest.Image{Content: "made with tools"})
	if err := metadata.Endorse(e, cred.Cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	doc := xmlsecSignFiles(t, e, pemKey, pemCert)
	c, err := upload.Check(doc, upload.Policy{Roots: pool(cred.Cert)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Entry.Endorsement.Endorser; got.Email != "terry@example.org" || !strings.Contains(got.Subject, "CN=Terry Tool") {
		t.Fatalf("endorser %+v", got)
	}
}

func need(t *testing.T, prog string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Fatalf("this test runs %s: install the Debian package %s (scripts/deps.sh does)", prog, prog)
	}
}

func run(t *testing.T, prog string, args ...string) {
	t.Helper()
	if out, err := exec.Command(prog, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}

func parseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	cert, err := mptest.ParseCertPEM(pemData)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// xmlsecSign signs e with xmlsec1 using cred.
func xmlsecSign(t *testing.T, e *metadata.Entry, cred mptest.Credential) []byte {
	t.Helper()
	need(t, "xmlsec1")
	return xmlsecSignFiles(t, e, cred.KeyPEM(), cred.CertPEM())
}

// xmlsecSignFiles renders e, adds an enveloped-signature template (inclusive
// C14N, RSA-SHA256) and has xmlsec1 sign it with the PEM key, putting the
// certificate in X509Data.
func xmlsecSignFiles(t *testing.T, e *metadata.Entry, keyPEM, certPEM []byte) []byte {
	t.Helper()
	doc, err := metadata.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	const tmpl = `<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>` +
		`<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>` +
		`<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>` +
		`<Reference URI=""><Transforms><Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></Transforms>` +
		`<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference></SignedInfo>` +
		`<SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>`
	doc = bytes.Replace(doc, []byte("</rdf:RDF>"), []byte(tmpl+"</rdf:RDF>"), 1)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, crt, in := write("key.pem", keyPEM), write("cert.pem", certPEM), write("entry.xml", doc)
	out := filepath.Join(dir, "signed.xml")
	run(t, "xmlsec1", "--sign", "--privkey-pem", key+","+crt, "--output", out, in)
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}
