package metadata

import (
	"fmt"
	"time"
)

// XML namespaces of a Marketplace entry.
const (
	NamespaceRDF     = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
	NamespaceDCTerms = "http://purl.org/dc/terms/"
	NamespaceSLReq   = "http://mp.stratuslab.eu/slreq#"
	NamespaceSLTerms = "http://mp.stratuslab.eu/slterms#"
	NamespaceXMLDSig = "http://www.w3.org/2000/09/xmldsig#"
	namespaceXML     = "http://www.w3.org/XML/1998/namespace"
)

// Base is the xml:base every entry carries on rdf:RDF; rdf:about="#<id>"
// resolves against it.
const Base = "http://mp.stratuslab.eu/"

// Image types (dcterms:type).
const (
	TypeMachine = "machine"
	TypeDisk    = "disk"
)

// Checksum algorithms (slreq:algorithm), spelled as in the entries.
const (
	AlgorithmMD5    = "MD5"
	AlgorithmSHA1   = "SHA-1"
	AlgorithmSHA256 = "SHA-256"
	AlgorithmSHA512 = "SHA-512"
)

// Entry statuses, as Status returns them and as the Marketplace searches them.
const (
	StatusValid      = "valid"
	StatusExpired    = "expired"
	StatusDeprecated = "deprecated"
)

// Entry is one Marketplace entry: the rdf:Description of an image.
//
// Parse fills it from a document and Render writes it back; Parse(Render(e))
// gives e again (with Signed false). Parse trims white space around every
// value and keeps dates as the text of the document, so that Validate can
// report a malformed date instead of Parse failing on it; FormatTime and
// ParseTime convert. Empty strings and nil slices are absent elements.
type Entry struct {
	// Identifier (dcterms:identifier) is the 27-character form of the
	// image's SHA-1; see Identifier.
	Identifier string `json:"identifier"`
	// About is the rdf:about attribute of rdf:Description when it is not
	// "#" followed by Identifier, and empty when it is (the usual case, and
	// what Render writes).
	About       string `json:"about,omitempty"`
	Type        string `json:"type,omitempty"`        // dcterms:type: machine or disk
	Kind        string `json:"kind,omitempty"`        // slterms:kind
	Format      string `json:"format,omitempty"`      // dcterms:format: raw, qcow2, ...
	Compression string `json:"compression,omitempty"` // dcterms:compression: none, gz, bz2, xz
	Creator     string `json:"creator,omitempty"`     // dcterms:creator: the author
	Created     string `json:"created,omitempty"`     // dcterms:created: when the image was made
	Valid       string `json:"valid,omitempty"`       // dcterms:valid: the entry expires then
	Title       string `json:"title,omitempty"`       // dcterms:title
	// Tag (dcterms:alternative) is a short name for the image, unique per
	// endorser, that users may give instead of the identifier.
	Tag         string      `json:"tag,omitempty"`
	Description string      `json:"description,omitempty"` // dcterms:description
	Publisher   string      `json:"publisher,omitempty"`   // dcterms:publisher
	Bytes       int64       `json:"bytes,omitempty"`       // slreq:bytes: size of the image file
	Checksums   []Checksum  `json:"checksums,omitempty"`   // slreq:checksum, in document order
	Endorsement Endorsement `json:"endorsement,omitzero"`  // slreq:endorsement
	OS          string      `json:"os,omitempty"`          // slterms:os
	OSVersion   string      `json:"osVersion,omitempty"`   // slterms:os-version
	OSArch      string      `json:"osArch,omitempty"`      // slterms:os-arch
	Version     string      `json:"version,omitempty"`     // slterms:version: of the image
	Locations   []string    `json:"locations,omitempty"`   // slterms:location: download URLs
	Hypervisor  string      `json:"hypervisor,omitempty"`  // slterms:hypervisor
	DisksBus    string      `json:"disksBus,omitempty"`    // slterms:disks-bus
	// SerialNumber (slterms:serial-number) is kept as text: the schema
	// allows any non-negative integer; Validate checks it.
	SerialNumber  string `json:"serialNumber,omitempty"`
	InboundPorts  []int  `json:"inboundPorts,omitempty"`  // slterms:inbound-port
	OutboundPorts []int  `json:"outboundPorts,omitempty"` // slterms:outbound-port
	ICMP          []int  `json:"icmp,omitempty"`          // slterms:icmp: ICMP types
	// Deprecated (slterms:deprecated) is the reason the image should no
	// longer be used; empty when it may.
	Deprecated string `json:"deprecated,omitempty"`
	// Signed reports that the parsed document carried an enveloped
	// Signature after the rdf:Description. Parse sets it; Render ignores
	// it, since a signature covers the exact bytes and only the signer can
	// add it after rendering.
	Signed bool `json:"signed,omitempty"`
}

// Checksum is one slreq:checksum: an algorithm and the hexadecimal digest.
type Checksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

// Endorsement (slreq:endorsement) says who vouches for the image and when;
// Endorse fills it from the signing certificate.
type Endorsement struct {
	Created  string   `json:"created,omitempty"` // dcterms:created: when it was signed
	Endorser Endorser `json:"endorser,omitzero"`
}

// Endorser (slreq:endorser) identifies the signer as its certificate does.
type Endorser struct {
	Email   string `json:"email,omitempty"`   // slreq:email
	Subject string `json:"subject,omitempty"` // slreq:subject: the certificate subject, see DN
	Issuer  string `json:"issuer,omitempty"`  // slreq:issuer: the certificate issuer, see DN
}

// TimeLayout is the one date format of entries: UTC, to the second.
const TimeLayout = "2006-01-02T15:04:05Z"

// FormatTime writes t as entries do: UTC, to the second.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseTime reads a date written as entries write it, and nothing else: no
// fraction of a second, no offset other than Z.
func ParseTime(s string) (time.Time, error) {
	// time.Parse accepts a fraction after the seconds whatever the layout
	// says; the length check refuses it.
	t, err := time.Parse(TimeLayout, s)
	if err != nil || len(s) != len(TimeLayout) {
		return time.Time{}, fmt.Errorf("metadata: %q is not a date of the form yyyy-MM-ddTHH:mm:ssZ (UTC)", s)
	}
	return t, nil
}

// Status tells whether the entry may be used at now: "deprecated" when its
// endorser deprecated it, "expired" when its valid date has passed (or
// cannot be read), "valid" otherwise, including when it has no valid date.
func (e *Entry) Status(now time.Time) string {
	if e.Deprecated != "" {
		return StatusDeprecated
	}
	if e.Valid != "" {
		valid, err := ParseTime(e.Valid)
		if err != nil || !now.Before(valid) {
			return StatusExpired
		}
	}
	return StatusValid
}

// Checksum returns the value of the first checksum with the given
// algorithm, or "" when there is none.
func (e *Entry) Checksum(algorithm string) string {
	for _, c := range e.Checksums {
		if c.Algorithm == algorithm {
			return c.Value
		}
	}
	return ""
}
