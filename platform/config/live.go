package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"stratuslab.dev/platform/store"
)

// ServiceConfigurationKind is the store collection of live settings.
const ServiceConfigurationKind = "ServiceConfiguration"

// ServiceConfigurationID returns the id of a service's live settings:
// "ServiceConfiguration/<service>", or ".../<service>-<instance>" for the
// settings of one replica.
func ServiceConfigurationID(service, instance string) string {
	if instance == "" {
		return ServiceConfigurationKind + "/" + service
	}
	return ServiceConfigurationKind + "/" + service + "-" + instance
}

// Bounds of the pause before a lost watch is opened again.
const (
	rewatchMin = 100 * time.Millisecond
	rewatchMax = 30 * time.Second
)

// Live holds a service's live settings of type T, read from one
// ServiceConfiguration document and kept current while Run runs. T's fields
// are decoded from the document's top-level JSON attributes (the CIMI common
// ones, "id", "acl" and so on, are ignored unless T has them) over the
// defaults, so a document need only name what it changes. When T or *T has
// a Validate() error method it is called; a document that does not decode or
// validate is logged and ignored, keeping the last good settings, so an
// administrator's mistake cannot take a running service down.
type Live[T any] struct {
	coll     store.Collection
	id       string
	defaults []byte // T's defaults as JSON, decoded afresh for every document
	apply    func(T)
	logger   *slog.Logger
	cur      atomic.Pointer[T]

	mu      sync.Mutex // serialises loads and calls of apply
	loaded  bool
	applied uint64 // revision in effect; 0 for the defaults
}

// NewLive returns live settings read from the document id of coll (see
// ServiceConfigurationID), starting at defaults. apply, when not nil, is
// called with the settings each time they take effect — once at the first
// Load, then after each change — from one goroutine at a time. logger
// receives the documents refused; nil discards them.
func NewLive[T any](coll store.Collection, id string, defaults T, apply func(T), logger *slog.Logger) (*Live[T], error) {
	def, err := json.Marshal(defaults)
	if err != nil {
		return nil, fmt.Errorf("live settings %s: defaults do not encode as JSON: %w", id, err)
	}
	if err := validate(&defaults); err != nil {
		return nil, fmt.Errorf("live settings %s: defaults are invalid: %w", id, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Live[T]{coll: coll, id: id, defaults: def, apply: apply, logger: logger}
	l.cur.Store(&defaults)
	return l, nil
}

// Current returns the settings in effect: the defaults until a document has
// been loaded. It is cheap and safe to call from any goroutine. T is copied
// shallowly: treat maps and slices in it as read-only.
func (l *Live[T]) Current() T { return *l.cur.Load() }

// Revision returns the store revision of the document in effect, 0 when
// the defaults are.
func (l *Live[T]) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied
}

// Load reads the document once and applies it (or the defaults when there
// is none). Call it before serving so requests see the configured settings;
// Run calls it too. It fails only when the store cannot be read.
func (l *Live[T]) Load(ctx context.Context) error {
	doc, err := l.coll.Get(ctx, l.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		doc = store.Document{}
	case err != nil:
		return fmt.Errorf("live settings %s: %w", l.id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded && doc.Revision == l.applied {
		return nil
	}
	body := doc.Body
	if doc.Revision == 0 {
		body = nil
	}
	v, err := l.decode(body)
	if err != nil {
		l.logger.WarnContext(ctx, "ignoring invalid service configuration; the previous settings stay in effect",
			"id", l.id, "revision", doc.Revision, "error", err)
		if !l.loaded {
			l.loaded = true
			l.fire()
		}
		return nil
	}
	l.cur.Store(&v)
	l.applied, l.loaded = doc.Revision, true
	l.fire()
	return nil
}

// fire calls apply with the current settings; l.mu is held.
func (l *Live[T]) fire() {
	if l.apply != nil {
		l.apply(*l.cur.Load())
	}
}

// decode returns the defaults overlaid with body, validated.
func (l *Live[T]) decode(body json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(l.defaults, &v); err != nil {
		return v, fmt.Errorf("defaults: %w", err)
	}
	if body != nil {
		if err := json.Unmarshal(body, &v); err != nil {
			return v, err
		}
	}
	return v, validate(&v)
}

// validate calls Validate when *T (and so also T) has it.
func validate[T any](v *T) error {
	if c, ok := any(v).(interface{ Validate() error }); ok {
		return c.Validate()
	}
	return nil
}

// Run keeps the settings current until ctx ends, then returns nil. It
// watches the collection and, on each change of the document, reads it
// again, which copes with changes arriving out of order and with deletion
// (the defaults come back). A watch that ends early is opened again after a
// pause, reading the document afresh. Run fails only if the first watch or
// read does.
func (l *Live[T]) Run(ctx context.Context) error {
	changes, err := l.coll.Watch(ctx)
	if err != nil {
		return fmt.Errorf("live settings %s: watch: %w", l.id, err)
	}
	if err := l.Load(ctx); err != nil {
		return err
	}
	pause := rewatchMin
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-changes:
			if ok {
				pause = rewatchMin // the watch works
				if c.Document.ID == l.id {
					l.reload(ctx)
				}
				continue
			}
		}
		// The watch ended while ctx is alive: the connection or the store
		// went away. Open it again, then catch up with what was missed.
		for {
			l.logger.WarnContext(ctx, "watch of service configuration ended; retrying", "id", l.id, "in", pause)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			pause = min(2*pause, rewatchMax)
			if changes, err = l.coll.Watch(ctx); err == nil {
				break
			}
			l.logger.WarnContext(ctx, "cannot watch service configuration", "id", l.id, "error", err)
		}
		l.reload(ctx)
	}
}

// reload loads the document, logging a failure to read it: the settings in
// effect stay, and the next change or re-watch tries again.
func (l *Live[T]) reload(ctx context.Context) {
	if err := l.Load(ctx); err != nil && ctx.Err() == nil {
		l.logger.WarnContext(ctx, "cannot read service configuration", "id", l.id, "error", err)
	}
}
