package xmlsig

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// xmlNamespace is the namespace the xml prefix is bound to by definition.
const xmlNamespace = "http://www.w3.org/XML/1998/namespace"

// maxDepth bounds element nesting: marketplace entries are a few levels deep,
// and the bound keeps hostile input from exhausting the stack of the
// recursive canonicalizer.
const maxDepth = 256

type nodeKind uint8

const (
	elementNode nodeKind = iota
	textNode
	piNode
)

// node is one node of the tree the canonicalizer walks. Comments are not
// kept: every canonicalization this package performs drops them.
type node struct {
	kind     nodeKind
	parent   *node
	children []*node

	// Element: the qualified name split at its colon, the namespace URI it
	// resolves to, the namespace declarations it carries (prefix "" is the
	// default namespace) and its other attributes.
	prefix, local, space string
	ns                   []nsDecl
	attrs                []attr

	// Text: the character data after entity expansion and line-end
	// normalization. Processing instruction: target and data.
	text, target string

	// closeAt is where the element's end tag starts in the source, or where
	// its "/>" starts when selfClosing: Sign inserts the Signature there.
	closeAt     int
	selfClosing bool
}

type nsDecl struct{ prefix, uri string }

type attr struct {
	prefix, local, space, value string
}

// document is a parsed XML document: the root element and the processing
// instructions around it (canonical XML keeps them, it drops comments and the
// XML declaration).
type document struct {
	before, after []*node
	root          *node
}

func (n *node) qname() string {
	if n.prefix == "" {
		return n.local
	}
	return n.prefix + ":" + n.local
}

func (a *attr) qname() string {
	if a.prefix == "" {
		return a.local
	}
	return a.prefix + ":" + a.local
}

// is reports whether n is the element space:local.
func (n *node) is(space, local string) bool {
	return n.kind == elementNode && n.local == local && n.space == space
}

// attr returns the value of the attribute without namespace named local.
func (n *node) attr(local string) (string, bool) {
	for i := range n.attrs {
		if n.attrs[i].space == "" && n.attrs[i].local == local {
			return n.attrs[i].value, true
		}
	}
	return "", false
}

// lookupNS returns the URI prefix is bound to at n ("" if unbound).
func (n *node) lookupNS(prefix string) (string, bool) {
	if prefix == "xml" {
		return xmlNamespace, true
	}
	for e := n; e != nil; e = e.parent {
		for _, d := range e.ns {
			if d.prefix == prefix {
				return d.uri, true
			}
		}
	}
	return "", false
}

// parser is a small non-validating XML 1.0 + Namespaces parser. It exists
// because canonical XML needs facts encoding/xml does not give: whether a
// whitespace character in an attribute value was literal (normalized to a
// space) or a character reference (kept), and the exact place of the root's
// end tag. It refuses DTDs, so no entity other than the five predefined ones
// exists and no attribute has a default value.
type parser struct {
	src []byte
	// str is src as a string: names and character data without
	// references are substrings of it, which costs one copy in all.
	str  string
	pos  int
	buf  []byte // scratch for decoded character data
	slab []node // nodes are allocated in batches
}

func parse(src []byte) (*document, error) {
	p := &parser{src: src, str: string(src)}
	doc, err := p.document()
	if err != nil {
		// The line lets a person find the fault; counting costs only on error.
		return nil, fmt.Errorf("line %d: %w", 1+bytes.Count(src[:min(p.pos, len(src))], []byte("\n")), err)
	}
	return doc, nil
}

func (p *parser) document() (*document, error) {
	if !utf8.Valid(p.src) {
		if bytes.HasPrefix(p.src, []byte{0xfe, 0xff}) || bytes.HasPrefix(p.src, []byte{0xff, 0xfe}) || (len(p.src) > 1 && p.src[0] == 0) {
			return nil, errors.New("only UTF-8 documents are accepted, this one looks like UTF-16")
		}
		return nil, errors.New("the document is not valid UTF-8")
	}
	if bytes.HasPrefix(p.src, []byte("\xef\xbb\xbf")) {
		p.pos = 3
	}
	if p.hasPrefix("<?xml") && p.pos+5 < len(p.src) && isSpace(p.src[p.pos+5]) {
		if err := p.xmlDecl(); err != nil {
			return nil, err
		}
	}
	doc := &document{}
	var err error
	if doc.before, err = p.misc(); err != nil {
		return nil, err
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '<' {
		return nil, errors.New("no root element")
	}
	if doc.root, err = p.element(); err != nil {
		return nil, err
	}
	if doc.after, err = p.misc(); err != nil {
		return nil, err
	}
	if p.pos < len(p.src) {
		return nil, errors.New("content after the root element")
	}
	return doc, nil
}

func (p *parser) hasPrefix(s string) bool {
	return strings.HasPrefix(p.str[p.pos:], s)
}

func (p *parser) newNode() *node {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]node, 0, 32)
	}
	p.slab = p.slab[:len(p.slab)+1]
	return &p.slab[len(p.slab)-1]
}

