package xmlsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

func signEntry(t *testing.T, opts Options) []byte {
	t.Helper()
	p := pki()
	signed, err := Sign(readEntry(t), p.endorser.key, []*x509.Certificate{p.endorser.cert}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestSignKeepsTheDocument: the Signature is the last child of the root,
// and removing it gives back the original bytes.
func TestSignKeepsTheDocument(t *testing.T) {
	t.Parallel()
	entry := readEntry(t)
	signed := signEntry(t, Options{})
	start := bytes.Index(signed, []byte(`<Signature xmlns="`+Namespace+`">`))
	end := bytes.LastIndex(signed, []byte("</Signature>"))
	if start < 0 || end < 0 {
		t.Fatalf("no Signature in\n%s", signed)
	}
	end += len("</Signature>")
	if rest := string(signed[end:]); rest != "</rdf:RDF>\n" {
		t.Errorf("after the Signature comes %q, want the root's end tag", rest)
	}
	if without := append(bytes.Clone(signed[:start]), signed[end:]...); !bytes.Equal(without, entry) {
		t.Errorf("the document changed apart from the Signature:\n%s", without)
	}
	for _, want := range []string{C14N10, RSASHA256, SHA256, EnvelopedSignature, `<Reference URI="">`, "<X509Certificate>"} {
		if !bytes.Contains(signed, []byte(want)) {
			t.Errorf("the signature has no %s", want)
		}
	}
	if bytes.Contains(signed, []byte(`<Transform Algorithm="`+C14N10)) {
		t.Error("inclusive C14N is implicit after the enveloped transform, as the Java signer wrote it")
	}
}

func TestSignRefuses(t *testing.T) {
	t.Parallel()
	p := pki()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	endorser := []*x509.Certificate{p.endorser.cert}
	tests := []struct {
		name    string
		doc     []byte
		key     crypto.Signer
		chain   []*x509.Certificate
		opts    Options
		wantErr error
		msg     string
	}{
		{"already signed", signEntry(t, Options{}), p.endorser.key, endorser, Options{}, ErrAlreadySigned, "already signed"},
		{"ECDSA key", readEntry(t), ec, endorser, Options{}, ErrUnsupportedAlgorithm, "require RSA"},
		{"1024-bit key", readEntry(t), p.legacy.key, []*x509.Certificate{p.legacy.cert}, Options{}, ErrWeakKey, "1024 bits"},
		{"certificate of another key", readEntry(t), p.endorser.key, []*x509.Certificate{p.impostor.cert}, Options{}, ErrKeyMismatch, "first certificate"},
		{"no certificate", readEntry(t), p.endorser.key, nil, Options{}, nil, "no signing certificate"},
		{"MD5", readEntry(t), p.endorser.key, endorser, Options{SignatureMethod: "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"}, ErrUnsupportedAlgorithm, "weaker than SHA-1"},
		{"unknown digest", readEntry(t), p.endorser.key, endorser, Options{DigestMethod: "urn:nope"}, ErrUnsupportedAlgorithm, "urn:nope"},
		{"c14n with comments", readEntry(t), p.endorser.key, endorser, Options{Canonicalization: C14N10 + "#WithComments"}, ErrUnsupportedAlgorithm, "without comments"},
		{"not XML", []byte("<rdf:RDF>"), p.endorser.key, endorser, Options{}, ErrMalformedXML, "line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Sign(tc.doc, tc.key, tc.chain, tc.opts)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Sign: %v, want %v mentioning %q", err, tc.wantErr, tc.msg)
			}
		})
	}
}

// TestVerifyTrust checks the optional trust decision.
func TestVerifyTrust(t *testing.T) {
	t.Parallel()
	p := pki()
	sign := func(c credential, chain ...*x509.Certificate) []byte {
		signed, err := Sign(readEntry(t), c.key, append([]*x509.Certificate{c.cert}, chain...), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	byEndorser := sign(p.endorser)
	tests := []struct {
		name      string
		doc       []byte
		opts      VerifyOptions
		wantErr   error
		wantChain int
	}{
		{"no roots: no trust decision", byEndorser, VerifyOptions{}, nil, 0},
		{"trusted CA", byEndorser, VerifyOptions{Roots: caPool(p.ca.cert)}, nil, 2},
		{"another CA", byEndorser, VerifyOptions{Roots: caPool(p.otherCA.cert)}, ErrUntrusted, 0},
		{"expired at the verification time", byEndorser, VerifyOptions{Roots: caPool(p.ca.cert), Now: time.Now().Add(2 * 365 * 24 * time.Hour)}, ErrUntrusted, 0},
		{"not yet valid at the verification time", byEndorser, VerifyOptions{Roots: caPool(p.ca.cert), Now: time.Now().Add(-24 * time.Hour)}, ErrUntrusted, 0},
		{"intermediate CA in KeyInfo", sign(p.interEndorser, p.inter.cert), VerifyOptions{Roots: caPool(p.ca.cert)}, nil, 3},
		{"intermediate CA missing", sign(p.interEndorser), VerifyOptions{Roots: caPool(p.ca.cert)}, ErrUntrusted, 0},
		{"key usage without signatures", sign(p.noSign), VerifyOptions{Roots: caPool(p.ca.cert)}, ErrUntrusted, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Verify(tc.doc, tc.opts)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify: %v, want %v", err, tc.wantErr)
			}
			if err == nil && len(res.Chain) != tc.wantChain {
				t.Errorf("chain of %d certificates, want %d", len(res.Chain), tc.wantChain)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "certificate not trusted: ") {
				t.Errorf("the message %q does not start with the rule", err)
			}
		})
	}
}

