package metadata

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readExample parses testdata/example.xml, an entry valid at exampleNow
// plus two hours.
func readExample(t *testing.T) *Entry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "example.xml"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func rules(err error) []string {
	var ps Problems
	if !errors.As(err, &ps) {
		return nil
	}
	var rs []string
	for _, p := range ps {
		rs = append(rs, p.Rule)
	}
	return rs
}

func setChecksum(e *Entry, algorithm, value string) {
	for i := range e.Checksums {
		if e.Checksums[i].Algorithm == algorithm {
			e.Checksums[i].Value = value
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	now := exampleNow.Add(2 * time.Hour)
	const otherID = "BEE8-MMAw-Lk_IgsEExAy3d9R8h"
	for _, tc := range []struct {
		name   string
		break_ func(e *Entry)
		rules  []string
	}{
		{"valid", func(e *Entry) {}, nil},
		{"no identifier", func(e *Entry) { e.Identifier = "" }, []string{RuleRequired}},
		{"short identifier", func(e *Entry) { e.Identifier = "Hqfgfdtl2xSO64ffzpfxXRIByl" }, []string{RuleIdentifierSyntax}},
		{"identifier too large", func(e *Entry) { e.Identifier = "Z" + e.Identifier[1:] }, []string{RuleIdentifierSyntax}},
		{"identifier of another image", func(e *Entry) { e.Identifier = otherID }, []string{RuleIdentifierMatchesSHA1}},
		{"about differs", func(e *Entry) { e.About = "#" + otherID }, []string{RuleIdentifierMatchesAbout}},
		{"no SHA-1", func(e *Entry) {
			e.Checksums = slices.DeleteFunc(e.Checksums, func(c Checksum) bool { return c.Algorithm == AlgorithmSHA1 })
		}, []string{RuleRequired}},
		{"two SHA-1", func(e *Entry) { e.Checksums = append(e.Checksums, e.Checksums[1]) }, []string{RuleSingleSHA1}},
		{"SHA-1 with a leading zero", func(e *Entry) {
			setChecksum(e, AlgorithmSHA1, "0"+e.Checksum(AlgorithmSHA1))
		}, []string{RuleChecksumValue}},
		{"SHA-1 in upper case", func(e *Entry) {
			setChecksum(e, AlgorithmSHA1, strings.ToUpper(e.Checksum(AlgorithmSHA1)))
		}, nil},
		{"MD5 not hexadecimal", func(e *Entry) { setChecksum(e, AlgorithmMD5, strings.Repeat("g", 32)) }, []string{RuleChecksumValue}},
		{"SHA-512 short", func(e *Entry) { setChecksum(e, AlgorithmSHA512, strings.Repeat("a", 64)) }, []string{RuleChecksumValue}},
		{"unknown algorithm", func(e *Entry) { e.Checksums[0].Algorithm = "SHA3-256" }, []string{RuleChecksumAlgorithm}},
		{"algorithm in lower case", func(e *Entry) { e.Checksums[0].Algorithm = "md5" }, []string{RuleChecksumAlgorithm}},
		{"two MD5", func(e *Entry) { e.Checksums = append(e.Checksums, e.Checksums[0]) }, []string{RuleChecksumUnique}},
		{"no bytes", func(e *Entry) { e.Bytes = 0 }, []string{RuleRequired}},
		{"negative bytes", func(e *Entry) { e.Bytes = -5 }, []string{RuleBytesPositive}},
		{"no type", func(e *Entry) { e.Type = "" }, []string{RuleRequired}},
		{"unknown type", func(e *Entry) { e.Type = "base" }, []string{RuleKnownType}},
		{"machine without os", func(e *Entry) { e.OS, e.OSVersion, e.OSArch = "", "", "" }, []string{RuleRequired, RuleRequired, RuleRequired}},
		{"disk without os", func(e *Entry) { e.Type, e.OS, e.OSVersion, e.OSArch = TypeDisk, "", "", "" }, nil},
		{"unknown format", func(e *Entry) { e.Format = "iso" }, []string{RuleKnownFormat}},
		{"unknown compression", func(e *Entry) { e.Compression = "zip" }, []string{RuleKnownCompression}},
		{"no format or compression", func(e *Entry) { e.Format, e.Compression = "", "" }, nil},
		{"date with a space", func(e *Entry) { e.Created = "2026-01-15 10:00:00Z" }, []string{RuleDateSyntax}},
		{"date with a fraction", func(e *Entry) { e.Created = "2026-01-15T10:00:00.5Z" }, []string{RuleDateSyntax}},
		{"date with an offset", func(e *Entry) { e.Valid = "2026-07-15T10:00:00+0200" }, []string{RuleDateSyntax}},
		{"date out of range", func(e *Entry) { e.Endorsement.Created = "2026-02-30T10:00:00Z" }, []string{RuleDateSyntax}},
		{"valid before created", func(e *Entry) { e.Valid = "2026-01-15T09:00:00Z" }, []string{RuleValidAfterCreated, RuleValidAfterCreated, RuleNotExpired}},
		{"valid before endorsed", func(e *Entry) { e.Valid = "2026-01-15T10:30:00Z" }, []string{RuleValidAfterCreated, RuleNotExpired}},
		{"deprecation endorsed after expiry", func(e *Entry) { e.Valid, e.Deprecated = "2026-01-15T10:30:00Z", "superseded" }, []string{RuleNotExpired}},
		{"deprecation valid before created", func(e *Entry) { e.Valid, e.Deprecated = "2026-01-15T09:00:00Z", "superseded" }, []string{RuleValidAfterCreated, RuleNotExpired}},
		{"expired", func(e *Entry) { e.Valid = "2026-01-15T11:30:00Z" }, []string{RuleNotExpired}},
		{"no valid date", func(e *Entry) { e.Valid = "" }, nil},
		{"created tomorrow", func(e *Entry) { e.Created = FormatTime(now.Add(24 * time.Hour)) }, []string{RuleNotInFuture}},
		{"endorsed within the clock skew", func(e *Entry) { e.Endorsement.Created = FormatTime(now.Add(ClockSkew)) }, nil},
		{"endorsed after the clock skew", func(e *Entry) { e.Endorsement.Created = FormatTime(now.Add(ClockSkew + time.Second)) }, []string{RuleNotInFuture}},
		{"no location", func(e *Entry) { e.Locations = nil }, []string{RuleRequired}},
		{"ftp location", func(e *Entry) { e.Locations = []string{"ftp://example.org/x.img"} }, []string{RuleLocationURL}},
		{"relative location", func(e *Entry) { e.Locations = []string{"/images/x.img"} }, []string{RuleLocationURL}},
		{"location with password", func(e *Entry) { e.Locations = []string{"https://u:p@example.org/x.img"} }, []string{RuleLocationURL}},
		{"location with a space", func(e *Entry) { e.Locations = []string{"https://example.org/x y.img"} }, []string{RuleLocationURL}},
		{"second location bad", func(e *Entry) { e.Locations = append(e.Locations, "http://") }, []string{RuleLocationURL}},
		{"no e-mail", func(e *Entry) { e.Endorsement.Endorser.Email = "" }, []string{RuleRequired}},
		{"bad e-mail", func(e *Entry) { e.Endorsement.Endorser.Email = "Jane <jane@example.org>" }, []string{RuleEmailSyntax}},
		{"no subject", func(e *Entry) { e.Endorsement.Endorser.Subject = "" }, []string{RuleRequired}},
		{"no issuer", func(e *Entry) { e.Endorsement.Endorser.Issuer = "" }, nil},
		{"not endorsed", func(e *Entry) { e.Endorsement = Endorsement{} }, []string{RuleRequired, RuleRequired, RuleRequired}},
		{"tag with a space", func(e *Entry) { e.Tag = "debian 12" }, []string{RuleTagSyntax}},
		{"tag like an identifier", func(e *Entry) { e.Tag = otherID }, []string{RuleTagSyntax}},
		{"tag like a volume", func(e *Entry) { e.Tag = "410b7fb4-973b-4b6d-82a7-e637a5103f4d" }, []string{RuleTagSyntax}},
		{"long tag", func(e *Entry) { e.Tag = strings.Repeat("t", MaxTagLength+1) }, []string{RuleTagSyntax}},
		{"longest tag", func(e *Entry) { e.Tag = strings.Repeat("t", MaxTagLength) }, nil},
		{"no tag", func(e *Entry) { e.Tag = "" }, nil},
		{"port too large", func(e *Entry) { e.InboundPorts = []int{22, 65536} }, []string{RulePortRange}},
		{"negative port", func(e *Entry) { e.OutboundPorts = []int{-1} }, []string{RulePortRange}},
		{"ICMP type too large", func(e *Entry) { e.ICMP = []int{256} }, []string{RuleICMPType}},
		{"serial number", func(e *Entry) { e.SerialNumber = "v2" }, []string{RuleSerialNumber}},
		{"long description", func(e *Entry) { e.Description = strings.Repeat("d", MaxDescriptionLength+1) }, []string{RuleTextLength}},
		{"longest description", func(e *Entry) { e.Description = strings.Repeat("d", MaxDescriptionLength) }, nil},
		{"long title", func(e *Entry) { e.Title = strings.Repeat("t", MaxFieldLength+1) }, []string{RuleTextLength}},
		{"too many locations", func(e *Entry) {
			for range MaxValues {
				e.Locations = append(e.Locations, e.Locations[0])
			}
		}, []string{RuleValueCount}},
	} {
		e := readExample(t)
		tc.break_(e)
		err := e.Validate(now)
		if got := rules(err); !slices.Equal(got, tc.rules) {
			t.Errorf("%s: rules %v, want %v (%v)", tc.name, got, tc.rules, err)
		}
		if err != nil && !strings.Contains(err.Error(), "metadata: ") {
			t.Errorf("%s: error %q", tc.name, err)
		}
	}
}

// TestValidateListsEveryProblem breaks many rules at once and expects each
// in the error, with its field.
func TestValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	e := readExample(t)
	e.Identifier = "BEE8-MMAw-Lk_IgsEExAy3d9R8h"
	e.Bytes = -1
	e.Type = "vm"
	e.Locations = []string{"file:///x"}
	e.Endorsement.Endorser.Email = "nobody"
	e.Tag = "a b"
	err := e.Validate(exampleNow.Add(2 * time.Hour))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v is not Problems", err)
	}
	want := map[string]string{
		RuleIdentifierMatchesSHA1: "identifier",
		RuleBytesPositive:         "bytes",
		RuleKnownType:             "type",
		RuleLocationURL:           "locations[0]",
		RuleEmailSyntax:           "endorsement.endorser.email",
		RuleTagSyntax:             "tag",
	}
	if len(ps) != len(want) {
		t.Errorf("%d problems, want %d: %v", len(ps), len(want), err)
	}
	for _, p := range ps {
		if want[p.Rule] != p.Field {
			t.Errorf("problem %s on field %q, want field %q", p.Rule, p.Field, want[p.Rule])
		}
		if !strings.Contains(err.Error(), p.Rule+": ") {
			t.Errorf("error text does not name %s: %v", p.Rule, err)
		}
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		valid, deprecated, want string
	}{
		{"2026-07-01T00:00:00Z", "", StatusValid},
		{"2026-06-01T00:00:00Z", "", StatusExpired}, // expires at that second
		{"2026-05-31T23:59:59Z", "", StatusExpired},
		{"", "", StatusValid},
		{"soon", "", StatusExpired},
		{"2026-07-01T00:00:00Z", "broken", StatusDeprecated},
		{"2020-01-01T00:00:00Z", "broken", StatusDeprecated},
	} {
		e := Entry{Valid: tc.valid, Deprecated: tc.deprecated}
		if got := e.Status(now); got != tc.want {
			t.Errorf("valid %q deprecated %q: %s, want %s", tc.valid, tc.deprecated, got, tc.want)
		}
	}
}

