package metadata

import (
	"errors"

	"stratuslab.dev/client/metadata/xmlsig"
)

// Rules of a Marketplace upload, beside those of Parse, Validate and
// CheckEndorser. They live here rather than in the Marketplace service so
// that the service and the client's fake cloud refuse an upload under the
// same names: scripts and tests look for them in messages.
const (
	RuleSignaturePresent   = "signature-present"   // the entry carries an XML-DSig Signature
	RuleSignatureShape     = "signature-shape"     // one enveloped signature over the whole document
	RuleSignatureAlgorithm = "signature-algorithm" // RSA with SHA-1 or better, known canonicalization
	RuleSignatureKeySize   = "signature-key-size"  // RSA keys of 2048 bits (1024 with allow-legacy-keys)
	RuleSignatureDigest    = "signature-digest"    // the document is what was signed (not tampered)
	RuleSignatureValue     = "signature-value"     // the signature verifies with the certificate's key
	RuleTrustedCA          = "trusted-ca"          // the certificate chains to a trusted CA (when set)
	RuleEndorserAllowed    = "endorser-allowed"    // the endorser is in the allow-list (when set)
	RuleNewerThanStored    = "newer-than-stored"   // newer than the stored entries of its identifier and endorser
	RuleAlreadyUploaded    = "already-uploaded"    // the very same entry is stored already (409)
)

// SignatureRule names the upload rule an error of xmlsig.Verify breaks.
// An error it does not know is signature-value: the signature did not
// prove who signed, whatever the reason. It returns "" for nil.
func SignatureRule(err error) string {
	if err == nil {
		return ""
	}
	// The first of xmlsig's errors that err wraps names the rule, so that
	// one wrapping two is named as the Marketplace always named it.
	for _, s := range []struct {
		err  error
		rule string
	}{
		{xmlsig.ErrMalformedXML, RuleWellFormed},
		{xmlsig.ErrSignatureMissing, RuleSignaturePresent},
		{xmlsig.ErrMalformedSignature, RuleSignatureShape},
		{xmlsig.ErrUnsupportedAlgorithm, RuleSignatureAlgorithm},
		{xmlsig.ErrWeakKey, RuleSignatureKeySize},
		{xmlsig.ErrDigestMismatch, RuleSignatureDigest},
		{xmlsig.ErrUntrusted, RuleTrustedCA},
		{xmlsig.ErrSignatureInvalid, RuleSignatureValue},
	} {
		if errors.Is(err, s.err) {
			return s.rule
		}
	}
	return RuleSignatureValue
}
