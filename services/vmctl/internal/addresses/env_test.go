package addresses_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	"stratuslab.dev/services/vmctl/internal/addresses"
)

// waitLimit bounds every wait for the replicas' indexes to converge;
// reaching it is a failure, not a timing assertion.
const waitLimit = 60 * time.Second

// env is a NATS server whose JetStream holds the lease bucket, shared by
// any number of replicas, each with its own connection, store and index,
// as separate vmctl processes have.
type env struct {
	t     testing.TB
	srv   *natsserver.Server
	kv    jetstream.KeyValue // the bucket itself, to see what is stored
	truth store.Collection   // strict reads: the bucket, not an index
	pools atomic.Pointer[[]addresses.Pool]
}

func newEnv(t testing.TB, pools ...addresses.Pool) *env {
	t.Helper()
	if err := addresses.ValidatePools(pools); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: testkit.NATS(t, "")}
	e.pools.Store(&pools)
	ctx := context.Background()
	js := e.connect()
	st, err := embedded.Open(ctx, js, "vmctl", embedded.WithLogger(quiet()), embedded.WithStrictReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if e.truth, err = st.Collection(ctx, addresses.Kind); err != nil {
		t.Fatal(err)
	}
	if e.kv, err = js.KeyValue(ctx, embedded.BucketName("vmctl", addresses.Kind)); err != nil {
		t.Fatal(err)
	}
	return e
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (e *env) connect() jetstream.JetStream {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return js
}

// replica starts the leases of one vmctl process.
func (e *env) replica() *addresses.Leases {
	e.t.Helper()
	ctx := context.Background()
	st, err := embedded.Open(ctx, e.connect(), "vmctl", embedded.WithLogger(quiet()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	coll, err := st.Collection(ctx, addresses.Kind)
	if err != nil {
		e.t.Fatal(err)
	}
	return addresses.New(coll, func() []addresses.Pool { return *e.pools.Load() })
}

// replicas starts n replicas.
func (e *env) replicas(n int) []*addresses.Leases {
	out := make([]*addresses.Leases, n)
	for i := range out {
		out[i] = e.replica()
	}
	return out
}

// stored counts the documents in the bucket.
func (e *env) stored() int {
	e.t.Helper()
	lister, err := e.kv.ListKeys(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n
}

// holder returns the machine the stored lease of ip on network n is for,
// "" when there is none.
func (e *env) holder(n addresses.Network, ip string) string {
	e.t.Helper()
	d, err := e.truth.Get(context.Background(), addresses.ID(n, ip))
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var l addresses.Lease
	if err := json.Unmarshal(d.Body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l.Machine
}

// eventually polls cond until it holds, failing after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
}