func TestValidEmailAndTag(t *testing.T) {
	t.Parallel()
	for s, ok := range map[string]bool{
		"jane@example.org":           true,
		"jane.tester+mp@example.org": true,
		"j_t%1@sub-1.example.org":    true,
		"root@localhost":             true,
		"jane":                       false,
		"@example.org":               false,
		"jane@":                      false,
		"jane@@example.org":          false,
		"jane@example..org":          false,
		"jane@-example.org":          false,
		"jane doe@example.org":       false,
		"jané@example.org":           false,
		"<jane@example.org>":         false,
	} {
		if ValidEmail(s) != ok {
			t.Errorf("ValidEmail(%q) = %v", s, !ok)
		}
	}
	for s, ok := range map[string]bool{
		"debian-12-base":                        true,
		"Alternative":                           true,
		"a":                                     true,
		"v1.2_rc-3":                             true,
		"":                                      false,
		"debian/12":                             false,
		"debian:12":                             false,
		"BEE8-MMAw-Lk_IgsEExAy3d9R8h":           false, // an identifier
		"ZEE8-MMAw-Lk_IgsEExAy3d9R8h":           true,  // 27 characters, but no identifier
		"BEE8.MMAw-Lk_IgsEExAy3d9R8h":           true,
		"410B7FB4-973B-4B6D-82A7-E637A5103F4D":  false, // a UUID
		"410b7fb4-973b-4b6d-82a7-e637a5103f4dx": true,
		strings.Repeat("x", 64):                 true,
		strings.Repeat("x", 65):                 false,
	} {
		if ValidTag(s) != ok {
			t.Errorf("ValidTag(%q) = %v", s, !ok)
		}
	}
}
