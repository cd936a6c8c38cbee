package cimi

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MaxOrderKeys bounds the number of $orderby keys, which each cost a
// comparison per pair of documents sorted.
const MaxOrderKeys = 32

// ParamError reports an invalid CIMI query parameter. For $filter it wraps
// the *FilterError, which errors.As finds.
type ParamError struct {
	Param string // the parameter, e.g. "$first"
	Msg   string // what is wrong with it, for the person who wrote it
	Err   error  // the underlying error, if any
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Param, e.Msg)
}

// Unwrap returns the underlying error, a *FilterError for $filter.
func (e *ParamError) Unwrap() error { return e.Err }

// ParseQuery reads the CIMI collection query parameters from a request's
// query string: $filter (several are and-ed), $orderby ("attr", "attr:asc"
// or "attr:desc", comma-separated), $first and $last (1-based, inclusive)
// and $select (comma-separated top-level attribute names). Other parameters,
// $expand included, are ignored. Empty values count as absent. Errors are
// *ParamError.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	var err error
	if q.Filter, err = parseFilters(v["$filter"]); err != nil {
		return Query{}, err
	}
	if q.OrderBy, err = parseOrderBy(v["$orderby"]); err != nil {
		return Query{}, err
	}
	if q.First, err = parsePosition("$first", v["$first"]); err != nil {
		return Query{}, err
	}
	if q.Last, err = parsePosition("$last", v["$last"]); err != nil {
		return Query{}, err
	}
	if q.Last != 0 && q.Last < q.First {
		return Query{}, &ParamError{Param: "$last", Msg: fmt.Sprintf(
			"$last=%d is before $first=%d; $last must be at least $first", q.Last, q.First)}
	}
	if q.Select, err = parseSelect(v["$select"]); err != nil {
		return Query{}, err
	}
	return q, nil
}

func parseFilters(values []string) (Expr, error) {
	var terms []Expr
	total := 0
	for i, s := range values {
		if strings.TrimSpace(s) == "" {
			continue
		}
		total += len(s)
		if total > MaxFilterLength {
			return nil, &ParamError{Param: "$filter", Msg: fmt.Sprintf(
				"the $filter values are longer than %d bytes together", MaxFilterLength)}
		}
		e, err := ParseFilter(s)
		if err != nil {
			msg := err.Error()
			if fe, ok := err.(*FilterError); ok {
				msg = fmt.Sprintf("%s (at position %d", fe.Msg, fe.Pos)
				if len(values) > 1 {
					msg += fmt.Sprintf(" of $filter number %d", i+1)
				}
				msg += ")"
			}
			return nil, &ParamError{Param: "$filter", Msg: msg, Err: err}
		}
		terms = append(terms, e)
	}
	if len(terms) == 0 {
		return nil, nil
	}
	if n := countComparisons(terms); n > MaxFilterTerms {
		return nil, &ParamError{Param: "$filter", Msg: fmt.Sprintf(
			"the $filter values hold %d comparisons together; the limit is %d", n, MaxFilterTerms)}
	}
	return join(And, terms), nil
}

func countComparisons(terms []Expr) int {
	n := 0
	for _, t := range terms {
		if l, ok := t.(*Logical); ok {
			n += countComparisons(l.Terms)
		} else {
			n++
		}
	}
	return n
}

func parseOrderBy(values []string) ([]Order, error) {
	var keys []Order
	for _, v := range values {
		for _, item := range splitList(v) {
			o, err := parseOrder(item)
			if err != nil {
				return nil, err
			}
			keys = append(keys, o)
			if len(keys) > MaxOrderKeys {
				return nil, &ParamError{Param: "$orderby", Msg: fmt.Sprintf(
					"more than %d sort keys", MaxOrderKeys)}
			}
		}
	}
	return keys, nil
}

// parseOrder reads "attr", "attr:asc" or "attr:desc". The direction suffix
// wins over a namespace prefix: "ns:desc" sorts on ns, descending.
func parseOrder(item string) (Order, error) {
	var o Order
	if i := strings.LastIndexByte(item, ':'); i >= 0 {
		switch strings.ToLower(strings.TrimSpace(item[i+1:])) {
		case "asc":
			item = strings.TrimSpace(item[:i])
		case "desc":
			item, o.Desc = strings.TrimSpace(item[:i]), true
		}
	}
	attr, err := parseAttribute(item)
	if err != nil {
		return Order{}, &ParamError{Param: "$orderby", Msg: err.Error() +
			"; write attr, attr:asc or attr:desc separated by commas"}
	}
	o.Attr = attr
	return o, nil
}

// parseAttribute reads a whole string as one attribute of the filter
// grammar, e.g. "acl/owner/principal" or "property['k']".
func parseAttribute(s string) (Attribute, error) {
	p := &parser{src: s}
	if err := p.advance(); err != nil {
		var fe *FilterError
		if errors.As(err, &fe) {
			return Attribute{}, fmt.Errorf("%s is not an attribute: %s", quoteForMessage(s), fe.Msg)
		}
		return Attribute{}, err
	}
	if p.tok.kind != tkAttr {
		return Attribute{}, fmt.Errorf("%s is not an attribute name", quoteForMessage(s))
	}
	attr := p.tok.attr
	if err := p.advance(); err != nil || p.tok.kind != tkEOF {
		return Attribute{}, fmt.Errorf("%s is not an attribute name", quoteForMessage(s))
	}
	return attr, nil
}

// splitList splits a comma-separated list, leaving commas inside quotes
// (as in property['a,b']) alone, trimming items and dropping empty ones.
func splitList(s string) []string {
	var items []string
	var quote byte
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			c := s[i]
			switch {
			case quote != 0 && c == '\\' && i+1 < len(s):
				i++
				continue
			case quote != 0 && c == quote:
				quote = 0
				continue
			case quote != 0:
				continue
			case c == '\'' || c == '"':
				quote = c
				continue
			case c != ',':
				continue
			}
		}
		if item := strings.TrimSpace(s[start:i]); item != "" {
			items = append(items, item)
		}
		start = i + 1
	}
	return items
}

func parsePosition(param string, values []string) (int, error) {
	var set []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			set = append(set, v)
		}
	}
	switch len(set) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, &ParamError{Param: param, Msg: fmt.Sprintf("given %d times; give it once", len(set))}
	}
	s := set[0]
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || strings.Trim(s, "0123456789") != "" {
		return 0, &ParamError{Param: param, Msg: fmt.Sprintf(
			"%s must be a positive integer (the first result is 1), not %s", param, quoteForMessage(s)), Err: err}
	}
	return n, nil
}

func parseSelect(values []string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, name := range splitList(v) {
			if !isTopLevelName(name) {
				return nil, &ParamError{Param: "$select", Msg: fmt.Sprintf(
					"%s is not a top-level attribute name; list names such as name,state separated by commas",
					quoteForMessage(name))}
			}
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	return names, nil
}

// isTopLevelName reports whether s is a single attribute name term,
// optionally with a namespace prefix.
func isTopLevelName(s string) bool {
	a, err := parseAttribute(s)
	return err == nil && len(a.Path) == 1
}
