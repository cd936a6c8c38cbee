package metadata

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Limits on values, so that entries stay small enough to list, index and
// show.
const (
	MaxFieldLength       = 1024    // bytes of a short text field (title, os, subject, ...)
	MaxDescriptionLength = 8 << 10 // bytes of description and of the deprecation reason
	MaxLocationLength    = 2048    // bytes of one location URL
	MaxValues            = 64      // values of one repeated field (locations, ports, ...)
	MaxTagLength         = 64      // bytes of a tag
)

// ClockSkew is how far in the future a created date may be before Validate
// calls it a mistake: signers' clocks are not exact.
const ClockSkew = 5 * time.Minute

// KnownFormat reports whether s is an image format entries may name
// (dcterms:format): raw, qcow2, vmdk, vdi or vhdx.
func KnownFormat(s string) bool {
	switch s {
	case "raw", "qcow2", "vmdk", "vdi", "vhdx":
		return true
	}
	return false
}

// KnownCompression reports whether s is a compression entries may name
// (dcterms:compression): none, gz, bz2 or xz.
func KnownCompression(s string) bool {
	switch s {
	case "none", "gz", "bz2", "xz":
		return true
	}
	return false
}

// ValidTag reports whether s may be a tag (dcterms:alternative): 1 to 64
// letters, digits, '.', '-' and '_', and neither a Marketplace identifier
// nor a volume UUID, so that wherever a user may give an image by
// identifier, tag or volume, the three never clash.
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > MaxTagLength || ValidIdentifier(s) || isUUID(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isAlnum(c) || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isUUID reports whether s has the 8-4-4-4-12 hexadecimal form of a UUID.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ValidEmail reports whether s is an e-mail address as entries write them:
// local@domain, the local part of letters, digits and . _ % + -, the domain
// of dot-separated labels of letters, digits and -.
func ValidEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(local) > 64 || domain == "" || len(s) > 254 {
		return false
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !(isAlnum(c) || strings.IndexByte("._%+-", c) >= 0) {
			return false
		}
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(isAlnum(c) || c == '-') {
				return false
			}
		}
	}
	return true
}

// checksumLength is the length in hexadecimal digits of each algorithm's
// digest, and says which algorithms are known.
func checksumLength(algorithm string) int {
	switch algorithm {
	case AlgorithmMD5:
		return 32
	case AlgorithmSHA1:
		return 40
	case AlgorithmSHA256:
		return 64
	case AlgorithmSHA512:
		return 128
	}
	return 0
}

// Validate checks e against the Marketplace rules at the time now and
// returns Problems listing every rule it breaks, or nil:
//
//   - the identifier, bytes, a SHA-1 checksum, the type, the endorsement's
//     created date and the endorser's e-mail and subject are present, and
//     so are os, os-version and os-arch for a machine image (data images
//     say "none"), and at least one location;
//   - the identifier is 27 characters, equals Identifier of the SHA-1
//     checksum and follows the "#" of rdf:about;
//   - there is exactly one SHA-1 checksum, at most one of each algorithm,
//     each MD5, SHA-1, SHA-256 or SHA-512 in hexadecimal of its length;
//   - bytes is positive;
//   - type, format and compression have known values;
//   - dates are yyyy-MM-ddTHH:mm:ssZ, created dates are not after now
//     (give or take ClockSkew), valid is after both created dates and
//     after now;
//   - locations are absolute http or https URLs without user information;
//   - the endorser's e-mail and the tag have their syntax (ValidEmail,
//     ValidTag); ports are 0–65535, ICMP types 0–255, the serial number a
//     non-negative integer;
//   - text fields and repeated fields stay under the Max limits.
//
// Whether the endorser block matches the signing certificate is
// CheckEndorser's question.
func (e *Entry) Validate(now time.Time) error {
	var ps Problems
	e.validateIdentity(&ps)
	e.validateDescription(&ps)
	e.validateDates(&ps, now)
	e.validateEndorsement(&ps)
	e.validateLimits(&ps)
	return ps.err()
}

