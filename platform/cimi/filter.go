package cimi

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on a $filter. They bound the work a single request can cause in the
// parser, the in-memory evaluator and the SQL++ compiler, and keep the
// recursive descent far from the stack limit.
const (
	MaxFilterLength = 16 << 10 // bytes
	MaxFilterDepth  = 64       // nested parentheses
	MaxFilterTerms  = 1024     // comparisons
)

// FilterError reports why a $filter was rejected and where.
type FilterError struct {
	Pos int    // byte offset in the filter, 0 <= Pos <= len(filter)
	Msg string // what is wrong, written for the person who typed the filter
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("invalid $filter at position %d: %s", e.Pos, e.Msg)
}

// ParseFilter parses a CIMI $filter expression such as
//
//	state='STARTED' and (cpu>=2 or property['tier']="gold")
//
// Comparisons join with "and" and "or" (and binds tighter, keywords are
// case-insensitive) and group with parentheses. Values are strings in single
// or double quotes, integers, true, false, null and ISO 8601 dates
// (2012-01-02 or 2012-01-02T03:04:05.5+01:00, kept in UTC). A value on the
// left is moved to the right with the operator flipped, and nested "and"s (or
// "or"s) are flattened into one node. Errors are *FilterError.
func ParseFilter(s string) (Expr, error) {
	return parseFilter(s, MaxFilterLength)
}

// parseFilter lets tests re-read canonical renderings, which may be longer
// than the input they came from, without the length limit.
func parseFilter(s string, maxLen int) (Expr, error) {
	if len(s) > maxLen {
		return nil, &FilterError{Pos: maxLen, Msg: fmt.Sprintf(
			"the filter is %d bytes long; the limit is %d", len(s), maxLen)}
	}
	if !utf8.ValidString(s) {
		return nil, &FilterError{Pos: invalidUTF8(s), Msg: "the filter is not valid UTF-8 text"}
	}
	p := &parser{src: s}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tkEOF {
		return nil, p.errAt(p.tok.pos, "the filter is empty; write a comparison such as state='STARTED'")
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tkEOF:
		return e, nil
	case tkRParen:
		return nil, p.errAt(p.tok.pos, "unbalanced ')': there is no '(' for it to close")
	}
	return nil, p.errAt(p.tok.pos, fmt.Sprintf(
		"expected 'and', 'or' or the end of the filter after a comparison but found %s", p.tok.describe()))
}

func invalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return i
			}
		}
	}
	return len(s)
}

type tokenKind int

const (
	tkEOF tokenKind = iota
	tkLParen
	tkRParen
	tkOp
	tkAnd
	tkOr
	tkAttr
	tkValue
)

type token struct {
	kind tokenKind
	pos  int    // byte offset of the first byte
	text string // source text, for messages
	op   CmpOp
	attr Attribute
	val  Value
}

// describe names the token in an error message.
func (t token) describe() string {
	if t.kind == tkEOF {
		return "the end of the filter"
	}
	if t.kind == tkValue && t.val.Kind == String {
		// Already quoted.
		return truncate(t.text)
	}
	return quoteForMessage(t.text)
}

func truncate(s string) string {
	const max = 24
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}

func quoteForMessage(s string) string {
	return "'" + truncate(s) + "'"
}

type parser struct {
	src   string
	pos   int // next byte to lex
	tok   token
	depth int
	terms int
}

func (p *parser) errAt(pos int, msg string) *FilterError {
	return &FilterError{Pos: pos, Msg: msg}
}

// parseOr reads and-expressions separated by "or".
func (p *parser) parseOr() (Expr, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	terms := []Expr{first}
	for p.tok.kind == tkOr {
		kw := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.checkTermStart(kw); err != nil {
			return nil, err
		}
		next, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		terms = append(terms, next)
	}
	return join(Or, terms), nil
}

// parseAnd reads terms separated by "and".
func (p *parser) parseAnd() (Expr, error) {
	first, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	terms := []Expr{first}
	for p.tok.kind == tkAnd {
		kw := p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.checkTermStart(kw); err != nil {
			return nil, err
		}
		next, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		terms = append(terms, next)
	}
	return join(And, terms), nil
}

