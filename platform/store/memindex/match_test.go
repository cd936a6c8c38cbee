package memindex

import (
	"encoding/json"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
)

func attr(path ...string) cimi.Attribute { return cimi.Attribute{Path: path} }

func str(s string) cimi.Value   { return cimi.Value{Kind: cimi.String, Str: s} }
func num(i int64) cimi.Value    { return cimi.Value{Kind: cimi.Int, Int: i} }
func boolean(b bool) cimi.Value { return cimi.Value{Kind: cimi.Bool, Bool: b} }
func date(s string) cimi.Value {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return cimi.Value{Kind: cimi.Date, Time: t.UTC()}
}
func null() cimi.Value { return cimi.Value{Kind: cimi.Null} }
func cmpx(a string, op cimi.CmpOp, v cimi.Value) *cimi.Comparison {
	return &cimi.Comparison{Attr: attr(a), Op: op, Value: v}
}
func and(t ...cimi.Expr) *cimi.Logical { return &cimi.Logical{Op: cimi.And, Terms: t} }
func or(t ...cimi.Expr) *cimi.Logical  { return &cimi.Logical{Op: cimi.Or, Terms: t} }

const sample = `{
	"id": "Volume/1",
	"state": "AVAILABLE",
	"capacity": 20,
	"ratio": 0.5,
	"big": 9007199254740993,
	"bootable": true,
	"nothing": null,
	"created": "2024-03-01T10:00:00Z",
	"updated": "2024-03-01T10:00:00.250+01:00",
	"tags": ["a", "b", 3],
	"empty": [],
	"properties": {"k": "v", "n": "7"},
	"acl": {"owner": {"principal": "alice", "type": "USER"}}
}`

