package fakecloud

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Match reports whether doc satisfies the CIMI $filter expression filter.
// It reads the part of the gateway's grammar the client writes: "and" and
// "or" (and binds tighter, keywords in any case), parentheses, the
// comparisons = != < <= > >= between an attribute and a value, and values
// in single or double quotes (the quote doubled or after a backslash, and
// "\\" for one backslash, as the gateway reads them), integers, dates
// (2026-01-02 or RFC 3339, compared with RFC 3339 attributes), true, false
// and null. Tests use it to check that what the client quotes reads
// back as the value it meant.
func Match(filter string, doc map[string]any) (bool, error) {
	p := &filterParser{src: filter}
	e, err := p.or()
	if err != nil {
		return false, err
	}
	if p.skipSpace(); p.pos < len(p.src) {
		return false, fmt.Errorf("unexpected %q at position %d", p.src[p.pos:], p.pos)
	}
	return e(doc), nil
}

// Comparison is one attribute compared to one value.
type Comparison struct {
	Attr  string
	Op    string
	Value any // string, int64, time.Time, bool or nil
}

// Comparisons returns the comparisons of filter in order, to check how a
// filter was built.
func Comparisons(filter string) ([]Comparison, error) {
	p := &filterParser{src: filter, record: true}
	if _, err := p.or(); err != nil {
		return nil, err
	}
	if p.skipSpace(); p.pos < len(p.src) {
		return nil, fmt.Errorf("unexpected %q at position %d", p.src[p.pos:], p.pos)
	}
	return p.seen, nil
}

type predicate func(map[string]any) bool

type filterParser struct {
	src    string
	pos    int
	record bool
	seen   []Comparison
}

func (p *filterParser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

// keyword consumes kw ("and", "or") when it comes next as a whole word.
func (p *filterParser) keyword(kw string) bool {
	p.skipSpace()
	end := p.pos + len(kw)
	if end > len(p.src) || !strings.EqualFold(p.src[p.pos:end], kw) {
		return false
	}
	if end < len(p.src) && isNameByte(p.src[end]) {
		return false
	}
	p.pos = end
	return true
}

func (p *filterParser) or() (predicate, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	terms := []predicate{first}
	for p.keyword("or") {
		t, err := p.and()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
	return func(d map[string]any) bool {
		for _, t := range terms {
			if t(d) {
				return true
			}
		}
		return false
	}, nil
}

func (p *filterParser) and() (predicate, error) {
	first, err := p.term()
	if err != nil {
		return nil, err
	}
	terms := []predicate{first}
	for p.keyword("and") {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
	return func(d map[string]any) bool {
		for _, t := range terms {
			if !t(d) {
				return false
			}
		}
		return true
	}, nil
}

func (p *filterParser) term() (predicate, error) {
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '(' {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.skipSpace(); p.pos >= len(p.src) || p.src[p.pos] != ')' {
			return nil, fmt.Errorf("missing ')' at position %d", p.pos)
		}
		p.pos++
		return e, nil
	}
	start := p.pos
	for p.pos < len(p.src) && (isNameByte(p.src[p.pos]) || p.src[p.pos] == '/') {
		p.pos++
	}
	attr := p.src[start:p.pos]
	if attr == "" {
		return nil, fmt.Errorf("expected an attribute at position %d", start)
	}
	p.skipSpace()
	op := ""
	for _, o := range []string{"!=", "<=", ">=", "=", "<", ">"} {
		if strings.HasPrefix(p.src[p.pos:], o) {
			op = o
			break
		}
	}
	if op == "" {
		return nil, fmt.Errorf("expected a comparison after %s at position %d", attr, p.pos)
	}
	p.pos += len(op)
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if p.record {
		p.seen = append(p.seen, Comparison{Attr: attr, Op: op, Value: v})
	}
	return func(d map[string]any) bool { return compare(d[attr], op, v) }, nil
}

func (p *filterParser) value() (any, error) {
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("expected a value at the end")
	}
	if q := p.src[p.pos]; q == '\'' || q == '"' {
		var b strings.Builder
		for i := p.pos + 1; i < len(p.src); i++ {
			c := p.src[i]
			switch {
			case c == '\\' && i+1 < len(p.src) && (p.src[i+1] == q || p.src[i+1] == '\\'):
				b.WriteByte(p.src[i+1])
				i++
			case c == q && i+1 < len(p.src) && p.src[i+1] == q:
				b.WriteByte(q)
				i++
			case c == q:
				p.pos = i + 1
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return nil, fmt.Errorf("the string at position %d never ends", p.pos)
	}
	start := p.pos
	for p.pos < len(p.src) && (isNameByte(p.src[p.pos]) || strings.IndexByte("-+:.", p.src[p.pos]) >= 0) {
		p.pos++
	}
	word := p.src[start:p.pos]
	switch word {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	}
	if n, err := strconv.ParseInt(word, 10, 64); err == nil {
		return n, nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano} {
		if t, err := time.Parse(layout, word); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%q at position %d is not a value", word, start)
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// compare applies op to a document's value (as decoded from JSON) and a
// filter value; values of different types only differ.
func compare(have any, op string, want any) bool {
	c, ok := order(have, want)
	switch op {
	case "=":
		return ok && c == 0
	case "!=":
		return !ok || c != 0
	case "<":
		return ok && c < 0
	case "<=":
		return ok && c <= 0
	case ">":
		return ok && c > 0
	case ">=":
		return ok && c >= 0
	}
	return false
}

func order(have, want any) (int, bool) {
	switch w := want.(type) {
	case string:
		h, ok := have.(string)
		return strings.Compare(h, w), ok
	case int64:
		var h float64
		switch v := have.(type) {
		case float64:
			h = v
		case int:
			h = float64(v)
		case int64:
			h = float64(v)
		default:
			return 0, false
		}
		switch {
		case h < float64(w):
			return -1, true
		case h > float64(w):
			return 1, true
		}
		return 0, true
	case time.Time:
		hs, _ := have.(string)
		h, err := time.Parse(time.RFC3339Nano, hs)
		return h.Compare(w), err == nil
	case bool:
		h, ok := have.(bool)
		if !ok || h != w {
			return 1, ok
		}
		return 0, true
	case nil:
		if have != nil {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
