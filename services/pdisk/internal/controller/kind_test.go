package controller

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// body decodes a JSON object as the resource framework hands it over.
func body(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSizeOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body string
		want int64
		msg  string // part of the error; "" when valid
	}{
		{`{"size": 1}`, 1, ""},
		{`{"size": 1024}`, 1024, ""},
		{`{"size": 5.0}`, 5, ""},
		{`{"volumeTemplate": {"volumeConfig": {"capacity": 1048576}}}`, 1, ""},
		{`{"volumeTemplate": {"volumeConfig": {"capacity": 1048577}}}`, 2, ""},
		{`{"size": 0}`, 0, "between 1 and 1024"},
		{`{"size": -3}`, 0, "between 1 and 1024"},
		{`{"size": 2000}`, 0, "between 1 and 1024"},
		{`{"size": 1e300}`, 0, "between 1 and 1024"},
		{`{"size": 1.5}`, 0, "whole number"},
		{`{"size": "ten"}`, 0, "must be a number"},
		{`{"size": "5"}`, 0, "must be a number"},
		{`{"size": null}`, 0, "needs a size"},
		{`{"size": true}`, 0, "must be a number"},
		{`{}`, 0, "needs a size"},
		{`{"volumeTemplate": {"volumeConfig": {"capacity": 0}}}`, 0, "between 1 and 1024"},
	} {
		got, err := sizeOf(body(t, tt.body))
		if tt.msg == "" {
			if err != nil || got != tt.want {
				t.Errorf("%s: %d, %v; want %d", tt.body, got, err, tt.want)
			}
			continue
		}
		if err == nil || errs.CodeOf(err) != errs.Invalid || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v; want an invalid error saying %q", tt.body, err, tt.msg)
		}
	}
}

func TestApplyEdits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body string
		msg  string
		want func(v *volume.Volume) bool
	}{
		{`{"tag": "HELLO", "visibility": "public"}`, "", func(v *volume.Volume) bool {
			return v.Tag == "HELLO" && v.Visibility == volume.Public && strings.Contains(string(v.ACL), `"::USER"`)
		}},
		{`{"visibility": "PRIVATE"}`, "", func(v *volume.Volume) bool { return v.Visibility == volume.Private }},
		{`{"description": "line one\nline two"}`, "", func(v *volume.Volume) bool { return strings.Contains(v.Description, "\n") }},
		{`{"visibility": "friends"}`, "PRIVATE or PUBLIC", nil},
		{`{"tag": 12}`, "must be a string", nil},
		{`{"tag": "a\nb"}`, "control characters", nil},
		{`{"tag": "` + strings.Repeat("x", 1<<20) + `"}`, "at most 256", nil},
		{`{"description": "` + strings.Repeat("x", 5000) + `"}`, "at most 4096", nil},
	} {
		v := &volume.Volume{UUID: "u", Owner: "alice", Visibility: volume.Private}
		v.SetACL(volume.ACLFor("alice", volume.Private))
		err := applyEdits(v, body(t, tt.body), editAttrs)
		name := tt.body
		if len(name) > 60 {
			name = name[:60]
		}
		if tt.msg == "" {
			if err != nil || !tt.want(v) {
				t.Errorf("%s: %v, volume %+v", name, err, v)
			}
			continue
		}
		if err == nil || errs.CodeOf(err) != errs.Invalid || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v; want an invalid error saying %q", name, err, tt.msg)
		}
	}
}

var aliceID = cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}

func TestChangeRefusesServerAttributes(t *testing.T) {
	t.Parallel()
	c := &Controller{}
	v := &volume.Volume{ID: "Volume/u", UUID: "u", Owner: "alice", Size: 1, Capacity: 1 << 20, Visibility: volume.Private, Type: volume.DataImageRawReadWrite, State: volume.Available}
	current, _ := v.Map()
	// The whole document sent back with a new tag: fine.
	back, _ := v.Map()
	back["tag"] = "new"
	if got, err := c.change(context.Background(), aliceID, current, back, nil); err != nil || got["tag"] != "new" {
		t.Fatalf("round trip edit: %v %v", got, err)
	}
	// A changed size or owner: refused, naming it.
	for _, attr := range []string{"size", "owner", "state"} {
		b, _ := v.Map()
		b[attr] = "other"
		if _, err := c.change(context.Background(), aliceID, current, b, nil); err == nil || !strings.Contains(err.Error(), attr) {
			t.Errorf("changing %s: %v", attr, err)
		}
	}
	// $select of a server attribute: refused.
	if _, err := c.change(context.Background(), aliceID, current, map[string]any{"size": json.Number("5")}, []string{"size"}); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("select size: %v", err)
	}
	// $select=tag with no tag clears it; visibility stays.
	v.Tag = "old"
	current, _ = v.Map()
	got, err := c.change(context.Background(), aliceID, current, map[string]any{}, []string{"tag", "visibility"})
	if err != nil || got["tag"] != "" || got["visibility"] != volume.Private {
		t.Errorf("select tag,visibility with an empty body: %v %v", got, err)
	}
}
