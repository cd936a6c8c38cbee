package storetest

import (
	"context"
	"slices"
	"testing"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// next returns the next change of a watch, failing if none comes within the
// suite's timeout.
func next(t *testing.T, ctx context.Context, ch <-chan store.Change) store.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed early")
		}
		return c
	case <-ctx.Done():
		t.Fatal("no change seen before the timeout")
	}
	return store.Change{}
}

// testWatch checks what Watch promises: every document's changes after the
// call, in revision order per document, always ending with its latest
// change. Successive changes of one document may be coalesced (the embedded
// store keeps one revision per key, so a watcher that lags sees the
// latest), so the test accepts any in-order subsequence that ends with the
// last change.
func testWatch(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Job")
	before := create(t, c, "Job/before", map[string]any{"v": 0})

	wctx, stop := context.WithCancel(ctx)
	ch, err := c.Watch(wctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	rev1 := create(t, c, "Job/1", map[string]any{"v": 1})
	rev2, err := c.Put(ctx, "Job/1", body(t, map[string]any{"v": 2}), rev1)
	if err != nil {
		t.Fatal(err)
	}
	rev3 := create(t, c, "Job/2", map[string]any{"v": 3})
	if err := c.Delete(ctx, "Job/before", before); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "Job/1", rev2); err != nil {
		t.Fatal(err)
	}

	type step struct {
		kind store.ChangeKind
		rev  uint64 // 0: any revision (deletions)
		v    float64
	}
	expect := map[string][]step{
		"Job/1":      {{store.Put, rev1, 1}, {store.Put, rev2, 2}, {store.Deleted, 0, 0}},
		"Job/2":      {{store.Put, rev3, 3}},
		"Job/before": {{store.Deleted, 0, 0}},
	}
	pos := map[string]int{} // next acceptable step per id
	lastRev := map[string]uint64{}
	done := func() bool {
		for id, steps := range expect {
			if pos[id] < len(steps) {
				return false
			}
		}
		return true
	}
	for !done() {
		got := next(t, ctx, ch)
		id := got.Document.ID
		steps, ok := expect[id]
		if !ok {
			t.Fatalf("unexpected change %+v", got)
		}
		if got.Document.Revision <= lastRev[id] {
			t.Fatalf("change %+v after revision %d of %s", got, lastRev[id], id)
		}
		lastRev[id] = got.Document.Revision
		i := pos[id]
		for i < len(steps) && !(steps[i].kind == got.Kind && (steps[i].rev == 0 || steps[i].rev == got.Document.Revision)) {
			i++
		}
		if i == len(steps) {
			t.Fatalf("change %+v of %s is out of order or unexpected", got, id)
		}
		if got.Kind == store.Put {
			sameJSON(t, got.Document.Body, map[string]any{"id": id, "v": steps[i].v})
		}
		pos[id] = i + 1
	}

	// A second watcher sees changes independently, and ending a watch closes
	// its channel.
	ch2, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-ctx.Done():
			t.Fatal("watch channel still open after its context ended")
		}
	}
	create(t, c, "Job/3", map[string]any{"v": 4})
	if got := next(t, ctx, ch2); got.Kind != store.Put || got.Document.ID != "Job/3" {
		t.Fatalf("second watcher saw %+v, want the put of Job/3", got)
	}
}

func testIsolated(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := collection(t, s, "Volume")
	b := collection(t, s, "Machine")
	acl := map[string]any{"owner": map[string]any{"principal": cimi.RoleAnon, "type": "ROLE"}}
	create(t, a, "Shared/1", map[string]any{"in": "a", "acl": acl})
	if _, err := b.Get(ctx, "Shared/1"); err == nil {
		t.Fatal("a document of one collection is visible in another")
	}
	create(t, b, "Shared/1", map[string]any{"in": "b", "acl": acl})
	create(t, a, "Only/a", map[string]any{"in": "a", "acl": acl})
	if v := decode(t, get(t, a, "Shared/1").Body)["in"]; v != "a" {
		t.Fatalf("collection a holds %v", v)
	}
	if v := decode(t, get(t, b, "Shared/1").Body)["in"]; v != "b" {
		t.Fatalf("collection b holds %v", v)
	}
	if got := pageIDs(query(t, b, cimi.Query{}, cimi.Identity{})); !slices.Equal(got, []string{"Shared/1"}) {
		t.Fatalf("collection b lists %v", got)
	}
	// Asking for a collection again gives the same documents.
	again := collection(t, s, "Volume")
	if got := pageIDs(query(t, again, cimi.Query{}, cimi.Identity{})); !slices.Equal(got, []string{"Only/a", "Shared/1"}) {
		t.Fatalf("collection a reopened lists %v", got)
	}
}
