package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

func attr(path ...string) cimi.Attribute { return cimi.Attribute{Path: path} }

func eq(a cimi.Attribute, v cimi.Value) cimi.Expr {
	return &cimi.Comparison{Attr: a, Op: cimi.Eq, Value: v}
}

func cmp(a cimi.Attribute, op cimi.CmpOp, v cimi.Value) cimi.Expr {
	return &cimi.Comparison{Attr: a, Op: op, Value: v}
}

func str(s string) cimi.Value  { return cimi.Value{Kind: cimi.String, Str: s} }
func num(i int64) cimi.Value   { return cimi.Value{Kind: cimi.Int, Int: i} }
func flag(b bool) cimi.Value   { return cimi.Value{Kind: cimi.Bool, Bool: b} }
func null() cimi.Value         { return cimi.Value{Kind: cimi.Null} }
func when(s string) cimi.Value { return cimi.Value{Kind: cimi.Date, Time: mustTime(s)} }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func and(t ...cimi.Expr) cimi.Expr { return &cimi.Logical{Op: cimi.And, Terms: t} }
func or(t ...cimi.Expr) cimi.Expr  { return &cimi.Logical{Op: cimi.Or, Terms: t} }

var admin = cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}

func query(t *testing.T, c store.Collection, q cimi.Query, who cimi.Identity) store.Page {
	t.Helper()
	p, err := c.Query(ctxFor(t), q, who)
	if err != nil {
		t.Fatalf("Query(%+v): %v", q, err)
	}
	return p
}

func pageIDs(p store.Page) []string {
	ids := []string{}
	for _, d := range p.Docs {
		ids = append(ids, d.ID)
	}
	return ids
}

// filterDocs are the documents of the filter tests, all owned by alice.
var filterDocs = []map[string]any{
	{"id": "M/1", "state": "STARTED", "cpu": 1, "bootable": true, "created": "2024-01-01T00:00:00Z",
		"tags": []any{"web", "prod"}, "properties": map[string]any{"owner": "ops", "tier": "1"}},
	{"id": "M/2", "state": "STOPPED", "cpu": 2, "bootable": false, "created": "2024-02-01T12:30:00.5Z",
		"tags": []any{"db"}, "properties": map[string]any{"owner": "dev"}},
	{"id": "M/3", "state": "STARTED", "cpu": 4, "created": "2024-03-01T00:00:00+02:00", "description": nil,
		"tags": []any{}, "disk": map[string]any{"size": 10}},
	{"id": "M/4", "state": "ERROR", "cpu": 2.5, "bootable": true, "created": "not a date",
		"disk": map[string]any{"size": 100}, "name": "fourth"},
	{"id": "M/5", "state": 5, "cpu": "8", "name": "fifth"},
}

