package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
)

// TestTwoWriters has two stores on one server, as two replicas of a
// service are: what one creates the other finds at once; a copy the other
// read before a change fails its revision check, after which its reads
// are current; concurrent Updates from both never lose an increment.
func TestTwoWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := testkit.JetStream(t)
	open := func(opts ...embedded.Option) store.Collection {
		s, err := embedded.Open(ctx, js, "twins", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		c, err := s.Collection(ctx, "Counter")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := open(), open()
	const id = "Counter/1"
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	changes, err := b.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan error, 1)
	go func() {
		// Whatever a watcher is told, a Get right after shows at least.
		for ch := range changes {
			if ch.Kind != store.Put {
				continue
			}
			d, err := b.Get(ctx, ch.Document.ID)
			if err == nil && d.Revision < ch.Document.Revision {
				err = fmt.Errorf("watch told revision %d, then Get returned %d", ch.Document.Revision, d.Revision)
			}
			if err != nil {
				seen <- err
				return
			}
		}
		seen <- nil
	}()

	if _, err := a.Create(ctx, id, json.RawMessage(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	old, err := b.Get(ctx, id)
	if err != nil {
		t.Fatalf("a document created by another writer is not found: %v", err)
	}
	if _, err := a.Put(ctx, id, json.RawMessage(`{"n":1}`), old.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, id, json.RawMessage(`{"n":100}`), old.Revision); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put over a stale revision: %v, want ErrConflict", err)
	}
	cur, err := b.Get(ctx, id)
	if err != nil || cur.Revision == old.Revision || string(cur.Body) != `{"n":1,"id":"Counter/1"}` && string(cur.Body) != `{"id":"Counter/1","n":1}` {
		t.Fatalf("after the conflict: %s at %d (stale %d), %v", cur.Body, cur.Revision, old.Revision, err)
	}

	const each = 25
	errc := make(chan error, 2)
	for _, c := range []store.Collection{a, b} {
		go func() {
			for range each {
				_, err := c.Update(ctx, id, func(d store.Document) (json.RawMessage, error) {
					var v struct{ N int }
					if err := json.Unmarshal(d.Body, &v); err != nil {
						return nil, err
					}
					return json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1)), nil
				})
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	stopWatch()
	if err := <-seen; err != nil {
		t.Error(err)
	}
	// A strict reader sees the last write whatever the watch delays.
	final, err := open(embedded.WithStrictReads()).Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ N int }
	if err := json.Unmarshal(final.Body, &v); err != nil || v.N != 1+2*each {
		t.Fatalf("counter %s, want n=%d", final.Body, 1+2*each)
	}
}
