package xmlsig

import (
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// c14nDocs exercise every rule of canonical XML this package relies on.
// They double as the seed corpus of the fuzz tests.
var c14nDocs = []struct{ name, doc string }{
	{"declaration, comments and PIs around the root", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<?first a=\"1\"?>\n<!-- c -->\n<doc><?inner   data  ?><?empty?><!--x-->text</doc>\n<!-- after -->\n<?last?>\n"},
	{"namespaces: redundant, undeclared default, overridden", `<a:root xmlns:a="urn:a" xmlns:b="urn:b" xmlns="urn:default">
  <child xmlns:a="urn:a" a:x="1" b:y="2" z="3"/>
  <b:el xmlns="">
    <inner xmlns="urn:default"/>
    <inner2 xmlns=""/>
  </b:el>
  <a:re xmlns:a="urn:a2"><a:deep/><deeper xmlns="urn:default"/></a:re>
</a:root>`},
	{"attribute order: no namespace first, then by URI and local name", `<r xmlns:z="urn:a" xmlns:y="urn:b" y:b="1" z:b="2" b="3" a="4" xml:lang="en" z:a="5" xmlns:unused="urn:u"/>`},
	{"escaping in attributes and text", "<r a=\"tab&#9;nl&#10;cr&#13;quote&quot;apos'lt&lt;gt>amp&amp;\" b='single \"quoted\"' c=\"lit\ttab\nnewline  two\">text &amp; &lt; &gt; \" ' &#13; &#x41;&#65; \u00e9 \u2603 \U0001D11E</r>"},
	{"CDATA sections", "<r><![CDATA[<not markup> & ]] > \r\n]]>after<![CDATA[]]></r>"},
	{"CRLF and lone CR line ends", "<r a=\"x\r\ny\rz\">\r\n  line\r\n  line\rend\r\n</r>\r\n"},
	{"empty elements and whitespace inside tags", "<r  ><e/><e ></e><f a = \"1\"  b\n=\n'2' /></r\n>"},
	{"superfluous default namespace", `<r xmlns="urn:x"><c xmlns="urn:x"><d xmlns=""><e xmlns=""/></d></c></r>`},
	{"xml attributes on nested elements", `<r xml:space="preserve" xml:lang="en"><c xml:lang="fr">  </c><d xml:base="http://x/"/></r>`},
	{"prefix bound to the default namespace URI", `<p:r xmlns:p="urn:same" xmlns="urn:same"><c p:a="1" a="2"/></p:r>`},
	{"UTF-8 BOM and non-ASCII names", "\ufeff<r\u00e9sum\u00e9 \u00e9t\u00e9=\"\u00e9\"><\u65e5\u672c/></r\u00e9sum\u00e9>"},
}

// TestCanonicalMatchesXmllint compares the canonical form of whole
// documents with libxml2's, an independent implementation.
func TestCanonicalMatchesXmllint(t *testing.T) {
	need(t, "xmllint", "libxml2-utils")
	entry := readEntry(t)
	docs := append(c14nDocs, struct{ name, doc string }{"marketplace entry", string(entry)})
	for _, tc := range docs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// xmllint only canonicalizes with comments: it gets the
			// document without them.
			file := writeFile(t, t.TempDir(), "doc.xml", []byte(comments.ReplaceAllString(tc.doc, "")))
			d, err := parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []struct {
				flag string
				mode c14nMode
			}{{"--c14n", c14nMode{}}, {"--exc-c14n", c14nMode{exclusive: true}}} {
				want, err := xmllint(m.flag, file)
				if err != nil {
					t.Fatalf("xmllint %s: %v", m.flag, err)
				}
				got := string(canonicalize(nil, d, d.root, m.mode, nil))
				if got != want {
					t.Errorf("%s:\n got %q\nwant %q", m.flag, got, want)
				}
			}
		})
	}
}

var comments = regexp.MustCompile(`(?s)<!--.*?-->`)

// xmllint returns the canonical form libxml2 gives file, untrimmed.
func xmllint(flag, file string) (string, error) {
	out, err := exec.Command("xmllint", flag, file).Output()
	return string(out), err
}

