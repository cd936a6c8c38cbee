package memindex

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

func put(t *testing.T, ix *Index, id string, rev uint64, body string) {
	t.Helper()
	if err := ix.Put(id, rev, json.RawMessage(body), nil); err != nil {
		t.Fatalf("Put %s: %v", id, err)
	}
}

func query(t *testing.T, ix *Index, q cimi.Query, who cimi.Identity) store.Page {
	t.Helper()
	p, err := ix.Query(q, who)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	return p
}

func ids(p store.Page) []string {
	var out []string
	for _, d := range p.Docs {
		out = append(out, d.ID)
	}
	return out
}

var admin = cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}

func TestPutRejectsNonObjects(t *testing.T) {
	t.Parallel()
	ix := New()
	for _, body := range []string{``, `null`, `[]`, `"s"`, `3`, `{"a":1} {}`, `{"a":`, `{}}`} {
		if err := ix.Put("X/1", 1, json.RawMessage(body), nil); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want ErrInvalid", body, err)
		}
	}
	if ix.Len() != 0 {
		t.Errorf("Len = %d after invalid puts", ix.Len())
	}
}

func TestRevisionGuards(t *testing.T) {
	t.Parallel()
	ix := New()
	put(t, ix, "X/1", 5, `{"v":5}`)
	put(t, ix, "X/1", 3, `{"v":3}`) // older: ignored
	if d, _ := ix.Get("X/1"); d.Revision != 5 || string(d.Body) != `{"v":5}` {
		t.Fatalf("older put applied: %+v", d)
	}
	put(t, ix, "X/1", 7, `{"v":7}`)
	ix.Delete("X/1", 6) // deletion of an older revision: ignored
	if _, ok := ix.Get("X/1"); !ok {
		t.Fatal("delete of an older revision removed the document")
	}
	ix.Delete("X/1", 7)
	if _, ok := ix.Get("X/1"); ok {
		t.Fatal("delete did not remove the document")
	}
	put(t, ix, "X/1", 7, `{"v":7}`) // late copy of the deleted revision
	if _, ok := ix.Get("X/1"); ok {
		t.Fatal("late put resurrected a deleted document")
	}
	put(t, ix, "X/1", 9, `{"v":9}`) // re-created after the deletion
	if d, ok := ix.Get("X/1"); !ok || d.Revision != 9 {
		t.Fatalf("re-created document missing: %+v", d)
	}
	if got := ids(query(t, ix, cimi.Query{}, admin)); !slices.Equal(got, []string{"X/1"}) {
		t.Fatalf("query after re-create = %v", got)
	}
}

func TestGetReturnsCopy(t *testing.T) {
	t.Parallel()
	ix := New()
	put(t, ix, "X/1", 1, `{"v":1}`)
	d, _ := ix.Get("X/1")
	d.Body[1] = 'X'
	if d2, _ := ix.Get("X/1"); string(d2.Body) != `{"v":1}` {
		t.Fatalf("caller changed the indexed body: %s", d2.Body)
	}
}

