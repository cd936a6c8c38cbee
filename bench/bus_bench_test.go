package bench

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// Bus benchmarks run on the embedded server (bus.StartServer) with file
// storage, sender and consumer on separate TCP connections as in separate
// processes. Targets: command round trip (send → handler → completion event
// seen by the sender) p50 <= 0.5 ms, >= 20,000 commands/s sustained, and at
// most twice the cost of a bare JetStream publish + pull consume of the
// same payload (BenchmarkBareJetStream).

// busInFlight is the number of commands kept in flight by the concurrent
// variants.
const busInFlight = 64

// benchPayload is the command payload of every benchmark.
func benchPayload() *commonv1.ResourceRef {
	return &commonv1.ResourceRef{Id: "Volume/6a1f0c1e-3c8e-4b5e-9a57-1f6f3a0c2d4e"}
}

// busServer starts an embedded server in a temporary directory and returns
// a function making new TCP connections to it.
func busServer(b *testing.B) func() (*nats.Conn, jetstream.JetStream) {
	b.Helper()
	s, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: b.TempDir(), Logger: benchLog()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Shutdown)
	dial := func() (*nats.Conn, jetstream.JetStream) {
		nc, err := bus.Connect(context.Background(), bus.ConnOptions{URLs: []string{s.ClientURL()}, Logger: benchLog()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		return nc, js
	}
	return dial
}

func benchLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waiters hands completion signals to the goroutine waiting for them.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (w *waiters) add(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *waiters) done(id string) {
	w.mu.Lock()
	ch := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ch != nil {
		ch <- struct{}{}
	}
}

// background runs fn until the benchmark ends.
func background(b *testing.B, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			b.Error(err)
		}
	}()
	b.Cleanup(func() { cancel(); <-done })
}

// roundTrips runs b.N round trips with inFlight goroutines, each timing
// one(i) from start to end, and reports the median and 99th percentile
// latency and the throughput.
func roundTrips(b *testing.B, inFlight int, one func(i int)) (p50 time.Duration) {
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range inFlight {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				one(i)
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	return lat[len(lat)/2]
}

// BenchmarkCommandRoundTrip measures a command from Send to the sender
// seeing its …_completed event: JetStream publish and ack, delivery to the
// durable consumer, handler (decode), completion event stored, command
// acknowledged, event delivered to an ordered subscription.
func BenchmarkCommandRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name     string
		inFlight int
	}{{"sequential", 1}, {"concurrent", busInFlight}} {
		b.Run(tc.name, func(b *testing.B) {
			dial := busServer(b)
			snc, sjs := dial()
			if err := bus.EnsureStreams(context.Background(), sjs, bus.StreamOptions{}); err != nil {
				b.Fatal(err)
			}
			sender := bus.New(snc, sjs, bus.Options{Service: "cimi", Logger: benchLog()})
			wnc, wjs := dial()
			worker := bus.New(wnc, wjs, bus.Options{Service: "bench", Logger: benchLog()})

			w := &waiters{m: map[string]chan struct{}{}}
			background(b, func(ctx context.Context) error {
				return worker.Consume(ctx, bus.ConsumerSpec{Concurrency: busInFlight}, func(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
					var ref commonv1.ResourceRef
					if err := cmd.Decode(&ref); err != nil {
						return bus.Result{}, err
					}
					return bus.Result{Affected: []string{ref.Id}}, nil
				})
			})
			background(b, func(ctx context.Context) error {
				spec := bus.SubscribeSpec{Subjects: []string{"evt.bench.>"}, Since: time.Now().Add(-time.Minute)}
				return sender.Subscribe(ctx, spec, func(_ context.Context, ev *bus.Event) error {
					w.done(ev.ID())
					return nil
				})
			})
			payload := benchPayload()
			ids := make([]string, b.N+1)
			for i := range ids {
				ids[i] = "c-" + strconv.Itoa(i)
			}
			// Warm up: the consumer and the subscription are ready once one
			// command made the whole trip.
			ch := w.add(ids[b.N] + ".terminal")
			if err := sender.Send(context.Background(), "cmd.bench.volume.create", &commonv1.Meta{CommandId: ids[b.N]}, payload); err != nil {
				b.Fatal(err)
			}
			<-ch
			roundTrips(b, tc.inFlight, func(i int) {
				ch := w.add(ids[i] + ".terminal")
				if err := sender.Send(context.Background(), "cmd.bench.volume.create", &commonv1.Meta{CommandId: ids[i]}, payload); err != nil {
					b.Error(err)
					return
				}
				<-ch
			})
		})
	}
}

// BenchmarkBareJetStream is the baseline of BenchmarkCommandRoundTrip: the
// same payload published to a work-queue stream with a JetStream ack and
// taken by a durable pull consumer that acknowledges it, timed from publish
// to reception.
func BenchmarkBareJetStream(b *testing.B) {
	for _, tc := range []struct {
		name     string
		inFlight int
	}{{"sequential", 1}, {"concurrent", busInFlight}} {
		b.Run(tc.name, func(b *testing.B) {
			dial := busServer(b)
			_, pjs := dial()
			ctx := context.Background()
			if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "BARE", Subjects: []string{"bare.>"},
				Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
				b.Fatal(err)
			}
			// The consumer is made and used on a connection of its own, as in
			// another process.
			_, cjs := dial()
			cons, err := cjs.CreateOrUpdateConsumer(ctx, "BARE", jetstream.ConsumerConfig{Durable: "bare", AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				b.Fatal(err)
			}
			w := &waiters{m: map[string]chan struct{}{}}
			cc, err := cons.Consume(func(m jetstream.Msg) {
				_ = m.Ack()
				w.done(m.Headers().Get(nats.MsgIdHdr))
			}, jetstream.PullMaxMessages(busInFlight))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(cc.Stop)
			data, err := proto.Marshal(benchPayload())
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = "m-" + strconv.Itoa(i)
			}
			roundTrips(b, tc.inFlight, func(i int) {
				ch := w.add(ids[i])
				if _, err := pjs.Publish(ctx, "bare.volume.create", data, jetstream.WithMsgID(ids[i])); err != nil {
					b.Error(err)
					return
				}
				<-ch
			})
		})
	}
}