func (p *parser) skipSpace() bool {
	start := p.pos
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
	return p.pos > start
}

// xmlDecl checks the XML declaration: the encoding, when given, must be
// UTF-8 since that is the only one this parser reads.
func (p *parser) xmlDecl() error {
	end := bytes.Index(p.src[p.pos:], []byte("?>"))
	if end < 0 {
		return errors.New("unterminated XML declaration")
	}
	decl := p.str[p.pos+5 : p.pos+end]
	p.pos += end + 2
	if i := strings.Index(decl, "encoding"); i >= 0 {
		rest := strings.TrimLeft(decl[i+len("encoding"):], " \t\r\n")
		rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t\r\n")
		if rest == "" || (rest[0] != '"' && rest[0] != '\'') {
			return errors.New("malformed encoding in the XML declaration")
		}
		enc, _, ok := strings.Cut(rest[1:], rest[:1])
		if !ok {
			return errors.New("malformed encoding in the XML declaration")
		}
		if !strings.EqualFold(enc, "UTF-8") {
			return fmt.Errorf("encoding %q is not accepted, only UTF-8", enc)
		}
	}
	return nil
}

// misc reads whitespace, comments and processing instructions outside the
// root element.
func (p *parser) misc() ([]*node, error) {
	var pis []*node
	for {
		p.skipSpace()
		switch {
		case p.hasPrefix("<!--"):
			if err := p.comment(); err != nil {
				return nil, err
			}
		case p.hasPrefix("<?"):
			pi, err := p.pi()
			if err != nil {
				return nil, err
			}
			pis = append(pis, pi)
		case p.hasPrefix("<!DOCTYPE"):
			return nil, errors.New("document type declarations (DOCTYPE) are not accepted")
		default:
			return pis, nil
		}
	}
}

func (p *parser) comment() error {
	end := bytes.Index(p.src[p.pos+4:], []byte("--"))
	if end < 0 {
		return errors.New("unterminated comment")
	}
	p.pos += 4 + end
	if !p.hasPrefix("-->") {
		return errors.New(`"--" inside a comment`)
	}
	p.pos += 3
	return nil
}

func (p *parser) pi() (*node, error) {
	p.pos += 2
	target, err := p.name()
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(target, "xml") {
		return nil, errors.New("the XML declaration is only allowed at the very start")
	}
	if strings.Contains(target, ":") {
		return nil, fmt.Errorf("processing instruction target %q contains a colon", target)
	}
	n := p.newNode()
	n.kind, n.target = piNode, target
	if p.hasPrefix("?>") {
		p.pos += 2
		return n, nil
	}
	if !p.skipSpace() {
		return nil, errors.New("malformed processing instruction")
	}
	end := bytes.Index(p.src[p.pos:], []byte("?>"))
	if end < 0 {
		return nil, errors.New("unterminated processing instruction")
	}
	data, err := p.chars(p.pos, p.pos+end)
	if err != nil {
		return nil, err
	}
	n.text = data
	p.pos += end + 2
	return n, nil
}

// chars validates the raw character data src[start:end], which holds no
// references, and normalizes its line ends.
func (p *parser) chars(start, end int) (string, error) {
	raw := p.src[start:end]
	if bytes.IndexByte(raw, '\r') < 0 {
		return p.str[start:end], checkChars(raw)
	}
	p.buf = p.buf[:0]
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\r':
				p.buf = append(p.buf, '\n')
				if i+1 < len(raw) && raw[i+1] == '\n' {
					i++
				}
			case c < 0x20 && c != '\t' && c != '\n':
				return "", fmt.Errorf("character U+%04X is not allowed in XML", c)
			default:
				p.buf = append(p.buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(raw[i:])
		if !isChar(r) {
			return "", fmt.Errorf("character U+%04X is not allowed in XML", r)
		}
		p.buf = append(p.buf, raw[i:i+size]...)
		i += size
	}
	return string(p.buf), nil
}