func testQueryFilter(t *testing.T, s store.Store) {
	c := collection(t, s, "Machine")
	for _, d := range filterDocs {
		d["acl"] = aliceACL
		create(t, c, d["id"].(string), d)
	}
	tests := []struct {
		name   string
		filter cimi.Expr
		want   []string
	}{
		{"string =", eq(attr("state"), str("STARTED")), []string{"M/1", "M/3"}},
		{"string !=, absent and other types excluded", cmp(attr("state"), cimi.Ne, str("STARTED")), []string{"M/2", "M/4"}},
		{"string <", cmp(attr("state"), cimi.Lt, str("S")), []string{"M/4"}},
		{"string >=", cmp(attr("state"), cimi.Ge, str("STOPPED")), []string{"M/2"}},
		{"int =", eq(attr("cpu"), num(2)), []string{"M/2"}},
		{"int >", cmp(attr("cpu"), cimi.Gt, num(2)), []string{"M/3", "M/4"}},
		{"int <=", cmp(attr("cpu"), cimi.Le, num(2)), []string{"M/1", "M/2"}},
		{"int != skips strings", cmp(attr("cpu"), cimi.Ne, num(1)), []string{"M/2", "M/3", "M/4"}},
		{"int vs string attribute", eq(attr("state"), num(5)), []string{"M/5"}},
		{"bool =", eq(attr("bootable"), flag(true)), []string{"M/1", "M/4"}},
		{"bool !=, absent matches", cmp(attr("bootable"), cimi.Ne, flag(true)), []string{"M/2", "M/3", "M/5"}},
		{"date <", cmp(attr("created"), cimi.Lt, when("2024-02-01T00:00:00Z")), []string{"M/1"}},
		{"date > with fraction", cmp(attr("created"), cimi.Gt, when("2024-02-01T12:30:00Z")), []string{"M/2", "M/3"}},
		{"date with offset", eq(attr("created"), when("2024-02-29T22:00:00Z")), []string{"M/3"}},
		{"null = means absent or null", eq(attr("description"), null()), []string{"M/1", "M/2", "M/3", "M/4", "M/5"}},
		{"null = on present", eq(attr("name"), null()), []string{"M/1", "M/2", "M/3"}},
		{"null !=", cmp(attr("name"), cimi.Ne, null()), []string{"M/4", "M/5"}},
		{"array any =", eq(attr("tags"), str("prod")), []string{"M/1"}},
		{"array any <", cmp(attr("tags"), cimi.Lt, str("p")), []string{"M/2"}},
		{"arrays, one empty", eq(attr("tags"), str("web")), []string{"M/1"}},
		{"property", eq(attr("properties", "owner"), str("dev")), []string{"M/2"}},
		{"property absent !=", cmp(attr("properties", "tier"), cimi.Ne, str("1")), []string{"M/2", "M/3", "M/4", "M/5"}},
		{"nested attribute", cmp(attr("disk", "size"), cimi.Gt, num(50)), []string{"M/4"}},
		{"and", and(eq(attr("state"), str("STARTED")), cmp(attr("cpu"), cimi.Gt, num(1))), []string{"M/3"}},
		{"or", or(eq(attr("state"), str("ERROR")), eq(attr("cpu"), num(1))), []string{"M/1", "M/4"}},
		{"and of ors", and(
			or(eq(attr("state"), str("STARTED")), eq(attr("state"), str("ERROR"))),
			or(eq(attr("bootable"), flag(true)), cmp(attr("cpu"), cimi.Ge, num(4))),
		), []string{"M/1", "M/3", "M/4"}},
		{"or of ands", or(
			and(eq(attr("state"), str("STARTED")), eq(attr("tags"), str("web"))),
			and(eq(attr("name"), str("fifth")), eq(attr("cpu"), str("8"))),
		), []string{"M/1", "M/5"}},
		{"no match", eq(attr("state"), str("PAUSED")), []string{}},
		{"no filter", nil, []string{"M/1", "M/2", "M/3", "M/4", "M/5"}},
	}
	alice := cimi.Identity{User: "alice"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := query(t, c, cimi.Query{Filter: tt.filter}, alice)
			if got := pageIDs(p); !slices.Equal(got, tt.want) || p.Count != len(tt.want) {
				t.Errorf("Query = %v (count %d), want %v", got, p.Count, tt.want)
			}
		})
	}
}

