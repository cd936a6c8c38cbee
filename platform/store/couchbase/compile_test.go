package couchbase

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

const ks = "`stratuslab`.`pdisk`.`Volume`"

var admin = cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}

func attr(p ...string) cimi.Attribute { return cimi.Attribute{Path: p} }

func cmp(a cimi.Attribute, op cimi.CmpOp, v cimi.Value) *cimi.Comparison {
	return &cimi.Comparison{Attr: a, Op: op, Value: v}
}

func str(s string) cimi.Value { return cimi.Value{Kind: cimi.String, Str: s} }
func num(i int64) cimi.Value  { return cimi.Value{Kind: cimi.Int, Int: i} }

// Expected fragments: a typed comparison of the state attribute, as the
// compiler writes it for the first parameter and the first variable.
const stateEqV1 = "((IS_STRING(d.`state`) AND d.`state` = $v1) OR (IS_ARRAY(d.`state`) AND ANY e1 IN d.`state` SATISFIES (IS_STRING(e1) AND e1 = $v1) END))"

func TestCompileFilters(t *testing.T) {
	t.Parallel()
	when := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		filter cimi.Expr
		where  string
		params map[string]any
	}{
		{"string eq", cmp(attr("state"), cimi.Eq, str("AVAILABLE")), stateEqV1, map[string]any{"v1": "AVAILABLE"}},
		{"string ne matches missing",
			cmp(attr("state"), cimi.Ne, str("ERROR")),
			"(d.`state` IS MISSING OR d.`state` IS NULL OR (IS_STRING(d.`state`) AND d.`state` != $v1) OR (IS_ARRAY(d.`state`) AND ANY e1 IN d.`state` SATISFIES (IS_STRING(e1) AND e1 != $v1) END))",
			map[string]any{"v1": "ERROR"}},
		{"int lt",
			cmp(attr("capacity"), cimi.Lt, num(10)),
			"((IS_NUMBER(d.`capacity`) AND d.`capacity` < $v1) OR (IS_ARRAY(d.`capacity`) AND ANY e1 IN d.`capacity` SATISFIES (IS_NUMBER(e1) AND e1 < $v1) END))",
			map[string]any{"v1": int64(10)}},
		{"int le", cmp(attr("n"), cimi.Le, num(-3)),
			"((IS_NUMBER(d.`n`) AND d.`n` <= $v1) OR (IS_ARRAY(d.`n`) AND ANY e1 IN d.`n` SATISFIES (IS_NUMBER(e1) AND e1 <= $v1) END))",
			map[string]any{"v1": int64(-3)}},
		{"bool ge", cmp(attr("ok"), cimi.Ge, cimi.Value{Kind: cimi.Bool, Bool: true}),
			"((IS_BOOLEAN(d.`ok`) AND d.`ok` >= $v1) OR (IS_ARRAY(d.`ok`) AND ANY e1 IN d.`ok` SATISFIES (IS_BOOLEAN(e1) AND e1 >= $v1) END))",
			map[string]any{"v1": true}},
		{"date gt", cmp(attr("created"), cimi.Gt, cimi.Value{Kind: cimi.Date, Time: when}),
			"((IS_STRING(d.`created`) AND STR_TO_MILLIS(d.`created`) > $v1) OR (IS_ARRAY(d.`created`) AND ANY e1 IN d.`created` SATISFIES (IS_STRING(e1) AND STR_TO_MILLIS(e1) > $v1) END))",
			map[string]any{"v1": when.UnixMilli()}},
		{"null eq", cmp(attr("name"), cimi.Eq, cimi.Value{Kind: cimi.Null}),
			"(d.`name` IS MISSING OR d.`name` IS NULL)", map[string]any{}},
		{"null ne", cmp(attr("name"), cimi.Ne, cimi.Value{Kind: cimi.Null}),
			"(d.`name` IS NOT MISSING AND d.`name` IS NOT NULL)", map[string]any{}},
		{"null ordering", cmp(attr("name"), cimi.Gt, cimi.Value{Kind: cimi.Null}), "FALSE", map[string]any{}},
		{"property", cmp(attr("properties", "my key"), cimi.Eq, str("v")),
			"((IS_STRING(d.`properties`.`my key`) AND d.`properties`.`my key` = $v1) OR (IS_ARRAY(d.`properties`.`my key`) AND ANY e1 IN d.`properties`.`my key` SATISFIES (IS_STRING(e1) AND e1 = $v1) END))",
			map[string]any{"v1": "v"}},
		{"nested path", cmp(attr("acl", "owner", "principal"), cimi.Eq, str("alice")),
			"((IS_STRING(d.`acl`.`owner`.`principal`) AND d.`acl`.`owner`.`principal` = $v1) OR (IS_ARRAY(d.`acl`.`owner`.`principal`) AND ANY e1 IN d.`acl`.`owner`.`principal` SATISFIES (IS_STRING(e1) AND e1 = $v1) END))",
			map[string]any{"v1": "alice"}},
		{"and/or nesting",
			&cimi.Logical{Op: cimi.And, Terms: []cimi.Expr{
				cmp(attr("state"), cimi.Eq, str("AVAILABLE")),
				&cimi.Logical{Op: cimi.Or, Terms: []cimi.Expr{
					cmp(attr("size"), cimi.Gt, num(1)),
					cmp(attr("tag"), cimi.Eq, cimi.Value{Kind: cimi.Null}),
				}},
			}},
			"(" + stateEqV1 + " AND (((IS_NUMBER(d.`size`) AND d.`size` > $v2) OR (IS_ARRAY(d.`size`) AND ANY e2 IN d.`size` SATISFIES (IS_NUMBER(e2) AND e2 > $v2) END)) OR (d.`tag` IS MISSING OR d.`tag` IS NULL)))",
			map[string]any{"v1": "AVAILABLE", "v2": int64(1)}},
		{"empty and", &cimi.Logical{Op: cimi.And}, "TRUE", map[string]any{}},
		{"empty or", &cimi.Logical{Op: cimi.Or}, "FALSE", map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stmt, count, params, err := Compile(ks, cimi.Query{Filter: tt.filter}, admin)
			if err != nil {
				t.Fatal(err)
			}
			wantCount := "SELECT RAW COUNT(*) FROM " + ks + " AS d WHERE " + tt.where
			if count != wantCount {
				t.Errorf("count statement\n got %s\nwant %s", count, wantCount)
			}
			wantStmt := "SELECT META(d).id AS id, META(d).cas AS cas, d AS body FROM " + ks + " AS d WHERE " + tt.where +
				" ORDER BY META(d).id ASC OFFSET $offset"
			if stmt != wantStmt {
				t.Errorf("statement\n got %s\nwant %s", stmt, wantStmt)
			}
			want := map[string]any{"offset": 0}
			for k, v := range tt.params {
				want[k] = v
			}
			if !reflect.DeepEqual(params, want) {
				t.Errorf("params = %#v, want %#v", params, want)
			}
		})
	}
}

