package memindex

import (
	"cmp"
	"encoding/json"
	"time"
	"unique"

	"stratuslab.dev/platform/cimi"
)

// cellKind says what a cell holds, in sort order (see rankAbsent...).
type cellKind uint8

// cell is one attribute of one document, decoded for fast comparison:
// strings are interned (repeated values share memory, so scans stay in
// cache) and strings that are RFC 3339 dates carry the parsed time.
type cell struct {
	kind    cellKind // one of the rank constants
	isInt   bool     // number held in i rather than f
	b       bool
	hasTime bool  // string is an RFC 3339 date: sec and nsec hold it
	nsec    int32 // date nanoseconds
	i       int64 // integer, or date seconds
	f       float64
	s       string
	v       any // arrays and objects, as decoded
}

// internMax bounds the strings worth interning: short ones, which are the
// ones that repeat (states, owners, types).
const internMax = 64

func cellOf(v any, ok bool) cell {
	if !ok {
		return cell{kind: rankAbsent}
	}
	switch x := v.(type) {
	case nil:
		return cell{kind: rankNull}
	case bool:
		return cell{kind: rankBool, b: x}
	case int64:
		return cell{kind: rankNumber, isInt: true, i: x}
	case float64:
		return cell{kind: rankNumber, f: x}
	case int, json.Number:
		if i, isInt := asInt(x); isInt {
			return cell{kind: rankNumber, isInt: true, i: i}
		}
		return cell{kind: rankNumber, f: asFloat(x)}
	case string:
		c := cell{kind: rankString, s: x}
		if len(x) <= internMax {
			c.s = unique.Make(x).Value()
		}
		if t, ok := parseDate(x); ok {
			c.hasTime, c.i, c.nsec = true, t.Unix(), int32(t.Nanosecond())
		}
		return c
	case []any:
		return cell{kind: rankArray, v: x}
	}
	return cell{kind: rankObject, v: v}
}

// parseDate parses an RFC 3339 date as Match does, skipping at once the
// strings that cannot be one.
func parseDate(s string) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// cellMatch is matchValue on a cell; the two must agree (tested).
func cellMatch(c *cell, op cimi.CmpOp, lit *cimi.Value) bool {
	missing := c.kind == rankAbsent || c.kind == rankNull
	if lit.Kind == cimi.Null {
		switch op {
		case cimi.Eq:
			return missing
		case cimi.Ne:
			return !missing
		}
		return false
	}
	if missing {
		return op == cimi.Ne
	}
	if c.kind == rankArray {
		for _, el := range c.v.([]any) {
			if matchScalar(el, op, *lit) {
				return true
			}
		}
		return false
	}
	var r int
	switch lit.Kind {
	case cimi.String:
		if c.kind != rankString {
			return false
		}
		r = cmp.Compare(c.s, lit.Str)
	case cimi.Int:
		if c.kind != rankNumber {
			return false
		}
		if c.isInt {
			r = cmp.Compare(c.i, lit.Int)
		} else {
			r = cmp.Compare(c.f, float64(lit.Int))
		}
	case cimi.Bool:
		if c.kind != rankBool {
			return false
		}
		r = compareBool(c.b, lit.Bool)
	case cimi.Date:
		if c.kind != rankString || !c.hasTime {
			return false
		}
		if r = cmp.Compare(c.i, lit.Time.Unix()); r == 0 {
			r = cmp.Compare(c.nsec, int32(lit.Time.Nanosecond()))
		}
	default:
		return false
	}
	return holds(op, r)
}

// compareCells orders cells as compareValues orders values.
func compareCells(a, b *cell) int {
	if a.kind != b.kind {
		return cmp.Compare(a.kind, b.kind)
	}
	switch a.kind {
	case rankBool:
		return compareBool(a.b, b.b)
	case rankNumber:
		if a.isInt && b.isInt {
			return cmp.Compare(a.i, b.i)
		}
		return cmp.Compare(a.float(), b.float())
	case rankString:
		return cmp.Compare(a.s, b.s)
	case rankArray:
		return compareValues(a.v, true, b.v, true)
	}
	return 0
}

func (c *cell) float() float64 {
	if c.isInt {
		return float64(c.i)
	}
	return c.f
}
