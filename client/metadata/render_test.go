package metadata

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/example.xml")

// exampleImage is the image testdata/example.xml describes.
func exampleImage() []byte {
	return bytes.Repeat([]byte("StratusLab example image\n"), 40000)
}

// exampleNow is when the example entry was built; it was endorsed an hour
// later.
var exampleNow = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

// exampleEntry builds the entry of testdata/example.xml the way stratus
// build-metadata and sign-metadata do.
func exampleEntry(t testing.TB) *Entry {
	t.Helper()
	e, err := Build(BuildOptions{
		Creator:     "Jane Tester",
		Email:       "jane.tester@example.org",
		OS:          "debian",
		OSVersion:   "12",
		OSArch:      "x86_64",
		Version:     "1.0",
		Title:       "Debian 12 base image",
		Tag:         "debian-12-base",
		Description: "A minimal Debian 12 machine with cloud-init & SSH; log in as root with your key.",
		Publisher:   "StratusLab",
		Locations:   []string{"https://appliances.example.org/images/debian-12-base-1.0.img"},
		Hypervisor:  "kvm",
		Now:         exampleNow,
	}, bytes.NewReader(exampleImage()))
	if err != nil {
		t.Fatal(err)
	}
	jane := newCA(t, caName()).issue(t, janeName(), "jane.tester@example.org")
	if err := Endorse(e, jane, exampleNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRenderExample checks Render against testdata/example.xml, the entry
// the README shows (go test -run RenderExample -update rewrites it).
func TestRenderExample(t *testing.T) {
	t.Parallel()
	got, err := Render(exampleEntry(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "example.xml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Render gives\n%s\nwant (%s)\n%s", got, path, want)
	}
}

// fullEntry sets every field, with values that need escaping.
func fullEntry() *Entry {
	return &Entry{
		Identifier:  "BEE8-MMAw-Lk_IgsEExAy3d9R8h",
		About:       "#not-the-identifier",
		Type:        "machine",
		Kind:        "base",
		Format:      "qcow2",
		Compression: "gz",
		Creator:     "Zoë <zoe> & \"friends\"",
		Created:     "2012-04-01T14:12:57Z",
		Valid:       "2030-03-05T14:12:57Z",
		Title:       "a > b ]]> c",
		Tag:         "debian.12_base-1",
		Description: "line one\nline two\r\n\ttabbed 'quoted' \u00a0nbsp 😀",
		Publisher:   "StratusLab",
		Bytes:       1 << 40,
		Checksums: []Checksum{
			{Algorithm: "SHA-1", Value: "1104f3e30c030f8b93f220b04131032dddf51f21"},
			{Algorithm: "MD5", Value: "a003bf123ce16965005ee85c60281a31"},
			{Algorithm: "", Value: "only a value"},
			{Algorithm: "only an algorithm"},
		},
		Endorsement: Endorsement{
			Created:  "2014-08-17T15:16:48Z",
			Endorser: Endorser{Email: "jane@example.org", Subject: `CN=Tester\, Jane,C=EU`, Issuer: "CN=CA"},
		},
		OS:            "ttylinux",
		OSVersion:     "9.3",
		OSArch:        "i686",
		Version:       "1.0",
		Locations:     []string{"http://a.example.org/x?a=1&b=2", "https://b.example.org/y"},
		Hypervisor:    "kvm",
		DisksBus:      "virtio",
		SerialNumber:  "0",
		InboundPorts:  []int{22, 443},
		OutboundPorts: []int{25},
		ICMP:          []int{0, 8},
		Deprecated:    "security issue with app",
	}
}

func TestRenderRoundTrip(t *testing.T) {
	t.Parallel()
	for name, e := range map[string]*Entry{
		"full":             fullEntry(),
		"empty":            {},
		"endorsement only": {Endorsement: Endorsement{Created: "2014-08-17T15:16:48Z"}},
		"endorser only":    {Endorsement: Endorsement{Endorser: Endorser{Issuer: "CN=x"}}},
		"negative bytes":   {Bytes: -1},
	} {
		out, err := Render(e)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("%s: Parse(Render(e)): %v\n%s", name, err, out)
		}
		if !reflect.DeepEqual(back, e) {
			t.Errorf("%s: Parse(Render(e)) =\n%#v\nwant\n%#v\n%s", name, back, e, out)
		}
		again, err := Render(back)
		if err != nil || !bytes.Equal(again, out) {
			t.Errorf("%s: rendering again gives other bytes (%v)", name, err)
		}
		xmllint(t, out)
	}
}

// xmllint checks a document with libxml2, which reads namespaces and
// entities independently of encoding/xml.
func xmllint(t *testing.T, doc []byte) {
	t.Helper()
	cmd := exec.Command("xmllint", "--noout", "--nonet", "-")
	cmd.Stdin = bytes.NewReader(doc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("xmllint refuses the document: %v\n%s\n%s", err, out, doc)
	}
}

func TestRenderRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		e    Entry
		rule string
	}{
		{"NUL", Entry{Description: "a\x00b"}, RuleXMLCharacters},
		{"escape", Entry{Title: "\x1b[31m"}, RuleXMLCharacters},
		{"invalid UTF-8", Entry{Creator: "\xff"}, RuleXMLCharacters},
		{"U+FFFE", Entry{OS: "\uFFFE"}, RuleXMLCharacters},
		{"attribute", Entry{About: "#\x01"}, RuleXMLCharacters},
		{"too large", Entry{Locations: []string{strings.Repeat("x", MaxDocumentSize)}}, RuleDocumentSize},
	} {
		_, err := Render(&tc.e)
		var ps Problems
		if !errors.As(err, &ps) || !ps.Has(tc.rule) {
			t.Errorf("%s: error %v, want rule %s", tc.name, err, tc.rule)
		}
	}
}
