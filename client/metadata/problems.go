package metadata

import (
	"fmt"
	"strings"
)

// Rule names. Every error this package returns about a document or an
// entry is a Problems value whose items carry one of these names; they are
// stable, so services may map them to error codes and tests may look for
// them.
const (
	// Rules of the reader (Parse) and the writer (Render).
	RuleDocumentSize   = "document-size"       // at most MaxDocumentSize bytes
	RuleNoDoctype      = "no-doctype"          // no <!DOCTYPE>, DTD or entity declaration
	RuleWellFormed     = "well-formed"         // well-formed XML in UTF-8
	RuleNestingDepth   = "nesting-depth"       // elements nest at most MaxDepth deep
	RuleRootElement    = "root-element"        // the root is rdf:RDF
	RuleXMLBase        = "xml-base"            // rdf:RDF has xml:base="http://mp.stratuslab.eu/"
	RuleStructure      = "document-structure"  // one rdf:Description, then at most one Signature; no stray text
	RuleUnknownElement = "unknown-element"     // no unknown element of the entry's namespaces
	RuleSingleElement  = "single-element"      // elements that hold one value appear once
	RuleParseType      = "parse-type-resource" // checksum, endorsement, endorser have rdf:parseType="Resource"
	RuleRDFSyntax      = "rdf-syntax"          // no other RDF syntax (rdf:resource, rdf:nodeID, ...)
	RuleIntegerValue   = "integer-value"       // bytes, ports and ICMP types are integers
	RuleXMLCharacters  = "xml-characters"      // values are UTF-8 text that XML can carry

	// Rules of Validate.
	RuleRequired               = "required-field"           // the field must be present
	RuleIdentifierSyntax       = "identifier-syntax"        // 27 characters, see ValidIdentifier
	RuleIdentifierMatchesSHA1  = "identifier-matches-sha1"  // identifier == Identifier(SHA-1 checksum)
	RuleIdentifierMatchesAbout = "identifier-matches-about" // rdf:about == "#" + identifier
	RuleSingleSHA1             = "single-sha1-checksum"     // exactly one SHA-1 checksum
	RuleChecksumAlgorithm      = "checksum-algorithm"       // MD5, SHA-1, SHA-256 or SHA-512
	RuleChecksumValue          = "checksum-value"           // hexadecimal of the algorithm's length
	RuleChecksumUnique         = "checksum-unique"          // one checksum per algorithm
	RuleBytesPositive          = "bytes-positive"           // the image has bytes
	RuleKnownType              = "known-type"               // machine or disk
	RuleKnownFormat            = "known-format"             // see KnownFormat
	RuleKnownCompression       = "known-compression"        // see KnownCompression
	RuleDateSyntax             = "date-syntax"              // yyyy-MM-ddTHH:mm:ssZ
	RuleValidAfterCreated      = "valid-after-created"      // valid is later than both created dates
	RuleNotExpired             = "not-expired"              // valid is later than now
	RuleNotInFuture            = "created-not-in-future"    // created dates are not after now (+ClockSkew)
	RuleLocationURL            = "location-url"             // absolute http or https URLs
	RuleEmailSyntax            = "email-syntax"             // the endorser e-mail is an address
	RuleTagSyntax              = "tag-syntax"               // see ValidTag
	RuleTextLength             = "text-length"              // see MaxFieldLength, MaxDescriptionLength
	RuleValueCount             = "value-count"              // at most MaxValues of a repeated field
	RulePortRange              = "port-range"               // ports are 0–65535
	RuleICMPType               = "icmp-type"                // ICMP types are 0–255
	RuleSerialNumber           = "serial-number"            // a non-negative integer

	// Rule of CheckEndorser.
	RuleEndorserMatchesCertificate = "endorser-matches-certificate"
)

// Problem is one broken rule.
type Problem struct {
	Rule string `json:"rule"` // one of the Rule constants
	// Field is the entry field at fault, in the JSON spelling
	// ("endorsement.endorser.email", "checksums[1].value"), or empty for
	// the document as a whole.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"` // a sentence for a person
}

// String writes the problem as "rule: message".
func (p Problem) String() string { return p.Rule + ": " + p.Message }

// Problems is the error of Parse, Render, Validate, CheckEndorser and
// Build: every rule the document or entry breaks. Use errors.As to get it.
type Problems []Problem

// Error lists the problems, one per line after the first.
func (ps Problems) Error() string {
	switch len(ps) {
	case 0:
		return "metadata: no problem"
	case 1:
		return "metadata: " + ps[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "metadata: %d problems:", len(ps))
	for _, p := range ps {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Refusal is how a Marketplace words an entry refused for ps: "Entry
// refused (rule, ...): what is wrong; what else is wrong." Each rule is
// named once, in the order first broken.
func (ps Problems) Refusal() string {
	seen := map[string]bool{}
	var rules, reasons []string
	for _, p := range ps {
		if !seen[p.Rule] {
			seen[p.Rule] = true
			rules = append(rules, p.Rule)
		}
		reasons = append(reasons, strings.TrimSuffix(p.Message, "."))
	}
	return fmt.Sprintf("Entry refused (%s): %s.", strings.Join(rules, ", "), strings.Join(reasons, "; "))
}

// Has reports whether a problem breaks the named rule.
func (ps Problems) Has(rule string) bool {
	for _, p := range ps {
		if p.Rule == rule {
			return true
		}
	}
	return false
}

// err is ps as an error, nil when there is no problem (a nil Problems in
// an error interface would not be nil).
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (ps *Problems) add(rule, field, format string, args ...any) {
	*ps = append(*ps, Problem{Rule: rule, Field: field, Message: fmt.Sprintf(format, args...)})
}

// problem is a single problem as an error.
func problem(rule, field, format string, args ...any) error {
	var ps Problems
	ps.add(rule, field, format, args...)
	return ps
}
