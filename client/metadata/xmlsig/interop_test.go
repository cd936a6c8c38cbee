package xmlsig

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// xmlsecVerify runs xmlsec1 --verify on doc, trusting the test CA.
func xmlsecVerify(t *testing.T, doc []byte) (string, error) {
	t.Helper()
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", certPEM(pki().ca.cert))
	file := writeFile(t, dir, "signed.xml", doc)
	return run("xmlsec1", "--verify", "--trusted-pem", ca, file)
}

// xmlsecSign signs a template with xmlsec1: the first credential signs,
// the certificates of all go to X509Data.
func xmlsecSign(t *testing.T, tmpl []byte, creds ...credential) []byte {
	t.Helper()
	dir := t.TempDir()
	files := []string{writeFile(t, dir, "key.pem", keyPEM(t, creds[0].key))}
	for i, c := range creds {
		files = append(files, writeFile(t, dir, fmt.Sprintf("cert%d.pem", i), certPEM(c.cert)))
	}
	in := writeFile(t, dir, "template.xml", tmpl)
	out := filepath.Join(dir, "signed.xml")
	if msg, err := run("xmlsec1", "--sign", "--privkey-pem", strings.Join(files, ","), "--output", out, in); err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// template returns the entry with an empty Signature for xmlsec1 to fill.
// prefix is "" or "ds:"; transform, when set, is a canonicalization
// transform after the enveloped one, with its own content.
func template(t *testing.T, prefix, c14n, sigMethod, digMethod, transform string) []byte {
	t.Helper()
	decl := `xmlns="` + Namespace + `"`
	if prefix != "" {
		decl = `xmlns:` + strings.TrimSuffix(prefix, ":") + `="` + Namespace + `"`
	}
	p := prefix
	sig := `<` + p + `Signature ` + decl + `>` +
		`<` + p + `SignedInfo><` + p + `CanonicalizationMethod Algorithm="` + c14n + `"/>` +
		`<` + p + `SignatureMethod Algorithm="` + sigMethod + `"/>` +
		`<` + p + `Reference URI=""><` + p + `Transforms><` + p + `Transform Algorithm="` + EnvelopedSignature + `"/>` + transform + `</` + p + `Transforms>` +
		`<` + p + `DigestMethod Algorithm="` + digMethod + `"/><` + p + `DigestValue/></` + p + `Reference>` +
		`</` + p + `SignedInfo><` + p + `SignatureValue/><` + p + `KeyInfo><` + p + `X509Data/></` + p + `KeyInfo></` + p + `Signature>`
	return []byte(strings.Replace(string(readEntry(t)), "</rdf:RDF>", sig+"</rdf:RDF>", 1))
}

func caPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestSignThenXmlsecVerifies: what Sign writes, xmlsec1 (libxml2 +
// OpenSSL) accepts, for every algorithm choice and for documents that
// stress canonicalization.
func TestSignThenXmlsecVerifies(t *testing.T) {
	need(t, "xmlsec1", "xmlsec1")
	p := pki()
	type doc struct{ name, doc string }
	docs := []doc{{"marketplace entry", string(readEntry(t))}}
	for _, d := range c14nDocs {
		docs = append(docs, doc{d.name, d.doc})
	}
	type tc struct {
		name  string
		doc   string
		opts  Options
		chain []credential
	}
	var cases []tc
	for _, d := range docs {
		cases = append(cases, tc{d.name, d.doc, Options{}, []credential{p.endorser}})
	}
	entry := docs[0].doc
	cases = append(cases,
		tc{"rsa-sha1 and sha1 like the Java signer", entry, Options{SignatureMethod: RSASHA1, DigestMethod: SHA1}, []credential{p.endorser}},
		tc{"exclusive c14n", entry, Options{Canonicalization: ExcC14N10}, []credential{p.endorser}},
		tc{"rsa-sha384", entry, Options{SignatureMethod: RSASHA384, DigestMethod: SHA384}, []credential{p.endorser}},
		tc{"rsa-sha512", entry, Options{SignatureMethod: RSASHA512, DigestMethod: SHA512}, []credential{p.endorser}},
		tc{"chain through an intermediate CA", entry, Options{}, []credential{p.interEndorser, p.inter}},
		tc{"self-closing root", `<r:RDF xmlns:r="urn:r" xml:base="http://x/"/>`, Options{}, []credential{p.endorser}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var chain []*x509.Certificate
			for _, cr := range c.chain {
				chain = append(chain, cr.cert)
			}
			signed, err := Sign([]byte(c.doc), c.chain[0].key, chain, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if msg, err := xmlsecVerify(t, signed); err != nil {
				t.Fatalf("xmlsec1 refuses what Sign wrote: %v\n%s\n%s", err, msg, signed)
			}
			res, err := Verify(signed, VerifyOptions{Roots: caPool(p.ca.cert)})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Certificate.Equal(chain[0]) || len(res.Chain) != len(chain)+1 {
				t.Errorf("signer %s, chain of %d, want %s and %d", res.Certificate.Subject, len(res.Chain), chain[0].Subject, len(chain)+1)
			}
		})
	}
}

// TestXmlsecSignThenVerify: what xmlsec1 signs, Verify accepts, with the
// algorithms and shapes other signers use.
func TestXmlsecSignThenVerify(t *testing.T) {
	need(t, "xmlsec1", "xmlsec1")
	p := pki()
	excl := `<Transform Algorithm="` + ExcC14N10 + `"/>`
	exclPrefixes := `<Transform Algorithm="` + ExcC14N10 + `"><ec:InclusiveNamespaces xmlns:ec="` + excC14NNamespace + `" PrefixList="dcterms #default"/></Transform>`
	tests := []struct {
		name                     string
		tmpl                     []byte
		creds                    []credential
		opts                     VerifyOptions
		wantErr                  error
		wantC14N, wantSig, wantD string
	}{
		{"rsa-sha1 like the Java signer", template(t, "", C14N10, RSASHA1, SHA1, ""), []credential{p.endorser}, VerifyOptions{}, nil, C14N10, RSASHA1, SHA1},
		{"rsa-sha256", template(t, "", C14N10, RSASHA256, SHA256, ""), []credential{p.endorser}, VerifyOptions{}, nil, C14N10, RSASHA256, SHA256},
		{"ds prefix", template(t, "ds:", C14N10, RSASHA256, SHA256, ""), []credential{p.endorser}, VerifyOptions{}, nil, C14N10, RSASHA256, SHA256},
		{"explicit inclusive c14n transform", template(t, "ds:", C14N10, RSASHA256, SHA1, `<ds:Transform Algorithm="`+C14N10+`"/>`), []credential{p.endorser}, VerifyOptions{}, nil, C14N10, RSASHA256, SHA1},
		{"exclusive c14n", template(t, "", ExcC14N10, RSASHA512, SHA512, excl), []credential{p.endorser}, VerifyOptions{}, nil, ExcC14N10, RSASHA512, SHA512},
		{"exclusive c14n with inclusive prefixes", template(t, "", ExcC14N10, RSASHA256, SHA256, exclPrefixes), []credential{p.endorser}, VerifyOptions{}, nil, ExcC14N10, RSASHA256, SHA256},
		{"chain in X509Data", template(t, "", C14N10, RSASHA256, SHA256, ""), []credential{p.interEndorser, p.inter}, VerifyOptions{}, nil, C14N10, RSASHA256, SHA256},
		{"1024-bit key refused by default", template(t, "", C14N10, RSASHA1, SHA1, ""), []credential{p.legacy}, VerifyOptions{}, ErrWeakKey, "", "", ""},
		{"1024-bit key accepted when asked", template(t, "", C14N10, RSASHA1, SHA1, ""), []credential{p.legacy}, VerifyOptions{MinRSABits: LegacyMinRSABits}, nil, C14N10, RSASHA1, SHA1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			signed := xmlsecSign(t, tc.tmpl, tc.creds...)
			if msg, err := xmlsecVerify(t, signed); err != nil {
				t.Fatalf("xmlsec1 does not verify its own signature: %v\n%s", err, msg)
			}
			tc.opts.Roots = caPool(p.ca.cert)
			res, err := Verify(signed, tc.opts)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify: %v, want %v\n%s", err, tc.wantErr, signed)
			}
			if err != nil {
				return
			}
			if !res.Certificate.Equal(tc.creds[0].cert) {
				t.Errorf("signer %s, want %s", res.Certificate.Subject, tc.creds[0].cert.Subject)
			}
			if len(res.Certificates) != len(tc.creds) || len(res.Chain) != len(tc.creds)+1 {
				t.Errorf("%d certificates and a chain of %d, want %d and %d", len(res.Certificates), len(res.Chain), len(tc.creds), len(tc.creds)+1)
			}
			if res.Canonicalization != tc.wantC14N || res.SignatureMethod != tc.wantSig || res.DigestMethod != tc.wantD {
				t.Errorf("algorithms %s %s %s, want %s %s %s", res.Canonicalization, res.SignatureMethod, res.DigestMethod, tc.wantC14N, tc.wantSig, tc.wantD)
			}
			if strings.Contains(string(res.Signed), "Signature") || !strings.Contains(string(res.Signed), ">Debian 12 base</dcterms:title>") {
				t.Errorf("Result.Signed is not the document without its signature:\n%s", res.Signed)
			}
		})
	}
}

