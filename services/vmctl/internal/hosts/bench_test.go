package hosts_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkPlaceRelease places and releases machines from 50 goroutines
// sharing one registry on 10 hosts, against an in-process NATS server.
// Each iteration is one Place and one Release.
//
//	go test -run '^$' -bench PlaceRelease ./internal/hosts/
func BenchmarkPlaceRelease(b *testing.B) {
	e := newEnv(b)
	r := e.registry()
	for i := range 10 {
		e.register(r, fmt.Sprintf("node-%d", i), 64, 256*1024)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism((50 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := fmt.Sprintf("vm-%d", next.Add(1))
			h, err := r.Place(ctx, m, 1, 1024)
			if err != nil {
				b.Error(err)
				return
			}
			if err := r.Release(ctx, h, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "placements/s")
}
