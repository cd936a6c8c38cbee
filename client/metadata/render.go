package metadata

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Render writes e as an entry document: an XML declaration, then rdf:RDF
// with the four namespaces and xml:base, then one rdf:Description with its
// elements in a fixed order, indented by two spaces. The same entry always
// gives the same bytes, which the signature covers. Render writes no
// Signature (the signer appends one) and no empty element. It fails, with
// Problems, when a value holds characters XML cannot carry or when the
// document would be larger than MaxDocumentSize.
func Render(e *Entry) ([]byte, error) {
	w := &writer{}
	w.raw(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	w.raw(`<rdf:RDF xmlns:rdf="` + NamespaceRDF + `" xmlns:dcterms="` + NamespaceDCTerms +
		`" xmlns:slreq="` + NamespaceSLReq + `" xmlns:slterms="` + NamespaceSLTerms +
		`" xml:base="` + Base + `">` + "\n")
	about := e.About
	if about == "" {
		about = "#" + e.Identifier
	}
	w.raw(`  <rdf:Description rdf:about="`)
	w.attr("about", about)
	w.raw("\">\n")

	const in = "    "
	w.elem(in, "dcterms:identifier", "identifier", e.Identifier)
	if e.Bytes != 0 {
		w.elem(in, "slreq:bytes", "bytes", strconv.FormatInt(e.Bytes, 10))
	}
	for _, c := range e.Checksums {
		w.raw(in + `<slreq:checksum rdf:parseType="Resource">` + "\n")
		w.elem(in+"  ", "slreq:algorithm", "checksums.algorithm", c.Algorithm)
		w.elem(in+"  ", "slreq:value", "checksums.value", c.Value)
		w.raw(in + "</slreq:checksum>\n")
	}
	if en := e.Endorsement; en != (Endorsement{}) {
		w.raw(in + `<slreq:endorsement rdf:parseType="Resource">` + "\n")
		w.elem(in+"  ", "dcterms:created", "endorsement.created", en.Created)
		if er := en.Endorser; er != (Endorser{}) {
			w.raw(in + `  <slreq:endorser rdf:parseType="Resource">` + "\n")
			w.elem(in+"    ", "slreq:email", "endorsement.endorser.email", er.Email)
			w.elem(in+"    ", "slreq:subject", "endorsement.endorser.subject", er.Subject)
			w.elem(in+"    ", "slreq:issuer", "endorsement.endorser.issuer", er.Issuer)
			w.raw(in + "  </slreq:endorser>\n")
		}
		w.raw(in + "</slreq:endorsement>\n")
	}
	w.elem(in, "dcterms:type", "type", e.Type)
	w.elem(in, "slterms:kind", "kind", e.Kind)
	w.elem(in, "dcterms:title", "title", e.Title)
	w.elem(in, "dcterms:alternative", "tag", e.Tag)
	w.elem(in, "dcterms:description", "description", e.Description)
	w.elem(in, "dcterms:creator", "creator", e.Creator)
	w.elem(in, "dcterms:publisher", "publisher", e.Publisher)
	w.elem(in, "dcterms:created", "created", e.Created)
	w.elem(in, "dcterms:valid", "valid", e.Valid)
	w.elem(in, "dcterms:format", "format", e.Format)
	w.elem(in, "dcterms:compression", "compression", e.Compression)
	w.elem(in, "slterms:os", "os", e.OS)
	w.elem(in, "slterms:os-version", "osVersion", e.OSVersion)
	w.elem(in, "slterms:os-arch", "osArch", e.OSArch)
	w.elem(in, "slterms:version", "version", e.Version)
	w.elem(in, "slterms:serial-number", "serialNumber", e.SerialNumber)
	w.elem(in, "slterms:hypervisor", "hypervisor", e.Hypervisor)
	w.elem(in, "slterms:disks-bus", "disksBus", e.DisksBus)
	for _, l := range e.Locations {
		w.elem(in, "slterms:location", "locations", l)
	}
	for _, n := range e.InboundPorts {
		w.elem(in, "slterms:inbound-port", "", strconv.Itoa(n))
	}
	for _, n := range e.OutboundPorts {
		w.elem(in, "slterms:outbound-port", "", strconv.Itoa(n))
	}
	for _, n := range e.ICMP {
		w.elem(in, "slterms:icmp", "", strconv.Itoa(n))
	}
	w.elem(in, "slterms:deprecated", "deprecated", e.Deprecated)
	w.raw("  </rdf:Description>\n</rdf:RDF>\n")

	if w.bad != nil {
		return nil, w.bad
	}
	if w.b.Len() > MaxDocumentSize {
		return nil, problem(RuleDocumentSize, "", "the entry would be %d bytes; an entry may have at most %d bytes (1 MiB)", w.b.Len(), MaxDocumentSize)
	}
	return w.b.Bytes(), nil
}

// writer collects the document and the problems of its values.
type writer struct {
	b   bytes.Buffer
	bad Problems
}

func (w *writer) raw(s string) { w.b.WriteString(s) }

// elem writes <name>value</name> on a line, or nothing when value is empty.
func (w *writer) elem(indent, name, field, value string) {
	if value == "" {
		return
	}
	w.raw(indent + "<" + name + ">")
	w.escape(field, value, false)
	w.raw("</" + name + ">\n")
}

func (w *writer) attr(field, value string) { w.escape(field, value, true) }

// escape writes s as XML text or attribute value. Characters a parser
// would normalize (a carriage return; tabs and newlines in attributes) are
// written as references so that the value reads back the same.
func (w *writer) escape(field, s string, attr bool) {
	if !xmlText(s) {
		w.bad.add(RuleXMLCharacters, field, "%s holds a character that XML cannot carry (invalid UTF-8 or a control character)", field)
		return
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			w.raw("&amp;")
		case '<':
			w.raw("&lt;")
		case '>':
			w.raw("&gt;")
		case '\r':
			w.raw("&#xD;")
		case '"':
			if attr {
				w.raw("&quot;")
			} else {
				w.b.WriteByte(c)
			}
		case '\n':
			if attr {
				w.raw("&#xA;")
			} else {
				w.b.WriteByte(c)
			}
		case '\t':
			if attr {
				w.raw("&#x9;")
			} else {
				w.b.WriteByte(c)
			}
		default:
			w.b.WriteByte(c)
		}
	}
}

// xmlText reports whether s is UTF-8 made only of characters XML 1.0
// allows.
func xmlText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