// TestVisibilityAgreesWithAllows checks that the ACL read from a decoded
// document grants VIEW as cimi.ACL.Allows does on the ACL it was encoded
// from, for every pairing of sample ACLs and identities.
func TestVisibilityAgreesWithAllows(t *testing.T) {
	t.Parallel()
	acls := []cimi.ACL{
		{Owner: cimi.Owner{Principal: "alice", Type: cimi.User}},
		{Owner: cimi.Owner{Principal: "alice", Type: cimi.Role}},
		{Owner: cimi.Owner{Principal: "staff", Type: cimi.Role}},
		{Owner: cimi.Owner{Principal: "::ADMIN", Type: cimi.Role}},
		{Owner: cimi.Owner{Principal: "bob", Type: "GROUP"}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: "alice", Type: cimi.User, Right: cimi.View}}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: "alice", Type: cimi.User, Right: "NONE"}}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: "staff", Type: cimi.Role, Right: cimi.Modify}}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: cimi.RoleUser, Type: cimi.Role, Right: cimi.View}}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.All}}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: "staff", Type: cimi.User, Right: cimi.All}}},
		{Owner: cimi.Owner{Principal: "", Type: cimi.User}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: cimi.RoleAdmin, Type: cimi.Role, Right: cimi.All}}},
		{Owner: cimi.Owner{Principal: "bob", Type: cimi.User}, Rules: []cimi.Rule{{Principal: cimi.RoleAdmin, Type: cimi.User, Right: cimi.View}}},
	}
	who := []cimi.Identity{
		{},
		{User: "alice"},
		{User: "bob"},
		{User: "carol", Roles: []string{"staff"}},
		{User: "staff"},
		{Roles: []string{"staff"}},
		{User: "dave", Roles: []string{cimi.RoleAdmin}},
		{User: cimi.RoleAdmin},
	}
	for i, acl := range acls {
		body, _ := json.Marshal(map[string]any{"acl": acl})
		doc, err := Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		g := guardOf(doc)
		for _, id := range who {
			if got, want := visible(&g, &id, id.IsAdmin()), acl.Allows(id, cimi.View); got != want {
				t.Errorf("acl %d, identity %+v: visible = %v, Allows = %v", i, id, got, want)
			}
		}
	}
	noACL := guardOf(map[string]any{"acl": "owner"})
	for _, id := range who {
		if got := visible(&noACL, &id, id.IsAdmin()); got != id.IsAdmin() {
			t.Errorf("document without acl visible to %+v: %v", id, got)
		}
	}
}

func TestQuery(t *testing.T) {
	t.Parallel()
	ix := New()
	aliceACL := `{"owner":{"principal":"alice","type":"USER"}}`
	docs := []struct{ id, body string }{
		{"V/5", `{"name":"e","size":3,"acl":` + aliceACL + `}`},
		{"V/1", `{"name":"a","size":3,"acl":` + aliceACL + `}`},
		{"V/3", `{"name":"c","size":1,"acl":` + aliceACL + `}`},
		{"V/2", `{"size":2,"acl":` + aliceACL + `}`},
		{"V/4", `{"name":null,"size":2,"acl":` + aliceACL + `}`},
		{"V/6", `{"name":"f","size":9,"acl":{"owner":{"principal":"bob","type":"USER"}}}`},
	}
	for i, d := range docs {
		put(t, ix, d.id, uint64(i+1), d.body)
	}
	alice := cimi.Identity{User: "alice"}
	byName := []cimi.Order{{Attr: attr("name")}}
	tests := []struct {
		name  string
		q     cimi.Query
		who   cimi.Identity
		count int
		want  []string
	}{
		{"all in id order", cimi.Query{}, alice, 5, []string{"V/1", "V/2", "V/3", "V/4", "V/5"}},
		{"admin sees all", cimi.Query{}, admin, 6, []string{"V/1", "V/2", "V/3", "V/4", "V/5", "V/6"}},
		{"anonymous sees none", cimi.Query{}, cimi.Identity{}, 0, nil},
		{"filter", cimi.Query{Filter: cmpx("size", cimi.Ge, num(3))}, alice, 2, []string{"V/1", "V/5"}},
		{"first/last", cimi.Query{First: 2, Last: 3}, alice, 5, []string{"V/2", "V/3"}},
		{"first only", cimi.Query{First: 4}, alice, 5, []string{"V/4", "V/5"}},
		{"last only", cimi.Query{Last: 2}, alice, 5, []string{"V/1", "V/2"}},
		{"first beyond", cimi.Query{First: 9}, alice, 5, nil},
		{"last before first", cimi.Query{First: 3, Last: 2}, alice, 5, nil},
		{"order absent and null first", cimi.Query{OrderBy: byName}, alice, 5, []string{"V/2", "V/4", "V/1", "V/3", "V/5"}},
		{"order desc absent last", cimi.Query{OrderBy: []cimi.Order{{Attr: attr("name"), Desc: true}}}, alice, 5, []string{"V/5", "V/3", "V/1", "V/4", "V/2"}},
		{"order ties by id", cimi.Query{OrderBy: []cimi.Order{{Attr: attr("size")}}}, alice, 5, []string{"V/3", "V/2", "V/4", "V/1", "V/5"}},
		{"two keys", cimi.Query{OrderBy: []cimi.Order{{Attr: attr("size"), Desc: true}, {Attr: attr("name"), Desc: true}}}, alice, 5, []string{"V/5", "V/1", "V/4", "V/2", "V/3"}},
		{"ordered page", cimi.Query{OrderBy: byName, First: 2, Last: 3}, alice, 5, []string{"V/4", "V/1"}},
		{"ordered filtered page", cimi.Query{OrderBy: byName, Filter: cmpx("size", cimi.Lt, num(3)), First: 1, Last: 2}, admin, 3, []string{"V/2", "V/4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := query(t, ix, tt.q, tt.who)
			if p.Count != tt.count || !slices.Equal(ids(p), tt.want) {
				t.Errorf("Query = count %d %v, want count %d %v", p.Count, ids(p), tt.count, tt.want)
			}
		})
	}
}

