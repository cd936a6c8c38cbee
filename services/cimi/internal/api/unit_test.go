package api

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

func TestNewID(t *testing.T) {
	t.Parallel()
	kinds := map[string]Kind{}
	for _, k := range DefaultKinds() {
		kinds[k.Name] = k
	}
	tests := []struct {
		kind    string
		body    map[string]any
		want    string // "" for a uuid id
		wantErr errs.Code
	}{
		{"ServiceMessage", map[string]any{"name": "x"}, "", ""},
		{"User", map[string]any{"username": "alice"}, "User/alice", ""},
		{"User", map[string]any{"username": "vo:biomed"}, "User/vo:biomed", ""},
		{"User", map[string]any{}, "", errs.Invalid},
		{"User", map[string]any{"username": ""}, "", errs.Invalid},
		{"User", map[string]any{"username": 12}, "", errs.Invalid},
		{"User", map[string]any{"username": "a/b"}, "", errs.Invalid},
		{"User", map[string]any{"username": "a b"}, "", errs.Invalid},
		{"User", map[string]any{"username": strings.Repeat("a", 300)}, "", errs.Invalid},
		{"ServiceConfiguration", map[string]any{"service": "authn"}, "ServiceConfiguration/authn", ""},
		{"ServiceConfiguration", map[string]any{"service": "vmctl", "instance": "host1"}, "ServiceConfiguration/vmctl-host1", ""},
		{"ServiceConfiguration", map[string]any{"service": "vmctl", "instance": nil}, "ServiceConfiguration/vmctl", ""},
		{"ServiceConfiguration", map[string]any{"instance": "x"}, "", errs.Invalid},
		{"ServiceConfiguration", map[string]any{"service": "a", "instance": true}, "", errs.Invalid},
	}
	for _, tt := range tests {
		id, err := newID(kinds[tt.kind], tt.body)
		if errs.CodeOf(err) != tt.wantErr {
			t.Errorf("%s %v: error %v, want code %q", tt.kind, tt.body, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if tt.want == "" {
			if k, local, err := cimi.SplitID(id); err != nil || k != tt.kind || len(local) != 36 {
				t.Errorf("%s: id %q is not a uuid id", tt.kind, id)
			}
		} else if id != tt.want {
			t.Errorf("%s %v: id %q, want %q", tt.kind, tt.body, id, tt.want)
		}
	}
}

func TestCollectionQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query   string
		want    *commonv1.CollectionQuery
		wantErr string // part of the message
	}{
		{"", &commonv1.CollectionQuery{}, ""},
		{"$filter=name='a'&$filter=x>1", &commonv1.CollectionQuery{Filter: "name = 'a' and x > 1"}, ""},
		{"$orderby=name:desc,created&$first=3&$last=7&$select=name,id",
			&commonv1.CollectionQuery{OrderBy: []string{"name:desc", "created"}, First: 3, Last: 7, Select: []string{"name", "id"}}, ""},
		{"$orderby=property['k']", &commonv1.CollectionQuery{OrderBy: []string{"property['k']"}}, ""},
		{"$first=99999999999999", &commonv1.CollectionQuery{First: 1<<32 - 1}, ""},
		{"$filter=name=", nil, "position"},
		{"$first=0", nil, "$first"},
		{"$last=2&$first=5", nil, "$last"},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := collectionQuery(v)
		if tt.wantErr != "" {
			if errs.CodeOf(err) != errs.BadFilter || !strings.Contains(errs.MessageOf(err), tt.wantErr) {
				t.Errorf("%q: error %v, want bad_filter mentioning %q", tt.query, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.query, err)
			continue
		}
		if got.Filter != tt.want.Filter || !slices.Equal(got.OrderBy, tt.want.OrderBy) || got.First != tt.want.First ||
			got.Last != tt.want.Last || !slices.Equal(got.Select, tt.want.Select) {
			t.Errorf("%q: got %v, want %v", tt.query, got, tt.want)
		}
		// What the gateway sends, the owner must parse back the same.
		back := url.Values{"$orderby": got.OrderBy}
		if got.Filter != "" {
			back.Set("$filter", got.Filter)
		}
		if _, err := cimi.ParseQuery(back); err != nil {
			t.Errorf("%q: the owner cannot parse %v: %v", tt.query, back, err)
		}
	}
}

func TestDecorate(t *testing.T) {
	t.Parallel()
	s := &Service{}
	machine := Kind{Name: "Machine", Actions: []string{"start", "stop"}}
	job := Kind{Name: "Job", ReadOnly: true}
	host := Kind{Name: "Host", Described: true, Actions: []string{"maintenance"}}
	acl := map[string]any{"owner": map[string]any{"principal": "alice", "type": "USER"},
		"rules": []any{map[string]any{"principal": "::ANON", "type": "ROLE", "right": "VIEW"}}}
	alice := cimi.Identity{User: "alice"}
	admin := cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}
	tests := []struct {
		kind Kind
		who  cimi.Identity
		want []string // rels
	}{
		{machine, alice, []string{"edit", "delete", cimi.ActionURI("start"), cimi.ActionURI("stop")}},
		{machine, admin, []string{"edit", "delete", cimi.ActionURI("start"), cimi.ActionURI("stop")}},
		{machine, cimi.Identity{User: "bob"}, nil},
		{machine, cimi.Identity{}, nil},
		{job, admin, nil},
		{host, admin, []string{"delete", cimi.ActionURI("maintenance")}},
		{host, cimi.Identity{User: "bob"}, nil},
	}
	for _, tt := range tests {
		doc := Document{"id": tt.kind.Name + "/1", "acl": acl, "operations": []any{"stale"}}
		s.decorate(tt.kind, tt.who, doc)
		var rels []string
		ops, _ := doc["operations"].([]cimi.Operation)
		for _, op := range ops {
			rels = append(rels, op.Rel)
			if id := tt.kind.Name + "/1"; op.Href != id && !strings.HasPrefix(op.Href, id+"/") {
				t.Errorf("href %q is not relative to the resource", op.Href)
			}
		}
		if !slices.Equal(rels, tt.want) {
			t.Errorf("%s as %v: operations %v, want %v", tt.kind.Name, tt.who, rels, tt.want)
		}
		if tt.want == nil && doc["operations"] != nil {
			t.Errorf("%s as %v: stale operations kept: %v", tt.kind.Name, tt.who, doc["operations"])
		}
	}
}
