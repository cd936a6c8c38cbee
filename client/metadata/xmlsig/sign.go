package xmlsig

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Options chooses the algorithms Sign uses; the zero value is inclusive
// C14N 1.0, RSA-SHA256 and a SHA-256 digest.
type Options struct {
	// Canonicalization is C14N10 (default) or ExcC14N10. With ExcC14N10
	// the Reference also gets an explicit exclusive canonicalization
	// transform.
	Canonicalization string
	// SignatureMethod is RSASHA256 (default), RSASHA384, RSASHA512 or
	// RSASHA1.
	SignatureMethod string
	// DigestMethod is SHA256 (default), SHA384, SHA512 or SHA1.
	DigestMethod string
}

// Sign returns doc with an enveloped XML-DSig Signature appended as the
// last child of its root element: one Reference URI="" with the
// enveloped-signature transform, signed by key, and chain (the signing
// certificate first, then any intermediates) in KeyInfo/X509Data. The rest
// of doc is kept byte for byte. Only RSA keys of at least 2048 bits sign,
// since XML-DSig consumers of marketplace entries expect RSA. A document
// that already holds a Signature is refused.
func Sign(doc []byte, key crypto.Signer, chain []*x509.Certificate, opts Options) ([]byte, error) {
	c14nURI := cmp.Or(opts.Canonicalization, C14N10)
	sigURI := cmp.Or(opts.SignatureMethod, RSASHA256)
	digURI := cmp.Or(opts.DigestMethod, SHA256)
	mode, err := canonicalization(c14nURI, "canonicalization method")
	if err != nil {
		return nil, err
	}
	sigHash, err := signatureHash(sigURI)
	if err != nil {
		return nil, err
	}
	digHash, err := digestHash(digURI)
	if err != nil {
		return nil, err
	}
	if err := checkSigner(key, chain); err != nil {
		return nil, err
	}

	d, err := parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedXML, err)
	}
	if len(signatures(d.root, nil)) > 0 {
		return nil, fmt.Errorf("%w: remove the existing Signature element before signing again", ErrAlreadySigned)
	}
	h := digHash.New()
	h.Write(canonicalize(make([]byte, 0, len(doc)), d, d.root, mode, nil))

	pre, post := signatureXML(c14nURI, sigURI, digURI, h.Sum(nil), chain)
	root := d.root
	var head, tail string
	if root.selfClosing {
		head = string(doc[:root.closeAt]) + ">"
		tail = "</" + root.qname() + ">" + string(doc[root.closeAt+2:])
	} else {
		head, tail = string(doc[:root.closeAt]), string(doc[root.closeAt:])
	}

	// SignedInfo is canonicalized in the context of its ancestors, so it
	// is read back from the document it will live in, with a placeholder
	// value (SignatureValue is outside SignedInfo).
	draft := []byte(head + pre + "AAAA\n" + post + tail)
	d, err = parse(draft)
	if err != nil {
		return nil, fmt.Errorf("the document with its signature cannot be read back: %w", err)
	}
	el, err := findSignature(d)
	if err != nil {
		return nil, err
	}
	sig, err := parseSignature(el)
	if err != nil {
		return nil, err
	}
	value, err := key.Sign(rand.Reader, signedInfoDigest(d, sig, sigHash), sigHash)
	if err != nil {
		return nil, fmt.Errorf("the key refused to sign: %w", err)
	}

	out := []byte(head + pre + wrap64(base64.StdEncoding.EncodeToString(value)) + post + tail)
	if _, err := Verify(out, VerifyOptions{}); err != nil {
		return nil, fmt.Errorf("the signed document does not verify, which is a bug in xmlsig: %w", err)
	}
	return out, nil
}

// checkSigner refuses keys Sign cannot or should not use.
func checkSigner(key crypto.Signer, chain []*x509.Certificate) error {
	if key == nil {
		return errors.New("no signing key")
	}
	if len(chain) == 0 || chain[0] == nil {
		return errors.New("no signing certificate: KeyInfo must carry it")
	}
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: %T keys cannot sign marketplace entries, which require RSA", ErrUnsupportedAlgorithm, key.Public())
	}
	if err := checkKeySize(pub, DefaultMinRSABits); err != nil {
		return err
	}
	if !pub.Equal(chain[0].PublicKey) {
		return fmt.Errorf("%w: the first certificate (%s) must be the one of the signing key", ErrKeyMismatch, describe(chain[0]))
	}
	return nil
}

// signatureXML returns the Signature element split where the
// SignatureValue goes. It declares its own default namespace so that it
// needs nothing from the document it is put in.
func signatureXML(c14nURI, sigURI, digURI string, digest []byte, chain []*x509.Certificate) (pre, post string) {
	var b strings.Builder
	b.WriteString(`<Signature xmlns="` + Namespace + `">` + "\n")
	b.WriteString("<SignedInfo>\n")
	b.WriteString(`<CanonicalizationMethod Algorithm="` + c14nURI + `"/>` + "\n")
	b.WriteString(`<SignatureMethod Algorithm="` + sigURI + `"/>` + "\n")
	b.WriteString(`<Reference URI="">` + "\n<Transforms>\n")
	b.WriteString(`<Transform Algorithm="` + EnvelopedSignature + `"/>` + "\n")
	if c14nURI != C14N10 {
		b.WriteString(`<Transform Algorithm="` + c14nURI + `"/>` + "\n")
	}
	b.WriteString("</Transforms>\n")
	b.WriteString(`<DigestMethod Algorithm="` + digURI + `"/>` + "\n")
	b.WriteString("<DigestValue>" + base64.StdEncoding.EncodeToString(digest) + "</DigestValue>\n")
	b.WriteString("</Reference>\n</SignedInfo>\n<SignatureValue>\n")
	pre = b.String()

	b.Reset()
	b.WriteString("</SignatureValue>\n<KeyInfo>\n<X509Data>\n")
	for _, c := range chain {
		b.WriteString("<X509Certificate>\n" + wrap64(base64.StdEncoding.EncodeToString(c.Raw)) + "</X509Certificate>\n")
	}
	b.WriteString("</X509Data>\n</KeyInfo>\n</Signature>")
	return pre, b.String()
}

// wrap64 cuts base64 text into lines of 64 characters, as PEM does, so
// that signed entries stay readable.
func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	return b.String()
}