// checkTermStart gives a clearer message than parseTerm would when a keyword
// is not followed by a comparison.
func (p *parser) checkTermStart(kw token) error {
	switch p.tok.kind {
	case tkEOF, tkRParen, tkAnd, tkOr, tkOp:
		return p.errAt(p.tok.pos, fmt.Sprintf(
			"expected a comparison after %s but %s", kw.describe(), p.found()))
	}
	return nil
}

// found completes "expected X but ..." for the current token.
func (p *parser) found() string {
	if p.tok.kind == tkEOF {
		return "the filter ends"
	}
	return "found " + p.tok.describe()
}

// join builds a Logical node, splicing in the terms of children with the
// same operator so that "a and (b and c)" is one node of three terms.
func join(op LogicalOp, terms []Expr) Expr {
	if len(terms) == 1 {
		return terms[0]
	}
	flat := make([]Expr, 0, len(terms))
	for _, t := range terms {
		if l, ok := t.(*Logical); ok && l.Op == op {
			flat = append(flat, l.Terms...)
			continue
		}
		flat = append(flat, t)
	}
	return &Logical{Op: op, Terms: flat}
}

// parseTerm reads a parenthesised expression or a comparison.
func (p *parser) parseTerm() (Expr, error) {
	if p.tok.kind != tkLParen {
		return p.parseComparison()
	}
	open := p.tok.pos
	p.depth++
	if p.depth > MaxFilterDepth {
		return nil, p.errAt(open, fmt.Sprintf(
			"parentheses are nested more than %d deep", MaxFilterDepth))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tkRParen {
		return nil, p.errAt(p.tok.pos, "empty parentheses: write a comparison between '(' and ')'")
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tkRParen {
		if p.tok.kind == tkEOF {
			return nil, p.errAt(p.tok.pos, fmt.Sprintf(
				"missing ')' to close the '(' at position %d", open))
		}
		return nil, p.errAt(p.tok.pos, fmt.Sprintf(
			"expected 'and', 'or' or ')' to close the '(' at position %d but found %s",
			open, p.tok.describe()))
	}
	p.depth--
	return e, p.advance()
}

// parseComparison reads "attribute op value" or "value op attribute".
func (p *parser) parseComparison() (Expr, error) {
	first := p.tok
	switch first.kind {
	case tkAttr, tkValue:
	default:
		return nil, p.errAt(first.pos, fmt.Sprintf(
			"expected a comparison such as state='STARTED' but %s", p.found()))
	}
	p.terms++
	if p.terms > MaxFilterTerms {
		return nil, p.errAt(first.pos, fmt.Sprintf(
			"the filter has more than %d comparisons", MaxFilterTerms))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tkOp {
		return nil, p.errAt(p.tok.pos, fmt.Sprintf(
			"expected a comparison operator (=, !=, <, <=, >, >=) after %s but %s",
			first.describe(), p.found()))
	}
	opTok := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	second := p.tok
	var c *Comparison
	switch {
	case first.kind == tkAttr && second.kind == tkValue:
		c = &Comparison{Attr: first.attr, Op: opTok.op, Value: second.val}
	case first.kind == tkValue && second.kind == tkAttr:
		c = &Comparison{Attr: second.attr, Op: flip(opTok.op), Value: first.val}
	case first.kind == tkAttr && second.kind == tkAttr:
		return nil, p.errAt(second.pos, fmt.Sprintf(
			"%s compares two attributes; compare an attribute with a value instead", opTok.describe()))
	case first.kind == tkValue && second.kind == tkValue:
		return nil, p.errAt(second.pos, fmt.Sprintf(
			"%s compares two values; one side must be an attribute name", opTok.describe()))
	case first.kind == tkAttr:
		return nil, p.errAt(second.pos, fmt.Sprintf(
			"expected a value after %s but %s", opTok.describe(), p.found()))
	default:
		return nil, p.errAt(second.pos, fmt.Sprintf(
			"expected an attribute name after %s but %s", opTok.describe(), p.found()))
	}
	if k := c.Value.Kind; (k == Bool || k == Null) && c.Op != Eq && c.Op != Ne {
		return nil, p.errAt(opTok.pos, fmt.Sprintf(
			"%s cannot order %s; use = or !=", opTok.describe(), kindName(k)))
	}
	return c, p.advance()
}

func kindName(k ValueKind) string {
	if k == Null {
		return "null"
	}
	return "true or false"
}

// flip turns "5 < cpu" into "cpu > 5".
func flip(op CmpOp) CmpOp {
	switch op {
	case Lt:
		return Gt
	case Le:
		return Ge
	case Gt:
		return Lt
	case Ge:
		return Le
	}
	return op
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isLetter(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// isNameStart and isNameByte define attribute name terms: a letter or '_'
// followed by letters, digits, '_' and '-'.
func isNameStart(c byte) bool { return isLetter(c) || c == '_' }

func isNameByte(c byte) bool { return isNameStart(c) || isDigit(c) || c == '-' }

// isLiteralByte covers every byte of an integer or a date, so that a
// malformed literal is reported whole rather than split into odd tokens.
func isLiteralByte(c byte) bool {
	return isNameByte(c) || c == ':' || c == '.' || c == '+'
}

// advance lexes the next token into p.tok.
func (p *parser) advance() error {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
	start := p.pos
	if start == len(p.src) {
		p.tok = token{kind: tkEOF, pos: start}
		return nil
	}
	c := p.src[start]
	switch {
	case c == '(':
		p.pos++
		p.tok = token{kind: tkLParen, pos: start, text: "("}
	case c == ')':
		p.pos++
		p.tok = token{kind: tkRParen, pos: start, text: ")"}
	case c == '=' || c == '!' || c == '<' || c == '>':
		return p.lexOp()
	case c == '\'' || c == '"':
		s, err := p.lexString()
		if err != nil {
			return err
		}
		p.tok = token{kind: tkValue, pos: start, text: p.src[start:p.pos], val: Value{Kind: String, Str: s}}
	case isDigit(c) || c == '-':
		return p.lexLiteral()
	case isNameStart(c):
		return p.lexName()
	default:
		r, _ := utf8.DecodeRuneInString(p.src[start:])
		return p.errAt(start, fmt.Sprintf("unexpected character %q", r))
	}
	return nil
}

func (p *parser) lexOp() error {
	start := p.pos
	two := ""
	if start+1 < len(p.src) {
		two = p.src[start : start+2]
	}
	var op CmpOp
	n := 1
	switch {
	case two == "!=":
		op, n = Ne, 2
	case two == "<=":
		op, n = Le, 2
	case two == ">=":
		op, n = Ge, 2
	case two == "==":
		return p.errAt(start, "'==' is not an operator; use '=' to test equality")
	case p.src[start] == '=':
		op = Eq
	case p.src[start] == '<':
		op = Lt
	case p.src[start] == '>':
		op = Gt
	default:
		return p.errAt(start, "'!' must be followed by '=' (use != for not equal)")
	}
	p.pos += n
	p.tok = token{kind: tkOp, pos: start, text: p.src[start:p.pos], op: op}
	return nil
}

// lexString reads a quoted string starting at p.pos. Inside, the quote is
// escaped by doubling it or by a backslash, and "\\" is one backslash; any
// other backslash is kept as is so that paths like 'C:\dir' need no escaping.
func (p *parser) lexString() (string, error) {
	start := p.pos
	q := p.src[start]
	var b strings.Builder
	i := start + 1
	for i < len(p.src) {
		c := p.src[i]
		switch {
		case c == '\\' && i+1 < len(p.src) && (p.src[i+1] == q || p.src[i+1] == '\\'):
			b.WriteByte(p.src[i+1])
			i += 2
		case c == q && i+1 < len(p.src) && p.src[i+1] == q:
			b.WriteByte(q)
			i += 2
		case c == q:
			p.pos = i + 1
			return b.String(), nil
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", p.errAt(start, fmt.Sprintf(
		"the string starting here never ends; add the closing %c", q))
}

// lexLiteral reads an integer or a date.
func (p *parser) lexLiteral() error {
	start := p.pos
	end := start + 1
	for end < len(p.src) && isLiteralByte(p.src[end]) {
		end++
	}
	text := p.src[start:end]
	p.pos = end
	v, msg := parseLiteral(text)
	if msg != "" {
		return p.errAt(start, msg)
	}
	p.tok = token{kind: tkValue, pos: start, text: text, val: v}
	return nil
}

func parseLiteral(text string) (Value, string) {
	digits := strings.TrimPrefix(text, "-")
	if digits != "" && strings.Trim(digits, "0123456789") == "" {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return Value{}, fmt.Sprintf("the integer %s is out of range", quoteForMessage(text))
		}
		return Value{Kind: Int, Int: n}, ""
	}
	if len(text) > 4 && isDigit(text[0]) && text[4] == '-' {
		return parseDate(text)
	}
	return Value{}, fmt.Sprintf("%s is not a value: write an integer, a date such as 2012-01-02, "+
		"true, false, null or a quoted string", quoteForMessage(text))
}

func parseDate(text string) (Value, string) {
	var t time.Time
	var err error
	if len(text) == len("2006-01-02") {
		t, err = time.Parse(time.DateOnly, text)
	} else {
		t, err = time.Parse(time.RFC3339Nano, text)
	}
	if err != nil {
		return Value{}, fmt.Sprintf("%s is not a date: write 2012-01-02, 2012-01-02T03:04:05Z "+
			"or 2012-01-02T03:04:05.123+01:00", quoteForMessage(text))
	}
	t = t.UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return Value{}, fmt.Sprintf("the date %s falls outside years 0000 to 9999 in UTC", quoteForMessage(text))
	}
	return Value{Kind: Date, Time: t}, ""
}

// lexName reads a keyword or an attribute: terms with an optional
// namespace prefix ("ns:name"), separated by '/', or property['key'].
func (p *parser) lexName() error {
	start := p.pos
	var path []string
	for {
		seg, err := p.lexSegment()
		if err != nil {
			return err
		}
		path = append(path, seg)
		if p.pos >= len(p.src) || p.src[p.pos] != '/' {
			break
		}
		p.pos++
		if p.pos >= len(p.src) || !isNameStart(p.src[p.pos]) {
			return p.errAt(p.pos, "expected an attribute name after '/'")
		}
	}
	text := p.src[start:p.pos]
	if len(path) == 1 {
		switch strings.ToLower(text) {
		case "and":
			p.tok = token{kind: tkAnd, pos: start, text: text}
			return nil
		case "or":
			p.tok = token{kind: tkOr, pos: start, text: text}
			return nil
		case "true", "false":
			p.tok = token{kind: tkValue, pos: start, text: text, val: Value{Kind: Bool, Bool: strings.EqualFold(text, "true")}}
			return nil
		case "null":
			p.tok = token{kind: tkValue, pos: start, text: text, val: Value{Kind: Null}}
			return nil
		}
	}
	// Whitespace may separate "property" from its bracket; nothing else
	// can follow an attribute with '['.
	i := p.pos
	for i < len(p.src) && isSpace(p.src[i]) {
		i++
	}
	if i < len(p.src) && p.src[i] == '[' {
		if text != "property" {
			return p.errAt(i, fmt.Sprintf(
				"'[' can only follow property, as in property['key'], not %s", quoteForMessage(text)))
		}
		p.pos = i
		key, err := p.lexPropertyKey()
		if err != nil {
			return err
		}
		path = []string{"properties", key}
		text = p.src[start:p.pos]
	}
	p.tok = token{kind: tkAttr, pos: start, text: text, attr: Attribute{Path: path}}
	return nil
}

// lexSegment reads "name" or "ns:name" at p.pos, which holds a name start.
func (p *parser) lexSegment() (string, error) {
	start := p.pos
	p.pos++
	for p.pos < len(p.src) && isNameByte(p.src[p.pos]) {
		p.pos++
	}
	if p.pos < len(p.src) && p.src[p.pos] == ':' {
		p.pos++
		if p.pos >= len(p.src) || !isNameStart(p.src[p.pos]) {
			return "", p.errAt(p.pos, fmt.Sprintf(
				"expected a name after the namespace prefix %s", quoteForMessage(p.src[start:p.pos])))
		}
		for p.pos < len(p.src) && isNameByte(p.src[p.pos]) {
			p.pos++
		}
	}
	return p.src[start:p.pos], nil
}

// lexPropertyKey reads ['key'] or ["key"] at p.pos, which holds '['.
func (p *parser) lexPropertyKey() (string, error) {
	open := p.pos
	p.pos++
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
	if p.pos >= len(p.src) || (p.src[p.pos] != '\'' && p.src[p.pos] != '"') {
		return "", p.errAt(p.pos, "expected a quoted key after 'property[', as in property['key']")
	}
	keyPos := p.pos
	key, err := p.lexString()
	if err != nil {
		return "", err
	}
	if key == "" {
		return "", p.errAt(keyPos, "the property key is empty")
	}
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
	if p.pos >= len(p.src) || p.src[p.pos] != ']' {
		return "", p.errAt(p.pos, fmt.Sprintf("missing ']' to close the '[' at position %d", open))
	}
	p.pos++
	return key, nil
}

// FormatFilter renders an expression in the canonical form ParseFilter reads
// back to an equal tree: single spaces around operators and keywords,
// lower-case keywords, single-quoted strings, dates in UTC and parentheses
// only where "or" sits inside "and". It returns "" for a nil expression.
func FormatFilter(e Expr) string {
	var b strings.Builder
	writeExpr(&b, e, 0)
	return b.String()
}

func writeExpr(b *strings.Builder, e Expr, parent LogicalOp) {
	switch e := e.(type) {
	case *Logical:
		if e == nil {
			return
		}
		if len(e.Terms) == 1 {
			writeExpr(b, e.Terms[0], parent)
			return
		}
		paren := parent == And && e.Op == Or
		if paren {
			b.WriteByte('(')
		}
		kw := " and "
		if e.Op == Or {
			kw = " or "
		}
		for i, t := range e.Terms {
			if i > 0 {
				b.WriteString(kw)
			}
			writeExpr(b, t, e.Op)
		}
		if paren {
			b.WriteByte(')')
		}
	case *Comparison:
		if e == nil {
			return
		}
		writeAttribute(b, e.Attr)
		b.WriteByte(' ')
		b.WriteString(e.Op.String())
		b.WriteByte(' ')
		writeValue(b, e.Value)
	}
}

func writeAttribute(b *strings.Builder, a Attribute) {
	if len(a.Path) == 2 && a.Path[0] == "properties" {
		b.WriteString("property[")
		writeString(b, a.Path[1])
		b.WriteByte(']')
		return
	}
	b.WriteString(strings.Join(a.Path, "/"))
}

func writeValue(b *strings.Builder, v Value) {
	switch v.Kind {
	case String:
		writeString(b, v.Str)
	case Int:
		b.WriteString(strconv.FormatInt(v.Int, 10))
	case Bool:
		b.WriteString(strconv.FormatBool(v.Bool))
	case Date:
		b.WriteString(v.Time.UTC().Format(time.RFC3339Nano))
	case Null:
		b.WriteString("null")
	default:
		fmt.Fprintf(b, "<invalid value kind %d>", int(v.Kind))
	}
}

// writeString single-quotes s, doubling quotes and backslashes so that no
// escape is ambiguous when read back.
func writeString(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(s[i])
		}
	}
	b.WriteByte('\'')
}

// String returns the operator as written in a filter.
func (op CmpOp) String() string {
	switch op {
	case Eq:
		return "="
	case Ne:
		return "!="
	case Lt:
		return "<"
	case Le:
		return "<="
	case Gt:
		return ">"
	case Ge:
		return ">="
	}
	return fmt.Sprintf("CmpOp(%d)", int(op))
}

// String returns the operator as written in a filter.
func (op LogicalOp) String() string {
	switch op {
	case And:
		return "and"
	case Or:
		return "or"
	}
	return fmt.Sprintf("LogicalOp(%d)", int(op))
}
