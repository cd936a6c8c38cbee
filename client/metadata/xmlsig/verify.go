package xmlsig

import (
	"crypto"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// DefaultMinRSABits is the shortest RSA key Verify accepts unless told
// otherwise, and the shortest Sign signs with.
const DefaultMinRSABits = 2048

// LegacyMinRSABits is the shortest RSA key Verify can be told to accept:
// the original StratusLab endorsers had 1024-bit grid certificates.
const LegacyMinRSABits = 1024

// VerifyOptions is the verification policy.
type VerifyOptions struct {
	// Roots, when set, are the trusted certification authorities: the
	// signing certificate must chain to one of them, through the other
	// certificates in KeyInfo, at time Now. Any extended key usage is
	// accepted (grid certificates carry clientAuth or emailProtection or
	// none); a key usage extension, when present, must allow signatures.
	// When nil, no trust decision is made: the caller gets the
	// certificate in the Result and decides.
	Roots *x509.CertPool
	// Now is the time the chain is verified at; zero means time.Now().
	Now time.Time
	// MinRSABits is the shortest RSA key accepted; zero means
	// DefaultMinRSABits. Set LegacyMinRSABits to accept old 1024-bit
	// endorsers; anything shorter is always refused.
	MinRSABits int
}

// Result describes a valid signature.
type Result struct {
	// Certificate is the certificate whose key made the signature.
	Certificate *x509.Certificate
	// Certificates are all the certificates of KeyInfo, in document order.
	Certificates []*x509.Certificate
	// Chain is the verified chain from Certificate to a root, when
	// VerifyOptions.Roots was set.
	Chain []*x509.Certificate
	// Canonicalization, SignatureMethod and DigestMethod are the
	// algorithm URIs the signature uses.
	Canonicalization, SignatureMethod, DigestMethod string
	// Signed is exactly what the signature covers: the canonical form of
	// the document without its Signature. Read the entry from these bytes
	// rather than from the original document, so that nothing a different
	// XML parser might see differently slips in unsigned.
	Signed []byte
}

// signature is the parsed content of a Signature element.
type signature struct {
	el, signedInfo            *node
	c14nURI, sigURI, digURI   string
	c14n, refC14N             c14nMode
	digestValue, signatureVal []byte
	certs                     []*x509.Certificate
}

// Verify checks the enveloped signature of doc: exactly one Signature, a
// child of the root, whose single Reference (URI="", enveloped-signature
// transform) digests the canonical document without the Signature, and
// whose SignatureValue over the canonical SignedInfo verifies with the key
// of a KeyInfo certificate; then, when opts.Roots is set, that the
// certificate is trusted.
func Verify(doc []byte, opts VerifyOptions) (*Result, error) {
	d, err := parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedXML, err)
	}
	el, err := findSignature(d)
	if err != nil {
		return nil, err
	}
	sig, err := parseSignature(el)
	if err != nil {
		return nil, err
	}

	digHash, err := digestHash(sig.digURI)
	if err != nil {
		return nil, err
	}
	signed := canonicalize(make([]byte, 0, len(doc)), d, d.root, sig.refC14N, el)
	h := digHash.New()
	h.Write(signed)
	if subtle.ConstantTimeCompare(h.Sum(nil), sig.digestValue) != 1 {
		return nil, ErrDigestMismatch
	}

	sigHash, err := signatureHash(sig.sigURI)
	if err != nil {
		return nil, err
	}
	hashed := signedInfoDigest(d, sig, sigHash)
	var signer *x509.Certificate
	for _, c := range sig.certs {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if ok && rsa.VerifyPKCS1v15(pub, sigHash, hashed, sig.signatureVal) == nil {
			signer = c
			break
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: no certificate in KeyInfo holds the key that made it", ErrSignatureInvalid)
	}
	if err := checkKeySize(signer.PublicKey.(*rsa.PublicKey), opts.MinRSABits); err != nil {
		return nil, err
	}

	res := &Result{
		Certificate:      signer,
		Certificates:     sig.certs,
		Canonicalization: sig.c14nURI,
		SignatureMethod:  sig.sigURI,
		DigestMethod:     sig.digURI,
		Signed:           signed,
	}
	if opts.Roots != nil {
		if res.Chain, err = trust(signer, sig.certs, opts); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func checkKeySize(pub *rsa.PublicKey, minBits int) error {
	if minBits == 0 {
		minBits = DefaultMinRSABits
	}
	minBits = max(minBits, LegacyMinRSABits)
	if bits := pub.N.BitLen(); bits < minBits {
		return fmt.Errorf("%w: the RSA key has %d bits, at least %d are required", ErrWeakKey, bits, minBits)
	}
	return nil
}

func trust(signer *x509.Certificate, certs []*x509.Certificate, opts VerifyOptions) ([]*x509.Certificate, error) {
	if signer.KeyUsage != 0 && signer.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, fmt.Errorf("%w: the key usage of %s does not allow signatures", ErrUntrusted, describe(signer))
	}
	inter := x509.NewCertPool()
	for _, c := range certs {
		if c != signer {
			inter.AddCert(c)
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots:         opts.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUntrusted, describe(signer), err)
	}
	return chains[0], nil
}

// findSignature returns the only XML-DSig Signature of d, which must be a
// child of the root: a second one, or one elsewhere, could make a reader
// believe something else was signed.
func findSignature(d *document) (*node, error) {
	found := signatures(d.root, nil)
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("%w: the document has no XML-DSig Signature element (namespace %s)", ErrSignatureMissing, Namespace)
	case len(found) > 1:
		return nil, fmt.Errorf("%w: the document has %d Signature elements, exactly one is allowed", ErrMalformedSignature, len(found))
	case found[0].parent != d.root:
		return nil, fmt.Errorf("%w: the Signature must be a child of the root element <%s>", ErrMalformedSignature, d.root.qname())
	}
	return found[0], nil
}