func TestMatch(t *testing.T) {
	t.Parallel()
	doc, err := Decode([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		expr cimi.Expr
		want bool
	}{
		{"nil filter", nil, true},
		{"string eq", cmpx("state", cimi.Eq, str("AVAILABLE")), true},
		{"string eq other", cmpx("state", cimi.Eq, str("ERROR")), false},
		{"string ne", cmpx("state", cimi.Ne, str("ERROR")), true},
		{"string ne same", cmpx("state", cimi.Ne, str("AVAILABLE")), false},
		{"string lt", cmpx("state", cimi.Lt, str("B")), true},
		{"string gt", cmpx("state", cimi.Gt, str("B")), false},
		{"string ge equal", cmpx("state", cimi.Ge, str("AVAILABLE")), true},
		{"string le prefix", cmpx("state", cimi.Le, str("AVA")), false},
		{"int eq", cmpx("capacity", cimi.Eq, num(20)), true},
		{"int lt", cmpx("capacity", cimi.Lt, num(21)), true},
		{"int le", cmpx("capacity", cimi.Le, num(20)), true},
		{"int gt", cmpx("capacity", cimi.Gt, num(20)), false},
		{"int ge", cmpx("capacity", cimi.Ge, num(19)), true},
		{"int ne", cmpx("capacity", cimi.Ne, num(19)), true},
		{"int vs float", cmpx("ratio", cimi.Lt, num(1)), true},
		{"int vs float gt", cmpx("ratio", cimi.Gt, num(0)), true},
		{"int exact above 2^53", cmpx("big", cimi.Eq, num(9007199254740993)), true},
		{"int exact above 2^53 neighbour", cmpx("big", cimi.Eq, num(9007199254740992)), false},
		{"bool eq", cmpx("bootable", cimi.Eq, boolean(true)), true},
		{"bool ne", cmpx("bootable", cimi.Ne, boolean(true)), false},
		{"bool gt false", cmpx("bootable", cimi.Gt, boolean(false)), true},
		{"date eq", cmpx("created", cimi.Eq, date("2024-03-01T10:00:00Z")), true},
		{"date eq other zone", cmpx("created", cimi.Eq, date("2024-03-01T11:00:00+01:00")), true},
		{"date lt", cmpx("created", cimi.Lt, date("2024-03-01T10:00:01Z")), true},
		{"date gt", cmpx("created", cimi.Gt, date("2024-03-01T10:00:01Z")), false},
		{"date fractional offset", cmpx("updated", cimi.Gt, date("2024-03-01T09:00:00.2Z")), true},
		{"date fractional offset lt", cmpx("updated", cimi.Lt, date("2024-03-01T09:00:00.3Z")), true},
		{"date vs non-date string", cmpx("state", cimi.Lt, date("2024-03-01T10:00:00Z")), false},
		{"type mismatch string vs int", cmpx("capacity", cimi.Eq, str("20")), false},
		{"type mismatch int vs string", cmpx("state", cimi.Gt, num(0)), false},
		{"type mismatch ne is false", cmpx("state", cimi.Ne, num(0)), false},
		{"type mismatch bool vs string", cmpx("state", cimi.Eq, boolean(true)), false},
		{"absent eq", cmpx("missing", cimi.Eq, str("x")), false},
		{"absent ne", cmpx("missing", cimi.Ne, str("x")), true},
		{"absent lt", cmpx("missing", cimi.Lt, num(3)), false},
		{"null attr ne", cmpx("nothing", cimi.Ne, str("x")), true},
		{"null attr eq", cmpx("nothing", cimi.Eq, str("x")), false},
		{"absent eq null", cmpx("missing", cimi.Eq, null()), true},
		{"null eq null", cmpx("nothing", cimi.Eq, null()), true},
		{"present eq null", cmpx("state", cimi.Eq, null()), false},
		{"present ne null", cmpx("state", cimi.Ne, null()), true},
		{"absent ne null", cmpx("missing", cimi.Ne, null()), false},
		{"null ordering op", cmpx("missing", cimi.Lt, null()), false},
		{"array any string", cmpx("tags", cimi.Eq, str("b")), true},
		{"array none", cmpx("tags", cimi.Eq, str("c")), false},
		{"array any int", cmpx("tags", cimi.Eq, num(3)), true},
		{"array any ne", cmpx("tags", cimi.Ne, str("a")), true},
		{"array gt", cmpx("tags", cimi.Gt, str("a")), true},
		{"empty array eq", cmpx("empty", cimi.Eq, str("a")), false},
		{"empty array ne", cmpx("empty", cimi.Ne, str("a")), false},
		{"empty array eq null", cmpx("empty", cimi.Eq, null()), false},
		{"nested path", &cimi.Comparison{Attr: attr("acl", "owner", "principal"), Op: cimi.Eq, Value: str("alice")}, true},
		{"nested path absent", &cimi.Comparison{Attr: attr("acl", "nobody", "principal"), Op: cimi.Eq, Value: str("alice")}, false},
		{"path through scalar", &cimi.Comparison{Attr: attr("state", "x"), Op: cimi.Ne, Value: str("alice")}, true},
		{"property", &cimi.Comparison{Attr: attr("properties", "k"), Op: cimi.Eq, Value: str("v")}, true},
		{"property is a string", &cimi.Comparison{Attr: attr("properties", "n"), Op: cimi.Eq, Value: num(7)}, false},
		{"and true", and(cmpx("state", cimi.Eq, str("AVAILABLE")), cmpx("capacity", cimi.Ge, num(10))), true},
		{"and false", and(cmpx("state", cimi.Eq, str("AVAILABLE")), cmpx("capacity", cimi.Ge, num(30))), false},
		{"or true", or(cmpx("state", cimi.Eq, str("ERROR")), cmpx("capacity", cimi.Ge, num(10))), true},
		{"or false", or(cmpx("state", cimi.Eq, str("ERROR")), cmpx("capacity", cimi.Ge, num(30))), false},
		{"nested and/or", and(or(cmpx("state", cimi.Eq, str("ERROR")), cmpx("bootable", cimi.Eq, boolean(true))),
			or(cmpx("tags", cimi.Eq, str("z")), cmpx("created", cimi.Lt, date("2025-01-01T00:00:00Z")))), true},
		{"nested or/and", or(and(cmpx("state", cimi.Eq, str("ERROR")), cmpx("bootable", cimi.Eq, boolean(true))),
			and(cmpx("tags", cimi.Eq, str("z")), cmpx("created", cimi.Lt, date("2025-01-01T00:00:00Z")))), false},
		{"empty and", and(), true},
		{"empty or", or(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Match(tt.expr, doc); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMatchPlainDecode checks Match on documents decoded by encoding/json
// with its defaults (float64 numbers) and with json.Number.
func TestMatchPlainDecode(t *testing.T) {
	t.Parallel()
	var plain map[string]any
	if err := json.Unmarshal([]byte(sample), &plain); err != nil {
		t.Fatal(err)
	}
	if !Match(cmpx("capacity", cimi.Eq, num(20)), plain) {
		t.Error("float64 20 does not equal Int 20")
	}
	withNumber := map[string]any{"capacity": json.Number("20")}
	if !Match(cmpx("capacity", cimi.Ge, num(20)), withNumber) {
		t.Error("json.Number 20 is not >= Int 20")
	}
	if Match(cmpx("capacity", cimi.Gt, num(20)), withNumber) {
		t.Error("json.Number 20 is > Int 20")
	}
}
