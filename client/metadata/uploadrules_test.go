package metadata

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"stratuslab.dev/client/metadata/xmlsig"
)

func TestSignatureRule(t *testing.T) {
	t.Parallel()
	wrapped := func(err error) error { return fmt.Errorf("%w: some detail", err) }
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"none", nil, ""},
		{"malformed XML", wrapped(xmlsig.ErrMalformedXML), RuleWellFormed},
		{"missing", wrapped(xmlsig.ErrSignatureMissing), RuleSignaturePresent},
		{"shape", wrapped(xmlsig.ErrMalformedSignature), RuleSignatureShape},
		{"algorithm", wrapped(xmlsig.ErrUnsupportedAlgorithm), RuleSignatureAlgorithm},
		{"weak key", wrapped(xmlsig.ErrWeakKey), RuleSignatureKeySize},
		{"digest", wrapped(xmlsig.ErrDigestMismatch), RuleSignatureDigest},
		{"untrusted", fmt.Errorf("%w: Jane: %w", xmlsig.ErrUntrusted, x509.UnknownAuthorityError{}), RuleTrustedCA},
		{"value", wrapped(xmlsig.ErrSignatureInvalid), RuleSignatureValue},
		{"unknown", errors.New("something else"), RuleSignatureValue},
		{"two of xmlsig's: the first in the service's order", fmt.Errorf("%w: %w", xmlsig.ErrDigestMismatch, xmlsig.ErrMalformedSignature), RuleSignatureShape},
	} {
		if got := SignatureRule(tc.err); got != tc.want {
			t.Errorf("%s: SignatureRule(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestSignatureRuleOfVerify: the errors xmlsig.Verify really returns are
// named, not only the bare sentinels.
func TestSignatureRuleOfVerify(t *testing.T) {
	t.Parallel()
	signed, err := os.ReadFile(filepath.Join("testdata", "signed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := os.ReadFile(filepath.Join("testdata", "example.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		doc  []byte
		opts xmlsig.VerifyOptions
		want string
	}{
		{"signed", signed, xmlsig.VerifyOptions{}, ""},
		{"not XML", []byte("<rdf:RDF"), xmlsig.VerifyOptions{}, RuleWellFormed},
		{"unsigned", unsigned, xmlsig.VerifyOptions{}, RuleSignaturePresent},
		{"tampered", bytes.Replace(signed, []byte("1000000"), []byte("1000001"), 1), xmlsig.VerifyOptions{}, RuleSignatureDigest},
		{"no trusted CA", signed, xmlsig.VerifyOptions{Roots: x509.NewCertPool()}, RuleTrustedCA},
	} {
		_, err := xmlsig.Verify(tc.doc, tc.opts)
		if got := SignatureRule(err); got != tc.want {
			t.Errorf("%s: SignatureRule(%v) = %q, want %q", tc.name, err, got, tc.want)
		}
	}
}