// checkChars refuses the characters XML does not allow in raw data that
// is already known to be valid UTF-8.
func checkChars(raw []byte) error {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return fmt.Errorf("character U+%04X is not allowed in XML", c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(raw[i:])
		if !isChar(r) {
			return fmt.Errorf("character U+%04X is not allowed in XML", r)
		}
		i += size
	}
	return nil
}

// element parses the root element and everything in it, iteratively so that
// nesting costs heap, not stack, until maxDepth.
func (p *parser) element() (*node, error) {
	root, err := p.startTag(nil)
	if err != nil {
		return nil, err
	}
	if root.selfClosing {
		return root, nil
	}
	cur, depth := root, 1
	for {
		if p.pos >= len(p.src) {
			return nil, fmt.Errorf("element <%s> is not closed", cur.qname())
		}
		if p.src[p.pos] != '<' {
			if err := p.text(cur); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case p.hasPrefix("</"):
			cur.closeAt = p.pos
			p.pos += 2
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			if name != cur.qname() {
				return nil, fmt.Errorf("end tag </%s> does not match <%s>", name, cur.qname())
			}
			p.skipSpace()
			if !p.hasPrefix(">") {
				return nil, fmt.Errorf("malformed end tag </%s>", name)
			}
			p.pos++
			if cur == root {
				return root, nil
			}
			cur, depth = cur.parent, depth-1
		case p.hasPrefix("<!--"):
			if err := p.comment(); err != nil {
				return nil, err
			}
		case p.hasPrefix("<![CDATA["):
			end := bytes.Index(p.src[p.pos+9:], []byte("]]>"))
			if end < 0 {
				return nil, errors.New("unterminated CDATA section")
			}
			s, err := p.chars(p.pos+9, p.pos+9+end)
			if err != nil {
				return nil, err
			}
			p.addText(cur, s)
			p.pos += 9 + end + 3
		case p.hasPrefix("<?"):
			pi, err := p.pi()
			if err != nil {
				return nil, err
			}
			pi.parent = cur
			cur.children = append(cur.children, pi)
		case p.hasPrefix("<!"):
			return nil, errors.New("markup declarations are not accepted inside elements")
		default:
			if depth >= maxDepth {
				return nil, fmt.Errorf("elements are nested deeper than %d levels", maxDepth)
			}
			child, err := p.startTag(cur)
			if err != nil {
				return nil, err
			}
			cur.children = append(cur.children, child)
			if !child.selfClosing {
				cur, depth = child, depth+1
			}
		}
	}
}

// addText appends character data to cur. Adjacent pieces (split by a
// comment or a CDATA section) stay separate nodes: canonical output is the
// same, and merging them would cost quadratic copying on hostile input.
func (p *parser) addText(cur *node, s string) {
	if s == "" {
		return
	}
	n := p.newNode()
	n.kind, n.parent, n.text = textNode, cur, s
	cur.children = append(cur.children, n)
}

// text reads character data up to the next '<'.
func (p *parser) text(cur *node) error {
	end := bytes.IndexByte(p.src[p.pos:], '<')
	if end < 0 {
		end = len(p.src) - p.pos
	}
	raw := p.src[p.pos : p.pos+end]
	if bytes.Contains(raw, []byte("]]>")) {
		return errors.New(`"]]>" is not allowed in character data`)
	}
	s, err := p.decode(p.pos, p.pos+end, false)
	if err != nil {
		return err
	}
	p.pos += end
	p.addText(cur, s)
	return nil
}

