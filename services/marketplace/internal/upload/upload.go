// Package upload checks an uploaded Marketplace entry against every rule
// that needs no stored state, in the order of CONTRACT.md: the document's
// shape, its signature (and the signing certificate's trust), the endorser
// block against the certificate, the site's endorser allow-list, and the
// entry's own rules (schema, constraints, expiry). The rule that needs the
// store — an entry must be newer than the stored ones of the same
// identifier and endorser — is the controller's. Every refusal is a
// Refusal naming the rules broken, with the error code the gateway answers
// with.
package upload

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/marketplace/internal/catalog"
)

// Policy is what the site decides about uploads
// (ServiceConfiguration/marketplace).
type Policy struct {
	// Roots, when set, are the CAs an endorser's certificate must chain to.
	Roots *x509.CertPool
	// Allows reports whether an endorser e-mail may upload; nil: anyone.
	Allows func(email string) bool
	// MinRSABits is the shortest accepted RSA key; zero: xmlsig's default.
	MinRSABits int
}

// Checked is an entry that passed every rule but the store's.
type Checked struct {
	// Entry is read from what the signature covers, never from the
	// uploaded bytes, so that no difference between two XML readers can
	// smuggle in unsigned content.
	Entry *metadata.Entry
	// Certificate made the signature.
	Certificate *x509.Certificate
	// XML is the document as uploaded.
	XML []byte
}

// Check runs the rules on an uploaded document at time now, in the order
// of CONTRACT.md, and stops at the first step that fails; a step may
// report several broken rules at once (Validate reports them all).
func Check(doc []byte, p Policy, now time.Time) (*Checked, error) {
	if len(doc) > metadata.MaxDocumentSize {
		return nil, Refuse(errs.Invalid, metadata.RuleDocumentSize, "the document is %d bytes long; an entry may have at most %d bytes (1 MiB)", len(doc), metadata.MaxDocumentSize)
	}
	if _, err := metadata.Parse(doc); err != nil {
		return nil, fromProblems(err)
	}
	res, err := xmlsig.Verify(doc, xmlsig.VerifyOptions{Roots: p.Roots, Now: now, MinRSABits: p.MinRSABits})
	if err != nil {
		return nil, fromSignature(err)
	}
	entry, err := metadata.Parse(res.Signed)
	if err != nil {
		return nil, fromProblems(err)
	}
	if err := metadata.CheckEndorser(entry, res.Certificate); err != nil {
		return nil, fromProblems(err)
	}
	if email := entry.Endorsement.Endorser.Email; p.Allows != nil && !p.Allows(email) {
		return nil, Refuse(errs.Invalid, metadata.RuleEndorserAllowed, "%s is not one of the endorsers this Marketplace accepts; its administrators choose them (endorsers in ServiceConfiguration/marketplace)", email)
	}
	if err := validate(entry, now); err != nil {
		return nil, err
	}
	return &Checked{Entry: entry, Certificate: res.Certificate, XML: doc}, nil
}

// validate runs metadata's rules, with the marketplace's two exceptions:
// an entry that deprecates an image may have expired already (it exists
// to say the image is withdrawn), and a location may name a pdisk volume
// ("pdisk:<uuid>"), which is how an author keeps an image private.
func validate(e *metadata.Entry, now time.Time) error {
	err := e.Validate(now)
	var ps metadata.Problems
	if !errors.As(err, &ps) {
		return err
	}
	var kept metadata.Problems
	for _, p := range ps {
		switch p.Rule {
		case metadata.RuleNotExpired:
			if e.Deprecated != "" {
				continue
			}
		case metadata.RuleLocationURL:
			if i, ok := index(p.Field, "locations"); ok && i < len(e.Locations) {
				if _, pdisk := catalog.PdiskLocation(e.Locations[i]); pdisk {
					continue
				}
			}
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		return nil
	}
	return fromProblems(kept)
}

// index reads the i of a field "name[i]".
func index(field, name string) (int, bool) {
	rest, ok := strings.CutPrefix(field, name+"[")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
	return n, err == nil && strings.HasSuffix(rest, "]")
}

// fromSignature turns a verification failure into a refusal under its
// rule (metadata.SignatureRule, which the client's fake cloud shares),
// with what to do about it.
func fromSignature(err error) error {
	rule := metadata.SignatureRule(err)
	var hint string
	switch rule {
	case metadata.RuleWellFormed:
		// xmlsig's error says what is wrong with the XML; there is no
		// more to say.
	case metadata.RuleSignaturePresent:
		hint = "sign it with stratus sign-metadata before uploading it"
	case metadata.RuleSignatureKeySize:
		hint = "sign with a key of at least 2048 bits"
	case metadata.RuleSignatureDigest:
		hint = "sign the entry again after changing it"
	case metadata.RuleTrustedCA:
		hint = "this Marketplace accepts certificates of the authorities its administrators trust (trusted-cas)"
	default: // signature-shape, signature-algorithm, signature-value
		hint = "sign the entry again with stratus sign-metadata"
	}
	msg := err.Error()
	if hint != "" {
		msg += "; " + hint
	}
	return Refuse(errs.Invalid, rule, "%s", msg)
}

// fromProblems is the refusal of metadata's Problems; any other error is
// returned as it is.
func fromProblems(err error) error {
	var ps metadata.Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		return err
	}
	return &Refusal{code: errs.Invalid, Problems: ps}
}

// Refusal is an entry refused: the rules it broke, each with a sentence,
// and the code the gateway answers with (invalid: 400, conflict: 409).
type Refusal struct {
	code     errs.Code
	Problems metadata.Problems
}

// Refuse returns the refusal of one rule.
func Refuse(code errs.Code, rule, format string, args ...any) *Refusal {
	return &Refusal{code: code, Problems: metadata.Problems{{Rule: rule, Message: fmt.Sprintf(format, args...)}}}
}

// Rules are the names of the rules broken, in order.
func (r *Refusal) Rules() []string {
	out := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		out[i] = p.Rule
	}
	return out
}

// Has reports whether the refusal names rule.
func (r *Refusal) Has(rule string) bool { return r.Problems.Has(rule) }

// Code is the stable error code (errs.CodeOf reads it).
func (r *Refusal) Code() string { return string(r.code) }

// Message is the refusal for people: "Entry refused (rule, ...): what
// is wrong; what else is wrong."
func (r *Refusal) Message() string { return r.Problems.Refusal() }

// Error is Message.
func (r *Refusal) Error() string { return r.Message() }
