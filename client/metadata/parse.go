package metadata

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// MaxDocumentSize is the largest entry Parse reads (1 MiB). Real entries
// are a few kilobytes; the limit bounds the work a hostile upload causes.
const MaxDocumentSize = 1 << 20

// MaxDepth is how deep elements may nest. An entry needs 5 levels
// (rdf:RDF, rdf:Description, slreq:endorsement, slreq:endorser,
// slreq:email) and its signature 7; the rest is room for extensions.
const MaxDepth = 16

// Parse reads a Marketplace entry.
//
// The reader is strict about the entry and careful with the input: it
// refuses documents over MaxDocumentSize, any <!DOCTYPE> (and so every DTD
// and entity declaration; only the five predefined entities and character
// references are read), processing instructions other than the XML
// declaration, encodings other than UTF-8, elements nested deeper than
// MaxDepth, a root other than rdf:RDF, and any element of the entry's
// namespaces (rdf, dcterms, slreq, slterms) that it does not know, naming
// it. Elements of other namespaces inside rdf:Description are skipped: the
// original Marketplace schema allowed such extensions and real entries use
// them; Render does not write them back. An enveloped XML-DSig Signature
// may follow the rdf:Description; Parse sets Signed and ignores it, since
// checking it is the xmlsig package's work on the original bytes.
//
// Parse checks the document's shape and the types of its values; Validate
// checks the entry's rules. Errors are Problems.
func Parse(data []byte) (*Entry, error) {
	if len(data) > MaxDocumentSize {
		return nil, problem(RuleDocumentSize, "", "the document is %d bytes; an entry may have at most %d bytes (1 MiB)", len(data), MaxDocumentSize)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true // refuse undefined entities (the default, stated)
	p := &parser{d: d, inScope: map[string]int{}}
	return p.document()
}

type parser struct {
	d       *xml.Decoder
	depth   int
	started bool // the root element has been seen
	// spaces are the namespaces declared by each open element and inScope
	// counts their declarations, to tell an undeclared prefix, which
	// encoding/xml leaves in Name.Space as it is.
	spaces  [][]string
	inScope map[string]int
}

// open records the namespaces an element declares and checks that its
// prefixes, and its attributes', are declared.
func (p *parser) open(t xml.StartElement) error {
	var here []string
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name == (xml.Name{Local: "xmlns"}) {
			here = append(here, a.Value)
		}
	}
	p.spaces = append(p.spaces, here)
	for _, s := range here {
		p.inScope[s]++
	}
	if t.Name.Space != "" && p.inScope[t.Name.Space] == 0 {
		return problem(RuleWellFormed, "", "the prefix %q of <%s:%s> is not declared", t.Name.Space, t.Name.Space, t.Name.Local)
	}
	for _, a := range t.Attr {
		switch a.Name.Space {
		case "", "xmlns", namespaceXML:
		default:
			if p.inScope[a.Name.Space] == 0 {
				return problem(RuleWellFormed, "", "the prefix %q of the attribute %s:%s is not declared", a.Name.Space, a.Name.Space, a.Name.Local)
			}
		}
	}
	return nil
}