// decode expands references in raw character data or an attribute value.
// In attribute values, literal whitespace becomes a space (XML 1.0 §3.3.3;
// without a DTD every attribute is CDATA) while a character reference keeps
// the character it names.
func (p *parser) decode(start, end int, attribute bool) (string, error) {
	raw := p.src[start:end]
	if bytes.IndexByte(raw, '&') < 0 && bytes.IndexByte(raw, '\r') < 0 &&
		(!attribute || (bytes.IndexByte(raw, '\n') < 0 && bytes.IndexByte(raw, '\t') < 0)) {
		return p.str[start:end], checkChars(raw)
	}
	var out []byte
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '&':
			end := bytes.IndexByte(raw[i:], ';')
			if end < 0 {
				return "", errors.New("unterminated entity reference")
			}
			r, err := reference(string(raw[i+1 : i+end]))
			if err != nil {
				return "", err
			}
			out = utf8.AppendRune(out, r)
			i += end + 1
		case c == '\r':
			if attribute {
				out = append(out, ' ')
			} else {
				out = append(out, '\n')
			}
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
			i++
		case attribute && (c == '\n' || c == '\t'):
			out = append(out, ' ')
			i++
		case c < utf8.RuneSelf:
			if c < 0x20 && c != '\t' && c != '\n' {
				return "", fmt.Errorf("character U+%04X is not allowed in XML", c)
			}
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if !isChar(r) {
				return "", fmt.Errorf("character U+%04X is not allowed in XML", r)
			}
			out = append(out, raw[i:i+size]...)
			i += size
		}
	}
	return string(out), nil
}

