package couchbase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/couchbase/gocb/v2"
	"github.com/nats-io/nats.go"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// Collection is one Couchbase collection of documents. It implements
// store.Collection.
type Collection struct {
	store    *Store
	kind     string
	coll     *gocb.Collection
	keyspace string
	subject  string
}

var _ store.Collection = (*Collection)(nil)

// raw passes bodies through as JSON bytes, unparsed.
var raw = gocb.NewRawJSONTranscoder()

// Get reads a document.
func (c *Collection) Get(ctx context.Context, id string) (store.Document, error) {
	if err := store.CheckID(id); err != nil {
		return store.Document{}, err
	}
	res, err := c.coll.Get(id, &gocb.GetOptions{Transcoder: raw, Context: ctx})
	if err != nil {
		return store.Document{}, fmt.Errorf("get %q: %w", id, mapErr(err))
	}
	var body []byte
	if err := res.Content(&body); err != nil {
		return store.Document{}, fmt.Errorf("get %q: %w", id, err)
	}
	return store.Document{ID: id, Revision: uint64(res.Cas()), Body: body}, nil
}

// Create inserts a new document.
func (c *Collection) Create(ctx context.Context, id string, body json.RawMessage) (uint64, error) {
	body, _, err := store.PrepareBody(id, body)
	if err != nil {
		return 0, err
	}
	res, err := c.coll.Insert(id, body, &gocb.InsertOptions{Transcoder: raw, Context: ctx})
	if err != nil {
		return 0, fmt.Errorf("create %q: %w", id, mapErr(err))
	}
	rev := uint64(res.Cas())
	c.notify(store.Put, id, rev, body)
	return rev, nil
}

// Put replaces a document if its CAS is still rev.
func (c *Collection) Put(ctx context.Context, id string, body json.RawMessage, rev uint64) (uint64, error) {
	body, _, err := store.PrepareBody(id, body)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		// CAS 0 would replace whatever is there.
		return 0, c.mismatch(ctx, "put", id)
	}
	res, err := c.coll.Replace(id, body, &gocb.ReplaceOptions{Cas: gocb.Cas(rev), Transcoder: raw, Context: ctx})
	if err != nil {
		return 0, fmt.Errorf("put %q: %w", id, mapErr(err))
	}
	newRev := uint64(res.Cas())
	c.notify(store.Put, id, newRev, body)
	return newRev, nil
}

// Delete removes a document if its CAS is still rev.
func (c *Collection) Delete(ctx context.Context, id string, rev uint64) error {
	if err := store.CheckID(id); err != nil {
		return err
	}
	if rev == 0 {
		return c.mismatch(ctx, "delete", id)
	}
	res, err := c.coll.Remove(id, &gocb.RemoveOptions{Cas: gocb.Cas(rev), Context: ctx})
	if err != nil {
		return fmt.Errorf("delete %q: %w", id, mapErr(err))
	}
	c.notify(store.Deleted, id, uint64(res.Cas()), nil)
	return nil
}

// mismatch explains a write with revision 0: the document is gone
// (ErrNotFound) or at another revision (ErrConflict).
func (c *Collection) mismatch(ctx context.Context, op, id string) error {
	_, err := c.Get(ctx, id)
	return store.ExplainMismatch(op, id, err)
}

