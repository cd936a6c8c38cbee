package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"libvirt.org/go/libvirt"

	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
)

// machineWatch follows the machines' changes and wakes whoever waits for
// a machine to reach a state.
type machineWatch struct {
	mu      sync.Mutex
	waiting map[string]chan struct{} // machine id → closed at Running
	seen    map[string]bool
}

func (w *machineWatch) receive(m *nats.Msg) {
	var ev cimiv1.ResourceChanged
	if proto.Unmarshal(m.Data, &ev) != nil {
		return
	}
	var doc struct {
		DetailedState string `json:"detailedState"`
	}
	if json.Unmarshal(ev.GetJson(), &doc) != nil || doc.DetailedState != "Running" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[ev.GetId()] = true
	if ch, ok := w.waiting[ev.GetId()]; ok {
		close(ch)
		delete(w.waiting, ev.GetId())
	}
}

// wait returns a channel closed once machine id is Running.
func (w *machineWatch) wait(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if w.seen[id] {
		close(ch)
		return ch
	}
	w.waiting[id] = ch
	return ch
}

// BenchmarkMachineRunning measures a machine from POST /cimi/Machine to
// Running on libvirt's test driver: the create (vmId, address), placement,
// the root disk from the image cache, the volatile swap-less disks, the
// context disk, define and start on the agent, and every document write
// and event between. Machines are killed after the measurement, so that
// the host keeps room. Compare with the bare libvirt define+start floor,
// services/vmctl/internal/hypervisor BenchmarkDefineStart, run beside it.
func BenchmarkMachineRunning(b *testing.B) {
	c := startCloud(b)
	nc, err := nats.Connect(c.natsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	w := &machineWatch{waiting: map[string]chan struct{}{}, seen: map[string]bool{}}
	sub, err := nc.Subscribe("evt.vmctl.machine.updated", w.receive)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	img, sum, size := qcow2Image(b, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, img) }))
	b.Cleanup(srv.Close)
	ctx := context.Background()
	body := map[string]any{"image": map[string]any{"url": srv.URL, "bytes": size, "sha1": sum}, "type": "t1.micro"}
	run := func() string {
		res, err := c.admin.Create(ctx, "Machine", body)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-w.wait(res.ID):
		case <-time.After(time.Minute):
			b.Fatalf("%s not Running within a minute", res.ID)
		}
		return res.ID
	}
	kill := func(ids []string) {
		for _, id := range ids {
			if _, err := c.admin.Delete(ctx, id); err != nil {
				b.Error(err)
			}
		}
	}
	kill([]string{run()}) // the image is cached from now on
	// The floor, in the same run: what libvirt's test driver takes to
	// define and start a domain with no control plane around it.
	var floor time.Duration
	b.Run("bare-libvirt", func(b *testing.B) {
		floor = bareDefineStart(b)
	})
	for _, inFlight := range []int{1, 32} {
		b.Run(fmt.Sprintf("inflight-%d", inFlight), func(b *testing.B) {
			ids := make([]string, b.N)
			p50 := roundTrips(b, inFlight, func(i int) { ids[i] = run() })
			if inFlight == 1 && floor > 0 {
				b.ReportMetric(float64(p50)/float64(floor), "x-bare-libvirt")
			}
			kill(ids)
		})
	}
}

// bareDefineStart defines and starts b.N domains on a test driver
// connection of its own and returns the median time of one.
func bareDefineStart(b *testing.B) time.Duration {
	conn, err := libvirt.NewConnect("test:///default")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = conn.Close() }()
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		x := fmt.Sprintf(`<domain type="test"><name>bench-%d-%d</name><memory unit="MiB">512</memory><vcpu>1</vcpu>`+
			`<os><type>hvm</type></os></domain>`, time.Now().UnixNano(), i)
		t0 := time.Now()
		dom, err := conn.DomainDefineXML(x)
		if err != nil {
			b.Fatal(err)
		}
		if err := dom.Create(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
		_ = dom.Destroy()
		_ = dom.Undefine()
		_ = dom.Free()
	}
	b.StopTimer()
	slices.Sort(lat)
	p50 := lat[len(lat)/2]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	return p50
}