// signatures appends the XML-DSig Signature elements at or under n.
func signatures(n *node, found []*node) []*node {
	if n.is(Namespace, "Signature") {
		found = append(found, n)
	}
	for _, c := range n.children {
		if c.kind == elementNode {
			found = signatures(c, found)
		}
	}
	return found
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedSignature}, args...)...)
}

// children returns the element children of n, refusing anything but
// whitespace between them, and checks they are the XML-DSig elements
// named, in that order; a name ending in "?" is optional, in "+" repeats.
func children(n *node, want ...string) (map[string][]*node, error) {
	var els []*node
	for _, c := range n.children {
		switch {
		case c.kind == elementNode:
			els = append(els, c)
		case c.kind == textNode && strings.Trim(c.text, " \t\n\r") == "":
		default:
			return nil, malformed("unexpected content in <%s>", n.qname())
		}
	}
	got := map[string][]*node{}
	i := 0
	for _, w := range want {
		name := strings.TrimRight(w, "?+")
		optional, repeat := strings.HasSuffix(w, "?"), strings.HasSuffix(w, "+")
		for i < len(els) && els[i].is(Namespace, name) {
			got[name] = append(got[name], els[i])
			i++
			if !repeat {
				break
			}
		}
		if len(got[name]) == 0 && !optional {
			return nil, malformed("<%s> has no %s element", n.qname(), name)
		}
	}
	if i < len(els) {
		return nil, malformed("unexpected element <%s> in <%s>", els[i].qname(), n.qname())
	}
	return got, nil
}

// textOf returns the character data of an element that holds only text.
func textOf(n *node) (string, error) {
	var b strings.Builder
	for _, c := range n.children {
		if c.kind != textNode {
			return "", malformed("<%s> must hold only text", n.qname())
		}
		b.WriteString(c.text)
	}
	return b.String(), nil
}

func base64Of(n *node) ([]byte, error) {
	s, err := textOf(n)
	if err != nil {
		return nil, err
	}
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, malformed("<%s> does not hold base64 data", n.qname())
	}
	return b, nil
}

// algorithm returns the Algorithm attribute of a method element.
func algorithm(n *node) string {
	a, _ := n.attr("Algorithm")
	return a
}

// c14nMethod reads a canonicalization method or transform element: its
// algorithm and, for exclusive canonicalization, the InclusiveNamespaces
// prefix list.
func c14nMethod(n *node, what string) (string, c14nMode, error) {
	uri := algorithm(n)
	mode, err := canonicalization(uri, what)
	if err != nil {
		return uri, mode, err
	}
	for _, c := range n.children {
		switch {
		case c.kind == textNode && strings.Trim(c.text, " \t\n\r") == "":
		case mode.exclusive && c.is(excC14NNamespace, "InclusiveNamespaces") && mode.prefixes == nil:
			list, _ := c.attr("PrefixList")
			mode.prefixes = []string{}
			for _, p := range strings.Fields(list) {
				if p == "#default" {
					p = ""
				}
				mode.prefixes = append(mode.prefixes, p)
			}
		default:
			return uri, mode, malformed("unexpected content in <%s>", n.qname())
		}
	}
	return uri, mode, nil
}

func noChildren(n *node) error {
	if _, err := children(n); err != nil {
		return err
	}
	return nil
}

