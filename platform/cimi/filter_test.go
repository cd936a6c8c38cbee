package cimi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func attr(path ...string) Attribute { return Attribute{Path: path} }

func cmp(a Attribute, op CmpOp, v Value) *Comparison {
	return &Comparison{Attr: a, Op: op, Value: v}
}

func str(s string) Value   { return Value{Kind: String, Str: s} }
func num(n int64) Value    { return Value{Kind: Int, Int: n} }
func boolean(b bool) Value { return Value{Kind: Bool, Bool: b} }
func null() Value          { return Value{Kind: Null} }

func date(s string) Value {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return Value{Kind: Date, Time: t.UTC()}
}

func and(terms ...Expr) *Logical { return &Logical{Op: And, Terms: terms} }
func or(terms ...Expr) *Logical  { return &Logical{Op: Or, Terms: terms} }

func TestParseFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Expr
	}{
		{`state='STARTED'`, cmp(attr("state"), Eq, str("STARTED"))},
		{`state="STARTED"`, cmp(attr("state"), Eq, str("STARTED"))},
		{`  state  =  'STARTED'  `, cmp(attr("state"), Eq, str("STARTED"))},
		{`a!=1`, cmp(attr("a"), Ne, num(1))},
		{`a<1`, cmp(attr("a"), Lt, num(1))},
		{`a<=1`, cmp(attr("a"), Le, num(1))},
		{`a>1`, cmp(attr("a"), Gt, num(1))},
		{`a>=1`, cmp(attr("a"), Ge, num(1))},
		{`cpu > -5`, cmp(attr("cpu"), Gt, num(-5))},
		{`cpu>-5`, cmp(attr("cpu"), Gt, num(-5))},
		{`n=-0`, cmp(attr("n"), Eq, num(0))},
		{`n=007`, cmp(attr("n"), Eq, num(7))},
		{`n=9223372036854775807`, cmp(attr("n"), Eq, num(9223372036854775807))},
		{`n=-9223372036854775808`, cmp(attr("n"), Eq, num(-9223372036854775808))},
		{`b=true`, cmp(attr("b"), Eq, boolean(true))},
		{`b=FALSE`, cmp(attr("b"), Eq, boolean(false))},
		{`b!=True`, cmp(attr("b"), Ne, boolean(true))},
		{`x=null`, cmp(attr("x"), Eq, null())},
		{`x != NULL`, cmp(attr("x"), Ne, null())},
		// Dates.
		{`created>2012-01-02`, cmp(attr("created"), Gt, date("2012-01-02T00:00:00Z"))},
		{`created>2012-01-02T03:04:05Z`, cmp(attr("created"), Gt, date("2012-01-02T03:04:05Z"))},
		{`created>2012-01-02T03:04:05.123Z`, cmp(attr("created"), Gt, date("2012-01-02T03:04:05.123Z"))},
		{`created>2012-01-02T03:04:05+01:00`, cmp(attr("created"), Gt, date("2012-01-02T02:04:05Z"))},
		{`created>2012-01-02T00:30:00-02:30`, cmp(attr("created"), Gt, date("2012-01-02T03:00:00Z"))},
		{`created>2012-01-02T03:04:05.5+01:00`, cmp(attr("created"), Gt, date("2012-01-02T02:04:05.5Z"))},
		// Strings and escapes.
		{`s=''`, cmp(attr("s"), Eq, str(""))},
		{`s='it''s'`, cmp(attr("s"), Eq, str("it's"))},
		{`s='it\'s'`, cmp(attr("s"), Eq, str("it's"))},
		{`s="say ""hi"""`, cmp(attr("s"), Eq, str(`say "hi"`))},
		{`s="say \"hi\""`, cmp(attr("s"), Eq, str(`say "hi"`))},
		{`s='a"b'`, cmp(attr("s"), Eq, str(`a"b`))},
		{`s="a'b"`, cmp(attr("s"), Eq, str(`a'b`))},
		{`s='C:\dir'`, cmp(attr("s"), Eq, str(`C:\dir`))},
		{`s='a\\'`, cmp(attr("s"), Eq, str(`a\`))},
		{`s='a and b or (c)'`, cmp(attr("s"), Eq, str("a and b or (c)"))},
		{`s='héllo ✓'`, cmp(attr("s"), Eq, str("héllo ✓"))},
		// Attribute names.
		{`acl/owner/principal='alice'`, cmp(attr("acl", "owner", "principal"), Eq, str("alice"))},
		{`first-name='Jane'`, cmp(attr("first-name"), Eq, str("Jane"))},
		{`_x1='v'`, cmp(attr("_x1"), Eq, str("v"))},
		{`schema-org:name='v'`, cmp(attr("schema-org:name"), Eq, str("v"))},
		{`ns:a/ns:b='v'`, cmp(attr("ns:a", "ns:b"), Eq, str("v"))},
		{`a/null=1`, cmp(attr("a", "null"), Eq, num(1))},
		{`property['tier']='gold'`, cmp(attr("properties", "tier"), Eq, str("gold"))},
		{`property["tier"]='gold'`, cmp(attr("properties", "tier"), Eq, str("gold"))},
		{`property [ 'a b/c' ] = 'gold'`, cmp(attr("properties", "a b/c"), Eq, str("gold"))},
		{`property['it''s']='x'`, cmp(attr("properties", "it's"), Eq, str("x"))},
		{`properties/tier='gold'`, cmp(attr("properties", "tier"), Eq, str("gold"))},
		{`property='x'`, cmp(attr("property"), Eq, str("x"))},
		{`andy=1`, cmp(attr("andy"), Eq, num(1))},
		{`order=1`, cmp(attr("order"), Eq, num(1))},
		// Literal on the left: the operator flips.
		{`5<cpu`, cmp(attr("cpu"), Gt, num(5))},
		{`5<=cpu`, cmp(attr("cpu"), Ge, num(5))},
		{`5>cpu`, cmp(attr("cpu"), Lt, num(5))},
		{`5>=cpu`, cmp(attr("cpu"), Le, num(5))},
		{`'x'=name`, cmp(attr("name"), Eq, str("x"))},
		{`null!=name`, cmp(attr("name"), Ne, null())},
		// Logic, precedence and flattening.
		{`a=1 and b=2`, and(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2)))},
		{`a=1 AND b=2 And c=3`, and(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2)), cmp(attr("c"), Eq, num(3)))},
		{`a=1 or b=2 and c=3`, or(cmp(attr("a"), Eq, num(1)), and(cmp(attr("b"), Eq, num(2)), cmp(attr("c"), Eq, num(3))))},
		{`a=1 and b=2 or c=3`, or(and(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2))), cmp(attr("c"), Eq, num(3)))},
		{`(a=1 or b=2) and c=3`, and(or(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2))), cmp(attr("c"), Eq, num(3)))},
		{`a=1 and (b=2 and (c=3 and d=4))`, and(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2)), cmp(attr("c"), Eq, num(3)), cmp(attr("d"), Eq, num(4)))},
		{`((a=1 or b=2) or c=3) OR d=4`, or(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2)), cmp(attr("c"), Eq, num(3)), cmp(attr("d"), Eq, num(4)))},
		{`(((a=1)))`, cmp(attr("a"), Eq, num(1))},
		{`a='x'and b='y'`, and(cmp(attr("a"), Eq, str("x")), cmp(attr("b"), Eq, str("y")))},
		{"a=1\tand\nb=2\r", and(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2)))},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFilter(tt.in)
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseFilter(%q)\n got %s\nwant %s", tt.in, FormatFilter(got), FormatFilter(tt.want))
			}
			checkRoundTrip(t, tt.in, got)
		})
	}
}

// checkRoundTrip asserts that the canonical form of e parses back to e and
// is a fixed point of formatting.
func checkRoundTrip(t *testing.T, in string, e Expr) {
	t.Helper()
	canon := FormatFilter(e)
	back, err := parseFilter(canon, len(canon))
	if err != nil {
		t.Fatalf("canonical form %q of %q does not parse: %v", canon, in, err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Fatalf("canonical form %q of %q parses to a different tree: %q", canon, in, FormatFilter(back))
	}
	if again := FormatFilter(back); again != canon {
		t.Fatalf("formatting is not stable: %q then %q", canon, again)
	}
}

func TestParseFilterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		pos  int
		want string // substring of the message
	}{
		{``, 0, "empty"},
		{`   `, 3, "empty"},
		{`state=`, 6, "expected a value after '=' but the filter ends"},
		{`state = `, 8, "expected a value after '=' but the filter ends"},
		{`state`, 5, "expected a comparison operator"},
		{`state 'x'`, 6, "expected a comparison operator (=, !=, <, <=, >, >=) after 'state' but found 'x'"},
		{`a==1`, 1, "'==' is not an operator"},
		{`a!1`, 1, "'!' must be followed by '='"},
		{`a=b`, 2, "compares two attributes"},
		{`1=2`, 2, "compares two values"},
		{`1=`, 2, "expected an attribute name after '=' but the filter ends"},
		{`a=(`, 2, "expected a value after '=' but found '('"},
		{`a='x`, 2, "never ends"},
		{`a="x'`, 2, "never ends"},
		{`a='x\'`, 2, "never ends"},
		{`a=1.5`, 2, "'1.5' is not a value"},
		{`a=1x`, 2, "'1x' is not a value"},
		{`a=-`, 2, "'-' is not a value"},
		{`a=--1`, 2, "not a value"},
		{`a=9223372036854775808`, 2, "out of range"},
		{`a=2012-13-01`, 2, "not a date"},
		{`a=2012-01-02T03:04:05`, 2, "not a date"},
		{`a=2012-1-2x`, 2, "not a date"},
		{`a=0000-01-01T00:00:00+01:00`, 2, "outside years"},
		{`a<true`, 1, "'<' cannot order true or false"},
		{`a>=null`, 1, "'>=' cannot order null"},
		{`null<a`, 4, "cannot order null"},
		{`a=1 and`, 7, "expected a comparison after 'and' but the filter ends"},
		{`a=1 or`, 6, "expected a comparison after 'or' but the filter ends"},
		{`a=1 and or b=2`, 8, "expected a comparison after 'and' but found 'or'"},
		{`a=1 and )`, 8, "expected a comparison after 'and'"},
		{`and a=1`, 0, "expected a comparison such as state='STARTED' but found 'and'"},
		{`a=1 b=2`, 4, "expected 'and', 'or' or the end of the filter after a comparison but found 'b'"},
		{`a=1)`, 3, "unbalanced ')'"},
		{`(a=1`, 4, "missing ')' to close the '(' at position 0"},
		{`(a=1 b=2)`, 5, "to close the '(' at position 0 but found 'b'"},
		{`()`, 1, "empty parentheses"},
		{`a=1 and ()`, 9, "empty parentheses"},
		{`#a=1`, 0, "unexpected character '#'"},
		{`a=1 é`, 4, "unexpected character 'é'"},
		{"a='\xff'", 3, "not valid UTF-8"},
		{`a/=1`, 2, "expected an attribute name after '/'"},
		{`a//b=1`, 2, "expected an attribute name after '/'"},
		{`ns:=1`, 3, "expected a name after the namespace prefix 'ns:'"},
		{`a:b:c=1`, 3, "unexpected character ':'"},
		{`x['k']=1`, 1, "'[' can only follow property"},
		{`property[k]=1`, 9, "expected a quoted key"},
		{`property['k'=1`, 12, "missing ']' to close the '[' at position 8"},
		{`property['']=1`, 9, "the property key is empty"},
		{`property['k`, 9, "never ends"},
		{`a=1 and [`, 8, "unexpected character '['"},
		{`a=1 and b=`, 10, "expected a value after '='"},
		{`a=1 'a very long string that goes on and on'`, 4, "but found 'a very long string that…"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := ParseFilter(tt.in)
			if err == nil {
				t.Fatalf("ParseFilter(%q) = %s, want an error", tt.in, FormatFilter(e))
			}
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFilter(%q) error %T is not a *FilterError", tt.in, err)
			}
			if fe.Pos != tt.pos || !strings.Contains(fe.Msg, tt.want) {
				t.Fatalf("ParseFilter(%q) = %v\nwant position %d and a message containing %q", tt.in, err, tt.pos, tt.want)
			}
		})
	}
}

func TestFilterErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := ParseFilter("cpu >= 2 and x=")
	want := "invalid $filter at position 15: expected a value after '=' but the filter ends"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestParseFilterLimits(t *testing.T) {
	t.Parallel()
	repeat := func(s, sep string, n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = s
		}
		return strings.Join(parts, sep)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
		pos  int
		want string
	}{
		{"longest", "a='" + strings.Repeat("x", MaxFilterLength-4) + "'", true, 0, ""},
		{"too long", "a='" + strings.Repeat("x", MaxFilterLength-3) + "'", false, MaxFilterLength, "limit is 16384"},
		{"deepest", strings.Repeat("(", MaxFilterDepth) + "a=1" + strings.Repeat(")", MaxFilterDepth), true, 0, ""},
		{"too deep", strings.Repeat("(", MaxFilterDepth+1) + "a=1" + strings.Repeat(")", MaxFilterDepth+1), false, MaxFilterDepth, "nested more than 64"},
		{"deep but sequential", repeat("(((a=1)))", " and ", 100), true, 0, ""},
		{"most terms", repeat("a=1", " or ", MaxFilterTerms), true, 0, ""},
		{"too many terms", repeat("a=1", " or ", MaxFilterTerms+1), false, MaxFilterTerms * 7, "more than 1024 comparisons"},
		{"deep unclosed", strings.Repeat("(", MaxFilterLength), false, MaxFilterDepth, "nested more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := ParseFilter(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				checkRoundTrip(t, tt.name, e)
				return
			}
			var fe *FilterError
			if !errors.As(err, &fe) || fe.Pos != tt.pos || !strings.Contains(fe.Msg, tt.want) {
				t.Fatalf("got %v, want a *FilterError at %d containing %q", err, tt.pos, tt.want)
			}
		})
	}
}

func TestFormatFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Expr
		want string
	}{
		{nil, ""},
		{(*Logical)(nil), ""},
		{(*Comparison)(nil), ""},
		{cmp(attr("state"), Eq, str("STARTED")), `state = 'STARTED'`},
		{cmp(attr("s"), Ne, str(`it's C:\`)), `s != 'it''s C:\\'`},
		{cmp(attr("acl", "owner", "principal"), Eq, str("alice")), `acl/owner/principal = 'alice'`},
		{cmp(attr("properties", "a'b"), Eq, str("v")), `property['a''b'] = 'v'`},
		{cmp(attr("n"), Le, num(-3)), `n <= -3`},
		{cmp(attr("b"), Eq, boolean(false)), `b = false`},
		{cmp(attr("x"), Ne, null()), `x != null`},
		{cmp(attr("d"), Gt, date("2012-01-02T03:04:05.5+01:00")), `d > 2012-01-02T02:04:05.5Z`},
		{cmp(attr("d"), Ge, Value{Kind: Date, Time: time.Date(2012, 1, 2, 0, 0, 0, 0, time.FixedZone("x", 3600))}), `d >= 2012-01-01T23:00:00Z`},
		{and(cmp(attr("a"), Eq, num(1)), or(cmp(attr("b"), Eq, num(2)), cmp(attr("c"), Lt, num(3)))), `a = 1 and (b = 2 or c < 3)`},
		{or(and(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2))), cmp(attr("c"), Gt, num(3))), `a = 1 and b = 2 or c > 3`},
		{and(cmp(attr("a"), Eq, num(1))), `a = 1`},
	}
	for _, tt := range tests {
		if got := FormatFilter(tt.in); got != tt.want {
			t.Errorf("FormatFilter = %q, want %q", got, tt.want)
		}
	}
}

func TestOperatorStrings(t *testing.T) {
	t.Parallel()
	for op, want := range map[fmt.Stringer]string{
		Eq: "=", Ne: "!=", Lt: "<", Le: "<=", Gt: ">", Ge: ">=", CmpOp(0): "CmpOp(0)",
		And: "and", Or: "or", LogicalOp(9): "LogicalOp(9)",
	} {
		if got := op.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func BenchmarkParseFilter(b *testing.B) {
	const in = `state='STARTED' and (cpu>=2 or property['tier']="gold") and created>2012-01-02T03:04:05Z and acl/owner/principal!='bob'`
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := ParseFilter(in); err != nil {
			b.Fatal(err)
		}
	}
}
