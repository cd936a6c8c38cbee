package xmlsig

import (
	"bytes"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// FuzzCanonicalize: whatever parses canonicalizes to a document that
// parses again to the same canonical form (canonical XML is a fixed
// point), in both modes. And encoding/xml, with which the marketplace reads
// entries from Result.Signed, either refuses the canonical form or reads
// exactly what this parser read: no parser differential can slip unsigned
// content past the signature.
func FuzzCanonicalize(f *testing.F) {
	for _, d := range c14nDocs {
		f.Add([]byte(d.doc))
	}
	entry, err := readTestdata("testdata/entry.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(entry)
	f.Fuzz(func(t *testing.T, doc []byte) {
		d, err := parse(doc)
		if err != nil {
			return
		}
		for _, mode := range []c14nMode{{}, {exclusive: true}} {
			c1 := canonicalize(nil, d, d.root, mode, nil)
			d2, err := parse(c1)
			if err != nil {
				t.Fatalf("the canonical form does not parse: %v\n%q", err, c1)
			}
			if c2 := canonicalize(nil, d2, d2.root, mode, nil); !bytes.Equal(c1, c2) {
				t.Fatalf("canonicalizing twice changes the result:\n%q\n%q", c1, c2)
			}
			theirs, err := stdEvents(c1)
			if err != nil {
				continue // refused: a safe difference
			}
			if ours := treeEvents(d2); !slices.Equal(ours, theirs) {
				t.Fatalf("encoding/xml reads the canonical form differently:\n%q\nours   %q\ntheirs %q", c1, ours, theirs)
			}
		}
	})
}

// treeEvents lists what a reader of the document sees: elements and
// attributes by namespace URI and local name, text and processing
// instructions, in document order.
func treeEvents(d *document) []string {
	var ev []string
	var walk func(n *node)
	walk = func(n *node) {
		switch n.kind {
		case textNode:
			ev = append(ev, "text "+n.text)
		case piNode:
			ev = append(ev, "pi "+n.target+" "+n.text)
		case elementNode:
			ev = append(ev, "start "+n.space+" "+n.local)
			var attrs []string
			for _, a := range n.attrs {
				attrs = append(attrs, "attr "+a.space+" "+a.local+"="+a.value)
			}
			slices.Sort(attrs)
			ev = append(ev, attrs...)
			for _, c := range n.children {
				walk(c)
			}
			ev = append(ev, "end "+n.space+" "+n.local)
		}
	}
	for _, pi := range d.before {
		walk(pi)
	}
	walk(d.root)
	for _, pi := range d.after {
		walk(pi)
	}
	return mergeText(ev)
}

// stdEvents lists what encoding/xml sees in data, as treeEvents does.
func stdEvents(data []byte) ([]string, error) {
	var ev []string
	depth := 0
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return mergeText(ev), nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			ev = append(ev, "start "+tok.Name.Space+" "+tok.Name.Local)
			var attrs []string
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, "attr "+a.Name.Space+" "+a.Name.Local+"="+a.Value)
			}
			slices.Sort(attrs)
			ev = append(ev, attrs...)
		case xml.EndElement:
			depth--
			ev = append(ev, "end "+tok.Name.Space+" "+tok.Name.Local)
		case xml.CharData:
			if depth > 0 { // whitespace outside the root is not content
				ev = append(ev, "text "+string(tok))
			}
		case xml.ProcInst:
			ev = append(ev, "pi "+tok.Target+" "+string(tok.Inst))
		}
	}
}

// mergeText joins adjacent text events: parsers may split text anywhere.
func mergeText(ev []string) []string {
	var out []string
	for _, e := range ev {
		if k := len(out); k > 0 && strings.HasPrefix(e, "text ") && strings.HasPrefix(out[k-1], "text ") {
			out[k-1] += e[len("text "):]
			continue
		}
		out = append(out, e)
	}
	return out
}

// FuzzVerify: Verify never panics, and accepts nothing but a signature.
func FuzzVerify(f *testing.F) {
	p := pki()
	entry, err := readTestdata("testdata/entry.xml")
	if err != nil {
		f.Fatal(err)
	}
	for _, opts := range []Options{{}, {Canonicalization: ExcC14N10, SignatureMethod: RSASHA1, DigestMethod: SHA1}} {
		signed, err := Sign(entry, p.endorser.key, []*x509.Certificate{p.endorser.cert}, opts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(signed)
		f.Add([]byte(strings.Replace(string(signed), "Debian 12", "Debian 13", 1)))
	}
	f.Add(entry)
	f.Fuzz(func(t *testing.T, doc []byte) {
		res, err := Verify(doc, VerifyOptions{})
		if err == nil && (res.Certificate == nil || len(res.Signed) == 0) {
			t.Fatalf("Verify accepted a document without saying what was signed, and by whom")
		}
	})
}
