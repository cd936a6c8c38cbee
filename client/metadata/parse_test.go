package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const namespaces = `xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dcterms="http://purl.org/dc/terms/" ` +
	`xmlns:slreq="http://mp.stratuslab.eu/slreq#" xmlns:slterms="http://mp.stratuslab.eu/slterms#" ` +
	`xmlns:ex="http://example.org/" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"`

// doc is an entry whose rdf:Description holds inner.
func doc(inner string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<rdf:RDF ` + namespaces + ` xml:base="http://mp.stratuslab.eu/">` +
		`<rdf:Description rdf:about="#BEE8-MMAw-Lk_IgsEExAy3d9R8h">` + inner + `</rdf:Description></rdf:RDF>`
}

// root is an entry whose rdf:RDF holds inner.
func root(inner string) string {
	return `<rdf:RDF ` + namespaces + ` xml:base="http://mp.stratuslab.eu/">` + inner + `</rdf:RDF>`
}

const description = `<rdf:Description rdf:about="#x"/>`

const signature = `<ds:Signature><ds:SignedInfo/></ds:Signature>`

// TestParseTestdata reads the example entries: each parses, is valid at a
// time when it was in force, renders to a document libxml2 reads and
// parses back to itself.
func TestParseTestdata(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file   string
		now    time.Time
		signed bool
		check  func(*Entry) string
	}{
		{"example.xml", exampleNow.Add(2 * time.Hour), false, func(e *Entry) string {
			if e.Identifier != "Hqfgfdtl2xSO64ffzpfxXRIBylX" || e.Tag != "debian-12-base" || len(e.Checksums) != 4 {
				return "identifier, tag or checksums"
			}
			return ""
		}},
		{"signed.xml", exampleNow.Add(2 * time.Hour), true, func(e *Entry) string {
			if e.Endorsement.Endorser.Subject != "CN=Jane Tester,OU=Testing Department,O=StratusLab Project,C=EU" {
				return "subject"
			}
			return ""
		}},
		{"disk.xml", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), false, func(e *Entry) string {
			if e.Type != TypeDisk || e.OS != "none" || e.Compression != "gz" || e.Created != "" {
				return "type, os, compression or created"
			}
			return ""
		}},
		{"original-layout.xml", time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC), false, func(e *Entry) string {
			want := "A 32-bit ttylinux image that follows the standard\n\t\t\tStratusLab contextualization strategy."
			switch {
			case e.Description != want:
				return "description " + e.Description
			case e.Endorsement.Created != "2014-08-17T15:16:48Z" || e.Endorsement.Endorser.Email != "jane.tester@example.org":
				return "endorsement in default namespaces"
			case e.Compression != "" || e.Kind != "base":
				return "empty compression or kind"
			}
			return ""
		}},
		{"deprecated.xml", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false, func(e *Entry) string {
			switch {
			case e.Status(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) != StatusDeprecated:
				return "status"
			case !reflect.DeepEqual(e.InboundPorts, []int{22, 80}) || !reflect.DeepEqual(e.ICMP, []int{0, 8}) || len(e.Locations) != 2:
				return "ports, icmp or locations"
			case e.Locations[1] != "http://mirror2.example.org/images/web.img?sig=a&b=c" || e.Title != "Web server <apache2> & chkconfig":
				return "escaped text"
			case e.Checksum(AlgorithmSHA1) != "F572D396FAE9206628714FB2CE00F72E94F2258F":
				return "upper-case SHA-1"
			}
			return ""
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			xmllint(t, data)
			e, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if e.Signed != tc.signed {
				t.Errorf("Signed = %v", e.Signed)
			}
			if msg := tc.check(e); msg != "" {
				t.Errorf("wrong %s: %+v", msg, e)
			}
			if err := e.Validate(tc.now); err != nil {
				t.Errorf("Validate: %v", err)
			}
			out, err := Render(e)
			if err != nil {
				t.Fatal(err)
			}
			xmllint(t, out)
			back, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			e.Signed = false
			if !reflect.DeepEqual(back, e) {
				t.Errorf("Parse(Render(e)) =\n%+v\nwant\n%+v", back, e)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, rule, mention string
	}{
		{"billion laughs", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>` + doc(`<dcterms:title>&lol2;</dcterms:title>`), RuleNoDoctype, "DOCTYPE"},
		{"external entity", `<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + root(description), RuleNoDoctype, "DOCTYPE"},
		{"external DTD", `<!DOCTYPE rdf:RDF SYSTEM "http://example.org/evil.dtd">` + root(description), RuleNoDoctype, ""},
		{"undeclared entity", doc(`<dcterms:title>&xxe;</dcterms:title>`), RuleWellFormed, "xxe"},
		{"too large", doc(`<!--` + strings.Repeat("x", MaxDocumentSize) + `-->`), RuleDocumentSize, "1 MiB"},
		{"too deep", doc(strings.Repeat("<ex:a>", MaxDepth) + strings.Repeat("</ex:a>", MaxDepth)), RuleNestingDepth, "{http://example.org/}a"},
		{"not XML", "identifier: BEE8", RuleStructure, ""},
		{"unclosed", doc("<dcterms:title>"), RuleWellFormed, ""},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?>` + root(description), RuleWellFormed, "ISO-8859-1"},
		{"invalid UTF-8", doc("<dcterms:title>\xff\xfe</dcterms:title>"), RuleWellFormed, "UTF-8"},
		{"control character", doc("<dcterms:title>\x01</dcterms:title>"), RuleWellFormed, ""},
		{"empty", "", RuleRootElement, "empty"},
		{"other root", `<entry/>`, RuleRootElement, "entry"},
		{"description as root", `<rdf:Description xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" rdf:about="#x"/>`, RuleRootElement, "rdf:Description"},
		{"no xml:base", `<rdf:RDF ` + namespaces + `>` + description + `</rdf:RDF>`, RuleXMLBase, ""},
		{"other xml:base", `<rdf:RDF ` + namespaces + ` xml:base="http://evil.example.org/">` + description + `</rdf:RDF>`, RuleXMLBase, "evil"},
		{"no description", root(""), RuleStructure, "no rdf:Description"},
		{"two descriptions", root(description + description), RuleStructure, "more than one"},
		{"signature first", root(signature + description), RuleStructure, "last"},
		{"two signatures", root(description + signature + signature), RuleStructure, "more than one Signature"},
		{"description after signature", root(description + signature + description), RuleStructure, ""},
		{"signature inside", doc(signature), RuleStructure, "ds:Signature"},
		{"other element in root", root(description + `<ex:x/>`), RuleStructure, "{http://example.org/}x"},
		{"text in root", root(description + "hello"), RuleStructure, "text"},
		{"text in description", doc("hello"), RuleStructure, "text"},
		{"second root", root(description) + root(description), RuleStructure, "after"},
		{"text after root", root(description) + "x", RuleStructure, "after"},
		{"stylesheet", `<?xml-stylesheet href="x.xsl"?>` + root(description), RuleStructure, "xml-stylesheet"},
		{"undeclared prefix", doc(`<req:bytes>1</req:bytes>`), RuleWellFormed, `"req"`},
		{"undeclared attribute prefix", doc(`<dcterms:title x:lang="en">t</dcterms:title>`), RuleWellFormed, `"x"`},
		{"undeclared root prefix", `<rdf:RDF xml:base="http://mp.stratuslab.eu/"/>`, RuleWellFormed, `"rdf"`},
		{"unknown slterms", doc(`<slterms:colour>blue</slterms:colour>`), RuleUnknownElement, "slterms:colour"},
		{"unknown dcterms", doc(`<dcterms:license>GPL</dcterms:license>`), RuleUnknownElement, "dcterms:license"},
		{"unknown slreq", doc(`<slreq:full-name>Jane</slreq:full-name>`), RuleUnknownElement, "slreq:full-name"},
		{"rdf:type", doc(`<rdf:type>x</rdf:type>`), RuleUnknownElement, "rdf:type"},
		{"no namespace", doc(`<title>x</title>`), RuleUnknownElement, "<title>"},
		{"unknown in checksum", doc(`<slreq:checksum rdf:parseType="Resource"><slreq:type>SHA-1</slreq:type></slreq:checksum>`), RuleUnknownElement, "slreq:type"},
		{"unknown in endorser", doc(`<slreq:endorsement rdf:parseType="Resource"><slreq:endorser rdf:parseType="Resource"><slreq:name>x</slreq:name></slreq:endorser></slreq:endorsement>`), RuleUnknownElement, "slreq:name"},
		{"two os", doc(`<slterms:os>a</slterms:os><slterms:os>b</slterms:os>`), RuleSingleElement, "slterms:os"},
		{"two bytes", doc(`<slreq:bytes>1</slreq:bytes><slreq:bytes>1</slreq:bytes>`), RuleSingleElement, "slreq:bytes"},
		{"two endorsements", doc(`<slreq:endorsement rdf:parseType="Resource"/><slreq:endorsement rdf:parseType="Resource"/>`), RuleSingleElement, ""},
		{"two values", doc(`<slreq:checksum rdf:parseType="Resource"><slreq:value>a</slreq:value><slreq:value>b</slreq:value></slreq:checksum>`), RuleSingleElement, ""},
		{"checksum without parseType", doc(`<slreq:checksum><slreq:algorithm>SHA-1</slreq:algorithm></slreq:checksum>`), RuleParseType, "slreq:checksum"},
		{"literal parseType", doc(`<slreq:endorsement rdf:parseType="Literal"/>`), RuleParseType, "slreq:endorsement"},
		{"endorser without parseType", doc(`<slreq:endorsement rdf:parseType="Resource"><slreq:endorser/></slreq:endorsement>`), RuleParseType, "slreq:endorser"},
		{"node reference", doc(`<slreq:endorsement rdf:nodeID="e"/>`), RuleRDFSyntax, "rdf:nodeID"},
		{"resource attribute", doc(`<slterms:location rdf:resource="http://x/"/>`), RuleRDFSyntax, "rdf:resource"},
		{"no about", root(`<rdf:Description/>`), RuleRDFSyntax, "rdf:about"},
		{"empty about", root(`<rdf:Description rdf:about=""/>`), RuleRDFSyntax, "rdf:about"},
		{"rdf:ID", root(`<rdf:Description rdf:about="#x" rdf:ID="y"/>`), RuleRDFSyntax, "rdf:ID"},
		{"element in value", doc(`<dcterms:type><b>machine</b></dcterms:type>`), RuleStructure, "dcterms:type"},
		{"bytes not a number", doc(`<slreq:bytes>lots</slreq:bytes>`), RuleIntegerValue, "lots"},
		{"bytes overflow", doc(`<slreq:bytes>99999999999999999999</slreq:bytes>`), RuleIntegerValue, ""},
		{"port not a number", doc(`<slterms:inbound-port>ssh</slterms:inbound-port>`), RuleIntegerValue, "slterms:inbound-port"},
	} {
		_, err := Parse([]byte(tc.doc))
		var ps Problems
		if !errors.As(err, &ps) || !ps.Has(tc.rule) {
			t.Errorf("%s: error %v, want rule %s", tc.name, err, tc.rule)
			continue
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.mention)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	const id = "BEE8-MMAw-Lk_IgsEExAy3d9R8h"
	for _, tc := range []struct {
		name, doc string
		want      Entry
	}{
		{"byte order mark", "\uFEFF" + doc(`<dcterms:identifier>`+id+`</dcterms:identifier>`), Entry{Identifier: id}},
		{"comments and white space", doc(` <!-- a --> <dcterms:title> <!-- b -->Hello <!-- c -->world </dcterms:title> `), Entry{About: "#" + id, Title: "Hello world"}},
		{"CDATA", doc(`<dcterms:description><![CDATA[<b>bold</b> & co]]></dcterms:description>`), Entry{About: "#" + id, Description: "<b>bold</b> & co"}},
		{"character references", doc(`<dcterms:title>&#65;&#x42;&lt;&amp;&gt;&quot;&apos;</dcterms:title>`), Entry{About: "#" + id, Title: `AB<&>"'`}},
		{"extensions skipped", doc(`<ex:a><ex:b><slterms:unknown/></ex:b></ex:a><dcterms:title>t</dcterms:title><ex:c rdf:resource="x"/>`), Entry{About: "#" + id, Title: "t"}},
		{"extension inside checksum", doc(`<slreq:checksum rdf:parseType="Resource"><ex:note>n</ex:note><slreq:value>v</slreq:value></slreq:checksum>`), Entry{About: "#" + id, Checksums: []Checksum{{Value: "v"}}}},
		{"empty elements", doc(`<dcterms:compression/><slterms:deprecated></slterms:deprecated>`), Entry{About: "#" + id}},
		{"empty endorsement", doc(`<slreq:endorsement rdf:parseType="Resource"/>`), Entry{About: "#" + id}},
		{"foreign attributes", doc(`<dcterms:title xml:lang="en" ex:note="x">t</dcterms:title>`), Entry{About: "#" + id, Title: "t"}},
		{"integers", doc(`<slreq:bytes> +0012 </slreq:bytes><slterms:icmp>-1</slterms:icmp>`), Entry{About: "#" + id, Bytes: 12, ICMP: []int{-1}}},
		{"signed", root(description + "\n" + signature + "\n"), Entry{About: "#x", Signed: true}},
	} {
		e, err := Parse([]byte(tc.doc))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(*e, tc.want) {
			t.Errorf("%s: got\n%#v\nwant\n%#v", tc.name, *e, tc.want)
		}
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// renders to a document that parses to the same entry and renders to the
// same bytes again.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed entries in testdata: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(doc(`<slreq:endorsement rdf:parseType="Resource"><dcterms:created>x</dcterms:created></slreq:endorsement>`)))
	f.Add([]byte(root(description + signature)))
	f.Add([]byte(doc(`<dcterms:title>a&#xD;b&#9;</dcterms:title><ex:x/>`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Parse error %v is not Problems", err)
			}
			return
		}
		e.Validate(time.Now())
		e.Status(time.Now())
		out, err := Render(e)
		if err != nil {
			var ps Problems
			if errors.As(err, &ps) && ps.Has(RuleDocumentSize) {
				return // escaping can make a large document larger
			}
			t.Fatalf("Render of a parsed entry: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Render(Parse(data))): %v\n%s", err, out)
		}
		e.Signed = false
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("Parse(Render(e)) =\n%#v\nwant\n%#v", back, e)
		}
		again, err := Render(back)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("rendering is not stable: %v\n%s\n%s", err, out, again)
		}
	})
}

