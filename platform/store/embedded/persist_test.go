package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
)

var anyone = json.RawMessage(`{"acl":{"owner":{"principal":"::ANON","type":"ROLE"}}}`)

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func open(t *testing.T, js jetstream.JetStream, kind string) (*embedded.Store, store.Collection) {
	t.Helper()
	s, err := embedded.Open(t.Context(), js, "pdisk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c, err := s.Collection(t.Context(), kind)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func ids(t *testing.T, c store.Collection) []string {
	t.Helper()
	p, err := c.Query(t.Context(), cimi.Query{}, cimi.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range p.Docs {
		out = append(out, d.ID)
	}
	return out
}

// write creates n documents, replaces the first and deletes the second, and
// returns the ids left in order.
func write(t *testing.T, c store.Collection, n int) []string {
	t.Helper()
	ctx := t.Context()
	var want []string
	revs := map[string]uint64{}
	for i := range n {
		id := fmt.Sprintf("Volume/%03d@x.org", i)
		rev, err := c.Create(ctx, id, anyone)
		if err != nil {
			t.Fatal(err)
		}
		revs[id] = rev
		want = append(want, id)
	}
	if _, err := c.Put(ctx, want[0], json.RawMessage(`{"state":"AVAILABLE","acl":{"owner":{"principal":"::ANON","type":"ROLE"}}}`), revs[want[0]]); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, want[1], revs[want[1]]); err != nil {
		t.Fatal(err)
	}
	return slices.Delete(want, 1, 2)
}

func TestReopenOnSameServer(t *testing.T) {
	t.Parallel()
	srv := testkit.NATS(t, "")
	first, c := open(t, connect(t, srv.ClientURL()), "Volume")
	want := write(t, c, 50)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// A new store has its index loaded when Collection returns.
	_, again := open(t, connect(t, srv.ClientURL()), "Volume")
	if got := ids(t, again); !slices.Equal(got, want) {
		t.Fatalf("reopened store lists %v, want %v", got, want)
	}
	d, err := again.Get(t.Context(), want[0])
	if err != nil || !json.Valid(d.Body) || !slices.Contains([]string{"AVAILABLE"}, stateOf(t, d.Body)) {
		t.Fatalf("reopened Get(%s) = %s, %v", want[0], d.Body, err)
	}
}

func stateOf(t *testing.T, b json.RawMessage) string {
	var m struct{ State string }
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.State
}

func TestSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := testkit.NATS(t, dir)
	_, c := open(t, connect(t, srv.ClientURL()), "Volume")
	want := write(t, c, 20)
	srv.Shutdown()
	srv.WaitForShutdown()

	srv = testkit.NATS(t, dir)
	_, again := open(t, connect(t, srv.ClientURL()), "Volume")
	if got := ids(t, again); !slices.Equal(got, want) {
		t.Fatalf("after restart the store lists %v, want %v", got, want)
	}
}

// TestSeesOtherWriters checks that the index follows writes made by another
// process through the KV watch.
func TestSeesOtherWriters(t *testing.T) {
	t.Parallel()
	srv := testkit.NATS(t, "")
	_, reader := open(t, connect(t, srv.ClientURL()), "Volume")
	_, writer := open(t, connect(t, srv.ClientURL()), "Volume")
	want := write(t, writer, 10)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := ids(t, reader)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader lists %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGetFreshSeesOtherWriters: right after another process's write
// returns, GetFresh reads it, whatever the reader's index holds yet.
func TestGetFreshSeesOtherWriters(t *testing.T) {
	t.Parallel()
	srv := testkit.NATS(t, "")
	_, reader := open(t, connect(t, srv.ClientURL()), "Volume")
	_, writer := open(t, connect(t, srv.ClientURL()), "Volume")
	if _, ok := reader.(store.FreshGetter); !ok {
		t.Fatal("the embedded collection is no store.FreshGetter")
	}
	ctx := t.Context()
	rev, err := writer.Create(ctx, "vol-1", anyone)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		body := json.RawMessage(fmt.Sprintf(`{"acl":{"owner":{"principal":"::ANON","type":"ROLE"}},"n":%d}`, i))
		if rev, err = writer.Put(ctx, "vol-1", body, rev); err != nil {
			t.Fatal(err)
		}
		d, err := store.GetFresh(ctx, reader, "vol-1")
		if err != nil || d.Revision != rev {
			t.Fatalf("write %d: GetFresh read revision %d (%v), want %d", i, d.Revision, err, rev)
		}
	}
	if _, err := store.GetFresh(ctx, reader, "vol-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetFresh of a document never written: %v, want ErrNotFound", err)
	}
}

func TestBucket(t *testing.T) {
	t.Parallel()
	_, js := testkit.JetStream(t)
	s, err := embedded.Open(t.Context(), js, "pdisk", embedded.WithReplicas(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Collection(t.Context(), "Volume")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(t.Context(), "User/alice@example.org", anyone); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), "store_pdisk_Volume")
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	st, err := kv.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if st.History() != 1 || info.Config.Storage != jetstream.FileStorage || info.Config.Replicas != 1 {
		t.Fatalf("bucket history %d, storage %v, replicas %d", st.History(), info.Config.Storage, info.Config.Replicas)
	}
	if _, err := kv.Get(t.Context(), "User/alice_40example_2Eorg"); err != nil {
		t.Fatalf("document not under its encoded key: %v", err)
	}
}

func TestCollectionHonoursContext(t *testing.T) {
	t.Parallel()
	_, js := testkit.JetStream(t)
	s, err := embedded.Open(t.Context(), js, "pdisk")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Collection(ctx, "Volume"); err == nil {
		t.Fatal("Collection succeeded with a cancelled context")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collection(t.Context(), "Volume"); err == nil {
		t.Fatal("Collection succeeded on a closed store")
	}
}

func TestBucketName(t *testing.T) {
	t.Parallel()
	for _, tt := range [][3]string{
		{"pdisk", "Volume", "store_pdisk_Volume"},
		{"vm.ctl", "Machine/Image", "store_vm_ctl_Machine_Image"},
		{"a-b", "ü", "store_a-b__"},
	} {
		if got := embedded.BucketName(tt[0], tt[1]); got != tt[2] {
			t.Errorf("BucketName(%q, %q) = %q, want %q", tt[0], tt[1], got, tt[2])
		}
	}
}
