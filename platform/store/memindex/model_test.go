package memindex

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// The index answers queries from columns of decoded cells; these tests
// check it against a plain model: Match and cimi.ACL.Allows on every
// document, compareValues for ordering, sort and slice for paging.

type model struct {
	docs map[string]map[string]any
	acls map[string]*cimi.ACL
}

func (m *model) query(q cimi.Query, who cimi.Identity) store.Page {
	var hits []string
	for id, doc := range m.docs {
		acl := m.acls[id]
		if !who.IsAdmin() && (acl == nil || !acl.Allows(who, cimi.View)) {
			continue
		}
		if Match(q.Filter, doc) {
			hits = append(hits, id)
		}
	}
	slices.SortFunc(hits, func(a, b string) int {
		for _, o := range q.OrderBy {
			va, oka := lookup(m.docs[a], o.Attr.Path)
			vb, okb := lookup(m.docs[b], o.Attr.Path)
			c := compareValues(va, oka, vb, okb)
			if o.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a, b)
	})
	p := store.Page{Count: len(hits)}
	from, to := max(q.First, 1), q.Last
	if to == 0 || to > len(hits) {
		to = len(hits)
	}
	for i := from; i <= to; i++ {
		p.Docs = append(p.Docs, store.Document{ID: hits[i-1]})
	}
	return p
}

func randomValue(r *rand.Rand) any {
	switch r.IntN(11) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return r.IntN(7) - 3
	case 3:
		return float64(r.IntN(12))/2 - 3
	case 4:
		return fmt.Sprintf("s%d", r.IntN(5))
	case 5:
		return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(8)) * 12 * time.Hour).Format(time.RFC3339)
	case 6:
		return time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 6*3600)).Add(time.Duration(r.IntN(8))*12*time.Hour + 500*time.Millisecond).Format(time.RFC3339Nano)
	case 7:
		return []any{fmt.Sprintf("s%d", r.IntN(5)), r.IntN(3)}
	case 8:
		return []any{}
	case 9:
		return map[string]any{"k": fmt.Sprintf("s%d", r.IntN(5))}
	}
	return "2024-01-0x" // looks like a date, is not one
}

func randomLiteral(r *rand.Rand) cimi.Value {
	switch r.IntN(6) {
	case 0:
		return cimi.Value{Kind: cimi.Null}
	case 1:
		return cimi.Value{Kind: cimi.Bool, Bool: r.IntN(2) == 0}
	case 2:
		return cimi.Value{Kind: cimi.Int, Int: int64(r.IntN(7) - 3)}
	case 3:
		return cimi.Value{Kind: cimi.Date, Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(16)) * 6 * time.Hour)}
	}
	return cimi.Value{Kind: cimi.String, Str: fmt.Sprintf("s%d", r.IntN(5))}
}

var attrs = [][]string{{"a"}, {"b"}, {"c"}, {"n", "k"}}

func randomExpr(r *rand.Rand, depth int) cimi.Expr {
	if depth > 0 && r.IntN(3) == 0 {
		l := &cimi.Logical{Op: cimi.And}
		if r.IntN(2) == 0 {
			l.Op = cimi.Or
		}
		for range 1 + r.IntN(3) {
			l.Terms = append(l.Terms, randomExpr(r, depth-1))
		}
		return l
	}
	return &cimi.Comparison{
		Attr:  cimi.Attribute{Path: attrs[r.IntN(len(attrs))]},
		Op:    cimi.CmpOp(1 + r.IntN(6)),
		Value: randomLiteral(r),
	}
}

func randomDoc(r *rand.Rand) (map[string]any, *cimi.ACL) {
	doc := map[string]any{}
	for _, a := range []string{"a", "b", "c"} {
		if r.IntN(5) > 0 {
			doc[a] = randomValue(r)
		}
	}
	if r.IntN(2) == 0 {
		doc["n"] = map[string]any{"k": randomValue(r)}
	}
	if r.IntN(10) == 0 {
		return doc, nil
	}
	users := []string{"u0", "u1", "u2"}
	acl := cimi.ACL{Owner: cimi.Owner{Principal: users[r.IntN(3)], Type: cimi.User}}
	if r.IntN(3) == 0 {
		acl.Rules = append(acl.Rules, cimi.Rule{Principal: "staff", Type: cimi.Role, Right: cimi.View})
	}
	if r.IntN(4) == 0 {
		acl.Rules = append(acl.Rules, cimi.Rule{Principal: users[r.IntN(3)], Type: cimi.User, Right: cimi.Modify})
	}
	acl.Rules = append(acl.Rules, cimi.Rule{Principal: cimi.RoleAdmin, Type: cimi.Role, Right: cimi.All})
	doc["acl"] = acl
	return doc, &acl
}

