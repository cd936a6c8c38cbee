package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/memindex"
)

// Collection is one bucket of documents and its index. It implements
// store.Collection.
type Collection struct {
	kind    string
	kv      jetstream.KeyValue
	idx     *memindex.Index
	watcher jetstream.KeyWatcher
	log     *slog.Logger
	// strictReads makes Get read the bucket (WithStrictReads).
	strictReads bool
}

var _ store.Collection = (*Collection)(nil)

// load applies the watch's initial values, up to the nil entry that marks
// their end.
func (c *Collection) load(ctx context.Context, w jetstream.KeyWatcher) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended before the initial values")
			}
			if e == nil {
				return nil
			}
			c.apply(e)
		}
	}
}

// apply brings the index up to date with one watched entry.
func (c *Collection) apply(e jetstream.KeyValueEntry) {
	id, err := decodeKey(e.Key())
	if err != nil {
		c.log.Warn("store: ignoring a key this adapter did not write", "key", e.Key(), "error", err)
		return
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		if err := c.idx.Put(id, e.Revision(), e.Value(), nil); err != nil {
			c.log.Warn("store: document cannot be indexed", "id", id, "revision", e.Revision(), "error", err)
		}
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		c.idx.Delete(id, e.Revision())
	}
}

// Get returns the stored document from the index, or from the bucket when
// the index does not hold it or the store was opened WithStrictReads (see
// there for what a read from the index may miss).
func (c *Collection) Get(ctx context.Context, id string) (store.Document, error) {
	if err := store.CheckID(id); err != nil {
		return store.Document{}, err
	}
	if !c.strictReads {
		if err := ctx.Err(); err != nil {
			return store.Document{}, err
		}
		if d, ok := c.idx.Get(id); ok {
			return d, nil
		}
	}
	return c.read(ctx, id)
}

// GetFresh returns the document as the bucket holds it now, whatever the
// index holds (store.FreshGetter).
func (c *Collection) GetFresh(ctx context.Context, id string) (store.Document, error) {
	if err := store.CheckID(id); err != nil {
		return store.Document{}, err
	}
	return c.read(ctx, id)
}

// read returns the document as the bucket holds it now, and brings the
// index up to that revision if the watch has not yet.
func (c *Collection) read(ctx context.Context, id string) (store.Document, error) {
	e, err := c.kv.Get(ctx, encodeKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return store.Document{}, fmt.Errorf("get %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Document{}, fmt.Errorf("get %q: %w", id, err)
	}
	if !c.strictReads {
		c.index(id, e.Revision(), e.Value(), nil)
	}
	return store.Document{ID: id, Revision: e.Revision(), Body: e.Value()}, nil
}

// Create writes a new document.
func (c *Collection) Create(ctx context.Context, id string, body json.RawMessage) (uint64, error) {
	body, doc, err := store.PrepareBody(id, body)
	if err != nil {
		return 0, err
	}
	rev, err := c.kv.Create(ctx, encodeKey(id), body)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("create %q: %w", id, store.ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create %q: %w", id, err)
	}
	c.index(id, rev, body, doc)
	return rev, nil
}

// Put replaces the document if it is still at revision rev.
func (c *Collection) Put(ctx context.Context, id string, body json.RawMessage, rev uint64) (uint64, error) {
	body, doc, err := store.PrepareBody(id, body)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		// Revision 0 would ask the bucket for a key never written: a create.
		return 0, c.mismatch(ctx, "put", id)
	}
	newRev, err := c.kv.Update(ctx, encodeKey(id), body, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, c.mismatch(ctx, "put", id)
	}
	if err != nil {
		return 0, fmt.Errorf("put %q: %w", id, err)
	}
	c.index(id, newRev, body, doc)
	return newRev, nil
}

// Delete removes the document if it is still at revision rev.
func (c *Collection) Delete(ctx context.Context, id string, rev uint64) error {
	if err := store.CheckID(id); err != nil {
		return err
	}
	if rev == 0 {
		return c.mismatch(ctx, "delete", id)
	}
	err := c.kv.Delete(ctx, encodeKey(id), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return c.mismatch(ctx, "delete", id)
	}
	if err != nil {
		return fmt.Errorf("delete %q: %w", id, err)
	}
	// The delete marker's own revision is not returned, but no write of id
	// can sit between rev and it, so rev is enough to guard the index.
	c.idx.Delete(id, rev)
	return nil
}

// mismatch explains a failed revision check: the document is gone
// (ErrNotFound) or at another revision (ErrConflict). It asks the bucket,
// which also refreshes a stale index entry for the caller's retry.
func (c *Collection) mismatch(ctx context.Context, op, id string) error {
	_, err := c.read(ctx, id)
	return store.ExplainMismatch(op, id, err)
}

// index applies a write this process made, so that its own queries see it
// without waiting for the watch.
func (c *Collection) index(id string, rev uint64, body json.RawMessage, doc map[string]any) {
	if err := c.idx.Put(id, rev, body, doc); err != nil {
		c.log.Warn("store: written document cannot be indexed", "id", id, "revision", rev, "error", err)
	}
}

// Update applies fn to the current document and writes the result,
// retrying on conflict.
func (c *Collection) Update(ctx context.Context, id string, fn store.UpdateFunc) (store.Document, error) {
	return store.UpdateWithRetry(ctx, c, id, fn)
}

// Query answers from the index.
func (c *Collection) Query(ctx context.Context, q cimi.Query, who cimi.Identity) (store.Page, error) {
	if err := ctx.Err(); err != nil {
		return store.Page{}, err
	}
	return c.idx.Query(q, who)
}

// Watch streams the changes made after it is called, until ctx ends.
func (c *Collection) Watch(ctx context.Context) (<-chan store.Change, error) {
	w, err := c.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", c.kind, err)
	}
	out := make(chan store.Change, 64)
	go func() {
		defer close(out)
		defer stop(w)
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case e, ok = <-w.Updates():
				if !ok {
					return
				}
			}
			if e == nil {
				continue
			}
			// The index must be at least as new as anything a watcher
			// has been told, or a watcher re-reading the document on a
			// change could get the copy it replaces. Applying an entry
			// the index watcher also applies is a no-op.
			c.apply(e)
			ch, ok := c.change(e)
			if !ok {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case out <- ch:
			}
		}
	}()
	return out, nil
}

func (c *Collection) change(e jetstream.KeyValueEntry) (store.Change, bool) {
	id, err := decodeKey(e.Key())
	if err != nil {
		return store.Change{}, false
	}
	doc := store.Document{ID: id, Revision: e.Revision()}
	if e.Operation() == jetstream.KeyValuePut {
		doc.Body = e.Value()
		return store.Change{Kind: store.Put, Document: doc}, true
	}
	return store.Change{Kind: store.Deleted, Document: doc}, true
}
