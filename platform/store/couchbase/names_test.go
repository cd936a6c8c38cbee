package couchbase

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/testkit"
)

func TestNames(t *testing.T) {
	t.Parallel()
	for _, tt := range [][2]string{
		{"pdisk", "pdisk"},
		{"Volume", "Volume"},
		{"vm.ctl", "vm_ctl"},
		{"_system", "x_system"},
		{"%pct", "x_pct"},
		{"a b>*", "a_b__"},
	} {
		if got := name(tt[0]); got != tt[1] {
			t.Errorf("name(%q) = %q, want %q", tt[0], got, tt[1])
		}
	}
	if got := Subject("vm.ctl", "Machine"); got != "store.vm_ctl.Machine" {
		t.Errorf("Subject = %q", got)
	}
	if got := Keyspace("stratuslab", "pdisk", "Volume"); got != "`stratuslab`.`pdisk`.`Volume`" {
		t.Errorf("Keyspace = %q", got)
	}
}

// TestWatchNotices checks the NATS half of Watch, which needs no
// Couchbase: notices published by writes reach watchers, in revision order
// per document, and a watch ends with its context.
func TestWatchNotices(t *testing.T) {
	t.Parallel()
	s := testkit.NATS(t, "")
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	st := &Store{nc: nc, service: "pdisk"}
	c := &Collection{store: st, kind: "Volume", subject: Subject("pdisk", "Volume")}
	other := &Collection{store: st, kind: "Machine", subject: Subject("pdisk", "Machine")}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	ch, err := c.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	body := json.RawMessage(`{"id":"Volume/1","v":1}`)
	other.notify(store.Put, "Machine/1", 1, body) // another collection: unseen
	c.notify(store.Put, "Volume/1", 10, body)
	c.notify(store.Put, "Volume/1", 5, body) // older than one delivered: dropped
	c.notify(store.Put, "Volume/2", 7, json.RawMessage(`{"id":"Volume/2"}`))
	c.notify(store.Deleted, "Volume/1", 11, nil)

	want := []store.Change{
		{Kind: store.Put, Document: store.Document{ID: "Volume/1", Revision: 10, Body: body}},
		{Kind: store.Put, Document: store.Document{ID: "Volume/2", Revision: 7, Body: json.RawMessage(`{"id":"Volume/2"}`)}},
		{Kind: store.Deleted, Document: store.Document{ID: "Volume/1", Revision: 11}},
	}
	for i, w := range want {
		select {
		case got := <-ch:
			if got.Kind != w.Kind || got.Document.ID != w.Document.ID || got.Document.Revision != w.Document.Revision ||
				string(got.Document.Body) != string(w.Document.Body) {
				t.Fatalf("change %d = %+v, want %+v", i, got, w)
			}
		case <-ctx.Done():
			t.Fatalf("change %d not seen", i)
		}
	}
	stop()
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-ctx.Done():
			t.Fatal("watch channel still open after its context ended")
		}
	}
}
