package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
)

// Store benchmarks run the embedded store (JetStream KV and its in-memory
// index) on an in-process NATS server with file storage. Targets: Get
// >= 50,000/s, Put with revision >= 10,000/s, a filtered and paged query
// over 100,000 documents at p50 <= 20 ms.

var machineStates = []string{"CREATING", "STARTING", "STARTED", "STOPPING", "STOPPED", "PAUSED", "SUSPENDED", "DELETING", "ERROR"}

// machine returns a Machine document of a realistic size (about 700
// bytes), owned by one of 100 users.
func machine(i int, r *rand.Rand) json.RawMessage {
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	owner := fmt.Sprintf("user%02d", i%100)
	doc := map[string]any{
		"id":          fmt.Sprintf("Machine/%08x-%04d", r.Uint32(), i),
		"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine",
		"name":        fmt.Sprintf("machine-%d", i),
		"description": "a machine used by the store benchmarks",
		"created":     created.Format(time.RFC3339Nano),
		"updated":     created.Add(time.Hour).Format(time.RFC3339Nano),
		"state":       machineStates[r.IntN(len(machineStates))],
		"cpu":         1 << r.IntN(4),
		"memory":      512 << r.IntN(5),
		"properties":  map[string]any{"tier": fmt.Sprint(r.IntN(3)), "project": fmt.Sprintf("p%d", r.IntN(20))},
		"operations": []any{
			map[string]any{"rel": "edit", "href": fmt.Sprintf("Machine/%d", i)},
			map[string]any{"rel": "delete", "href": fmt.Sprintf("Machine/%d", i)},
		},
		"acl": cimi.ACL{
			Owner: cimi.Owner{Principal: owner, Type: cimi.User},
			Rules: []cimi.Rule{{Principal: cimi.RoleAdmin, Type: cimi.Role, Right: cimi.All}},
		},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// openStore opens the Machine collection of a store on a fresh server:
// over loopback TCP, as services reach a NATS server, or with an
// in-process connection, as the all-in-one binary may.
func openStore(b *testing.B, inProcess bool, opts ...embedded.Option) store.Collection {
	b.Helper()
	srv := testkit.NATS(b, "")
	var natsOpts []nats.Option
	url := srv.ClientURL()
	if inProcess {
		natsOpts, url = append(natsOpts, nats.InProcessServer(srv)), ""
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	s, err := embedded.Open(context.Background(), js, "bench", opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	c, err := s.Collection(context.Background(), "Machine")
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// load creates n documents with a few concurrent writers and returns their
// ids and revisions.
func load(b *testing.B, c store.Collection, n int) ([]string, []uint64) {
	b.Helper()
	ids := make([]string, n)
	revs := make([]uint64, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := machine(i, r)
				var head struct{ ID string }
				_ = json.Unmarshal(body, &head)
				rev, err := c.Create(context.Background(), head.ID, body)
				if err != nil {
					failed.Store(err)
					return
				}
				ids[i], revs[i] = head.ID, rev
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("load: %v", err)
	}
	return ids, revs
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// connections are the ways a service reaches NATS (over TCP as a
// standalone service, in process as in the all-in-one), with the default
// reads from the index and with strict reads, whose Get is a bare KV get:
// the physical limit of a read that asks the server.
var connections = []struct {
	name      string
	inProcess bool
	opts      []embedded.Option
}{
	{"tcp", false, nil},
	{"inprocess", true, nil},
	{"tcp-strict", false, []embedded.Option{embedded.WithStrictReads()}},
	{"inprocess-strict", true, []embedded.Option{embedded.WithStrictReads()}},
}

// BenchmarkStoreGet measures Get, one caller at a time and with 16 in
// flight, as a busy service has.
func BenchmarkStoreGet(b *testing.B) {
	for _, conn := range connections {
		b.Run(conn.name, func(b *testing.B) {
			c := openStore(b, conn.inProcess, conn.opts...)
			ids, _ := load(b, c, 1000)
			ctx := context.Background()
			b.Run("serial", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if _, err := c.Get(ctx, ids[i%len(ids)]); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b)
			})
			b.Run("parallel", func(b *testing.B) {
				b.SetParallelism(8)
				var n atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(n.Add(1))
						if _, err := c.Get(ctx, ids[i%len(ids)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportRate(b)
			})
		})
	}
}

// BenchmarkStoreUpdate measures Put with a revision check (the write every
// Update ends in) on documents no other writer touches, one caller at a
// time and with 16 in flight.
func BenchmarkStoreUpdate(b *testing.B) {
	for _, conn := range connections {
		b.Run(conn.name, func(b *testing.B) {
			c := openStore(b, conn.inProcess, conn.opts...)
			ids, revs := load(b, c, 1000)
			ctx := context.Background()
			r := rand.New(rand.NewPCG(1, 1))
			bodies := make([]json.RawMessage, len(ids))
			for i, id := range ids {
				var m map[string]any
				_ = json.Unmarshal(machine(i, r), &m)
				m["id"] = id
				bodies[i], _ = json.Marshal(m)
			}
			b.Run("serial", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					k := i % len(ids)
					rev, err := c.Put(ctx, ids[k], bodies[k], revs[k])
					if err != nil {
						b.Fatal(err)
					}
					revs[k] = rev
				}
				reportRate(b)
			})
			b.Run("parallel", func(b *testing.B) {
				b.SetParallelism(8)
				var worker atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					// Each goroutine writes its own 50 documents; 16 of them
					// fit in the 1000 loaded.
					lo := (int(worker.Add(1)) - 1) * 50 % len(ids)
					for i := 0; pb.Next(); i++ {
						k := lo + i%50
						rev, err := c.Put(ctx, ids[k], bodies[k], revs[k])
						if err != nil {
							b.Error(err)
							return
						}
						revs[k] = rev
					}
				})
				reportRate(b)
			})
			b.Run("update-fn/parallel", func(b *testing.B) {
				// Update: a Get, the function, a Put with the revision read.
				b.SetParallelism(8)
				var worker atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					lo := (int(worker.Add(1)) - 1) * 50 % len(ids)
					for i := 0; pb.Next(); i++ {
						k := lo + i%50
						_, err := c.Update(ctx, ids[k], func(store.Document) (json.RawMessage, error) { return bodies[k], nil })
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportRate(b)
			})
		})
	}
}

// BenchmarkStoreQuery100k loads 100,000 documents owned by 100 users and
// runs filtered, paged queries, reporting the median and 99th percentile
// latency.
func BenchmarkStoreQuery100k(b *testing.B) {
	c := openStore(b, false)
	load(b, c, 100_000)
	ctx := context.Background()
	started := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"state"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: "STARTED"}}
	bigCPU := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"cpu"}}, Op: cimi.Ge, Value: cimi.Value{Kind: cimi.Int, Int: 2}}
	filter := &cimi.Logical{Op: cimi.And, Terms: []cimi.Expr{started, bigCPU}}
	recent := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"created"}}, Op: cimi.Gt, Value: cimi.Value{Kind: cimi.Date, Time: time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)}}
	admin := cimi.Identity{User: "root", Roles: []string{cimi.RoleAdmin}}
	user := cimi.Identity{User: "user42"}
	byCreated := []cimi.Order{{Attr: cimi.Attribute{Path: []string{"created"}}, Desc: true}}
	cases := []struct {
		name string
		q    cimi.Query
		who  cimi.Identity
	}{
		{"filtered-paged-admin", cimi.Query{Filter: filter, First: 41, Last: 60}, admin},
		{"filtered-paged-user", cimi.Query{Filter: filter, First: 1, Last: 20}, user},
		{"date-filter-paged-admin", cimi.Query{Filter: recent, First: 1, Last: 20}, admin},
		{"filtered-ordered-paged-admin", cimi.Query{Filter: filter, OrderBy: byCreated, First: 1, Last: 20}, admin},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				p, err := c.Query(ctx, tc.q, tc.who)
				lat = append(lat, time.Since(t0))
				if err != nil || p.Count == 0 || len(p.Docs) == 0 {
					b.Fatalf("query: %d docs of %d, %v", len(p.Docs), p.Count, err)
				}
			}
			slices.Sort(lat)
			ms := func(q float64) float64 {
				return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.5), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
		})
	}
}