// parseSignature reads the Signature element and refuses anything but an
// enveloped signature over the whole document with X.509 certificates.
func parseSignature(el *node) (*signature, error) {
	sig := &signature{el: el}
	parts, err := children(el, "SignedInfo", "SignatureValue", "KeyInfo?")
	if err != nil {
		return nil, err
	}
	sig.signedInfo = parts["SignedInfo"][0]
	if sig.signatureVal, err = base64Of(parts["SignatureValue"][0]); err != nil {
		return nil, err
	}

	si, err := children(sig.signedInfo, "CanonicalizationMethod", "SignatureMethod", "Reference+")
	if err != nil {
		return nil, err
	}
	if sig.c14nURI, sig.c14n, err = c14nMethod(si["CanonicalizationMethod"][0], "canonicalization method"); err != nil {
		return nil, err
	}
	sm := si["SignatureMethod"][0]
	sig.sigURI = algorithm(sm)
	if _, err := signatureHash(sig.sigURI); err != nil {
		return nil, err
	}
	if err := noChildren(sm); err != nil {
		return nil, err
	}
	if len(si["Reference"]) != 1 {
		return nil, malformed("SignedInfo has %d Reference elements, exactly one is allowed", len(si["Reference"]))
	}
	if err := sig.reference(si["Reference"][0]); err != nil {
		return nil, err
	}

	if parts["KeyInfo"] == nil {
		return nil, malformed("no KeyInfo: the signing certificate must be in KeyInfo/X509Data")
	}
	if err := sig.keyInfo(parts["KeyInfo"][0]); err != nil {
		return nil, err
	}
	return sig, nil
}

// reference checks the Reference covers the whole document through the
// enveloped-signature transform, optionally followed by a
// canonicalization.
func (sig *signature) reference(ref *node) error {
	if uri, ok := ref.attr("URI"); !ok || uri != "" {
		return malformed(`the Reference must have URI="" (the whole document), not %q`, uri)
	}
	parts, err := children(ref, "Transforms?", "DigestMethod", "DigestValue")
	if err != nil {
		return err
	}
	var transforms []*node
	if parts["Transforms"] != nil {
		tr, err := children(parts["Transforms"][0], "Transform+")
		if err != nil {
			return err
		}
		transforms = tr["Transform"]
	}
	if len(transforms) == 0 || algorithm(transforms[0]) != EnvelopedSignature {
		return malformed("the Reference must start with the enveloped-signature transform")
	}
	if err := noChildren(transforms[0]); err != nil {
		return err
	}
	switch len(transforms) {
	case 1:
	case 2:
		// A canonicalization after the enveloped transform states
		// explicitly what the implicit conversion of the node-set to
		// octets would otherwise do (inclusive C14N 1.0).
		if _, sig.refC14N, err = c14nMethod(transforms[1], "transform after enveloped-signature"); err != nil {
			return err
		}
	default:
		return malformed("the Reference has %d transforms; only enveloped-signature and a canonicalization are accepted", len(transforms))
	}
	dm := parts["DigestMethod"][0]
	sig.digURI = algorithm(dm)
	if _, err := digestHash(sig.digURI); err != nil {
		return err
	}
	if err := noChildren(dm); err != nil {
		return err
	}
	sig.digestValue, err = base64Of(parts["DigestValue"][0])
	return err
}

// keyInfo collects the X509Certificate elements. Key names, key values and
// the other X509Data children are ignored: only a certificate's key is used.
func (sig *signature) keyInfo(ki *node) error {
	for _, c := range ki.children {
		switch {
		case c.kind == textNode && strings.Trim(c.text, " \t\n\r") == "":
		case c.is(Namespace, "X509Data"):
			for _, x := range c.children {
				switch {
				case x.kind == textNode && strings.Trim(x.text, " \t\n\r") == "":
				case x.is(Namespace, "X509Certificate"):
					der, err := base64Of(x)
					if err != nil {
						return err
					}
					cert, err := x509.ParseCertificate(der)
					if err != nil {
						return malformed("KeyInfo holds a certificate that cannot be read: %v", err)
					}
					sig.certs = append(sig.certs, cert)
				case x.is(Namespace, "X509IssuerSerial"), x.is(Namespace, "X509SubjectName"),
					x.is(Namespace, "X509SKI"), x.is(Namespace, "X509CRL"):
				default:
					return malformed("unexpected content in <%s>", c.qname())
				}
			}
		case c.is(Namespace, "KeyName"), c.is(Namespace, "KeyValue"):
		default:
			return malformed("unsupported KeyInfo content <%s>: the certificate must be in X509Data", c.qname())
		}
	}
	if len(sig.certs) == 0 {
		return malformed("KeyInfo holds no X509Certificate: the signing certificate must be included")
	}
	return nil
}

// signedInfoDigest hashes the canonical SignedInfo of sig.
func signedInfoDigest(d *document, sig *signature, hash crypto.Hash) []byte {
	h := hash.New()
	h.Write(canonicalize(nil, d, sig.signedInfo, sig.c14n, nil))
	return h.Sum(nil)
}

// describe names a certificate for people: pkix.Name.String would show the
// e-mail address of a grid certificate only in hexadecimal.
func describe(c *x509.Certificate) string {
	emailAddress := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1} // PKCS#9
	s := c.Subject.CommonName
	if s == "" {
		s = c.Subject.String()
	}
	for _, n := range c.Subject.Names {
		if v, ok := n.Value.(string); ok && n.Type.Equal(emailAddress) {
			s += " <" + v + ">"
		}
	}
	return fmt.Sprintf("%s, issued by %s", s, c.Issuer.CommonName)
}
