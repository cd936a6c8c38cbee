package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/memindex"
)

// Option configures Open.
type Option func(*options)

type options struct {
	replicas    int
	logger      *slog.Logger
	strictReads bool
}

// WithReplicas sets how many copies of each bucket a NATS cluster keeps
// (1 on a single server, 3 on a typical cluster). The default is 1.
func WithReplicas(n int) Option {
	return func(o *options) { o.replicas = max(n, 1) }
}

// WithStrictReads makes every Get a round trip to the bucket, so that it
// sees other processes' writes the moment they complete. By default Get
// answers from the in-memory index (about a hundred times faster), as a
// controller reads from its informer cache: a document this process wrote
// or another process created is always found (a miss is checked against
// the bucket), but another process's latest change to a document may reach
// the index up to the watch delay later — usually well under a millisecond.
// Revision checks catch such a stale read: Put and Delete fail with
// ErrConflict and refresh the index entry, and Update retries with it.
func WithStrictReads() Option {
	return func(o *options) { o.strictReads = true }
}

// WithLogger sets where the store reports entries it cannot index (written
// to a bucket by something other than this adapter). The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Store is the embedded document store of one service. It implements
// store.Store.
type Store struct {
	js      jetstream.JetStream
	service string
	opts    options

	mu     sync.Mutex
	colls  map[string]*Collection
	closed bool
	wg     sync.WaitGroup // index watchers
}

var _ store.Store = (*Store)(nil)

// Open returns the store of service on the JetStream of js; collections are
// opened by Collection.
func Open(ctx context.Context, js jetstream.JetStream, service string, opts ...Option) (*Store, error) {
	if service == "" {
		return nil, fmt.Errorf("embedded store: %w: empty service name", store.ErrInvalid)
	}
	o := options{replicas: 1, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return nil, fmt.Errorf("embedded store for %s: JetStream unavailable: %w", service, err)
	}
	return &Store{js: js, service: service, opts: o, colls: make(map[string]*Collection)}, nil
}

// Collection returns the collection of kind, creating its bucket if needed
// and loading its index before it returns.
func (s *Store) Collection(ctx context.Context, kind string) (store.Collection, error) {
	if kind == "" {
		return nil, fmt.Errorf("embedded store: %w: empty kind", store.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("embedded store: closed")
	}
	if c := s.colls[kind]; c != nil {
		return c, nil
	}
	c, err := s.open(ctx, kind)
	if err != nil {
		return nil, err
	}
	s.colls[kind] = c
	return c, nil
}

// open creates the bucket of kind and loads its index from a watch of every
// key, which then keeps running to apply changes made by other processes.
func (s *Store) open(ctx context.Context, kind string) (*Collection, error) {
	name := BucketName(s.service, kind)
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: fmt.Sprintf("%s documents of %s", kind, s.service),
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.opts.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded store: bucket %s: %w", name, err)
	}
	c := &Collection{kind: kind, kv: kv, idx: memindex.New(), strictReads: s.opts.strictReads, log: s.opts.logger.With("bucket", name)}
	// The watch outlives this call, so it must not end with ctx.
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("embedded store: watch %s: %w", name, err)
	}
	if err := c.load(ctx, w); err != nil {
		stop(w)
		return nil, fmt.Errorf("embedded store: load %s: %w", name, err)
	}
	c.watcher = w
	s.wg.Go(func() {
		for e := range w.Updates() {
			if e != nil {
				c.apply(e)
			}
		}
	})
	return c, nil
}

// Close stops keeping the indexes current. Collections already returned
// still read and write the buckets, but their queries no longer see changes
// made by other processes.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for _, c := range s.colls {
		// A closed connection has already ended the watch.
		if err := c.watcher.Stop(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("stop watching %s: %w", c.kind, err))
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// stop ends a watch and drains what it had buffered: the client blocks
// delivering to a full channel, and it closes the channel only once it has
// delivered.
func stop(w jetstream.KeyWatcher) {
	_ = w.Stop()
	go func() {
		for range w.Updates() {
		}
	}()
}
