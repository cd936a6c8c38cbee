package xmlsig

import (
	"crypto"
	"fmt"
	"strings"
)

// Algorithm identifiers (XML-DSig 1.0, RFC 6931) this package signs and
// verifies with.
const (
	// Namespace is the XML-DSig namespace of the Signature element.
	Namespace = "http://www.w3.org/2000/09/xmldsig#"

	// C14N10 is inclusive Canonical XML 1.0 without comments, what the
	// original Java signer used.
	C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	// ExcC14N10 is Exclusive XML Canonicalization 1.0 without comments.
	ExcC14N10 = "http://www.w3.org/2001/10/xml-exc-c14n#"

	// RSASHA1 is RSA PKCS#1 v1.5 with SHA-1: verified for old entries, and
	// selectable for signing only for consumers that know nothing newer.
	RSASHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	// RSASHA256 is RSA PKCS#1 v1.5 with SHA-256, the default.
	RSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	// RSASHA384 is RSA PKCS#1 v1.5 with SHA-384.
	RSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	// RSASHA512 is RSA PKCS#1 v1.5 with SHA-512.
	RSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"

	// SHA1 is the SHA-1 digest of old entries.
	SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
	// SHA256 is the SHA-256 digest, the default.
	SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	// SHA384 is the SHA-384 digest.
	SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	// SHA512 is the SHA-512 digest.
	SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

	// EnvelopedSignature is the transform that removes the Signature
	// element from the document it signs.
	EnvelopedSignature = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
)

const excC14NNamespace = "http://www.w3.org/2001/10/xml-exc-c14n#"

// signatureHash returns the hash of an RSA signature method.
func signatureHash(uri string) (crypto.Hash, error) {
	switch uri {
	case RSASHA1:
		return crypto.SHA1, nil
	case RSASHA256:
		return crypto.SHA256, nil
	case RSASHA384:
		return crypto.SHA384, nil
	case RSASHA512:
		return crypto.SHA512, nil
	}
	return 0, unsupported("signature method", uri)
}

// digestHash returns the hash of a digest method.
func digestHash(uri string) (crypto.Hash, error) {
	switch uri {
	case SHA1:
		return crypto.SHA1, nil
	case SHA256:
		return crypto.SHA256, nil
	case SHA384:
		return crypto.SHA384, nil
	case SHA512:
		return crypto.SHA512, nil
	}
	return 0, unsupported("digest method", uri)
}

// canonicalization returns the mode of a canonicalization method; what
// names the element that asks for it.
func canonicalization(uri, what string) (c14nMode, error) {
	switch uri {
	case C14N10:
		return c14nMode{}, nil
	case ExcC14N10:
		return c14nMode{exclusive: true}, nil
	}
	return c14nMode{}, unsupported(what, uri)
}

// unsupported says why an algorithm is refused, so that an author who
// used MD5 or HMAC learns it is a policy and not a bug.
func unsupported(what, uri string) error {
	lower := strings.ToLower(uri)
	switch {
	case uri == "":
		return fmt.Errorf("%w: the %s has no Algorithm", ErrUnsupportedAlgorithm, what)
	case strings.Contains(lower, "md5"):
		return fmt.Errorf("%w: %s %s is weaker than SHA-1", ErrUnsupportedAlgorithm, what, uri)
	case strings.Contains(lower, "hmac"):
		return fmt.Errorf("%w: %s %s: only RSA signatures with a certificate are accepted", ErrUnsupportedAlgorithm, what, uri)
	case strings.Contains(lower, "withcomments"):
		return fmt.Errorf("%w: %s %s: only canonicalization without comments is accepted", ErrUnsupportedAlgorithm, what, uri)
	}
	return fmt.Errorf("%w: %s %s", ErrUnsupportedAlgorithm, what, uri)
}