// TestCanonicalSubsets checks the node-sets xmllint cannot produce: the
// document without its Signature, and SignedInfo in the context of its
// ancestors (inclusive C14N imports their namespaces and xml:* attributes,
// exclusive C14N does neither).
func TestCanonicalSubsets(t *testing.T) {
	t.Parallel()
	doc := `<r:RDF xmlns:r="urn:r" xmlns:z="urn:z" xml:base="http://b/" xml:lang="en">` +
		`<r:a z:k="v">x</r:a><Signature xmlns="urn:sig"><SignedInfo xml:lang="fr"><M a="1"/><r:N/></SignedInfo></Signature></r:RDF>`
	d, err := parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	sig := d.root.children[1]
	si := sig.children[0]
	tests := []struct {
		name       string
		apex, skip *node
		mode       c14nMode
		want       string
	}{
		{"document without the signature, inclusive", d.root, sig, c14nMode{},
			`<r:RDF xmlns:r="urn:r" xmlns:z="urn:z" xml:base="http://b/" xml:lang="en"><r:a z:k="v">x</r:a></r:RDF>`},
		{"document without the signature, exclusive", d.root, sig, c14nMode{exclusive: true},
			`<r:RDF xmlns:r="urn:r" xml:base="http://b/" xml:lang="en"><r:a xmlns:z="urn:z" z:k="v">x</r:a></r:RDF>`},
		{"SignedInfo, inclusive", si, nil, c14nMode{},
			`<SignedInfo xmlns="urn:sig" xmlns:r="urn:r" xmlns:z="urn:z" xml:base="http://b/" xml:lang="fr"><M a="1"></M><r:N></r:N></SignedInfo>`},
		{"SignedInfo, exclusive", si, nil, c14nMode{exclusive: true},
			`<SignedInfo xmlns="urn:sig" xml:lang="fr"><M a="1"></M><r:N xmlns:r="urn:r"></r:N></SignedInfo>`},
		{"SignedInfo, exclusive with an inclusive prefix", si, nil, c14nMode{exclusive: true, prefixes: []string{"z"}},
			`<SignedInfo xmlns="urn:sig" xmlns:z="urn:z" xml:lang="fr"><M a="1"></M><r:N xmlns:r="urn:r"></r:N></SignedInfo>`},
	}
	for _, tc := range tests {
		if got := string(canonicalize(nil, d, tc.apex, tc.mode, tc.skip)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestParseRefuses checks the parser refuses malformed documents and the
// constructs this package does not accept. For genuine well-formedness
// errors, xmllint must agree the document is not XML.
func TestParseRefuses(t *testing.T) {
	need(t, "xmllint", "libxml2-utils")
	tests := []struct {
		name, doc, msg string
		wellFormed     bool // xmllint accepts it: refused by policy only
	}{
		{"DOCTYPE", `<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>`, "DOCTYPE", true},
		{"external entity", `<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>`, "DOCTYPE", true},
		{"encoding other than UTF-8", `<?xml version="1.0" encoding="ISO-8859-1"?><r/>`, "only UTF-8", true},
		{"undefined entity", `<r>&nbsp;</r>`, "undefined entity", false},
		{"undeclared prefix", `<p:r/>`, "not declared", false},
		{"undeclared attribute prefix", `<r p:a="1"/>`, "not declared", false},
		{"duplicate attribute", `<r a="1" a="2"/>`, "twice", false},
		{"duplicate expanded name", `<r xmlns:p="urn:x" xmlns:q="urn:x" p:a="1" q:a="2"/>`, "same expanded name", false},
		{"mismatched end tag", `<r><a></b></r>`, "does not match", false},
		{"unclosed element", `<r><a>`, "not closed", false},
		{"content after the root", `<r/><s/>`, "after the root", false},
		{"text after the root", `<r/>x`, "after the root", false},
		{"no root", `  `, "no root", false},
		{"control character", "<r>\x01</r>", "not allowed", false},
		{"bad character reference", `<r>&#0;</r>`, "does not name", false},
		{"]]> in text", `<r>a]]>b</r>`, "]]>", false},
		{"-- in comment", `<r><!-- a -- b --></r>`, "--", false},
		{"unquoted attribute", `<r a=1/>`, "not quoted", false},
		{"< in attribute", `<r a="<"/>`, "'<'", false},
		{"attributes without space", `<r a="1"b="2"/>`, "malformed start tag", false},
		{"empty prefix undeclaration", `<r xmlns:p="urn:p"><c xmlns:p=""/></r>`, "empty value", false},
		{"xml prefix rebound", `<r xmlns:xml="urn:x"/>`, "xml prefix", false},
		{"late XML declaration", `<r><?xml version="1.0"?></r>`, "very start", false},
		{"invalid UTF-8", "<r>\xff</r>", "UTF-8", false},
		{"UTF-16", "\xff\xfe<\x00r\x00/\x00>\x00", "UTF-16", true},
		{"too deep", strings.Repeat("<a>", maxDepth+1) + strings.Repeat("</a>", maxDepth+1), "deeper", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("parse(%q) = %v, want an error containing %q", tc.doc, err, tc.msg)
			}
			_, err = Verify([]byte(tc.doc), VerifyOptions{})
			if !errors.Is(err, ErrMalformedXML) {
				t.Errorf("Verify: %v, want ErrMalformedXML", err)
			}
			file := writeFile(t, t.TempDir(), "doc.xml", []byte(tc.doc))
			// xmllint reports namespace errors without failing.
			out, lintErr := run("xmllint", "--noout", "--nonet", file)
			if ok := lintErr == nil && out == ""; ok != tc.wellFormed {
				t.Errorf("xmllint says well-formed=%v (%s), the test says %v", ok, out, tc.wellFormed)
			}
		})
	}
}