func testQueryOrderPaging(t *testing.T, s store.Store) {
	c := collection(t, s, "Volume")
	// ids in creation order differ from id order and from name order.
	for _, n := range []int{7, 3, 9, 1, 5, 8, 2, 6, 4, 10} {
		d := map[string]any{"size": n % 3, "acl": aliceACL}
		if n%4 != 0 {
			d["name"] = fmt.Sprintf("vol-%c", 'j'-rune(n))
		}
		if n == 6 {
			d["name"] = nil
		}
		create(t, c, fmt.Sprintf("Volume/%02d", n), d)
	}
	alice := cimi.Identity{User: "alice"}
	byName := []cimi.Order{{Attr: attr("name")}}
	bySizeDescName := []cimi.Order{{Attr: attr("size"), Desc: true}, {Attr: attr("name")}}
	tests := []struct {
		name  string
		q     cimi.Query
		count int
		want  []string
	}{
		{"id order", cimi.Query{}, 10, []string{"Volume/01", "Volume/02", "Volume/03", "Volume/04", "Volume/05", "Volume/06", "Volume/07", "Volume/08", "Volume/09", "Volume/10"}},
		{"page", cimi.Query{First: 3, Last: 5}, 10, []string{"Volume/03", "Volume/04", "Volume/05"}},
		{"first only", cimi.Query{First: 9}, 10, []string{"Volume/09", "Volume/10"}},
		{"last only", cimi.Query{Last: 2}, 10, []string{"Volume/01", "Volume/02"}},
		{"page past the end", cimi.Query{First: 11, Last: 20}, 10, []string{}},
		{"page partly past the end", cimi.Query{First: 10, Last: 20}, 10, []string{"Volume/10"}},
		{"empty page", cimi.Query{First: 5, Last: 4}, 10, []string{}},
		// absent names (4, 8) then null (6) come first ascending.
		{"by name", cimi.Query{OrderBy: byName}, 10, []string{"Volume/04", "Volume/08", "Volume/06", "Volume/10", "Volume/09", "Volume/07", "Volume/05", "Volume/03", "Volume/02", "Volume/01"}},
		{"by name desc", cimi.Query{OrderBy: []cimi.Order{{Attr: attr("name"), Desc: true}}}, 10, []string{"Volume/01", "Volume/02", "Volume/03", "Volume/05", "Volume/07", "Volume/09", "Volume/10", "Volume/06", "Volume/04", "Volume/08"}},
		{"by name paged", cimi.Query{OrderBy: byName, First: 2, Last: 4}, 10, []string{"Volume/08", "Volume/06", "Volume/10"}},
		// sizes: 0 for 3,6,9; 1 for 1,4,7,10; 2 for 2,5,8; ties by name then id.
		{"two keys", cimi.Query{OrderBy: bySizeDescName}, 10, []string{"Volume/08", "Volume/05", "Volume/02", "Volume/04", "Volume/10", "Volume/07", "Volume/01", "Volume/06", "Volume/09", "Volume/03"}},
		{"filter order page", cimi.Query{Filter: cmp(attr("size"), cimi.Ge, num(1)), OrderBy: bySizeDescName, First: 3, Last: 5}, 7, []string{"Volume/02", "Volume/04", "Volume/10"}},
		{"ties by id", cimi.Query{OrderBy: []cimi.Order{{Attr: attr("size")}}, Last: 4}, 10, []string{"Volume/03", "Volume/06", "Volume/09", "Volume/01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := query(t, c, tt.q, alice)
			if got := pageIDs(p); !slices.Equal(got, tt.want) || p.Count != tt.count {
				t.Errorf("Query = %v (count %d), want %v (count %d)", got, p.Count, tt.want, tt.count)
			}
		})
	}
}

