package gateway

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

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

	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			hr, _ := http.NewRequest("GET", url, nil)
			hr.Header.Set("Authorization", auth)
			t0 := time.Now()
			resp, err := client.Do(hr)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
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

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
