package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"stratuslab.dev/platform/cimi"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// clients is the number of concurrent HTTP clients of the benchmarks, as
// in the target (64 clients on 2 cores).
const clients = 64

// BenchmarkGetResource reads one ServiceMessage through the whole path:
// HTTP → gateway (token check) → bus → owner → store and back, from 64
// concurrent clients. It reports the 99th percentile latency.
func BenchmarkGetResource(b *testing.B) {
	e := newEnv(b, envOptions{})
	r := e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: `{"name":"bench","description":"x"}`}).want(b, "create", 201)
	url := e.url + "/cimi/" + r.body["resource-id"].(string)
	auth := "Bearer " + e.token("alice")
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: transport}
	defer transport.CloseIdleConnections()

	parallelLatencies(b, func() error {
		hr, _ := http.NewRequest("GET", url, nil)
		hr.Header.Set("Authorization", auth)
		resp, err := client.Do(hr)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// BenchmarkBareGet is the same read as a bare NATS request to the owner,
// without HTTP or the gateway: the floor BenchmarkGetResource is compared
// with.
func BenchmarkBareGet(b *testing.B) {
	e := newEnv(b, envOptions{})
	r := e.do(req{method: "POST", path: "/cimi/ServiceMessage", as: "admin", body: `{"name":"bench","description":"x"}`}).want(b, "create", 201)
	id := r.body["resource-id"].(string)
	who := cimi.Identity{User: "alice"}
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var doc cimiv1.ResourceDocument
			err := e.bus.Request(context.Background(), subject.CimiQuery(subject.Cimi, subject.OpCimiGet), actor(who),
				&cimiv1.GetResourceRequest{Actor: actor(who), Id: id}, &doc)
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func actor(who cimi.Identity) *commonv1.Actor {
	return &commonv1.Actor{User: who.User, Roles: who.Roles}
}

// parallelLatencies runs fn from the benchmark's 64 clients and reports
// the 99th percentile of its latency.
func parallelLatencies(b *testing.B, fn func() error) {
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := fn(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	reportP99(b, lat)
}

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBareNATSRequest is a bare NATS request/reply with the same
// 64 clients: an echo responder on the same server, a payload the size of
// a ServiceMessage. It is the physical floor of any query over the bus,
// measured beside BenchmarkGetResource.
func BenchmarkBareNATSRequest(b *testing.B) {
	e := newEnv(b, envOptions{noOwner: true})
	sub, err := e.nc.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	payload := bytes.Repeat([]byte("x"), 400)
	parallelLatencies(b, func() error {
		_, err := e.nc.Request("bench.echo", payload, 5*time.Second)
		return err
	})
}

// BenchmarkQuery10k reads the first page of 20 of a filtered query over a
// collection of 10,000 ServiceMessages, through the gateway, one request at
// a time; it reports the median latency (target: p50 <= 10 ms).
func BenchmarkQuery10k(b *testing.B) {
	e := newEnv(b, envOptions{})
	ctx := context.Background()
	coll, err := e.st.Collection(ctx, "ServiceMessage")
	if err != nil {
		b.Fatal(err)
	}
	// The documents are written straight into cimi's store, as the
	// provider would have written them: creating 10,000 through commands
	// would only make the set-up slow.
	acl := cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}, Rules: []cimi.Rule{{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.View}}}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 10000 {
		id := fmt.Sprintf("ServiceMessage/bench-%05d", i)
		doc, _ := json.Marshal(map[string]any{
			"id": id, "resourceURI": cimi.ResourceURI("ServiceMessage"), "created": now, "updated": now, "acl": acl,
			"name": fmt.Sprintf("message %d", i), "description": fmt.Sprintf("group-%d", i%10),
		})
		if _, err := coll.Create(ctx, id, doc); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, "10,000 messages indexed", func() bool {
		page, err := coll.Query(ctx, cimi.Query{}, cimi.Identity{})
		return err == nil && page.Count == 10000
	})
	url := e.url + "/cimi/ServiceMessage?" + neturl.Values{
		"$filter": {"description='group-3' and name!='message 3'"}, "$orderby": {"name:desc"}, "$first": {"1"}, "$last": {"20"},
	}.Encode()
	auth := "Bearer " + e.token("alice")
	client := &http.Client{}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		hr, _ := http.NewRequest("GET", url, nil)
		hr.Header.Set("Authorization", auth)
		t0 := time.Now()
		resp, err := client.Do(hr)
		if err != nil {
			b.Fatal(err)
		}
		var page struct {
			Count    int              `json:"count"`
			Messages []map[string]any `json:"serviceMessages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		if err != nil || page.Count != 999 || len(page.Messages) != 20 {
			b.Fatalf("count %d, %d on the page, %v", page.Count, len(page.Messages), err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