// TestVerifyRefusesShapes changes the Signature itself: anything but one
// enveloped signature over the whole document, with accepted algorithms
// and a certificate, is refused before any cryptography.
func TestVerifyRefusesShapes(t *testing.T) {
	t.Parallel()
	signed := string(signEntry(t, Options{}))
	const xpath = `<Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><XPath>1</XPath></Transform>`
	tests := []struct {
		name    string
		mutate  mutation
		wantErr error
		msg     string
	}{
		{"Reference to a fragment", replace(`<Reference URI="">`, `<Reference URI="#x">`), ErrMalformedSignature, `URI=""`},
		{"Reference without URI", replace(`<Reference URI="">`, `<Reference>`), ErrMalformedSignature, `URI=""`},
		{"no enveloped transform", reReplace(`(?s)<Transforms>.*</Transforms>`, ""), ErrMalformedSignature, "enveloped-signature"},
		{"XPath transform", replace("</Transforms>", xpath+"</Transforms>"), ErrUnsupportedAlgorithm, "transform after enveloped-signature http://www.w3.org/TR/1999/REC-xpath-19991116"},
		{"three transforms", replace("</Transforms>", `<Transform Algorithm="`+C14N10+`"/><Transform Algorithm="`+C14N10+`"/></Transforms>`), ErrMalformedSignature, "3 transforms"},
		{"two references", reReplace(`(?s)<Reference URI="">.*</Reference>`, "$0$0"), ErrMalformedSignature, "2 Reference"},
		{"RSA-MD5", replace(RSASHA256, "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"), ErrUnsupportedAlgorithm, "weaker than SHA-1"},
		{"MD5 digest", replace(SHA256, "http://www.w3.org/2001/04/xmldsig-more#md5"), ErrUnsupportedAlgorithm, "weaker than SHA-1"},
		{"HMAC", replace(RSASHA256, "http://www.w3.org/2000/09/xmldsig#hmac-sha1"), ErrUnsupportedAlgorithm, "only RSA"},
		{"c14n with comments", replace(`<CanonicalizationMethod Algorithm="`+C14N10, `<CanonicalizationMethod Algorithm="`+C14N10+`#WithComments`), ErrUnsupportedAlgorithm, "without comments"},
		{"HMAC output length", replace(`<SignatureMethod Algorithm="`+RSASHA256+`"/>`, `<SignatureMethod Algorithm="`+RSASHA256+`"><HMACOutputLength>8</HMACOutputLength></SignatureMethod>`), ErrMalformedSignature, "HMACOutputLength"},
		{"no KeyInfo", reReplace(`(?s)<KeyInfo>.*</KeyInfo>`, ""), ErrMalformedSignature, "KeyInfo"},
		{"no certificate", reReplace(`(?s)<X509Certificate>.*</X509Certificate>`, ""), ErrMalformedSignature, "no X509Certificate"},
		{"not a certificate", reReplace(`(?s)<X509Certificate>.*</X509Certificate>`, "<X509Certificate>AAAA</X509Certificate>"), ErrMalformedSignature, "cannot be read"},
		{"retrieval method", replace("<KeyInfo>", `<KeyInfo><RetrievalMethod URI="http://example.org/cert"/>`), ErrMalformedSignature, "RetrievalMethod"},
		{"Object", replace("</KeyInfo>", "</KeyInfo><Object>x</Object>"), ErrMalformedSignature, "Object"},
		{"text in SignedInfo", replace("<SignedInfo>", "<SignedInfo>x"), ErrMalformedSignature, "unexpected content"},
		{"digest not base64", reReplace(`<DigestValue>[^<]*`, "<DigestValue>!!"), ErrMalformedSignature, "base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Verify([]byte(tc.mutate(t, signed)), VerifyOptions{})
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Verify: %v, want %v mentioning %q", err, tc.wantErr, tc.msg)
			}
		})
	}
}

// TestVerifiedBytesAreTheSignedOnes: Result.Signed is the canonical
// document without the Signature, as xmllint canonicalizes the original.
func TestVerifiedBytesAreTheSignedOnes(t *testing.T) {
	need(t, "xmllint", "libxml2-utils")
	t.Parallel()
	res, err := Verify(signEntry(t, Options{}), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, t.TempDir(), "entry.xml", []byte(comments.ReplaceAllString(string(readEntry(t)), "")))
	want, err := xmllint("--c14n", file)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Signed) != want {
		t.Errorf("Result.Signed:\n%s\nwant\n%s", res.Signed, want)
	}
}