// mapErr adds the store error matching a Couchbase error.
func mapErr(err error) error {
	switch {
	case errors.Is(err, gocb.ErrDocumentNotFound):
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case errors.Is(err, gocb.ErrDocumentExists):
		return fmt.Errorf("%w: %w", store.ErrExists, err)
	case errors.Is(err, gocb.ErrCasMismatch):
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return err
}

// Update applies fn to the current document and writes the result,
// retrying on conflict.
func (c *Collection) Update(ctx context.Context, id string, fn store.UpdateFunc) (store.Document, error) {
	return store.UpdateWithRetry(ctx, c, id, fn)
}

// Query runs the compiled query: a count, then the page.
func (c *Collection) Query(ctx context.Context, q cimi.Query, who cimi.Identity) (store.Page, error) {
	stmt, countStmt, params, err := Compile(c.keyspace, q, who)
	if err != nil {
		return store.Page{}, err
	}
	countParams := make(map[string]any, len(params))
	for k, v := range params {
		if k != paramOffset && k != paramLimit {
			countParams[k] = v
		}
	}
	var page store.Page
	res, err := c.store.cluster.Query(countStmt, c.queryOptions(ctx, countParams))
	if err == nil {
		err = res.One(&page.Count)
	}
	if err != nil {
		return store.Page{}, fmt.Errorf("query %s: count: %w", c.kind, err)
	}
	if limit, ok := params[paramLimit].(int); (ok && limit == 0) || params[paramOffset].(int) >= page.Count {
		return page, nil
	}
	res, err = c.store.cluster.Query(stmt, c.queryOptions(ctx, params))
	if err != nil {
		return store.Page{}, fmt.Errorf("query %s: %w", c.kind, err)
	}
	defer res.Close()
	for res.Next() {
		var row struct {
			ID   string          `json:"id"`
			Cas  json.Number     `json:"cas"`
			Body json.RawMessage `json:"body"`
		}
		if err := res.Row(&row); err != nil {
			return store.Page{}, fmt.Errorf("query %s: row: %w", c.kind, err)
		}
		rev, err := strconv.ParseUint(row.Cas.String(), 10, 64)
		if err != nil {
			// A CAS the query service wrote as a float has lost digits:
			// read the exact revision.
			d, err := c.Get(ctx, row.ID)
			if err != nil {
				continue // deleted since the query: leave it out
			}
			rev, row.Body = d.Revision, d.Body
		}
		page.Docs = append(page.Docs, store.Document{ID: row.ID, Revision: rev, Body: row.Body})
	}
	if err := res.Err(); err != nil {
		return store.Page{}, fmt.Errorf("query %s: %w", c.kind, err)
	}
	return page, nil
}

func (c *Collection) queryOptions(ctx context.Context, params map[string]any) *gocb.QueryOptions {
	return &gocb.QueryOptions{
		Context:         ctx,
		NamedParameters: params,
		// Sees every write that returned before the query started.
		ScanConsistency: gocb.QueryScanConsistencyRequestPlus,
		Readonly:        true,
		Adhoc:           false, // prepared: compiled statements repeat
	}
}

// notice is the change notification published after each write.
type notice struct {
	Op   string          `json:"op"` // "put" or "deleted"
	ID   string          `json:"id"`
	Rev  uint64          `json:"rev"`
	Body json.RawMessage `json:"body,omitempty"` // left out when too big
}

const (
	opPut     = "put"
	opDeleted = "deleted"
)

// noticeOverhead is room for everything but the body in a notice.
const noticeOverhead = 2048

// notify publishes a change notice; a failure is logged, not returned,
// because the write itself has succeeded.
func (c *Collection) notify(kind store.ChangeKind, id string, rev uint64, body json.RawMessage) {
	n := notice{Op: opPut, ID: id, Rev: rev, Body: body}
	if kind == store.Deleted {
		n.Op = opDeleted
	}
	if int64(len(body)) > c.store.nc.MaxPayload()-noticeOverhead {
		n.Body = nil // Watch reads the document instead
	}
	data, err := json.Marshal(n)
	if err == nil {
		err = c.store.nc.Publish(c.subject, data)
	}
	if err != nil {
		c.store.log.Warn("store: change notice not published", "subject", c.subject, "id", id, "error", err)
	}
}

// Watch streams the change notices published after it is called, until
// ctx ends.
func (c *Collection) Watch(ctx context.Context) (<-chan store.Change, error) {
	msgs := make(chan *nats.Msg, 1024)
	sub, err := c.store.nc.ChanSubscribe(c.subject, msgs)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", c.kind, err)
	}
	// The server must know of the subscription before Watch returns, or
	// the first writes after it could go unseen.
	if err := c.store.nc.FlushTimeout(10 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("watch %s: %w", c.kind, err)
	}
	out := make(chan store.Change, 64)
	go func() {
		defer close(out)
		defer func() { _ = sub.Unsubscribe() }()
		last := make(map[string]uint64)
		for {
			var m *nats.Msg
			select {
			case <-ctx.Done():
				return
			case m = <-msgs:
			}
			ch, ok := c.change(ctx, m, last)
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

// change turns a notice into a Change, unless it is older than one already
// delivered for the same document.
func (c *Collection) change(ctx context.Context, m *nats.Msg, last map[string]uint64) (store.Change, bool) {
	var n notice
	if err := json.Unmarshal(m.Data, &n); err != nil || n.ID == "" || n.Rev <= last[n.ID] {
		return store.Change{}, false
	}
	last[n.ID] = n.Rev
	doc := store.Document{ID: n.ID, Revision: n.Rev}
	switch n.Op {
	case opDeleted:
		return store.Change{Kind: store.Deleted, Document: doc}, true
	case opPut:
		if n.Body == nil {
			d, err := c.Get(ctx, n.ID)
			if err != nil {
				return store.Change{}, false // deleted since: its own notice follows
			}
			doc = d
			last[n.ID] = max(n.Rev, d.Revision)
		} else {
			doc.Body = n.Body
		}
		return store.Change{Kind: store.Put, Document: doc}, true
	}
	return store.Change{}, false
}
