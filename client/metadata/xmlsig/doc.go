// Package xmlsig signs and verifies XML documents with an enveloped XML-DSig
// signature over the whole document, the way StratusLab Marketplace entries
// have always been signed: one Signature element, the last child of the
// root, whose single Reference has URI="" and the enveloped-signature
// transform, an RSA SignatureValue, and the signer's certificate in
// KeyInfo/X509Data. The original Java signer (javax.xml.crypto) used
// inclusive Canonical XML 1.0 and RSA-SHA1; Sign writes inclusive C14N 1.0
// with RSA-SHA256 by default, and Verify reads both, so old entries and
// entries signed by xmlsec1 or Java validate alike. The package knows
// nothing of the metadata model: it signs and verifies any XML document.
//
// # Canonicalization
//
// The package carries its own XML parser and canonicalizer (inclusive C14N
// 1.0 and exclusive C14N 1.0, both without comments) instead of using
// github.com/russellhaering/goxmldsig with github.com/beevik/etree:
//
//   - Canonical XML depends on facts encoding/xml hides, on which etree and
//     goxmldsig are built: a literal tab or newline in an attribute value
//     becomes a space while the same character written as a reference stays,
//     and the parser must refuse DTDs rather than expand entities.
//   - goxmldsig is written for SAML (references to ID attributes) and has had
//     signature-bypass bugs; the one shape needed here takes a few hundred
//     lines that the tests check against independent implementations:
//     xmllint for the canonical form of whole documents, xmlsec1 (libxml2 +
//     OpenSSL) for signatures both ways.
//   - No new dependency.
//
// Inclusive canonicalization of SignedInfo renders every namespace in scope
// and imports the ancestors' xml:* attributes (the entry's xml:base), as
// C14N 1.0 requires and libxml2 and Java do.
//
// # Policy
//
// Signature methods are RSA PKCS#1 v1.5 with SHA-1, SHA-256, SHA-384 or
// SHA-512; digests the same hashes. MD5, HMAC and canonicalization with
// comments are refused (ErrUnsupportedAlgorithm). SHA-1 is accepted on
// verification because every old entry uses it; Result names the
// algorithms so that a caller can be stricter. Sign refuses RSA keys under
// 2048 bits and keys other than RSA; Verify refuses RSA keys under 2048 bits
// unless VerifyOptions.MinRSABits lowers the bar to 1024 for the old grid
// certificates, and never accepts less.
//
// Trust is optional: with VerifyOptions.Roots the signing certificate must
// chain to them at VerifyOptions.Now; without, Verify only proves that the
// holder of the certificate's key signed the document.
//
// # Reading what was signed
//
// Result.Signed holds the canonical form of the document without its
// Signature: the exact bytes the digest covers. Callers should read the
// entry from those bytes, not from the document they were given, so that no
// difference between this parser and theirs can smuggle in unsigned content
// (the fuzz test checks encoding/xml reads canonical output as this parser
// does, or refuses it).
//
// # Keys
//
// LoadPKCS12 and LoadPEM load the credentials grid users have: PKCS#12
// files with legacy (RC2, 3DES) or AES encryption, and PEM certificates with
// unencrypted PKCS#1, PKCS#8 or SEC 1 keys. Passphrase-protected PEM keys
// are refused with ErrEncryptedKey. ECDSA and Ed25519 keys load, so the same
// credentials can authenticate TLS clients, but Sign only signs with RSA.
package xmlsig