func TestQueryAgreesWithModel(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	ix := New()
	m := &model{docs: map[string]map[string]any{}, acls: map[string]*cimi.ACL{}}
	revs := map[string]uint64{}
	var rev uint64
	who := []cimi.Identity{{}, {User: "u0"}, {User: "u1", Roles: []string{"staff"}}, admin}

	for round := range 60 {
		// A batch of writes: creates, replacements and deletions.
		for range 40 {
			id := fmt.Sprintf("D/%03d", r.IntN(300))
			rev++
			if _, ok := m.docs[id]; ok && r.IntN(4) == 0 {
				ix.Delete(id, revs[id])
				delete(m.docs, id)
				continue
			}
			doc, acl := randomDoc(r)
			body, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var plain map[string]any
			if err := json.Unmarshal(body, &plain); err != nil {
				t.Fatal(err)
			}
			put(t, ix, id, rev, string(body))
			m.docs[id], m.acls[id], revs[id] = plain, acl, rev
		}
		for range 25 {
			q := cimi.Query{}
			if r.IntN(8) > 0 {
				q.Filter = randomExpr(r, 2)
			}
			for range r.IntN(3) {
				q.OrderBy = append(q.OrderBy, cimi.Order{Attr: cimi.Attribute{Path: attrs[r.IntN(len(attrs))]}, Desc: r.IntN(2) == 0})
			}
			if r.IntN(2) == 0 {
				q.First = 1 + r.IntN(20)
				q.Last = q.First + r.IntN(30)
			}
			w := who[r.IntN(len(who))]
			got := query(t, ix, q, w)
			want := m.query(q, w)
			if got.Count != want.Count || !slices.Equal(ids(got), ids(want)) {
				qj, _ := json.Marshal(q)
				t.Fatalf("round %d, query %s as %+v:\n got %d %v\nwant %d %v", round, qj, w, got.Count, ids(got), want.Count, ids(want))
			}
		}
	}
}

// TestColumnEviction queries more attributes than the index keeps columns
// for, interleaved with writes, and checks every answer.
func TestColumnEviction(t *testing.T) {
	t.Parallel()
	ix := New()
	acl := `"acl":{"owner":{"principal":"::ANON","type":"ROLE"}}`
	for i := range 50 {
		put(t, ix, fmt.Sprintf("D/%02d", i), uint64(i+1), fmt.Sprintf(`{"a%d":%d,"n":%d,%s}`, i%(maxColumns+5), i, i%3, acl))
	}
	rev := uint64(100)
	for round := range 3 {
		for k := range maxColumns + 5 {
			rev++
			id := fmt.Sprintf("D/%02d", (round*7+k)%50)
			put(t, ix, id, rev, fmt.Sprintf(`{"a%d":-1,"n":%d,%s}`, k, (k+1)%3, acl))
			q := cimi.Query{Filter: &cimi.Logical{Op: cimi.And, Terms: []cimi.Expr{
				&cimi.Comparison{Attr: cimi.Attribute{Path: []string{fmt.Sprintf("a%d", k)}}, Op: cimi.Lt, Value: cimi.Value{Kind: cimi.Int, Int: 40}},
				&cimi.Comparison{Attr: cimi.Attribute{Path: []string{"n"}}, Op: cimi.Ne, Value: cimi.Value{Kind: cimi.Int, Int: 2}},
			}}}
			got := query(t, ix, q, cimi.Identity{})
			var want []string
			for i := range 50 {
				d, _ := ix.Get(fmt.Sprintf("D/%02d", i))
				doc, _ := Decode(d.Body)
				if Match(q.Filter, doc) {
					want = append(want, d.ID)
				}
			}
			if !slices.Equal(ids(got), want) {
				t.Fatalf("round %d attribute a%d: got %v, want %v", round, k, ids(got), want)
			}
		}
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if len(ix.cols) > maxColumns {
		t.Fatalf("%d columns kept, limit %d", len(ix.cols), maxColumns)
	}
}
