package memindex

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
)

// benchIndex holds n Machine-like documents owned by 100 users.
func benchIndex(b *testing.B, n int) *Index {
	b.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	states := []string{"CREATING", "STARTED", "STOPPED", "ERROR", "PAUSED", "SUSPENDED", "STARTING", "STOPPING", "DELETING"}
	ix := New()
	for i := range n {
		id := fmt.Sprintf("Machine/%08x-%06d", r.Uint32(), i)
		created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
		body, _ := json.Marshal(map[string]any{
			"id": id, "resourceURI": "http://schemas.dmtf.org/cimi/1/Machine",
			"name": fmt.Sprintf("machine-%d", i), "description": "benchmark machine",
			"created": created.Format(time.RFC3339Nano), "updated": created.Format(time.RFC3339Nano),
			"state": states[r.IntN(len(states))], "cpu": 1 << r.IntN(4), "memory": 512 << r.IntN(5),
			"properties": map[string]any{"tier": fmt.Sprint(r.IntN(3))},
			"acl":        cimi.OwnedBy(cimi.Identity{User: fmt.Sprintf("user%02d", i%100)}),
		})
		if err := ix.Put(id, uint64(i+1), body, nil); err != nil {
			b.Fatal(err)
		}
	}
	return ix
}

func BenchmarkQuery100k(b *testing.B) {
	ix := benchIndex(b, 100_000)
	cmpState := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"state"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: "STARTED"}}
	cmpCPU := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"cpu"}}, Op: cimi.Ge, Value: cimi.Value{Kind: cimi.Int, Int: 2}}
	recent := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"created"}}, Op: cimi.Gt, Value: cimi.Value{Kind: cimi.Date, Time: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}}
	filter := &cimi.Logical{Op: cimi.And, Terms: []cimi.Expr{cmpState, cmpCPU}}
	admin := cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}
	for _, tc := range []struct {
		name string
		q    cimi.Query
		who  cimi.Identity
	}{
		{"filter-admin", cimi.Query{Filter: filter, First: 1, Last: 20}, admin},
		{"filter-user", cimi.Query{Filter: filter, First: 1, Last: 20}, cimi.Identity{User: "user42"}},
		{"date-admin", cimi.Query{Filter: recent, First: 1, Last: 20}, admin},
		{"ordered-admin", cimi.Query{Filter: filter, OrderBy: []cimi.Order{{Attr: cimi.Attribute{Path: []string{"created"}}, Desc: true}}, First: 1, Last: 20}, admin},
		{"all-admin", cimi.Query{First: 1, Last: 20}, admin},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := ix.Query(tc.q, tc.who); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutThenQuery100k measures a query that follows a write, so pays
// for merging the new document into id order.
func BenchmarkPutThenQuery100k(b *testing.B) {
	ix := benchIndex(b, 100_000)
	q := cimi.Query{
		Filter: &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"state"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: "STARTED"}},
		First:  1, Last: 20,
	}
	admin := cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}
	body := []byte(`{"state":"STARTED","acl":{"owner":{"principal":"u","type":"USER"}}}`)
	rev := uint64(1 << 40)
	for i := 0; b.Loop(); i++ {
		rev++
		if err := ix.Put(fmt.Sprintf("Machine/new-%d", i), rev, body, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := ix.Query(q, admin); err != nil {
			b.Fatal(err)
		}
	}
}