func TestCompileOrderAndPaging(t *testing.T) {
	t.Parallel()
	order := []cimi.Order{{Attr: attr("created"), Desc: true}, {Attr: attr("properties", "k")}}
	tests := []struct {
		name    string
		q       cimi.Query
		orderBy string
		page    string
		params  map[string]any
	}{
		{"no paging", cimi.Query{}, "META(d).id ASC", " OFFSET $offset", map[string]any{"offset": 0}},
		{"first and last", cimi.Query{First: 11, Last: 20}, "META(d).id ASC", " OFFSET $offset LIMIT $limit", map[string]any{"offset": 10, "limit": 10}},
		{"last only", cimi.Query{Last: 5}, "META(d).id ASC", " OFFSET $offset LIMIT $limit", map[string]any{"offset": 0, "limit": 5}},
		{"first only", cimi.Query{First: 3}, "META(d).id ASC", " OFFSET $offset", map[string]any{"offset": 2}},
		{"empty page", cimi.Query{First: 5, Last: 2}, "META(d).id ASC", " OFFSET $offset LIMIT $limit", map[string]any{"offset": 4, "limit": 0}},
		{"order", cimi.Query{OrderBy: order, First: 1, Last: 1}, "d.`created` DESC, d.`properties`.`k` ASC, META(d).id ASC", " OFFSET $offset LIMIT $limit", map[string]any{"offset": 0, "limit": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stmt, _, params, err := Compile(ks, tt.q, admin)
			if err != nil {
				t.Fatal(err)
			}
			want := "SELECT META(d).id AS id, META(d).cas AS cas, d AS body FROM " + ks + " AS d WHERE TRUE ORDER BY " + tt.orderBy + tt.page
			if stmt != want {
				t.Errorf("statement\n got %s\nwant %s", stmt, want)
			}
			if !reflect.DeepEqual(params, tt.params) {
				t.Errorf("params = %#v, want %#v", params, tt.params)
			}
		})
	}
}

