// Package store defines the document store every service keeps its state in:
// JSON documents addressed by CIMI id, written with optimistic concurrency
// (revision checks), queried with parsed CIMI query parameters under ACL
// principals, and watched for changes. Adapters live in sub-packages
// (embedded, couchbase) and all pass the contract suite in storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"

	"stratuslab.dev/platform/cimi"
)

// Errors every adapter returns (wrapped) so callers can test with errors.Is.
var (
	ErrNotFound = errors.New("document not found")
	ErrExists   = errors.New("document already exists")
	ErrConflict = errors.New("document revision conflict")
	// ErrInvalid marks a document or query the store cannot accept: not a
	// JSON object, an id outside the collection, an unknown attribute type.
	ErrInvalid = errors.New("invalid document or query")
)

// Document is one stored JSON object. The body holds every attribute,
// including the CIMI common ones ("id", "acl", ...); the store reads "acl"
// to answer queries for a caller.
type Document struct {
	ID       string          // CIMI id, e.g. "Volume/8d0f..." or "User/alice"
	Revision uint64          // set by the store; 0 on a document never written
	Body     json.RawMessage // a JSON object
}

// Page is one page of a query result.
type Page struct {
	// Count is the number of documents matching the filter and visible to
	// the caller, before $first/$last paging.
	Count int
	Docs  []Document
}

// ChangeKind says what happened to a document.
type ChangeKind int

// Change kinds.
const (
	Put ChangeKind = iota + 1
	Deleted
)

// Change is one event of a Watch: a document written or deleted. Deleted
// changes carry the id and revision only.
type Change struct {
	Kind     ChangeKind
	Document Document
}

// UpdateFunc computes a new body from the current document. Returning an
// error aborts the update and is returned to the caller unchanged.
type UpdateFunc func(current Document) (json.RawMessage, error)

// Collection holds the documents of one kind for one service, e.g. the
// "Volume" documents of pdisk.
type Collection interface {
	// Get returns the document with this id or ErrNotFound.
	Get(ctx context.Context, id string) (Document, error)
	// Create writes a new document and returns its revision, or ErrExists.
	Create(ctx context.Context, id string, body json.RawMessage) (uint64, error)
	// Put replaces a document if its stored revision is rev, returning the
	// new revision; ErrConflict if it changed, ErrNotFound if it is gone.
	Put(ctx context.Context, id string, body json.RawMessage, rev uint64) (uint64, error)
	// Delete removes a document if its stored revision is rev.
	Delete(ctx context.Context, id string, rev uint64) error
	// Update reads the document, applies fn and writes the result with a
	// revision check, retrying from the read on conflict.
	Update(ctx context.Context, id string, fn UpdateFunc) (Document, error)
	// Query returns the documents matching q that who may view, ordered and
	// paged as q says. $select is applied by the caller, not the store.
	Query(ctx context.Context, q cimi.Query, who cimi.Identity) (Page, error)
	// Watch streams the changes made after it is called until ctx ends. A
	// watcher that falls behind may see only the latest of several quick
	// changes to one document, never an older state after a newer one:
	// re-read the document when the intermediate steps matter.
	Watch(ctx context.Context) (<-chan Change, error)
}

// FreshGetter is a Collection whose Get may answer from a copy that lags
// the writes of other processes (the embedded store's index), with a read
// that does not.
type FreshGetter interface {
	// GetFresh returns the document with this id as stored now, or
	// ErrNotFound.
	GetFresh(ctx context.Context, id string) (Document, error)
}

// GetFresh returns document id of c as stored now: what a writer that
// decides from the document's state reads, since another replica may have
// changed it a moment ago. It is c's Get unless c is a FreshGetter.
func GetFresh(ctx context.Context, c Collection, id string) (Document, error) {
	if f, ok := c.(FreshGetter); ok {
		return f.GetFresh(ctx, id)
	}
	return c.Get(ctx, id)
}

// Store opens the collections of one service.
type Store interface {
	// Collection returns (creating on first use) the collection of a
	// document kind, e.g. "Volume". Kinds are CIMI resource names.
	Collection(ctx context.Context, kind string) (Collection, error)
	// Close releases the store's resources.
	Close() error
}