// reference resolves the body of an entity or character reference.
func reference(name string) (rune, error) {
	switch name {
	case "lt":
		return '<', nil
	case "gt":
		return '>', nil
	case "amp":
		return '&', nil
	case "apos":
		return '\'', nil
	case "quot":
		return '"', nil
	}
	if !strings.HasPrefix(name, "#") {
		return 0, fmt.Errorf("undefined entity &%s; (only &lt; &gt; &amp; &apos; &quot; exist without a DTD)", name)
	}
	digits, base := name[1:], 10
	if strings.HasPrefix(digits, "x") {
		digits, base = digits[1:], 16
	}
	if digits == "" || digits[0] == '+' || digits[0] == '-' {
		return 0, fmt.Errorf("malformed character reference &%s;", name)
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil || !isChar(rune(v)) {
		return 0, fmt.Errorf("character reference &%s; does not name an XML character", name)
	}
	return rune(v), nil
}

// startTag parses a start tag or empty-element tag and resolves the
// namespaces of the element and its attributes.
func (p *parser) startTag(parent *node) (*node, error) {
	p.pos++ // '<'
	qn, err := p.name()
	if err != nil {
		return nil, err
	}
	n := p.newNode()
	n.kind, n.parent = elementNode, parent
	if n.prefix, n.local, err = splitQName(qn); err != nil {
		return nil, err
	}
	for {
		spaced := p.skipSpace()
		if p.hasPrefix("/>") {
			n.closeAt, n.selfClosing = p.pos, true
			p.pos += 2
			break
		}
		if p.hasPrefix(">") {
			p.pos++
			break
		}
		if !spaced {
			return nil, fmt.Errorf("malformed start tag <%s>", qn)
		}
		an, err := p.name()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if !p.hasPrefix("=") {
			return nil, fmt.Errorf("attribute %s of <%s> has no value", an, qn)
		}
		p.pos++
		p.skipSpace()
		if p.pos >= len(p.src) || (p.src[p.pos] != '"' && p.src[p.pos] != '\'') {
			return nil, fmt.Errorf("attribute %s of <%s> is not quoted", an, qn)
		}
		quote := p.src[p.pos]
		end := bytes.IndexByte(p.src[p.pos+1:], quote)
		if end < 0 {
			return nil, fmt.Errorf("attribute %s of <%s> is not closed", an, qn)
		}
		raw := p.src[p.pos+1 : p.pos+1+end]
		if bytes.IndexByte(raw, '<') >= 0 {
			return nil, fmt.Errorf("'<' in the value of attribute %s", an)
		}
		val, err := p.decode(p.pos+1, p.pos+1+end, true)
		if err != nil {
			return nil, err
		}
		p.pos += end + 2
		if n.hasAttr(an) {
			return nil, fmt.Errorf("attribute %s appears twice in <%s>", an, qn)
		}
		if err := n.addAttr(an, val); err != nil {
			return nil, err
		}
	}
	return n, n.resolve()
}

// hasAttr reports whether the start tag read so far has the attribute or
// namespace declaration qn.
func (n *node) hasAttr(qn string) bool {
	for _, d := range n.ns {
		if (d.prefix == "" && qn == "xmlns") || (d.prefix != "" && len(qn) == 6+len(d.prefix) && qn[:6] == "xmlns:" && qn[6:] == d.prefix) {
			return true
		}
	}
	for i := range n.attrs {
		a := &n.attrs[i]
		if (a.prefix == "" && qn == a.local) || (a.prefix != "" && len(qn) == len(a.prefix)+1+len(a.local) &&
			qn[:len(a.prefix)] == a.prefix && qn[len(a.prefix)] == ':' && qn[len(a.prefix)+1:] == a.local) {
			return true
		}
	}
	return false
}

func (n *node) addAttr(qn, val string) error {
	prefix, local, err := splitQName(qn)
	if err != nil {
		return err
	}
	switch {
	case prefix == "" && local == "xmlns":
		if val == xmlNamespace || val == "http://www.w3.org/2000/xmlns/" {
			return fmt.Errorf("the default namespace cannot be %s", val)
		}
		n.ns = append(n.ns, nsDecl{"", val})
	case prefix == "xmlns":
		switch {
		case local == "xmlns":
			return errors.New("the xmlns prefix cannot be declared")
		case local == "xml" && val != xmlNamespace:
			return errors.New("the xml prefix cannot be bound to another namespace")
		case local != "xml" && (val == xmlNamespace || val == "http://www.w3.org/2000/xmlns/"):
			return fmt.Errorf("prefix %s cannot be bound to %s", local, val)
		case val == "":
			return fmt.Errorf("prefix %s is undeclared with an empty value, which XML 1.0 does not allow", local)
		}
		if local != "xml" {
			n.ns = append(n.ns, nsDecl{local, val})
		}
	default:
		n.attrs = append(n.attrs, attr{prefix: prefix, local: local, value: val})
	}
	return nil
}

// resolve binds the element's and attributes' prefixes to namespace URIs
// and refuses two attributes with the same expanded name.
func (n *node) resolve() error {
	if n.prefix == "xmlns" {
		return fmt.Errorf("element <%s> uses the reserved xmlns prefix", n.qname())
	}
	uri, ok := n.lookupNS(n.prefix)
	if n.prefix != "" && !ok {
		return fmt.Errorf("prefix %s of <%s> is not declared", n.prefix, n.qname())
	}
	n.space = uri
	for i := range n.attrs {
		a := &n.attrs[i]
		if a.prefix == "" {
			continue
		}
		if a.space, ok = n.lookupNS(a.prefix); !ok {
			return fmt.Errorf("prefix %s of attribute %s is not declared", a.prefix, a.qname())
		}
		for j := range i {
			if b := &n.attrs[j]; b.space == a.space && b.local == a.local {
				return fmt.Errorf("attributes %s and %s of <%s> have the same expanded name", b.qname(), a.qname(), n.qname())
			}
		}
	}
	return nil
}

func splitQName(qn string) (prefix, local string, err error) {
	prefix, local, found := strings.Cut(qn, ":")
	if !found {
		return "", qn, nil
	}
	if prefix == "" || local == "" || strings.Contains(local, ":") {
		return "", "", fmt.Errorf("malformed qualified name %q", qn)
	}
	return prefix, local, nil
}

func (p *parser) name() (string, error) {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c < utf8.RuneSelf {
			if !isNameByte(c, p.pos == start) {
				break
			}
			p.pos++
			continue
		}
		r, size := utf8.DecodeRune(p.src[p.pos:])
		if !isNameRune(r, p.pos == start) {
			break
		}
		p.pos += size
	}
	if p.pos == start {
		if p.pos >= len(p.src) {
			return "", errors.New("unexpected end of document")
		}
		return "", fmt.Errorf("a name was expected, found %q", p.src[p.pos])
	}
	return p.str[start:p.pos], nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		return true
	case c >= '0' && c <= '9', c == '-', c == '.':
		return !first
	}
	return false
}

// isNameRune implements the non-ASCII part of NameStartChar and NameChar
// (XML 1.0 fifth edition, production 4 and 4a).
func isNameRune(r rune, first bool) bool {
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	case r == 0xB7, r >= 0x300 && r <= 0x36F, r >= 0x203F && r <= 0x2040:
		return !first
	}
	return false
}