func TestCompileACL(t *testing.T) {
	t.Parallel()
	const userClause = "((d.`acl`.`owner`.`type` = \"USER\" AND d.`acl`.`owner`.`principal` = $user) OR (d.`acl`.`owner`.`type` = \"ROLE\" AND d.`acl`.`owner`.`principal` IN $roles)" +
		" OR ANY e1 IN d.`acl`.`rules` SATISFIES e1.`right` IN [\"VIEW\", \"MODIFY\", \"ALL\"] AND ((e1.`type` = \"USER\" AND e1.`principal` = $user) OR (e1.`type` = \"ROLE\" AND e1.`principal` IN $roles)) END)"
	const anonClause = "((d.`acl`.`owner`.`type` = \"ROLE\" AND d.`acl`.`owner`.`principal` IN $roles)" +
		" OR ANY e1 IN d.`acl`.`rules` SATISFIES e1.`right` IN [\"VIEW\", \"MODIFY\", \"ALL\"] AND ((e1.`type` = \"ROLE\" AND e1.`principal` IN $roles)) END)"
	tests := []struct {
		name   string
		who    cimi.Identity
		where  string
		params map[string]any
	}{
		{"user", cimi.Identity{User: "alice"}, userClause,
			map[string]any{"offset": 0, "user": "alice", "roles": []string{cimi.RoleAnon, cimi.RoleUser}}},
		{"user with roles", cimi.Identity{User: "bob", Roles: []string{"staff", "ops"}}, userClause,
			map[string]any{"offset": 0, "user": "bob", "roles": []string{cimi.RoleAnon, cimi.RoleUser, "staff", "ops"}}},
		{"anonymous", cimi.Identity{}, anonClause,
			map[string]any{"offset": 0, "roles": []string{cimi.RoleAnon}}},
		{"admin sees all", admin, "TRUE", map[string]any{"offset": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, count, params, err := Compile(ks, cimi.Query{}, tt.who)
			if err != nil {
				t.Fatal(err)
			}
			if want := "SELECT RAW COUNT(*) FROM " + ks + " AS d WHERE " + tt.where; count != want {
				t.Errorf("count statement\n got %s\nwant %s", count, want)
			}
			if !reflect.DeepEqual(params, tt.params) {
				t.Errorf("params = %#v, want %#v", params, tt.params)
			}
		})
	}

	// With a filter, the ACL clause follows it and its variable is the next.
	_, count, _, err := Compile(ks, cimi.Query{Filter: cmp(attr("state"), cimi.Eq, str("x"))}, cimi.Identity{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT RAW COUNT(*) FROM " + ks + " AS d WHERE " + stateEqV1 + " AND " + strings.ReplaceAll(userClause, "e1", "e2")
	if count != want {
		t.Errorf("filtered count statement\n got %s\nwant %s", count, want)
	}
}

// TestCompileNeverInlinesInput checks that hostile literals go to
// parameters only and hostile attribute names are refused.
func TestCompileNeverInlinesInput(t *testing.T) {
	t.Parallel()
	hostile := "x' OR 1=1 -- \" ` ; DROP"
	stmt, count, params, err := Compile(ks, cimi.Query{Filter: cmp(attr("name"), cimi.Eq, str(hostile))}, cimi.Identity{User: hostile, Roles: []string{hostile}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{stmt, count} {
		if strings.Contains(s, "1=1") || strings.Contains(s, "DROP") {
			t.Fatalf("input inlined in %s", s)
		}
	}
	if params["v1"] != hostile || params["user"] != hostile {
		t.Fatalf("params = %#v", params)
	}
	for _, name := range []string{"a`b", "`) OR TRUE OR (`", "back\\slash", "new\nline", "", strings.Repeat("a", 201), "bad\xffutf8"} {
		for _, q := range []cimi.Query{
			{Filter: cmp(attr("ok", name), cimi.Eq, str("v"))},
			{OrderBy: []cimi.Order{{Attr: attr(name)}}},
		} {
			if _, _, _, err := Compile(ks, q, admin); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("attribute %q: err = %v, want ErrInvalid", name, err)
			}
		}
	}
	for _, name := range []string{"first-name", "a.b", "名前", "x y", "$v1", "'quoted'"} {
		if _, _, _, err := Compile(ks, cimi.Query{Filter: cmp(attr(name), cimi.Eq, str("v"))}, admin); err != nil {
			t.Errorf("attribute %q refused: %v", name, err)
		}
	}
}

func TestCompileRejectsMalformed(t *testing.T) {
	t.Parallel()
	for i, q := range []cimi.Query{
		{Filter: cmp(attr(), cimi.Eq, str("x"))},
		{Filter: cmp(attr("a"), 42, str("x"))},
		{Filter: cmp(attr("a"), cimi.Eq, cimi.Value{Kind: 99})},
		{Filter: &cimi.Logical{Op: 3}},
	} {
		if _, _, _, err := Compile(ks, q, admin); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("query %d: err = %v, want ErrInvalid", i, err)
		}
	}
}

func TestIndexStatements(t *testing.T) {
	t.Parallel()
	got := IndexStatements(ks)
	if len(got) < 4 || got[0] != "CREATE PRIMARY INDEX IF NOT EXISTS ON "+ks {
		t.Fatalf("IndexStatements = %q", got)
	}
	for _, want := range []string{"(`acl`.`owner`.`principal`)", "(`created`)", "(`updated`)", "FOR r IN `acl`.`rules` END"} {
		found := false
		for _, s := range got {
			found = found || strings.Contains(s, want) && strings.Contains(s, "IF NOT EXISTS ON "+ks)
		}
		if !found {
			t.Errorf("no index statement with %s in %q", want, got)
		}
	}
}
