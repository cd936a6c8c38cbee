package cimi

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestResourceURI(t *testing.T) {
	t.Parallel()
	tests := []struct{ kind, want string }{
		{"Volume", "http://schemas.dmtf.org/cimi/1/Volume"},
		{"VolumeCollection", "http://schemas.dmtf.org/cimi/1/VolumeCollection"},
		{"Machine", "http://schemas.dmtf.org/cimi/1/Machine"},
		{"CloudEntryPoint", "http://schemas.dmtf.org/cimi/1/CloudEntryPoint"},
		{"Job", "http://schemas.dmtf.org/cimi/1/Job"},
		{"Event", "http://schemas.dmtf.org/cimi/1/Event"},
		{"Action", "http://schemas.dmtf.org/cimi/1/Action"},
		{"ServiceConfiguration", "http://stratuslab.eu/cimi/1/ServiceConfiguration"},
		{"ServiceMessage", "http://stratuslab.eu/cimi/1/ServiceMessage"},
		{"ServiceMessageCollection", "http://stratuslab.eu/cimi/1/ServiceMessageCollection"},
		{"User", "http://stratuslab.eu/cimi/1/User"},
		{"UserCollection", "http://stratuslab.eu/cimi/1/UserCollection"},
		{"UserTemplate", "http://stratuslab.eu/cimi/1/UserTemplate"},
		{"Host", "http://stratuslab.eu/cimi/1/Host"},
		{"Registration", "http://stratuslab.eu/cimi/1/Registration"},
		{"Users", "http://schemas.dmtf.org/cimi/1/Users"},
	}
	for _, tt := range tests {
		if got := ResourceURI(tt.kind); got != tt.want {
			t.Errorf("ResourceURI(%q) = %q, want %q", tt.kind, got, tt.want)
		}
	}
	if got, want := ActionURI("start"), "http://schemas.dmtf.org/cimi/1/action/start"; got != want {
		t.Errorf("ActionURI(start) = %q, want %q", got, want)
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	uuidV4 := regexp.MustCompile(`^Volume/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NewID("Volume"), NewID("Volume")
	for _, id := range []string{a, b} {
		if !uuidV4.MatchString(id) {
			t.Errorf("NewID = %q, want Volume/<uuid v4>", id)
		}
		kind, local, err := SplitID(id)
		if err != nil || kind != "Volume" || local != strings.TrimPrefix(id, "Volume/") {
			t.Errorf("SplitID(%q) = %q, %q, %v", id, kind, local, err)
		}
	}
	if a == b {
		t.Errorf("two NewID calls returned the same id %q", a)
	}
}

func TestSplitID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id, kind, local string
		want            string // error substring; empty when valid
	}{
		{"Volume/8d0f3c9e-1a2b-4c3d-8e4f-5a6b7c8d9e0f", "Volume", "8d0f3c9e-1a2b-4c3d-8e4f-5a6b7c8d9e0f", ""},
		{"User/alice", "User", "alice", ""},
		{"User/jane.doe@example.org", "User", "jane.doe@example.org", ""},
		{"ServiceConfiguration/pdisk-2", "ServiceConfiguration", "pdisk-2", ""},
		{"User/josé", "User", "josé", ""},
		{"V2/x", "V2", "x", ""},
		{"User/" + strings.Repeat("a", MaxLocalIDLength), "User", strings.Repeat("a", MaxLocalIDLength), ""},
		{"", "", "", "expected Kind/identifier"},
		{"Volume", "", "", "expected Kind/identifier"},
		{"Volume/", "", "", "nothing follows the kind"},
		{"/abc", "", "", "must be a CIMI type name"},
		{"volume/abc", "", "", "must be a CIMI type name"},
		{"Vol-ume/abc", "", "", "must be a CIMI type name"},
		{"2Volume/abc", "", "", "must be a CIMI type name"},
		{"Volume/a/b", "", "", `'/' is not allowed`},
		{"Volume/a b", "", "", `' ' is not allowed`},
		{"Volume/a?b", "", "", `'?' is not allowed`},
		{"Volume/a#b", "", "", `'#' is not allowed`},
		{"Volume/a%2Fb", "", "", `'%' is not allowed`},
		{`Volume/a\b`, "", "", `'\\' is not allowed`},
		{"Volume/a\nb", "", "", `'\n' is not allowed`},
		{"Volume/a\u00a0b", "", "", `is not allowed`},
		{"Volume/a\xffb", "", "", "not valid UTF-8"},
		{"User/" + strings.Repeat("a", MaxLocalIDLength+1), "", "", "the limit is 200"},
	}
	for _, tt := range tests {
		kind, local, err := SplitID(tt.id)
		if tt.want == "" {
			if err != nil || kind != tt.kind || local != tt.local {
				t.Errorf("SplitID(%q) = %q, %q, %v; want %q, %q", tt.id, kind, local, err, tt.kind, tt.local)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalidID) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SplitID(%q) error = %v, want ErrInvalidID containing %q", tt.id, err, tt.want)
		}
		if kind != "" || local != "" {
			t.Errorf("SplitID(%q) returned %q, %q with an error", tt.id, kind, local)
		}
	}
}

func TestOperations(t *testing.T) {
	t.Parallel()
	alice := Identity{User: "alice"}
	bob := Identity{User: "bob"}
	carol := Identity{User: "carol"}
	acl := ACL{
		Owner: Owner{Principal: "alice", Type: User},
		Rules: []Rule{
			{Principal: "bob", Type: User, Right: Modify},
			{Principal: "carol", Type: User, Right: View},
		},
	}
	const href = "Volume/1"
	crud := []Operation{{Rel: "edit", Href: href}, {Rel: "delete", Href: href}}
	tests := []struct {
		name string
		who  Identity
		want []Operation
	}{
		{"owner", alice, crud},
		{"modify rule", bob, crud},
		{"view rule", carol, nil},
		{"stranger", Identity{User: "dave"}, nil},
		{"anonymous", Identity{}, nil},
		{"admin", Identity{User: "root", Roles: []string{RoleAdmin}}, crud},
	}
	for _, tt := range tests {
		if got := ResourceOperations(acl, tt.who, href); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ResourceOperations = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got, want := CollectionOperations(true, "Volume"), []Operation{{Rel: RelAdd, Href: "Volume"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("CollectionOperations(true) = %v, want %v", got, want)
	}
	if got := CollectionOperations(false, "Volume"); got != nil {
		t.Errorf("CollectionOperations(false) = %v, want nil", got)
	}
}

func TestCommonJSON(t *testing.T) {
	t.Parallel()
	var c Common
	c.ID = "Volume/1"
	c.ResourceURI = ResourceURI("Volume")
	c.Touch(time.Date(2012, 1, 2, 4, 4, 5, 123456789, time.FixedZone("CET", 3600)))
	c.ACL = OwnedBy(Identity{User: "alice"})
	got, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"Volume/1","resourceURI":"http://schemas.dmtf.org/cimi/1/Volume",` +
		`"created":"2012-01-02T03:04:05.123Z","updated":"2012-01-02T03:04:05.123Z",` +
		`"acl":{"owner":{"principal":"alice","type":"USER"},"rules":[{"principal":"::ADMIN","type":"ROLE","right":"ALL"}]}}`
	if string(got) != want {
		t.Fatalf("json.Marshal(Common)\n got %s\nwant %s", got, want)
	}

	c.Name, c.Description = "disk", "data"
	c.Properties = map[string]string{"tier": "gold"}
	c.Operations = ResourceOperations(c.ACL, Identity{User: "alice"}, c.ID)
	c.Touch(time.Date(2013, 6, 30, 12, 0, 0, 0, time.UTC))
	got, err = json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Common
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("JSON round trip changed the resource:\n got %+v\nwant %+v", back, c)
	}
	if !back.Created.Before(back.Updated) {
		t.Fatalf("Touch changed created or did not move updated: %v, %v", back.Created, back.Updated)
	}
	for _, key := range []string{`"name":"disk"`, `"description":"data"`, `"properties":{"tier":"gold"}`, `"operations":[{"rel":"edit","href":"Volume/1"}`} {
		if !strings.Contains(string(got), key) {
			t.Errorf("JSON %s lacks %s", got, key)
		}
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	doc := map[string]any{
		"id":          "Volume/1",
		"resourceURI": ResourceURI("Volume"),
		"operations":  []any{map[string]any{"rel": "edit", "href": "Volume/1"}},
		"name":        "disk",
		"state":       "AVAILABLE",
		"capacity":    10,
	}
	tests := []struct {
		name  string
		attrs []string
		want  []string // keys of the result
	}{
		{"all", nil, []string{"capacity", "id", "name", "operations", "resourceURI", "state"}},
		{"some", []string{"name", "capacity"}, []string{"capacity", "id", "name", "operations", "resourceURI"}},
		{"absent", []string{"nope"}, []string{"id", "operations", "resourceURI"}},
		{"always kept ones", []string{"id"}, []string{"id", "operations", "resourceURI"}},
	}
	for _, tt := range tests {
		got := Select(doc, tt.attrs)
		for k, v := range got {
			if !reflect.DeepEqual(v, doc[k]) {
				t.Errorf("%s: Select changed %s", tt.name, k)
			}
		}
		if keys := slices.Sorted(maps.Keys(got)); !reflect.DeepEqual(keys, tt.want) {
			t.Errorf("%s: Select(%v) keys = %v, want %v", tt.name, tt.attrs, keys, tt.want)
		}
		got["extra"] = true
		if _, ok := doc["extra"]; ok {
			t.Fatalf("%s: Select returned the input map instead of a copy", tt.name)
		}
	}
	if got := Select(nil, []string{"a"}); len(got) != 0 {
		t.Errorf("Select(nil) = %v, want empty", got)
	}
}
