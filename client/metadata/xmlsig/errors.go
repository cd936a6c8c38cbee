package xmlsig

import "errors"

// Errors name the rule a document or key failed; match them with
// errors.Is. The returned errors wrap them with the details.
var (
	// ErrMalformedXML: the document is not well-formed XML, or uses what
	// this package refuses (a DTD, an encoding other than UTF-8).
	ErrMalformedXML = errors.New("document is not well-formed XML")
	// ErrSignatureMissing: the document has no XML-DSig Signature.
	ErrSignatureMissing = errors.New("signature missing")
	// ErrAlreadySigned: Sign was given a document that has a Signature.
	ErrAlreadySigned = errors.New("document already signed")
	// ErrMalformedSignature: the Signature does not have the shape of an
	// enveloped signature over the whole document (more than one, not a
	// child of the root, Reference other than URI="", missing parts).
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrDigestMismatch: the document changed after it was signed.
	ErrDigestMismatch = errors.New("document modified after signing (digest mismatch)")
	// ErrSignatureInvalid: the SignatureValue was not made by the key of
	// a certificate in KeyInfo over this SignedInfo.
	ErrSignatureInvalid = errors.New("signature value does not verify")
	// ErrUntrusted: the signing certificate does not chain to the trusted
	// roots at the verification time, or may not sign.
	ErrUntrusted = errors.New("certificate not trusted")
	// ErrUnsupportedAlgorithm: an algorithm is unknown or too weak.
	ErrUnsupportedAlgorithm = errors.New("unsupported algorithm")
	// ErrWeakKey: the RSA key is shorter than the accepted minimum.
	ErrWeakKey = errors.New("key too weak")
	// ErrEncryptedKey: a PEM private key is protected by a passphrase,
	// which LoadPEM does not decrypt.
	ErrEncryptedKey = errors.New("encrypted private key")
	// ErrKeyMismatch: no certificate holds the public half of the key.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
)
