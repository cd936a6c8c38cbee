package config

import (
	"strings"
	"testing"
)

func TestParseINI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    map[string]map[string]string // section -> key -> value
		wantErr string
	}{
		{name: "empty", in: "", want: map[string]map[string]string{}},
		{name: "comments, separators, case", in: "\ufeff; c\n# c\n[DEFAULT]\n  Store =  embedded  \nlisten: :80\n\n[PDisk]\npassword = a#b;c=d\n",
			want: map[string]map[string]string{"default": {"store": "embedded", "listen": ":80"}, "pdisk": {"password": "a#b;c=d"}}},
		{name: "CRLF", in: "[a]\r\nk = v\r\n", want: map[string]map[string]string{"a": {"k": "v"}}},
		{name: "empty value", in: "[a]\nk =\n", want: map[string]map[string]string{"a": {"k": ""}}},
		{name: "key before section", in: "k = v\n", wantErr: `line 1: key "k" comes before any [section] header`},
		{name: "no separator", in: "[a]\njunk\n", wantErr: `line 2: expected "key = value" or a [section] header, got "junk"`},
		{name: "no key", in: "[a]\n= v\n", wantErr: "line 2: missing key before '='"},
		{name: "unclosed section", in: "[a\n", wantErr: `line 1: section header "[a" has no closing ']'`},
		{name: "junk after section", in: "[a] x\n", wantErr: `line 1: unexpected "x" after section header`},
		{name: "empty section", in: "[ ]\n", wantErr: "line 1: empty section name"},
		{name: "duplicate section", in: "[a]\n[b]\n[A]\n", wantErr: "line 3: section [A] already started at line 1"},
		{name: "duplicate key", in: "[a]\nk=1\nK=2\n", wantErr: `line 3: key "k" already set in [a] at line 2`},
		{name: "bad UTF-8", in: "[a]\nk = \xff\n", wantErr: "line 2: not valid UTF-8 text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := parseINI([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.sections) != len(tt.want) {
				t.Errorf("got %d sections, want %d", len(f.sections), len(tt.want))
			}
			for name, keys := range tt.want {
				sec := f.section(name)
				if sec == nil {
					t.Errorf("section %q missing", name)
					continue
				}
				if len(sec.keys) != len(keys) {
					t.Errorf("[%s]: got %d keys, want %d", name, len(sec.keys), len(keys))
				}
				for k, v := range keys {
					if got, ok := sec.keys[k]; !ok || got.value != v {
						t.Errorf("[%s] %s = %q (present %v), want %q", name, k, got.value, ok, v)
					}
				}
			}
		})
	}
}
