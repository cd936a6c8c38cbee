package couchbase

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/couchbase/gocb/v2"
	"github.com/nats-io/nats.go"

	"stratuslab.dev/platform/store"
)

// DefaultBucket is the bucket used when Config.Bucket is empty.
const DefaultBucket = "stratuslab"

// Config says how to reach Couchbase. Each service should have its own
// Couchbase user, restricted to its scope.
type Config struct {
	ConnStr  string // e.g. "couchbase://db1,db2" or "couchbases://db1"
	Username string
	Password string
	Bucket   string // DefaultBucket when empty; it must exist
}

// Option configures Open.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sets where the store reports change notices it failed to
// publish. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Store is the Couchbase document store of one service. It implements
// store.Store.
type Store struct {
	cluster *gocb.Cluster
	bucket  *gocb.Bucket
	scope   string
	service string
	nc      *nats.Conn
	log     *slog.Logger

	mu    sync.Mutex
	colls map[string]*Collection
}

var _ store.Store = (*Store)(nil)

// Open connects to Couchbase and makes sure the scope of service exists.
// nc carries the change notices Watch reads.
func Open(ctx context.Context, cfg Config, nc *nats.Conn, service string, opts ...Option) (*Store, error) {
	if service == "" || nc == nil {
		return nil, fmt.Errorf("couchbase store: %w: a service name and a NATS connection are required", store.ErrInvalid)
	}
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	cluster, err := gocb.Connect(cfg.ConnStr, gocb.ClusterOptions{Username: cfg.Username, Password: cfg.Password})
	if err != nil {
		return nil, fmt.Errorf("couchbase store: connect to %s: %w", cfg.ConnStr, err)
	}
	s := &Store{
		cluster: cluster,
		bucket:  cluster.Bucket(cfg.Bucket),
		scope:   name(service),
		service: service,
		nc:      nc,
		log:     o.logger.With("bucket", cfg.Bucket, "scope", name(service)),
		colls:   make(map[string]*Collection),
	}
	err = s.bucket.WaitUntilReady(waitFor(ctx), &gocb.WaitUntilReadyOptions{
		Context:      ctx,
		ServiceTypes: []gocb.ServiceType{gocb.ServiceTypeKeyValue, gocb.ServiceTypeQuery},
	})
	if err == nil {
		err = s.ensureScope(ctx)
	}
	if err != nil {
		_ = cluster.Close(nil)
		return nil, fmt.Errorf("couchbase store: bucket %s: %w", cfg.Bucket, err)
	}
	return s, nil
}

// waitFor returns how long to wait for the cluster: until ctx's deadline,
// or 30 seconds.
func waitFor(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return 30 * time.Second
}

// name turns a service or kind into a Couchbase scope or collection name
// (also a NATS subject token): characters outside [A-Za-z0-9_-] become '_',
// and a name starting with '_' gets an 'x' in front, since Couchbase
// reserves those.
func name(s string) string {
	n := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, s)
	if strings.HasPrefix(n, "_") {
		n = "x" + n
	}
	return n
}

// ensureScope creates the service's scope unless it exists. A service user
// restricted to its scope may not be allowed to list or create scopes; then
// an administrator must have created it, and later operations will say so
// if not.
func (s *Store) ensureScope(ctx context.Context) error {
	mgr := s.bucket.CollectionsV2()
	scopes, listErr := mgr.GetAllScopes(&gocb.GetAllScopesOptions{Context: ctx})
	if listErr == nil && slices.ContainsFunc(scopes, func(sc gocb.ScopeSpec) bool { return sc.Name == s.scope }) {
		return nil
	}
	err := mgr.CreateScope(s.scope, &gocb.CreateScopeOptions{Context: ctx})
	if err == nil || errors.Is(err, gocb.ErrScopeExists) {
		return nil
	}
	if listErr != nil {
		s.log.Warn("store: cannot list or create the scope; assuming an administrator created it",
			"list_error", listErr, "create_error", err)
		return nil
	}
	return fmt.Errorf("create scope %s: %w", s.scope, err)
}

// ensureCollection creates a collection unless it exists, with the same
// allowance as ensureScope for users without the right to manage them.
func (s *Store) ensureCollection(ctx context.Context, coll string) error {
	mgr := s.bucket.CollectionsV2()
	err := mgr.CreateCollection(s.scope, coll, nil, &gocb.CreateCollectionOptions{Context: ctx})
	if err == nil || errors.Is(err, gocb.ErrCollectionExists) {
		return nil
	}
	scopes, listErr := mgr.GetAllScopes(&gocb.GetAllScopesOptions{Context: ctx})
	if listErr != nil {
		s.log.Warn("store: cannot create or list collections; assuming an administrator created it",
			"collection", coll, "create_error", err, "list_error", listErr)
		return nil
	}
	for _, sc := range scopes {
		if sc.Name == s.scope && slices.ContainsFunc(sc.Collections, func(c gocb.CollectionSpec) bool { return c.Name == coll }) {
			return nil
		}
	}
	return fmt.Errorf("create collection %s.%s: %w", s.scope, coll, err)
}

// Collection returns the collection of kind, creating it and its indexes
// if needed.
func (s *Store) Collection(ctx context.Context, kind string) (store.Collection, error) {
	if kind == "" {
		return nil, fmt.Errorf("couchbase store: %w: empty kind", store.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.colls[kind]; c != nil {
		return c, nil
	}
	coll := name(kind)
	if err := s.ensureCollection(ctx, coll); err != nil {
		return nil, fmt.Errorf("couchbase store: %w", err)
	}
	keyspace := Keyspace(s.bucket.Name(), s.scope, coll)
	for _, stmt := range IndexStatements(keyspace) {
		if err := s.ddl(ctx, stmt); err != nil {
			return nil, fmt.Errorf("couchbase store: index on %s: %w", keyspace, err)
		}
	}
	c := &Collection{
		store:    s,
		kind:     kind,
		coll:     s.bucket.Scope(s.scope).Collection(coll),
		keyspace: keyspace,
		subject:  Subject(s.service, kind),
	}
	s.colls[kind] = c
	return c, nil
}

// ddl runs an index statement, retrying for a while: a collection just
// created takes a moment to reach the query service.
func (s *Store) ddl(ctx context.Context, stmt string) error {
	var err error
	for attempt := range 25 {
		var res *gocb.QueryResult
		res, err = s.cluster.Query(stmt, &gocb.QueryOptions{Context: ctx})
		if err == nil {
			return res.Close()
		}
		if ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(time.Duration(min(attempt+1, 10)) * 100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

// Subject returns the NATS subject the change notices of a collection go
// to: store.<service>.<kind>, each part as name makes it.
func Subject(service, kind string) string {
	return "store." + name(service) + "." + name(kind)
}

// Close disconnects from Couchbase.
func (s *Store) Close() error {
	if err := s.cluster.Close(nil); err != nil {
		return fmt.Errorf("couchbase store: close: %w", err)
	}
	return nil
}
