package memindex

import (
	"cmp"
	"time"

	"stratuslab.dev/platform/cimi"
)

// Match reports whether doc satisfies the filter expr; a nil expr matches
// every document. doc is a decoded JSON object; numbers may be int64,
// float64 or json.Number.
//
// A comparison looks the attribute up along its path through nested objects
// and compares it with the literal of the same type only: strings
// lexicographically (byte order), Int with JSON numbers, Bool with booleans
// (false < true), Date with RFC 3339 strings. Any other pairing does not
// match. When the attribute is an array the comparison matches if any
// element matches. Null matches an absent or null attribute (!= null the
// opposite), and != with any other literal also matches an absent or null
// attribute.
func Match(expr cimi.Expr, doc map[string]any) bool {
	switch e := expr.(type) {
	case nil:
		return true
	case *cimi.Logical:
		if e == nil {
			return true
		}
		return matchLogical(e, doc)
	case *cimi.Comparison:
		if e == nil {
			return true
		}
		v, ok := lookup(doc, e.Attr.Path)
		return matchValue(v, ok, e.Op, e.Value)
	}
	return false
}

func matchLogical(e *cimi.Logical, doc map[string]any) bool {
	switch e.Op {
	case cimi.And:
		for _, t := range e.Terms {
			if !Match(t, doc) {
				return false
			}
		}
		return true
	case cimi.Or:
		for _, t := range e.Terms {
			if Match(t, doc) {
				return true
			}
		}
	}
	return false
}

// matchValue compares an attribute value (ok false when absent) with lit.
func matchValue(v any, ok bool, op cimi.CmpOp, lit cimi.Value) bool {
	missing := !ok || v == nil
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
	if arr, isArr := v.([]any); isArr {
		for _, el := range arr {
			if matchScalar(el, op, lit) {
				return true
			}
		}
		return false
	}
	return matchScalar(v, op, lit)
}

// matchScalar compares one value with lit; a value of another type never
// matches.
func matchScalar(v any, op cimi.CmpOp, lit cimi.Value) bool {
	var c int
	switch lit.Kind {
	case cimi.String:
		s, ok := v.(string)
		if !ok {
			return false
		}
		c = cmp.Compare(s, lit.Str)
	case cimi.Int:
		if rankOf(v, true) != rankNumber {
			return false
		}
		c = compareNumbers(v, lit.Int)
	case cimi.Bool:
		b, ok := v.(bool)
		if !ok {
			return false
		}
		c = compareBool(b, lit.Bool)
	case cimi.Date:
		s, ok := v.(string)
		if !ok {
			return false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return false
		}
		c = t.Compare(lit.Time)
	default:
		return false
	}
	return holds(op, c)
}

// holds reports whether op holds for a comparison result c.
func holds(op cimi.CmpOp, c int) bool {
	switch op {
	case cimi.Eq:
		return c == 0
	case cimi.Ne:
		return c != 0
	case cimi.Lt:
		return c < 0
	case cimi.Le:
		return c <= 0
	case cimi.Gt:
		return c > 0
	case cimi.Ge:
		return c >= 0
	}
	return false
}