// next returns the next start, end or text token, skipping comments and
// the XML declaration and refusing directives and other processing
// instructions. It keeps the nesting depth.
func (p *parser) next() (xml.Token, error) {
	for {
		tok, err := p.d.Token()
		if err == io.EOF {
			return nil, err
		}
		if err != nil {
			return nil, problem(RuleWellFormed, "", "the document is not well-formed XML: %s", syntaxMessage(err))
		}
		switch t := tok.(type) {
		case xml.Directive:
			if bytes.HasPrefix(t, []byte("DOCTYPE")) {
				return nil, problem(RuleNoDoctype, "", "the document has a <!DOCTYPE>; entries may not declare a DTD or entities")
			}
			return nil, problem(RuleNoDoctype, "", "the document has a <!%s> declaration; entries may not declare a DTD or entities", firstWord(t))
		case xml.ProcInst:
			if t.Target == "xml" && !p.started {
				continue
			}
			return nil, problem(RuleStructure, "", "the document has a processing instruction <?%s?>; entries may not have any", t.Target)
		case xml.Comment:
			continue
		case xml.StartElement:
			p.started = true
			p.depth++
			if p.depth > MaxDepth {
				return nil, problem(RuleNestingDepth, "", "<%s> is nested %d elements deep; entries may nest at most %d", qname(t.Name), p.depth, MaxDepth)
			}
			if err := p.open(t); err != nil {
				return nil, err
			}
		case xml.EndElement:
			p.depth--
			for _, s := range p.spaces[len(p.spaces)-1] {
				p.inScope[s]--
			}
			p.spaces = p.spaces[:len(p.spaces)-1]
		}
		return tok, nil
	}
}

func syntaxMessage(err error) string {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return "line " + strconv.Itoa(se.Line) + ": " + se.Msg
	}
	return err.Error()
}

func firstWord(b []byte) string {
	s := string(b)
	if i := strings.IndexAny(s, " \t\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

// qname writes a name with the usual prefix of its namespace.
func qname(n xml.Name) string {
	switch n.Space {
	case NamespaceRDF:
		return "rdf:" + n.Local
	case NamespaceDCTerms:
		return "dcterms:" + n.Local
	case NamespaceSLReq:
		return "slreq:" + n.Local
	case NamespaceSLTerms:
		return "slterms:" + n.Local
	case NamespaceXMLDSig:
		return "ds:" + n.Local
	case namespaceXML:
		return "xml:" + n.Local
	case "":
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}

// known reports whether a namespace is one whose elements the entry
// defines (an element of it that the parser does not know is an error).
func known(space string) bool {
	switch space {
	case NamespaceRDF, NamespaceDCTerms, NamespaceSLReq, NamespaceSLTerms, NamespaceXMLDSig, "":
		return true
	}
	return false
}

func isSpace(b []byte) bool { return len(bytes.Trim(b, " \t\r\n")) == 0 }

func (p *parser) document() (*Entry, error) {
	var root xml.StartElement
	for {
		tok, err := p.next()
		if err == io.EOF {
			return nil, problem(RuleRootElement, "", "the document is empty; an entry is an rdf:RDF element")
		}
		if err != nil {
			return nil, err
		}
		if t, ok := tok.(xml.CharData); ok {
			if !isSpace(t) {
				return nil, problem(RuleStructure, "", "the document has text before its root element")
			}
			continue
		}
		root = tok.(xml.StartElement) // the decoder refuses an end tag first
		break
	}
	if root.Name != (xml.Name{Space: NamespaceRDF, Local: "RDF"}) {
		return nil, problem(RuleRootElement, "", "the root element is <%s>; an entry's root is rdf:RDF in namespace %s", qname(root.Name), NamespaceRDF)
	}
	base, hasBase := "", false
	for _, a := range root.Attr {
		switch {
		case a.Name == xml.Name{Space: namespaceXML, Local: "base"}:
			base, hasBase = a.Value, true
		case a.Name.Space == NamespaceRDF:
			return nil, problem(RuleRDFSyntax, "", "rdf:RDF has an attribute %s; it may have none but xml:base and namespace declarations", qname(a.Name))
		}
	}
	if !hasBase || base != Base {
		return nil, problem(RuleXMLBase, "", "rdf:RDF must have xml:base=%q (it has %q)", Base, base)
	}

	var e *Entry
	signed := false
	for done := false; !done; {
		tok, err := p.next()
		if err != nil {
			return nil, err // EOF inside an element is a decoder error
		}
		switch t := tok.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return nil, problem(RuleStructure, "", "rdf:RDF holds text; it may hold only rdf:Description and a Signature")
			}
		case xml.EndElement:
			done = true
		case xml.StartElement:
			switch {
			case t.Name == xml.Name{Space: NamespaceRDF, Local: "Description"}:
				if e != nil {
					return nil, problem(RuleStructure, "", "rdf:RDF holds more than one rdf:Description; an entry describes one image")
				}
				if signed {
					return nil, problem(RuleStructure, "", "the Signature comes before rdf:Description; it must be the last element of rdf:RDF")
				}
				if e, err = p.description(t); err != nil {
					return nil, err
				}
			case t.Name == xml.Name{Space: NamespaceXMLDSig, Local: "Signature"}:
				if signed {
					return nil, problem(RuleStructure, "", "rdf:RDF holds more than one Signature")
				}
				if e == nil {
					return nil, problem(RuleStructure, "", "the Signature comes before rdf:Description; it must be the last element of rdf:RDF")
				}
				if err := p.skip(); err != nil {
					return nil, err
				}
				signed = true
			default:
				return nil, problem(RuleStructure, "", "rdf:RDF holds <%s>; it may hold only rdf:Description and a Signature", qname(t.Name))
			}
		}
	}
	if e == nil {
		return nil, problem(RuleStructure, "", "rdf:RDF holds no rdf:Description")
	}
	for {
		tok, err := p.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if t, ok := tok.(xml.CharData); !ok || !isSpace(t) {
			return nil, problem(RuleStructure, "", "the document goes on after </rdf:RDF>")
		}
	}
	e.Signed = signed
	return e, nil
}

// skip consumes the rest of the element just started.
func (p *parser) skip() error {
	for level := 1; level > 0; {
		tok, err := p.next()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			level++
		case xml.EndElement:
			level--
		}
	}
	return nil
}

