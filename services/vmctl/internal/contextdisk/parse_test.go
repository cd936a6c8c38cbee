package contextdisk

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"stratuslab.dev/platform/errs"
)

func TestParsePairs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []Pair
	}{
		{"", nil},
		{"A=1", []Pair{{"A", "1"}}},
		{"A=1#b_2=two words#_x=", []Pair{{"A", "1"}, {"b_2", "two words"}, {"_x", ""}}},
		{"URL=http://h/?a=b&c=d", []Pair{{"URL", "http://h/?a=b&c=d"}}},
		{"A=1#", []Pair{{"A", "1"}}},
		{"#A=1##B=$x \"q\"", []Pair{{"A", "1"}, {"B", `$x "q"`}}},
		{"UNI=日本語 🚀", []Pair{{"UNI", "日本語 🚀"}}},
	}
	for _, tt := range tests {
		got, err := ParsePairs(tt.in)
		if err != nil {
			t.Errorf("ParsePairs(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePairs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParsePairsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, mention string
	}{
		{"A", `"A" has no '='`},
		{"A=1#B", `"B" has no '='`},
		{"=1", "empty key"},
		{"A=1#=2", "empty key"},
		{"1A=x", `"1A" is not a shell variable name`},
		{"A-B=x", `"A-B" is not`},
		{"A B=x", `"A B" is not`},
		{"é=x", `"é" is not`},
		{"PATH=/bin", `"PATH" is a variable the guest's shell reserves`},
		{"UID=0", `"UID" is a variable`},
		{"BASH_ENV=x", `"BASH_ENV" is a variable`},
		{"_=x", `"_" is a variable`},
		{"__v=x", `"__v" is a variable`},
		{"A=1#A=2", `"A" is given twice`},
		{"A=nul\x00", "NUL"},
		{"A=\xff", "UTF-8"},
		{strings.Repeat("K", maxKeyLen+1) + "=v", "longer than"},
	}
	for _, tt := range tests {
		_, err := ParsePairs(tt.in)
		if errs.CodeOf(err) != errs.Invalid {
			t.Errorf("ParsePairs(%q) = %v, want an invalid error", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("ParsePairs(%q) = %q, want it to mention %q", tt.in, err, tt.mention)
		}
	}
}

// files returns a read function over an in-memory directory.
func files(m map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		s, ok := m[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
}

func TestParseCloudInit(t *testing.T) {
	t.Parallel()
	read := files(map[string]string{
		"conf/a.yaml": "#cloud-config\n",
		"run.sh":      "#!/bin/sh\n",
		"id.pub":      "ssh-ed25519 AAAA u@h\n",
	})
	got, err := ParseCloudInit("text/cloud-config,conf/a.yaml#ssh,id.pub#x-shellscript,run.sh#", read)
	if err != nil {
		t.Fatal(err)
	}
	want := []Part{
		{MIME: "text/cloud-config", Name: "a.yaml", Content: []byte("#cloud-config\n")},
		{MIME: PartSSH, Name: "id.pub", Content: []byte("ssh-ed25519 AAAA u@h\n")},
		{MIME: "text/x-shellscript", Name: "run.sh", Content: []byte("#!/bin/sh\n")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCloudInit = %+v, want %+v", got, want)
	}
	got, err = ParseCloudInit("none,run.sh#ssh,id.pub", read)
	if err != nil || len(got) != 2 || got[0].MIME != PartNone {
		t.Errorf("ParseCloudInit(none and ssh) = %+v, %v", got, err)
	}
	if got, err := ParseCloudInit("", read); err != nil || got != nil {
		t.Errorf("ParseCloudInit(\"\") = %v, %v; want nothing", got, err)
	}
}

func TestParseCloudInitErrors(t *testing.T) {
	t.Parallel()
	big := make([]byte, MaxUserData+1024) // random bytes do not compress
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	read := files(map[string]string{
		"a":   "#cloud-config\n",
		"b":   "#!/bin/sh\n",
		"big": string(big),
		"bad": "ssh-rsa AAAA\x01 u@h",
	})
	tests := []struct {
		in, mention string
	}{
		{"text/cloud-config", "is not TYPE,FILE"},
		{"text/cloud-config,", "is not TYPE,FILE"},
		{",a", "is not TYPE,FILE"},
		{"x-bogus,a", `type "x-bogus" is unknown`},
		{"sshkey,a", `type "sshkey" is unknown`},
		{"text/,a", "is not a MIME type"},
		{"text/plain; charset=utf-8,a", "is not a MIME type"},
		{"text/cloud-config,missing", `Cannot read the cloud-init file "missing"`},
		{"none,a#none,b", "Only one cloud-init file"},
		{"none,a#text/x-shellscript,b", "cannot be combined"},
		{"application/octet-stream,big", "more than the 16384 allowed"},
		{"none,big", "more than the 16384 allowed"},
		{"ssh,bad", "control character"},
	}
	for _, tt := range tests {
		_, err := ParseCloudInit(tt.in, read)
		if errs.CodeOf(err) != errs.Invalid {
			t.Errorf("ParseCloudInit(%q) = %v, want an invalid error", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("ParseCloudInit(%q) = %q, want it to mention %q", tt.in, err, tt.mention)
		}
	}
	_, err := ParseCloudInit("text/plain,missing", read)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file's error %v does not wrap fs.ErrNotExist", err)
	}
	// Just under the limit passes: the check is on the compressed size.
	fits := bytes.Repeat([]byte("#cloud-config\n"), 100000)
	if _, err := ParseCloudInit("none,f", files(map[string]string{"f": string(fits)})); err != nil {
		t.Errorf("1.4 MB of repetitive user data was refused: %v", err)
	}
}
