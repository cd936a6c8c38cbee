package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store/embedded"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// burst is the number of commands of TestCrashDuringBurst.
const burst = 10_000

// TestCrashDuringBurst kills the all-in-one with SIGKILL while a burst of
// commands is being sent and handled, restarts it, lets the client send
// again whatever it has no acknowledgement for, and checks that every
// command took effect exactly once: one document, one completion event,
// one domain event each, nothing failed and nothing left in the queue.
func TestCrashDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 10,000 commands across a crash; skipped with -short")
	}
	interruptBurst(t, func(c *cloud) { c.kill() })
}

// TestGracefulStopDuringBurst does the same with SIGTERM: the process
// drains its consumers and exits 0, and nothing is lost or doubled.
func TestGracefulStopDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 10,000 commands across a restart; skipped with -short")
	}
	interruptBurst(t, func(c *cloud) {
		if err := c.stop(); err != nil {
			t.Errorf("SIGTERM during the burst: %v\nstderr:\n%s", err, c.stderr)
		}
	})
}

func interruptBurst(t *testing.T, interrupt func(*cloud)) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ids := make([]string, burst)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	acked := make([]atomic.Bool, burst)

	// Watch completions so the kill lands in the middle of the work.
	nc := connect(t, c.natsURL())
	var completed atomic.Int64
	sub, err := nc.Subscribe(subject.Completed(createMessage), func(*nats.Msg) { completed.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	sendAll(ctx, t, nc, ids, acked, 4)
	for completed.Load() < burst/5 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	interrupt(c)
	_ = sub.Unsubscribe()
	nc.Close()
	var sent int
	for i := range acked {
		if acked[i].Load() {
			sent++
		}
	}
	t.Logf("stopped after %d completions seen and %d commands acknowledged by JetStream", completed.Load(), sent)

	c.start()
	nc = connect(t, c.natsURL())
	// The client sends again what it did not see acknowledged, and, as a
	// nervous client would, the last 500 it did.
	resend := make([]string, 0, burst)
	again := 0
	for i := burst - 1; i >= 0; i-- {
		if !acked[i].Load() || again < 500 {
			if acked[i].Load() {
				again++
			}
			resend = append(resend, ids[i])
		}
	}
	resendAcked := make([]atomic.Bool, len(resend))
	sendAll(ctx, t, nc, resend, resendAcked, 4).Wait()
	for i := range resendAcked {
		if !resendAcked[i].Load() {
			t.Fatalf("command %s not acknowledged after the restart", resend[i])
		}
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitQueueEmpty(ctx, t, js)
	checkExactlyOnce(ctx, t, js, ids)
	if err := c.stop(); err != nil {
		t.Fatalf("SIGTERM after the burst: %v", err)
	}
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// The subjects of a ServiceMessage create through the generic CIMI
// resource protocol, and of the event that follows it.
var (
	createMessage  = subject.CimiCommand(subject.Cimi, subject.ResourceServiceMessage, subject.VerbCimiCreate)
	messageCreated = subject.Event(subject.Cimi, subject.ResourceServiceMessage, subject.EventCreated)
)

// sendAll sends one create command per id from workers goroutines and
// marks each one JetStream acknowledged. Errors (the server going away)
// leave the command unmarked. The returned group ends when every worker
// has stopped.
func sendAll(ctx context.Context, t *testing.T, nc *nats.Conn, ids []string, acked []atomic.Bool, workers int) *sync.WaitGroup {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: "e2e"})
	actor := &commonv1.Actor{User: "admin", Roles: []string{cimi.RoleAdmin}}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(ids); i += workers {
				meta := &commonv1.Meta{CommandId: ids[i], Actor: actor}
				cmd := &cimiv1.ResourceCommand{Meta: meta, Kind: "ServiceMessage", Id: "ServiceMessage/" + ids[i],
					Body: []byte(`{"name": "message ` + ids[i] + `"}`)}
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := b.Send(sctx, createMessage, meta, cmd)
				cancel()
				if err == nil {
					acked[i].Store(true)
				} else if nc.IsClosed() || !nc.IsConnected() {
					return
				}
			}
		})
	}
	return &wg
}

// waitQueueEmpty waits until the gateway has acknowledged every command.
func waitQueueEmpty(ctx context.Context, t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for {
		s, err := js.Stream(ctx, bus.CommandsStream)
		if err != nil {
			t.Fatal(err)
		}
		if s.CachedInfo().State.Msgs == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d commands still queued", s.CachedInfo().State.Msgs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkExactlyOnce reads the store and the whole event stream.
func checkExactlyOnce(ctx context.Context, t *testing.T, js jetstream.JetStream, ids []string) {
	t.Helper()
	st, err := embedded.Open(ctx, js, "cimi")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	coll, err := st.Collection(ctx, "ServiceMessage")
	if err != nil {
		t.Fatal(err)
	}
	page, err := coll.Query(ctx, cimi.Query{}, cimi.Identity{User: "admin", Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want["ServiceMessage/"+id] = true
	}
	for _, d := range page.Docs {
		var m struct{ Name string }
		if err := json.Unmarshal(d.Body, &m); err != nil {
			t.Fatal(err)
		}
		if !want[d.ID] || m.Name != "message "+d.ID[len("ServiceMessage/"):] {
			t.Errorf("unexpected document %s named %q", d.ID, m.Name)
		}
		delete(want, d.ID)
	}
	if page.Count != len(ids) || len(want) != 0 {
		t.Errorf("%d documents, want %d; %d commands lost", page.Count, len(ids), len(want))
	}

	counts := readEvents(ctx, t, js)
	completedSubj := subject.Completed(createMessage)
	for _, id := range ids {
		if n := counts[completedSubj+" "+id]; n != 1 {
			t.Errorf("command %s: %d completion events, want 1", id, n)
			break
		}
		if n := counts[messageCreated+" "+id]; n != 1 {
			t.Errorf("command %s: %d created events, want 1", id, n)
			break
		}
	}
	if n := counts["failed"]; n != 0 {
		t.Errorf("%d commands failed", n)
	}
}

// readEvents counts the events of the whole EVENTS stream by subject and
// command id ("failed" counts every …_failed event).
func readEvents(ctx context.Context, t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	total := s.CachedInfo().State.Msgs
	counts := map[string]int{}
	for seen := uint64(0); seen < total; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			counts[eventKey(t, msg)]++
		}
		if n == 0 {
			t.Fatalf("read %d of %d events: %v", seen, total, batch.Error())
		}
		seen += uint64(n)
	}
	return counts
}

func eventKey(t *testing.T, msg jetstream.Msg) string {
	switch subj := msg.Subject(); subj {
	case subject.Completed(createMessage):
		var e commonv1.CommandCompleted
		if err := decode(msg, &e); err != nil {
			t.Fatal(err)
		}
		return subj + " " + e.GetCommandId()
	case messageCreated:
		var e cimiv1.ResourceChanged
		if err := decode(msg, &e); err != nil {
			t.Fatal(err)
		}
		return subj + " " + strings.TrimPrefix(e.GetId(), "ServiceMessage/")
	case subject.Failed(createMessage):
		return "failed"
	default:
		return subj
	}
}

func decode(msg jetstream.Msg, m proto.Message) error {
	if err := proto.Unmarshal(msg.Data(), m); err != nil {
		return fmt.Errorf("event on %s: %w", msg.Subject(), err)
	}
	return nil
}