// BenchmarkParse reads the example entry and documents near the size
// limit built to make a reader work hard.
//
//	go test -run XXX -bench Parse ./metadata/
func BenchmarkParse(b *testing.B) {
	example, err := os.ReadFile(filepath.Join("testdata", "example.xml"))
	if err != nil {
		b.Fatal(err)
	}
	fill := func(unit string) []byte {
		n := (MaxDocumentSize - len(doc(""))) / len(unit)
		return []byte(doc(strings.Repeat(unit, n)))
	}
	var decls strings.Builder
	for i := 0; decls.Len() < MaxDocumentSize/2; i++ {
		fmt.Fprintf(&decls, ` xmlns:p%d="urn:%d"`, i, i)
	}
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"example", example, true},
		{"extensions", fill(`<ex:a x="1"><ex:b/></ex:a>`), true},
		{"locations", fill(`<slterms:location>http://x/</slterms:location>`), true},
		{"references", fill(`<ex:a>&amp;&#x41;&lt;</ex:a>`), true},
		{"declarations", []byte(doc(`<ex:a` + decls.String() + `/>` + strings.Repeat(`<ex:b/>`, MaxDocumentSize/2/8))), true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				if _, err := Parse(tc.data); (err == nil) != tc.ok {
					b.Fatalf("Parse: %v", err)
				}
			}
		})
	}
}