// child returns the next element inside a resource (rdf:Description,
// checksum, endorsement, endorser), or done at the resource's end. Text is
// refused and elements of other namespaces are skipped.
func (p *parser) child(parent string) (start xml.StartElement, done bool, err error) {
	for {
		tok, err := p.next()
		if err != nil {
			return start, false, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return start, false, problem(RuleStructure, "", "%s holds text; it may hold only elements", parent)
			}
		case xml.EndElement:
			return start, true, nil
		case xml.StartElement:
			if !known(t.Name.Space) {
				if err := p.skip(); err != nil {
					return start, false, err
				}
				continue
			}
			if t.Name.Space == NamespaceXMLDSig {
				return start, false, problem(RuleStructure, "", "%s holds <%s>; a Signature must be the last element of rdf:RDF", parent, qname(t.Name))
			}
			return t, false, nil
		}
	}
}

// resource checks the attributes of an element that holds other elements:
// rdf:parseType="Resource" unless it is rdf:Description, no other RDF
// attribute.
func resource(t xml.StartElement) error {
	parseType, has := "", false
	for _, a := range t.Attr {
		if a.Name.Space != NamespaceRDF {
			continue
		}
		switch {
		case a.Name.Local == "parseType" && t.Name.Local != "Description":
			parseType, has = a.Value, true
		case a.Name.Local == "about" && t.Name.Local == "Description":
		default:
			return problem(RuleRDFSyntax, "", "<%s> has the attribute %s, which entries do not use", qname(t.Name), qname(a.Name))
		}
	}
	if t.Name.Local != "Description" && (!has || parseType != "Resource") {
		return problem(RuleParseType, "", "<%s> must have rdf:parseType=\"Resource\"", qname(t.Name))
	}
	return nil
}

// literal reads the text of an element that holds a value.
func (p *parser) literal(t xml.StartElement) (string, error) {
	for _, a := range t.Attr {
		if a.Name.Space == NamespaceRDF {
			return "", problem(RuleRDFSyntax, "", "<%s> has the attribute %s; write the value as the element's text", qname(t.Name), qname(a.Name))
		}
	}
	var b strings.Builder
	for {
		tok, err := p.next()
		if err != nil {
			return "", err
		}
		switch c := tok.(type) {
		case xml.CharData:
			b.Write(c)
		case xml.StartElement:
			return "", problem(RuleStructure, "", "<%s> holds the element <%s>; it may hold only text", qname(t.Name), qname(c.Name))
		case xml.EndElement:
			return strings.Trim(b.String(), " \t\r\n"), nil
		}
	}
}

