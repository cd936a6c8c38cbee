package ini

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

const guide = `[default]

selected_section = sl-cloud

endpoint_timeout = 5

[sl-cloud]

name = "StratusLab Cloud"
country = "France"

endpoint = https://cloud.lal.stratuslab.eu/one-proxy/xmlrpc
pdisk_endpoint = https://pdisk.lal.stratuslab.eu/pdisk
marketplace_endpoint = https://marketplace.stratuslab.eu/marketplace

username = ....
password = ....
`

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      string
		section string
		key     string
		want    string
	}{
		{"guide selected", guide, "default", "selected_section", "sl-cloud"},
		{"guide quoted", guide, "sl-cloud", "name", "StratusLab Cloud"},
		{"guide url with colon", guide, "sl-cloud", "endpoint", "https://cloud.lal.stratuslab.eu/one-proxy/xmlrpc"},
		{"colon separator", "[a]\nkey: v\n", "a", "key", "v"},
		{"keys ignore case", "[a]\nUserName = bob\n", "a", "username", "bob"},
		{"percent doubled", "[a]\npassword = 50%%off\n", "a", "password", "50%off"},
		{"quotes keep spaces", "[a]\nk = \"  x  \"\n", "a", "k", "  x  "},
		{"hash inside value", "[a]\npassword = abc #1\n", "a", "password", "abc #1"},
		{"equals inside value", "[a]\nk = a=b\n", "a", "k", "a=b"},
		{"comments", "# top\n; semi\n[a]\n  # indented\nk = v\n", "a", "k", "v"},
		{"last wins", "[a]\nk = 1\n[b]\n[a]\nk = 2\n", "a", "k", "2"},
		{"empty value", "[a]\nk =\n", "a", "k", ""},
		{"bom and crlf", "\uFEFF[a]\r\nk = v\r\n", "a", "k", "v"},
		{"lone quote", "[a]\nk = \"\n", "a", "k", "\""},
		{"old mac line ends", "[a]\rk = v\rj = w", "a", "j", "w"},
	} {
		f, err := Parse(strings.NewReader(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got, ok := f.Get(tc.section, tc.key); !ok || got != tc.want {
			t.Errorf("%s: [%s] %s = %q, %v; want %q", tc.name, tc.section, tc.key, got, ok, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		line int
		msg  string
	}{
		{"endpoint = x\n", 1, "before any [section]"},
		{"[default]\njust words\n", 2, "not a key = value line"},
		{"[default\n", 1, "no closing ]"},
		{"\n\n[ ]\n", 3, "has no name"},
		{"[a]\n = v\n", 2, "without a key"},
		{"[a]\nk = " + strings.Repeat("x", maxLine) + "\n", 2, "too long"},
	} {
		_, err := Parse(strings.NewReader(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) || se.Line != tc.line || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("Parse(%.40q) = %v; want line %d %q", tc.in, err, tc.line, tc.msg)
		}
	}
}

func TestSections(t *testing.T) {
	t.Parallel()
	f, err := Parse(strings.NewReader(guide + "\n[other]\n[default]\nx = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Sections(), ","); got != "default,sl-cloud,other" {
		t.Errorf("Sections = %s", got)
	}
	if !f.Has("other") || f.Has("missing") {
		t.Error("Has")
	}
	if got := strings.Join(f.Keys("default"), ","); got != "endpoint_timeout,selected_section,x" {
		t.Errorf("Keys = %s", got)
	}
}

func TestWriteRefusesLineBreaks(t *testing.T) {
	t.Parallel()
	var f File
	f.Set("a", "k", "one\ntwo")
	if _, err := f.WriteTo(&bytes.Buffer{}); err == nil {
		t.Fatal("a value with a line break was written")
	}
}

// FuzzParse checks that Parse never panics and that what it reads, written
// back, reads the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{guide, "[a]\nk: v\n", "[a]\nk = \"\"\"\n", "[a]\np = %%%\n", "k=v", "[", "[a]\n=", "\uFEFF[a]\r\nk=\"x\"\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := file.WriteTo(&buf); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		again, err := Parse(&buf)
		if err != nil {
			t.Fatalf("re-reading %q: %v", buf.String(), err)
		}
		if !slices.Equal(file.Sections(), again.Sections()) {
			t.Fatalf("sections %q became %q", file.Sections(), again.Sections())
		}
		for _, s := range file.Sections() {
			if !maps.Equal(file.sections[s], again.sections[s]) {
				t.Fatalf("[%s] %q became %q via %q", s, file.sections[s], again.sections[s], buf.String())
			}
		}
	})
}