func testQueryACL(t *testing.T, s store.Store) {
	c := collection(t, s, "Doc")
	user := func(p string) cimi.Owner { return cimi.Owner{Principal: p, Type: cimi.User} }
	docs := map[string]any{
		"Doc/alice":     cimi.ACL{Owner: user("alice")},
		"Doc/for-bob":   cimi.ACL{Owner: user("alice"), Rules: []cimi.Rule{{Principal: "bob", Type: cimi.User, Right: cimi.View}}},
		"Doc/staff":     cimi.ACL{Owner: user("carol"), Rules: []cimi.Rule{{Principal: "staff", Type: cimi.Role, Right: cimi.Modify}}},
		"Doc/users":     cimi.ACL{Owner: user("carol"), Rules: []cimi.Rule{{Principal: cimi.RoleUser, Type: cimi.Role, Right: cimi.View}}},
		"Doc/anyone":    cimi.ACL{Owner: user("carol"), Rules: []cimi.Rule{{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.All}}},
		"Doc/role-own":  cimi.ACL{Owner: cimi.Owner{Principal: "staff", Type: cimi.Role}},
		"Doc/no-right":  cimi.ACL{Owner: user("carol"), Rules: []cimi.Rule{{Principal: "bob", Type: cimi.User, Right: "NONE"}}},
		"Doc/user-type": cimi.ACL{Owner: user("carol"), Rules: []cimi.Rule{{Principal: "staff", Type: cimi.User, Right: cimi.View}}},
		"Doc/no-acl":    nil,
	}
	for id, acl := range docs {
		fields := map[string]any{"kind": "doc"}
		if acl != nil {
			fields["acl"] = acl
		}
		create(t, c, id, fields)
	}
	tests := []struct {
		name string
		who  cimi.Identity
		want []string
	}{
		{"owner", cimi.Identity{User: "alice"}, []string{"Doc/alice", "Doc/anyone", "Doc/for-bob", "Doc/users"}},
		{"user rule", cimi.Identity{User: "bob"}, []string{"Doc/anyone", "Doc/for-bob", "Doc/users"}},
		{"role rule and role owner", cimi.Identity{User: "dan", Roles: []string{"staff"}}, []string{"Doc/anyone", "Doc/role-own", "Doc/staff", "Doc/users"}},
		{"user named like a role", cimi.Identity{User: "staff"}, []string{"Doc/anyone", "Doc/user-type", "Doc/users"}},
		{"anonymous", cimi.Identity{}, []string{"Doc/anyone"}},
		{"anonymous with a role", cimi.Identity{Roles: []string{"staff"}}, []string{"Doc/anyone", "Doc/role-own", "Doc/staff"}},
		{"admin", admin, []string{"Doc/alice", "Doc/anyone", "Doc/for-bob", "Doc/no-acl", "Doc/no-right", "Doc/role-own", "Doc/staff", "Doc/user-type", "Doc/users"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := query(t, c, cimi.Query{}, tt.who)
			if got := pageIDs(p); !slices.Equal(got, tt.want) || p.Count != len(tt.want) {
				t.Errorf("visible = %v (count %d), want %v", got, p.Count, tt.want)
			}
			// Count and paging apply to the visible documents only.
			second := tt.want[min(1, len(tt.want)):min(2, len(tt.want))]
			p = query(t, c, cimi.Query{Filter: eq(attr("kind"), str("doc")), First: 2, Last: 2}, tt.who)
			if p.Count != len(tt.want) || !slices.Equal(pageIDs(p), second) {
				t.Errorf("second visible = %v (count %d), want %v", pageIDs(p), p.Count, second)
			}
		})
	}
}

func testQueryOwnWrites(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Volume")
	alice := cimi.Identity{User: "alice"}
	byState := func(state string) []string {
		return pageIDs(query(t, c, cimi.Query{Filter: eq(attr("state"), str(state))}, alice))
	}
	for i := range 20 {
		id := fmt.Sprintf("Volume/%02d", i)
		rev := create(t, c, id, map[string]any{"state": "CREATING", "acl": aliceACL})
		if got := byState("CREATING"); !slices.Contains(got, id) {
			t.Fatalf("query right after Create misses %s: %v", id, got)
		}
		if _, err := c.Put(ctx, id, body(t, map[string]any{"state": "AVAILABLE", "acl": aliceACL}), rev); err != nil {
			t.Fatal(err)
		}
		if got := byState("AVAILABLE"); !slices.Contains(got, id) || slices.Contains(byState("CREATING"), id) {
			t.Fatalf("query right after Put shows the old state of %s", id)
		}
		d, err := c.Update(ctx, id, func(store.Document) (json.RawMessage, error) {
			return body(t, map[string]any{"state": "DELETING", "acl": aliceACL}), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := byState("DELETING"); !slices.Contains(got, id) {
			t.Fatalf("query right after Update misses %s: %v", id, got)
		}
		if i%2 == 0 {
			if err := c.Delete(ctx, id, d.Revision); err != nil {
				t.Fatal(err)
			}
			if got := byState("DELETING"); slices.Contains(got, id) {
				t.Fatalf("query right after Delete still shows %s", id)
			}
		}
	}
	if p := query(t, c, cimi.Query{}, alice); p.Count != 10 {
		t.Fatalf("%d documents left, want 10", p.Count)
	}
}