func (p *parser) integer(t xml.StartElement) (int64, error) {
	s, err := p.literal(t)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, problem(RuleIntegerValue, "", "<%s> must hold an integer, not %q", qname(t.Name), s)
	}
	return n, nil
}

// single remembers that an element holding one value was seen, refusing
// it the second time.
type single map[xml.Name]bool

func (s single) once(t xml.StartElement, parent string) error {
	if s[t.Name] {
		return problem(RuleSingleElement, "", "%s holds more than one <%s>; it may hold one", parent, qname(t.Name))
	}
	s[t.Name] = true
	return nil
}

// text is the field of e that an element holding text fills, or nil.
func (e *Entry) text(n xml.Name) *string {
	switch n.Space {
	case NamespaceDCTerms:
		switch n.Local {
		case "identifier":
			return &e.Identifier
		case "type":
			return &e.Type
		case "format":
			return &e.Format
		case "compression":
			return &e.Compression
		case "creator":
			return &e.Creator
		case "created":
			return &e.Created
		case "valid":
			return &e.Valid
		case "title":
			return &e.Title
		case "alternative":
			return &e.Tag
		case "description":
			return &e.Description
		case "publisher":
			return &e.Publisher
		}
	case NamespaceSLTerms:
		switch n.Local {
		case "kind":
			return &e.Kind
		case "os":
			return &e.OS
		case "os-version":
			return &e.OSVersion
		case "os-arch":
			return &e.OSArch
		case "version":
			return &e.Version
		case "hypervisor":
			return &e.Hypervisor
		case "disks-bus":
			return &e.DisksBus
		case "serial-number":
			return &e.SerialNumber
		case "deprecated":
			return &e.Deprecated
		}
	}
	return nil
}

// ints is the repeated integer field of e that an element fills, or nil.
func (e *Entry) ints(n xml.Name) *[]int {
	if n.Space != NamespaceSLTerms {
		return nil
	}
	switch n.Local {
	case "inbound-port":
		return &e.InboundPorts
	case "outbound-port":
		return &e.OutboundPorts
	case "icmp":
		return &e.ICMP
	}
	return nil
}

func (p *parser) description(start xml.StartElement) (*Entry, error) {
	if err := resource(start); err != nil {
		return nil, err
	}
	e := &Entry{}
	for _, a := range start.Attr {
		if a.Name == (xml.Name{Space: NamespaceRDF, Local: "about"}) {
			e.About = a.Value
		}
	}
	if e.About == "" {
		return nil, problem(RuleRDFSyntax, "about", "rdf:Description must have rdf:about=\"#<identifier>\"")
	}
	const where = "rdf:Description"
	seen := single{}
	for {
		t, done, err := p.child(where)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		if f := e.text(t.Name); f != nil {
			if err := seen.once(t, where); err != nil {
				return nil, err
			}
			if *f, err = p.literal(t); err != nil {
				return nil, err
			}
			continue
		}
		if f := e.ints(t.Name); f != nil {
			n, err := p.integer(t)
			if err != nil {
				return nil, err
			}
			if int64(int(n)) != n {
				return nil, problem(RuleIntegerValue, "", "<%s> holds %d, which is out of range", qname(t.Name), n)
			}
			*f = append(*f, int(n))
			continue
		}
		switch t.Name {
		case xml.Name{Space: NamespaceSLTerms, Local: "location"}:
			s, err := p.literal(t)
			if err != nil {
				return nil, err
			}
			if s != "" { // an empty element is an absent value
				e.Locations = append(e.Locations, s)
			}
		case xml.Name{Space: NamespaceSLReq, Local: "bytes"}:
			if err := seen.once(t, where); err != nil {
				return nil, err
			}
			if e.Bytes, err = p.integer(t); err != nil {
				return nil, err
			}
		case xml.Name{Space: NamespaceSLReq, Local: "checksum"}:
			c, err := p.checksum(t)
			if err != nil {
				return nil, err
			}
			e.Checksums = append(e.Checksums, c)
		case xml.Name{Space: NamespaceSLReq, Local: "endorsement"}:
			if err := seen.once(t, where); err != nil {
				return nil, err
			}
			if e.Endorsement, err = p.endorsement(t); err != nil {
				return nil, err
			}
		default:
			return nil, problem(RuleUnknownElement, "", "rdf:Description holds <%s>, which is not an element of Marketplace entries", qname(t.Name))
		}
	}
	if e.About == "#"+e.Identifier {
		e.About = ""
	}
	return e, nil
}

