package xmlsig

import (
	"cmp"
	"slices"
	"strings"
)

// c14nMode selects Canonical XML 1.0 (inclusive) or Exclusive XML
// Canonicalization 1.0, both without comments.
type c14nMode struct {
	exclusive bool
	// prefixes is the InclusiveNamespaces PrefixList of exclusive
	// canonicalization; "" stands for #default.
	prefixes []string
}

// canonicalizer writes the canonical form of a node-set made of one subtree
// (the apex and its descendants) minus, optionally, another subtree (the
// Signature removed by the enveloped-signature transform). Those are the
// only node-sets XML-DSig with Reference URI="" needs.
type canonicalizer struct {
	mode c14nMode
	skip *node
	out  []byte
	// rendered holds the namespace declarations written on the output
	// ancestors of the element being rendered, innermost last.
	rendered []nsDecl
	scratch  []nsDecl
}

// canonicalize appends to dst the canonical form of the subtree at apex,
// without comments and without the subtree at skip. When apex is the root,
// the result is that of the whole document: processing instructions outside
// the root come along, each on its own line.
func canonicalize(dst []byte, doc *document, apex *node, mode c14nMode, skip *node) []byte {
	c := &canonicalizer{mode: mode, skip: skip, out: dst}
	if apex == doc.root {
		for _, pi := range doc.before {
			c.pi(pi)
			c.out = append(c.out, '\n')
		}
	}
	c.element(apex, true)
	if apex == doc.root {
		for _, pi := range doc.after {
			c.out = append(c.out, '\n')
			c.pi(pi)
		}
	}
	return c.out
}

func (c *canonicalizer) node(n *node) {
	switch n.kind {
	case elementNode:
		if n != c.skip {
			c.element(n, false)
		}
	case textNode:
		c.out = appendText(c.out, n.text)
	case piNode:
		c.pi(n)
	}
}

func (c *canonicalizer) pi(n *node) {
	c.out = append(c.out, "<?"...)
	c.out = append(c.out, n.target...)
	if n.text != "" {
		c.out = append(c.out, ' ')
		c.out = append(c.out, n.text...)
	}
	c.out = append(c.out, "?>"...)
}

// element renders n; apex says its parent is not in the node-set, which
// makes inclusive canonicalization render every namespace in scope and
// import the xml:* attributes of the ancestors (C14N 1.0 §2.4).
func (c *canonicalizer) element(n *node, apex bool) {
	var decls []nsDecl
	if c.mode.exclusive {
		decls = c.exclusiveNS(n)
	} else {
		decls = c.inclusiveNS(n, apex)
	}
	slices.SortFunc(decls, func(a, b nsDecl) int { return strings.Compare(a.prefix, b.prefix) })

	attrs := n.attrs
	if apex && !c.mode.exclusive && n.parent != nil {
		attrs = inheritXMLAttrs(n)
	}
	if len(attrs) > 1 {
		slices.SortFunc(attrs, func(a, b attr) int {
			return cmp.Or(strings.Compare(a.space, b.space), strings.Compare(a.local, b.local))
		})
	}

	qname := n.qname()
	c.out = append(c.out, '<')
	c.out = append(c.out, qname...)
	for _, d := range decls {
		if d.prefix == "" {
			c.out = append(c.out, ` xmlns="`...)
		} else {
			c.out = append(c.out, ` xmlns:`...)
			c.out = append(c.out, d.prefix...)
			c.out = append(c.out, `="`...)
		}
		c.out = appendAttrValue(c.out, d.uri)
		c.out = append(c.out, '"')
	}
	for i := range attrs {
		a := &attrs[i]
		c.out = append(c.out, ' ')
		if a.prefix != "" {
			c.out = append(c.out, a.prefix...)
			c.out = append(c.out, ':')
		}
		c.out = append(c.out, a.local...)
		c.out = append(c.out, `="`...)
		c.out = appendAttrValue(c.out, a.value)
		c.out = append(c.out, '"')
	}
	c.out = append(c.out, '>')

	mark := len(c.rendered)
	c.rendered = append(c.rendered, decls...)
	c.scratch = decls[:0] // copied into rendered: the children may reuse it
	for _, child := range n.children {
		c.node(child)
	}
	c.rendered = c.rendered[:mark]

	c.out = append(c.out, "</"...)
	c.out = append(c.out, qname...)
	c.out = append(c.out, '>')
}

// renderedURI is the namespace an output ancestor bound prefix to, ""
// when none did.
func (c *canonicalizer) renderedURI(prefix string) string {
	for i := len(c.rendered) - 1; i >= 0; i-- {
		if c.rendered[i].prefix == prefix {
			return c.rendered[i].uri
		}
	}
	return ""
}

// inclusiveNS returns the namespace declarations inclusive canonicalization
// writes on n: those in scope whose binding differs from what the output
// ancestors rendered. Below the apex every ancestor is output, so only n's
// own declarations can differ.
func (c *canonicalizer) inclusiveNS(n *node, apex bool) []nsDecl {
	decls := c.scratch[:0]
	if !apex {
		for _, d := range n.ns {
			if d.uri != c.renderedURI(d.prefix) {
				decls = append(decls, d)
			}
		}
		return decls
	}
	for e := n; e != nil; e = e.parent {
		for _, d := range e.ns {
			if !slices.ContainsFunc(decls, func(x nsDecl) bool { return x.prefix == d.prefix }) {
				decls = append(decls, d)
			}
		}
	}
	kept := decls[:0]
	for _, d := range decls {
		if d.uri != c.renderedURI(d.prefix) {
			kept = append(kept, d)
		}
	}
	return kept
}

// exclusiveNS returns the declarations exclusive canonicalization writes on
// n: the prefixes n visibly uses (its own and its attributes') plus those
// of the InclusiveNamespaces list, when their binding differs from what the
// output ancestors rendered.
func (c *canonicalizer) exclusiveNS(n *node) []nsDecl {
	decls := c.scratch[:0]
	add := func(prefix string) {
		if prefix == "xml" || slices.ContainsFunc(decls, func(x nsDecl) bool { return x.prefix == prefix }) {
			return
		}
		uri, _ := n.lookupNS(prefix)
		if uri != c.renderedURI(prefix) {
			decls = append(decls, nsDecl{prefix, uri})
		}
	}
	add(n.prefix)
	for i := range n.attrs {
		if p := n.attrs[i].prefix; p != "" {
			add(p)
		}
	}
	for _, p := range c.mode.prefixes {
		add(p)
	}
	return decls
}

// inheritXMLAttrs returns n's attributes plus the xml:* attributes of its
// ancestors that n does not override, the nearest ancestor winning.
func inheritXMLAttrs(n *node) []attr {
	attrs := slices.Clone(n.attrs)
	for e := n.parent; e != nil; e = e.parent {
		for _, a := range e.attrs {
			if a.space != xmlNamespace {
				continue
			}
			if !slices.ContainsFunc(attrs, func(x attr) bool { return x.space == xmlNamespace && x.local == a.local }) {
				attrs = append(attrs, a)
			}
		}
	}
	return attrs
}

// appendText escapes character data as canonical XML requires.
func appendText(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, esc...)
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// appendAttrValue escapes an attribute value as canonical XML requires.
func appendAttrValue(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '"':
			esc = "&quot;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, esc...)
		start = i + 1
	}
	return append(dst, s[start:]...)
}