// TestTopAgreesWithSort compares the bounded-heap page with a full sort on
// random documents, for pages small enough to take the heap path.
func TestTopAgreesWithSort(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	ix := New()
	for i := range 2000 {
		doc := map[string]any{"acl": cimi.OwnedBy(cimi.Identity{User: "u"})}
		if r.IntN(5) > 0 {
			doc["n"] = r.IntN(50)
		}
		if r.IntN(3) > 0 {
			doc["s"] = fmt.Sprintf("s%02d", r.IntN(30))
		}
		body, _ := json.Marshal(doc)
		put(t, ix, fmt.Sprintf("D/%05d", r.IntN(1_000_000)*10+i%10), uint64(i+1), string(body))
	}
	order := []cimi.Order{{Attr: attr("n"), Desc: true}, {Attr: attr("s")}}
	full := query(t, ix, cimi.Query{OrderBy: order}, admin)
	for _, page := range [][2]int{{1, 10}, {5, 40}, {100, 120}, {1, 1}} {
		p := query(t, ix, cimi.Query{OrderBy: order, First: page[0], Last: page[1]}, admin)
		want := ids(full)[page[0]-1 : page[1]]
		if p.Count != full.Count || !slices.Equal(ids(p), want) {
			t.Errorf("page %v = %v, want %v", page, ids(p), want)
		}
	}
}

func TestQuerySeesChangesInIDOrder(t *testing.T) {
	t.Parallel()
	ix := New()
	body := `{"acl":{"owner":{"principal":"::ANON","type":"ROLE"}}}`
	for i := range 50 {
		put(t, ix, fmt.Sprintf("V/%02d", (i*7)%50), uint64(i+1), body)
		if i%10 == 9 {
			query(t, ix, cimi.Query{}, cimi.Identity{}) // settle between batches
		}
	}
	for i := 0; i < 50; i += 2 {
		ix.Delete(fmt.Sprintf("V/%02d", i), 100)
	}
	put(t, ix, "V/00", 101, body)
	p := query(t, ix, cimi.Query{}, cimi.Identity{})
	var want []string
	want = append(want, "V/00")
	for i := 1; i < 50; i += 2 {
		want = append(want, fmt.Sprintf("V/%02d", i))
	}
	if p.Count != len(want) || !slices.Equal(ids(p), want) {
		t.Fatalf("Query = %d %v, want %v", p.Count, ids(p), want)
	}
}

func TestQueryRejectsMalformed(t *testing.T) {
	t.Parallel()
	ix := New()
	bad := []cimi.Query{
		{Filter: &cimi.Comparison{Attr: attr(), Op: cimi.Eq, Value: str("x")}},
		{Filter: &cimi.Comparison{Attr: attr("a", ""), Op: cimi.Eq, Value: str("x")}},
		{Filter: &cimi.Comparison{Attr: attr("a"), Op: 99, Value: str("x")}},
		{Filter: &cimi.Comparison{Attr: attr("a"), Op: cimi.Eq}},
		{Filter: &cimi.Logical{Op: 7, Terms: []cimi.Expr{cmpx("a", cimi.Eq, str("x"))}}},
		{Filter: and(cmpx("a", cimi.Eq, str("x")), nil)},
		{OrderBy: []cimi.Order{{}}},
	}
	for i, q := range bad {
		if _, err := ix.Query(q, admin); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("query %d: err = %v, want ErrInvalid", i, err)
		}
	}
}