func (p *parser) checksum(start xml.StartElement) (Checksum, error) {
	var c Checksum
	if err := resource(start); err != nil {
		return c, err
	}
	const where = "slreq:checksum"
	seen := single{}
	for {
		t, done, err := p.child(where)
		if err != nil {
			return c, err
		}
		if done {
			return c, nil
		}
		var f *string
		switch t.Name {
		case xml.Name{Space: NamespaceSLReq, Local: "algorithm"}:
			f = &c.Algorithm
		case xml.Name{Space: NamespaceSLReq, Local: "value"}:
			f = &c.Value
		default:
			return c, problem(RuleUnknownElement, "", "%s holds <%s>; it may hold slreq:algorithm and slreq:value", where, qname(t.Name))
		}
		if err := seen.once(t, where); err != nil {
			return c, err
		}
		if *f, err = p.literal(t); err != nil {
			return c, err
		}
	}
}

func (p *parser) endorsement(start xml.StartElement) (Endorsement, error) {
	var en Endorsement
	if err := resource(start); err != nil {
		return en, err
	}
	const where = "slreq:endorsement"
	seen := single{}
	for {
		t, done, err := p.child(where)
		if err != nil {
			return en, err
		}
		if done {
			return en, nil
		}
		switch t.Name {
		case xml.Name{Space: NamespaceDCTerms, Local: "created"}:
			if err := seen.once(t, where); err != nil {
				return en, err
			}
			if en.Created, err = p.literal(t); err != nil {
				return en, err
			}
		case xml.Name{Space: NamespaceSLReq, Local: "endorser"}:
			if err := seen.once(t, where); err != nil {
				return en, err
			}
			if en.Endorser, err = p.endorser(t); err != nil {
				return en, err
			}
		default:
			return en, problem(RuleUnknownElement, "", "%s holds <%s>; it may hold dcterms:created and slreq:endorser", where, qname(t.Name))
		}
	}
}

func (p *parser) endorser(start xml.StartElement) (Endorser, error) {
	var er Endorser
	if err := resource(start); err != nil {
		return er, err
	}
	const where = "slreq:endorser"
	seen := single{}
	for {
		t, done, err := p.child(where)
		if err != nil {
			return er, err
		}
		if done {
			return er, nil
		}
		var f *string
		switch t.Name {
		case xml.Name{Space: NamespaceSLReq, Local: "email"}:
			f = &er.Email
		case xml.Name{Space: NamespaceSLReq, Local: "subject"}:
			f = &er.Subject
		case xml.Name{Space: NamespaceSLReq, Local: "issuer"}:
			f = &er.Issuer
		default:
			return er, problem(RuleUnknownElement, "", "%s holds <%s>; it may hold slreq:email, slreq:subject and slreq:issuer", where, qname(t.Name))
		}
		if err := seen.once(t, where); err != nil {
			return er, err
		}
		if *f, err = p.literal(t); err != nil {
			return er, err
		}
	}
}