// mutation changes a signed document; every replacement must happen, or
// the test would check nothing.
type mutation func(t *testing.T, doc string) string

func replace(old, new string) mutation {
	return func(t *testing.T, doc string) string {
		t.Helper()
		if !strings.Contains(doc, old) {
			t.Fatalf("the document holds no %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
}

func reReplace(expr, repl string) mutation {
	re := regexp.MustCompile(expr)
	return func(t *testing.T, doc string) string {
		t.Helper()
		loc := re.FindStringIndex(doc)
		if loc == nil {
			t.Fatalf("the document does not match %s", expr)
		}
		return doc[:loc[0]] + re.ReplaceAllString(doc[loc[0]:loc[1]], repl) + doc[loc[1]:]
	}
}

// TestTampering changes signed documents, some harmlessly (what
// canonicalization erases), some not; Verify must name the broken rule and
// xmlsec1 must reach the same verdict.
func TestTampering(t *testing.T) {
	need(t, "xmlsec1", "xmlsec1")
	p := pki()
	ours, err := Sign(readEntry(t), p.endorser.key, []*x509.Certificate{p.endorser.cert}, Options{SignatureMethod: RSASHA1, DigestMethod: SHA1})
	if err != nil {
		t.Fatal(err)
	}
	theirs := xmlsecSign(t, template(t, "ds:", C14N10, RSASHA256, SHA256, ""), p.endorser)
	impostor := base64.StdEncoding.EncodeToString(p.impostor.cert.Raw)

	const (
		valid   = "valid"
		invalid = "invalid"
		skip    = "" // xmlsec1 has another policy
	)
	tests := []struct {
		name    string
		mutate  mutation
		wantErr error
		xmlsec  string
	}{
		{"unchanged", func(_ *testing.T, d string) string { return d }, nil, valid},
		{"namespace declarations reordered", reReplace(`xmlns:rdf="([^"]*)"(\s+)xmlns:dcterms="([^"]*)"`, `xmlns:dcterms="$3"${2}xmlns:rdf="$1"`), nil, valid},
		{"attribute moved before the namespaces", reReplace(`(<rdf:RDF )([^>]*?)\s+xml:base="([^"]*)"`, `${1}xml:base='$3' $2`), nil, valid},
		{"single quotes", replace(`rdf:parseType="Resource"`, `rdf:parseType='Resource'`), nil, valid},
		{"comment added", replace(`<dcterms:title>`, `<!-- harmless --><dcterms:title>`), nil, valid},
		{"character reference", replace(`Debian 12 base`, `&#68;ebian 12 base`), nil, valid},
		{"CDATA section", replace(`Debian 12 base`, `<![CDATA[Debian 12]]> base`), nil, valid},
		{"carriage return references in base64 as Java writes them", reReplace(`<(ds:)?SignatureValue>\s*[A-Za-z0-9+/]{10}`, "$0&#13;\n"), nil, valid},
		{"CRLF line ends", func(_ *testing.T, d string) string { return strings.ReplaceAll(d, "\n", "\r\n") }, nil, valid},
		{"one character of a text node", replace(`Debian 12 base`, `Debian 13 base`), ErrDigestMismatch, invalid},
		{"attribute value", replace(`rdf:about="#BEE8`, `rdf:about="#CEE8`), ErrDigestMismatch, invalid},
		{"element added", replace(`<slterms:os>Debian</slterms:os>`, `<slterms:os>Debian</slterms:os><slterms:deprecated>no</slterms:deprecated>`), ErrDigestMismatch, invalid},
		{"element removed", replace(`<slterms:icmp>true</slterms:icmp>`, ``), ErrDigestMismatch, invalid},
		{"whitespace added between elements", replace(`</dcterms:title>`, `</dcterms:title> `), ErrDigestMismatch, invalid},
		{"namespace changed", replace(`xmlns:slterms="http://mp.stratuslab.eu/slterms#"`, `xmlns:slterms="http://mp.stratuslab.eu/slterms2#"`), ErrDigestMismatch, invalid},
		{"certificate swapped for another of the same CA", reReplace(`(?s)(<(ds:)?X509Certificate>).*?(</(ds:)?X509Certificate>)`, "${1}"+impostor+"${3}"), ErrSignatureInvalid, invalid},
		{"SignedInfo changed", reReplace(`<(ds:)?SignedInfo>`, "$0 "), ErrSignatureInvalid, invalid},
		{"SignatureValue changed", reReplace(`(<(ds:)?SignatureValue>\s*)[A-Za-z0-9+/]{4}`, "${1}AAAA"), ErrSignatureInvalid, invalid},
		{"signature removed", reReplace(`(?s)<(ds:)?Signature .*</(ds:)?Signature>`, ""), ErrSignatureMissing, invalid},
		{"signature moved into the description", func(t *testing.T, d string) string {
			sig := regexp.MustCompile(`(?s)<(ds:)?Signature .*</(ds:)?Signature>`).FindString(d)
			d = strings.Replace(d, sig, "", 1)
			return replace(`</rdf:Description>`, sig+`</rdf:Description>`)(t, d)
		}, ErrMalformedSignature, skip},
		{"signature duplicated", func(t *testing.T, d string) string {
			sig := regexp.MustCompile(`(?s)<(ds:)?Signature .*</(ds:)?Signature>`).FindString(d)
			return replace(`</rdf:RDF>`, sig+`</rdf:RDF>`)(t, d)
		}, ErrMalformedSignature, skip},
	}
	for _, signed := range []struct {
		by  string
		doc []byte
	}{{"Sign", ours}, {"xmlsec1", theirs}} {
		for _, tc := range tests {
			t.Run(signed.by+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				doc := []byte(tc.mutate(t, string(signed.doc)))
				_, err := Verify(doc, VerifyOptions{Roots: caPool(p.ca.cert)})
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Verify: %v, want %v", err, tc.wantErr)
				}
				if tc.xmlsec == skip {
					return
				}
				msg, err := xmlsecVerify(t, doc)
				if got := map[bool]string{true: valid, false: invalid}[err == nil]; got != tc.xmlsec {
					t.Errorf("xmlsec1 says %s, want %s: %s", got, tc.xmlsec, msg)
				}
			})
		}
	}
}