func (e *Entry) validateIdentity(ps *Problems) {
	idOK := false
	switch {
	case e.Identifier == "":
		ps.add(RuleRequired, "identifier", "the entry has no identifier (dcterms:identifier)")
	case !ValidIdentifier(e.Identifier):
		ps.add(RuleIdentifierSyntax, "identifier", "the identifier %q is not 27 characters of A-Z, a-z, 0-9, '-' and '_' starting with A to P", e.Identifier)
	default:
		idOK = true
	}
	if e.About != "" {
		ps.add(RuleIdentifierMatchesAbout, "about", "rdf:about is %q; it must be \"#\" followed by the identifier %q", e.About, e.Identifier)
	}

	switch {
	case e.Bytes == 0:
		ps.add(RuleRequired, "bytes", "the entry does not give the image size (slreq:bytes)")
	case e.Bytes < 0:
		ps.add(RuleBytesPositive, "bytes", "the image size (slreq:bytes) is %d; it must be positive", e.Bytes)
	}

	var sha1s []string
	seen := map[string]bool{}
	for i, c := range e.Checksums {
		field := fmt.Sprintf("checksums[%d]", i)
		want := checksumLength(c.Algorithm)
		if want == 0 {
			if c.Algorithm == "" {
				ps.add(RuleChecksumAlgorithm, field+".algorithm", "checksum %d has no algorithm; use MD5, SHA-1, SHA-256 or SHA-512", i+1)
			} else {
				ps.add(RuleChecksumAlgorithm, field+".algorithm", "checksum %d uses the algorithm %q; use MD5, SHA-1, SHA-256 or SHA-512", i+1, c.Algorithm)
			}
			continue
		}
		if seen[c.Algorithm] && c.Algorithm != AlgorithmSHA1 {
			ps.add(RuleChecksumUnique, field, "the entry has more than one %s checksum", c.Algorithm)
		}
		seen[c.Algorithm] = true
		if _, err := hex.DecodeString(c.Value); err != nil || len(c.Value) != want {
			ps.add(RuleChecksumValue, field+".value", "the %s checksum %q is not %d hexadecimal digits", c.Algorithm, c.Value, want)
			continue
		}
		if c.Algorithm == AlgorithmSHA1 {
			sha1s = append(sha1s, c.Value)
		}
	}
	shaCount := 0
	for _, c := range e.Checksums {
		if c.Algorithm == AlgorithmSHA1 {
			shaCount++
		}
	}
	switch {
	case shaCount == 0:
		ps.add(RuleRequired, "checksums", "the entry has no SHA-1 checksum; it needs exactly one")
	case shaCount > 1:
		ps.add(RuleSingleSHA1, "checksums", "the entry has %d SHA-1 checksums; it needs exactly one", shaCount)
	case len(sha1s) == 1 && idOK:
		var sum [20]byte
		hex.Decode(sum[:], []byte(sha1s[0]))
		if want := Identifier(sum); want != e.Identifier {
			ps.add(RuleIdentifierMatchesSHA1, "identifier", "the identifier %q does not match the SHA-1 checksum %s, whose identifier is %q", e.Identifier, strings.ToLower(sha1s[0]), want)
		}
	}
}

