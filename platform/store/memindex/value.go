package memindex

import (
	"cmp"
	"encoding/json"
	"strconv"
)

// normalize converts, in place, every json.Number of a decoded document into
// an int64 when it is an integer that fits, or a float64 otherwise, so that
// queries compare numbers without parsing them again.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	}
	return v
}

// Kinds of values in the order they sort: absent first, then null, booleans,
// numbers, strings, arrays and objects (the order SQL++ collates in, so both
// adapters order alike).
const (
	rankAbsent cellKind = iota
	rankNull
	rankBool
	rankNumber
	rankString
	rankArray
	rankObject
)

func rankOf(v any, ok bool) cellKind {
	if !ok {
		return rankAbsent
	}
	switch v.(type) {
	case nil:
		return rankNull
	case bool:
		return rankBool
	case int64, float64, json.Number, int:
		return rankNumber
	case string:
		return rankString
	case []any:
		return rankArray
	}
	return rankObject
}

// compareValues orders two attribute values (ok false meaning absent).
func compareValues(a any, aok bool, b any, bok bool) int {
	ra, rb := rankOf(a, aok), rankOf(b, bok)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch ra {
	case rankBool:
		return compareBool(a.(bool), b.(bool))
	case rankNumber:
		return compareNumbers(a, b)
	case rankString:
		return cmp.Compare(a.(string), b.(string))
	case rankArray:
		x, y := a.([]any), b.([]any)
		for i := 0; i < len(x) && i < len(y); i++ {
			if c := compareValues(x[i], true, y[i], true); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(x), len(y))
	}
	return 0
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// compareNumbers compares two numbers of any of the decoded kinds, exactly
// when both are integers.
func compareNumbers(a, b any) int {
	ai, aInt := asInt(a)
	bi, bInt := asInt(b)
	if aInt && bInt {
		return cmp.Compare(ai, bi)
	}
	return cmp.Compare(asFloat(a), asFloat(b))
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		return i, err == nil
	}
	return 0, false
}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case float64:
		return x
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return 0
}

// lookup follows an attribute path through nested objects.
func lookup(doc map[string]any, path []string) (any, bool) {
	var cur any = doc
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}
