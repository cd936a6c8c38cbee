package cimi

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParseFilter checks that no input makes the parser panic or hang, that
// every rejection is a *FilterError pointing inside the input, and that
// every accepted filter survives a round trip through FormatFilter. More
// seeds live in testdata/fuzz/FuzzParseFilter.
func FuzzParseFilter(f *testing.F) {
	seeds := []string{
		``,
		` `,
		`state='STARTED'`,
		`state="STARTED"`,
		`a!=1`, `a<1`, `a<=1`, `a>1`, `a>=1`, `a==1`, `a!1`,
		`cpu>-5`,
		`n=9223372036854775807`,
		`n=-9223372036854775809`,
		`b=true and c=FALSE or d=null`,
		`created>2012-01-02`,
		`created>=2012-01-02T03:04:05Z`,
		`created<2012-01-02T03:04:05.123456789+01:00`,
		`created<0000-01-01T00:30:00+01:00`,
		`created<9999-12-31T23:30:00-01:00`,
		`s='it''s' or s="say ""hi""" or s='it\'s' or s="a\"b" or s='C:\dir\\'`,
		`s='unterminated`,
		`s='\`,
		`acl/owner/principal='alice'`,
		`ns:a/ns:b='v'`,
		`property['tier']='gold' and property["a b"]!="x"`,
		`property [ 'k' ] = 1`,
		`property['']=1`,
		`x['k']=1`,
		`5<cpu and 'x'=name and null!=y`,
		`a=1 or b=2 and c=3`,
		`(a=1 or b=2) and (c=3 or (d=4 and e=5))`,
		`((((a=1))))`,
		`()`,
		`(a=1`,
		`a=1)`,
		`a=1 and`,
		`and a=1`,
		`a=b`,
		`1=2`,
		`a<true`,
		`a/=1`,
		`a:b:c=1`,
		`a=1.5`,
		`a=1and b=2`,
		"a='\xff'",
		"a='é' and é=1",
		"a=1\tOR\nb=2",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e, err := ParseFilter(in)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFilter(%q) error %T is not a *FilterError: %v", in, err, err)
			}
			if fe.Pos < 0 || fe.Pos > len(in) {
				t.Fatalf("ParseFilter(%q) error position %d outside [0, %d]: %v", in, fe.Pos, len(in), err)
			}
			if e != nil {
				t.Fatalf("ParseFilter(%q) returned both a tree and an error", in)
			}
			return
		}
		if e == nil {
			t.Fatalf("ParseFilter(%q) returned neither a tree nor an error", in)
		}
		canon := FormatFilter(e)
		back, err := parseFilter(canon, len(canon))
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, in, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("canonical form %q of %q parses to a different tree: %q", canon, in, FormatFilter(back))
		}
	})
}
