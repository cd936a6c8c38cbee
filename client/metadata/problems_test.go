package metadata

import "testing"

func TestProblemsRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ps   Problems
		want string
	}{
		{"one rule", Problems{{Rule: RuleSignatureDigest, Message: "document modified after signing"}},
			"Entry refused (signature-digest): document modified after signing."},
		{"two rules", Problems{
			{Rule: RuleRequired, Field: "title", Message: "the title is missing"},
			{Rule: RuleKnownType, Field: "type", Message: "the type \"vm\" is not machine or disk"},
		}, "Entry refused (required-field, known-type): the title is missing; the type \"vm\" is not machine or disk."},
		{"a repeated rule named once, in the order first broken", Problems{
			{Rule: RuleLocationURL, Field: "locations[0]", Message: "the location \"a\" is not absolute"},
			{Rule: RuleNotExpired, Field: "valid", Message: "the entry expired"},
			{Rule: RuleLocationURL, Field: "locations[1]", Message: "the location \"b\" is not absolute"},
		}, "Entry refused (location-url, not-expired): the location \"a\" is not absolute; the entry expired; the location \"b\" is not absolute."},
		{"trailing periods not doubled", Problems{
			{Rule: RuleRequired, Message: "the title is missing."},
			{Rule: RuleRequired, Message: "the endorser is missing."},
		}, "Entry refused (required-field): the title is missing; the endorser is missing."},
	} {
		if got := tc.ps.Refusal(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