func (e *Entry) validateDescription(ps *Problems) {
	switch e.Type {
	case "":
		ps.add(RuleRequired, "type", "the entry does not say whether the image is a machine or a disk (dcterms:type)")
	case TypeMachine, TypeDisk:
	default:
		ps.add(RuleKnownType, "type", "the type (dcterms:type) is %q; it must be machine or disk", e.Type)
	}
	if e.Type == TypeMachine {
		for _, f := range []struct{ field, element, value string }{
			{"os", "slterms:os", e.OS},
			{"osVersion", "slterms:os-version", e.OSVersion},
			{"osArch", "slterms:os-arch", e.OSArch},
		} {
			if f.value == "" {
				ps.add(RuleRequired, f.field, "a machine image needs %s", f.element)
			}
		}
	}
	if e.Format != "" && !KnownFormat(e.Format) {
		ps.add(RuleKnownFormat, "format", "the format (dcterms:format) is %q; it must be raw, qcow2, vmdk, vdi or vhdx", e.Format)
	}
	if e.Compression != "" && !KnownCompression(e.Compression) {
		ps.add(RuleKnownCompression, "compression", "the compression (dcterms:compression) is %q; it must be none, gz, bz2 or xz", e.Compression)
	}
	if e.Tag != "" && !ValidTag(e.Tag) {
		ps.add(RuleTagSyntax, "tag", "the tag (dcterms:alternative) %q must be 1 to %d letters, digits, '.', '-' and '_', and neither an identifier nor a UUID", e.Tag, MaxTagLength)
	}
	if len(e.Locations) == 0 {
		ps.add(RuleRequired, "locations", "the entry gives no location to download the image from (slterms:location)")
	}
	for i, l := range e.Locations {
		if msg := checkLocation(l); msg != "" {
			ps.add(RuleLocationURL, fmt.Sprintf("locations[%d]", i), "the location %q %s", l, msg)
		}
	}
	for _, f := range []struct {
		field string
		ports []int
		max   int
		rule  string
	}{
		{"inboundPorts", e.InboundPorts, 65535, RulePortRange},
		{"outboundPorts", e.OutboundPorts, 65535, RulePortRange},
		{"icmp", e.ICMP, 255, RuleICMPType},
	} {
		for i, n := range f.ports {
			if n < 0 || n > f.max {
				ps.add(f.rule, fmt.Sprintf("%s[%d]", f.field, i), "%s holds %d; it must be 0 to %d", f.field, n, f.max)
			}
		}
	}
	if s := e.SerialNumber; s != "" && strings.Trim(s, "0123456789") != "" {
		ps.add(RuleSerialNumber, "serialNumber", "the serial number %q is not a non-negative integer", s)
	}
}

// checkLocation says what is wrong with a location, or "".
func checkLocation(l string) string {
	u, err := url.Parse(l)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http or https URL"
	case u.Host == "":
		return "has no host"
	case u.User != nil:
		return "holds user information; entries are public"
	case strings.ContainsAny(l, " \t\r\n"):
		return "holds white space"
	}
	return ""
}

func (e *Entry) validateDates(ps *Problems, now time.Time) {
	parse := func(field, element, s string) (time.Time, bool) {
		if s == "" {
			return time.Time{}, false
		}
		t, err := ParseTime(s)
		if err != nil {
			ps.add(RuleDateSyntax, field, "%s is %q; dates are written yyyy-MM-ddTHH:mm:ssZ in UTC", element, s)
			return t, false
		}
		return t, true
	}
	created, hasCreated := parse("created", "dcterms:created", e.Created)
	endorsed, hasEndorsed := parse("endorsement.created", "the endorsement's dcterms:created", e.Endorsement.Created)
	valid, hasValid := parse("valid", "dcterms:valid", e.Valid)

	limit := now.Add(ClockSkew)
	if hasCreated && created.After(limit) {
		ps.add(RuleNotInFuture, "created", "the image was created at %s, which is in the future", e.Created)
	}
	if hasEndorsed && endorsed.After(limit) {
		ps.add(RuleNotInFuture, "endorsement.created", "the entry was endorsed at %s, which is in the future", e.Endorsement.Created)
	}
	if !hasValid {
		return
	}
	if hasCreated && !valid.After(created) {
		ps.add(RuleValidAfterCreated, "valid", "the entry is valid until %s, not after the image was created (%s)", e.Valid, e.Created)
	}
	// An entry that deprecates an image may be endorsed after the image's
	// validity ended: it exists to withdraw the image, expired or not.
	if hasEndorsed && !valid.After(endorsed) && e.Deprecated == "" {
		ps.add(RuleValidAfterCreated, "valid", "the entry is valid until %s, not after it was endorsed (%s)", e.Valid, e.Endorsement.Created)
	}
	if !valid.After(now) {
		ps.add(RuleNotExpired, "valid", "the entry expired at %s", e.Valid)
	}
}

