package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPrepareBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id, body string
		want           map[string]any // nil: ErrInvalid
		same           bool           // kept byte for byte
	}{
		{"id matches", "V/1", `{"id":"V/1", "n": 1}`, map[string]any{"id": "V/1", "n": float64(1)}, true},
		{"id added", "V/1", `{"n":1}`, map[string]any{"id": "V/1", "n": float64(1)}, false},
		{"id replaced", "V/1", `{"id":"V/2","n":1}`, map[string]any{"id": "V/1", "n": float64(1)}, false},
		{"id not a string", "V/1", `{"id":7}`, map[string]any{"id": "V/1"}, false},
		{"html kept", "V/<1>", `{"d":"a<b>&c"}`, map[string]any{"id": "V/<1>", "d": "a<b>&c"}, false},
		{"trailing space", "V/1", "{\"id\":\"V/1\"}\n ", map[string]any{"id": "V/1"}, true},
		{"array", "V/1", `[]`, nil, false},
		{"null", "V/1", `null`, nil, false},
		{"string", "V/1", `"x"`, nil, false},
		{"number", "V/1", `1`, nil, false},
		{"empty", "V/1", ``, nil, false},
		{"truncated", "V/1", `{"a":`, nil, false},
		{"extra brace", "V/1", `{"a":1}}`, nil, false},
		{"two objects", "V/1", `{"a":1}{"b":2}`, nil, false},
		{"empty id", "", `{}`, nil, false},
		{"control in id", "V/\t1", `{}`, nil, false},
		{"invalid utf-8 id", "V/\xff", `{}`, nil, false},
		{"long id", strings.Repeat("x", MaxIDLength+1), `{}`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.body)
			got, doc, err := PrepareBody(tt.id, in)
			if tt.want == nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(got, &m); err != nil || !reflect.DeepEqual(m, tt.want) {
				t.Fatalf("body %s, want %v (%v)", got, tt.want, err)
			}
			if doc["id"] != tt.id {
				t.Fatalf("decoded id %v", doc["id"])
			}
			if tt.same != (string(got) == tt.body) {
				t.Fatalf("body %q rewritten = %v, want %v", got, string(got) != tt.body, !tt.same)
			}
			if len(in) > 0 {
				in[0] = 'X' // the caller's buffer is not the stored body
				if got[0] == 'X' {
					t.Fatal("PrepareBody aliased the caller's buffer")
				}
			}
		})
	}
}

func TestPrepareBodyKeepsNumbers(t *testing.T) {
	t.Parallel()
	got, _, err := PrepareBody("V/1", []byte(`{"big":12345678901234567890,"f":1.50}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "12345678901234567890") || !strings.Contains(string(got), "1.50") {
		t.Fatalf("numbers changed: %s", got)
	}
}