func (e *Entry) validateEndorsement(ps *Problems) {
	en := e.Endorsement
	if en.Created == "" {
		ps.add(RuleRequired, "endorsement.created", "the entry has no endorsement date; sign it (stratus sign-metadata) to fill the endorsement")
	}
	switch {
	case en.Endorser.Email == "":
		ps.add(RuleRequired, "endorsement.endorser.email", "the entry has no endorser e-mail address")
	case !ValidEmail(en.Endorser.Email):
		ps.add(RuleEmailSyntax, "endorsement.endorser.email", "the endorser e-mail %q is not an e-mail address", en.Endorser.Email)
	}
	if en.Endorser.Subject == "" {
		ps.add(RuleRequired, "endorsement.endorser.subject", "the entry has no endorser certificate subject; sign it (stratus sign-metadata) to fill the endorsement")
	}
}

func (e *Entry) validateLimits(ps *Problems) {
	for _, f := range []struct {
		field, value string
		max          int
	}{
		{"identifier", e.Identifier, MaxFieldLength},
		{"about", e.About, MaxFieldLength},
		{"type", e.Type, MaxFieldLength},
		{"kind", e.Kind, MaxFieldLength},
		{"format", e.Format, MaxFieldLength},
		{"compression", e.Compression, MaxFieldLength},
		{"creator", e.Creator, MaxFieldLength},
		{"created", e.Created, MaxFieldLength},
		{"valid", e.Valid, MaxFieldLength},
		{"title", e.Title, MaxFieldLength},
		{"tag", e.Tag, MaxFieldLength},
		{"description", e.Description, MaxDescriptionLength},
		{"publisher", e.Publisher, MaxFieldLength},
		{"endorsement.created", e.Endorsement.Created, MaxFieldLength},
		{"endorsement.endorser.email", e.Endorsement.Endorser.Email, MaxFieldLength},
		{"endorsement.endorser.subject", e.Endorsement.Endorser.Subject, MaxFieldLength},
		{"endorsement.endorser.issuer", e.Endorsement.Endorser.Issuer, MaxFieldLength},
		{"os", e.OS, MaxFieldLength},
		{"osVersion", e.OSVersion, MaxFieldLength},
		{"osArch", e.OSArch, MaxFieldLength},
		{"version", e.Version, MaxFieldLength},
		{"hypervisor", e.Hypervisor, MaxFieldLength},
		{"disksBus", e.DisksBus, MaxFieldLength},
		{"serialNumber", e.SerialNumber, MaxFieldLength},
		{"deprecated", e.Deprecated, MaxDescriptionLength},
	} {
		if len(f.value) > f.max {
			ps.add(RuleTextLength, f.field, "%s is %d bytes long; it may be at most %d", f.field, len(f.value), f.max)
		}
	}
	for i, l := range e.Locations {
		if len(l) > MaxLocationLength {
			ps.add(RuleTextLength, fmt.Sprintf("locations[%d]", i), "location %d is %d bytes long; it may be at most %d", i+1, len(l), MaxLocationLength)
		}
	}
	for _, f := range []struct {
		field string
		n     int
	}{
		{"checksums", len(e.Checksums)},
		{"locations", len(e.Locations)},
		{"inboundPorts", len(e.InboundPorts)},
		{"outboundPorts", len(e.OutboundPorts)},
		{"icmp", len(e.ICMP)},
	} {
		if f.n > MaxValues {
			ps.add(RuleValueCount, f.field, "%s has %d values; it may have at most %d", f.field, f.n, MaxValues)
		}
	}
}
