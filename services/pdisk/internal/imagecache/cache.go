package imagecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// pollEvery re-reads an origin being downloaded elsewhere, in case the
// watch missed or has not yet delivered its change.
const pollEvery = 200 * time.Millisecond

// cleanupTimeout bounds the store and backend work done after a download
// failed or was abandoned, when the caller's context may already be over.
const cleanupTimeout = time.Minute

// Errors of the claim protocol; they never reach callers.
var (
	// errLostClaim: another replica took over the origin being
	// downloaded (our lease had expired).
	errLostClaim = errors.New("the claim on the origin was taken over")
	// errChanged: the document is no longer in the state a revision-
	// checked update expected.
	errChanged = errors.New("the origin changed meanwhile")
)

// Cache is the image cache of one pdisk replica. It is safe for concurrent
// use; several replicas may share one Volume collection and backend.
type Cache struct {
	cfg Config

	mu      sync.Mutex
	flights map[string]*flight // by image id
	snaps   keyedMutex         // by snapshot uuid
	claims  atomic.Uint64      // makes claim tokens unique
}

// flight is one in-process attempt to obtain an origin, shared by every
// caller asking for the image meanwhile. It runs on its own context, which
// ends when every caller has given up.
type flight struct {
	done    chan struct{}
	v       *volume.Volume
	err     error
	waiters int // guarded by Cache.mu
	cancel  context.CancelFunc
}

// New returns a Cache.
func New(cfg Config) (*Cache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Cache{cfg: cfg, flights: make(map[string]*flight), snaps: keyedMutex{m: make(map[string]*keyedEntry)}}, nil
}

// Origin returns the AVAILABLE origin of req.ImageID, downloading and
// importing the image first if nobody has. Concurrent calls for one image,
// here or on other replicas, download it once; they all fail with the
// download's reason if it fails.
func (c *Cache) Origin(ctx context.Context, req Request) (*volume.Volume, error) {
	req, err := req.check()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	f := c.flights[req.ImageID]
	if f == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[req.ImageID] = f
		go func() {
			f.v, f.err = c.obtain(fctx, req)
			c.mu.Lock()
			if c.flights[req.ImageID] == f {
				delete(c.flights, req.ImageID)
			}
			c.mu.Unlock()
			cancel()
			close(f.done)
		}()
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		c.mu.Lock()
		f.waiters--
		c.mu.Unlock()
		if f.err != nil {
			return nil, f.err
		}
		v := *f.v
		return &v, nil
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody wants it any more: stop, and let the next caller
			// start afresh rather than join a flight being abandoned.
			f.cancel()
			if c.flights[req.ImageID] == f {
				delete(c.flights, req.ImageID)
			}
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("image %s: %w", req.ImageID, ctx.Err())
	}
}

// obtain reads the origin's document until it is AVAILABLE or FAILED,
// downloading the image when the document is missing (this replica created
// it) or its downloader's lease expired (this replica took it over).
func (c *Cache) obtain(ctx context.Context, req Request) (*volume.Volume, error) {
	ou := volume.OriginUUID(req.ImageID)
	id := volume.ID(ou)
	var (
		changes  <-chan store.Change
		watching bool
		tick     *time.Ticker
	)
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	// The watch is needed only while waiting; it ends before a download.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()

	for {
		doc, err := c.cfg.Volumes.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			cl, err := c.create(ctx, req, ou)
			if errors.Is(err, store.ErrExists) {
				continue // another replica was first: follow its download
			}
			if err != nil {
				return nil, err
			}
			stopWatch()
			return c.download(ctx, req, cl)
		}
		if err != nil {
			return nil, storeError(ctx, req.ImageID, err)
		}
		v, err := volume.Decode(doc.Body)
		if err != nil {
			return nil, errs.Wrap(errs.Internal, err, "the origin's document cannot be read")
		}
		claimIt := false
		switch v.State {
		case volume.Available:
			if v.SHA1 != req.SHA1 || v.Bytes != req.Bytes {
				return nil, errs.Errorf(errs.Conflict, "Image %s is cached with %d bytes and SHA-1 %s, but the request says %d bytes and SHA-1 %s.", req.ImageID, v.Bytes, v.SHA1, req.Bytes, req.SHA1)
			}
			return v, nil
		case volume.Failed:
			// A failure of another request (other checksum) or an old one
			// is no reason to fail this one: try again.
			if v.SHA1 == req.SHA1 && v.Bytes == req.Bytes && !c.failureExpired(v) {
				return nil, failureError(v.StateMessage)
			}
			claimIt = true
		case volume.Downloading:
			claimIt = c.leaseExpired(v)
		default:
			return nil, errs.Errorf(errs.Unavailable, "The cached copy of image %s is %s (%s): an administrator must look at volume %s.", req.ImageID, v.State, v.StateMessage, ou)
		}
		if claimIt {
			cl, err := c.takeOver(ctx, req, doc.Revision, v)
			if err == nil {
				stopWatch()
				return c.download(ctx, req, cl)
			}
			if !errors.Is(err, errChanged) {
				return nil, err
			}
			continue
		}

		// Someone else is downloading: wait for the document to change.
		if !watching {
			watching = true
			tick = time.NewTicker(pollEvery)
			if ch, err := c.cfg.Volumes.Watch(wctx); err == nil {
				changes = ch
			} else {
				c.cfg.Log.Warn("imagecache: cannot watch the volumes; polling", "error", err)
			}
			continue // re-read: the change may have come before the watch
		}
		if err := wait(ctx, changes, tick.C, id); err != nil {
			if errors.Is(err, errWatchEnded) {
				changes = nil
				continue
			}
			return nil, fmt.Errorf("image %s: waiting for its download by %s: %w", req.ImageID, v.Holder, err)
		}
	}
}

var errWatchEnded = errors.New("watch ended")

// wait returns when the watch reports a change of id, at the next tick, or
// when ctx ends (its error).
func wait(ctx context.Context, changes <-chan store.Change, tick <-chan time.Time, id string) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			return nil
		case ch, ok := <-changes:
			if !ok {
				return errWatchEnded
			}
			if ch.Document.ID == id {
				return nil
			}
		}
	}
}

// claim is this replica's right to download an origin.
type claim struct {
	uuid  string
	token string // the Holder written in the document
}

// newToken returns a holder name unique to one claim, so that an abandoned
// claim of this replica is never mistaken for a newer one.
func (c *Cache) newToken() string {
	return fmt.Sprintf("%s#%d", c.cfg.Holder, c.claims.Add(1))
}

// create makes the DOWNLOADING document of a missing origin; ErrExists
// means another replica (or flight) made it first.
func (c *Cache) create(ctx context.Context, req Request, ou string) (claim, error) {
	now := c.cfg.Now()
	cl := claim{uuid: ou, token: c.newToken()}
	v := &volume.Volume{
		ID:          volume.ID(ou),
		ResourceURI: cimi.ResourceURI(volume.Kind),
		Created:     volume.Stamp(now),
		Updated:     volume.Stamp(now),
		UUID:        ou,
		Owner:       "",
		Visibility:  volume.Public,
		Identifier:  req.ImageID,
		Type:        req.Type,
		State:       volume.Downloading,
		Backend:     c.cfg.Backend.Name(),
		Bytes:       req.Bytes,
		SHA1:        req.SHA1,
		Holder:      cl.token,
		LeaseUntil:  volume.Stamp(now.Add(c.cfg.Lease)),
	}
	v.SetACL(volume.ACLFor("", volume.Public))
	body, err := v.Encode()
	if err != nil {
		return cl, errs.Wrap(errs.Internal, err, "the origin's document cannot be written")
	}
	rev, err := c.cfg.Volumes.Create(ctx, v.ID, body)
	if errors.Is(err, store.ErrExists) {
		return cl, err
	}
	if err != nil {
		return cl, storeError(ctx, req.ImageID, err)
	}
	c.cfg.Log.Info("imagecache: downloading", "image", req.ImageID, "volume", ou, "holder", cl.token)
	c.announce(ctx, subject.EventCreated, v, msgID(ou, rev))
	return cl, nil
}

// takeOver claims an origin whose downloader's lease expired or whose
// failure is over, if it is still at revision rev (errChanged otherwise),
// and removes whatever its storage holds.
func (c *Cache) takeOver(ctx context.Context, req Request, rev uint64, old *volume.Volume) (claim, error) {
	now := c.cfg.Now()
	cl := claim{uuid: old.UUID, token: c.newToken()}
	v := *old
	v.Type = req.Type
	v.State = volume.Downloading
	v.StateMessage = ""
	v.Bytes, v.SHA1 = req.Bytes, req.SHA1
	v.Backend = c.cfg.Backend.Name()
	v.Format, v.Path = "", ""
	v.Holder = cl.token
	v.LeaseUntil = volume.Stamp(now.Add(c.cfg.Lease))
	v.Updated = volume.Stamp(now)
	body, err := v.Encode()
	if err != nil {
		return cl, errs.Wrap(errs.Internal, err, "the origin's document cannot be written")
	}
	newRev, err := c.cfg.Volumes.Put(ctx, v.ID, body, rev)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return cl, errChanged
	}
	if err != nil {
		return cl, storeError(ctx, req.ImageID, err)
	}
	c.cfg.Log.Info("imagecache: taking over", "image", req.ImageID, "volume", old.UUID, "state", old.State, "previous_holder", old.Holder, "holder", cl.token)
	c.announce(ctx, subject.EventUpdated, &v, msgID(v.UUID, newRev))
	// The previous holder may have imported the image before it died:
	// nothing tells whether that copy is whole, so it goes.
	if err := c.cfg.Backend.Delete(ctx, old.UUID); err != nil && errs.CodeOf(err) != errs.NotFound {
		c.fail(ctx, req, cl, errs.Wrap(errs.CodeOf(err), err, "the storage backend could not remove an earlier copy"))
		return cl, fmt.Errorf("image %s: remove an earlier copy: %w", req.ImageID, err)
	}
	return cl, nil
}

// leaseExpired reports whether the downloader of v stopped renewing its
// claim.
func (c *Cache) leaseExpired(v *volume.Volume) bool {
	return !c.cfg.Now().Before(volume.ParseStamp(v.LeaseUntil))
}

// failureExpired reports whether a FAILED origin has been kept long enough.
func (c *Cache) failureExpired(v *volume.Volume) bool {
	return !c.cfg.Now().Before(volume.ParseStamp(v.Updated).Add(c.cfg.FailureTTL))
}

// update applies fn to the decoded document id with a revision check,
// retrying on conflict, and returns the document written.
func (c *Cache) update(ctx context.Context, id string, fn func(v *volume.Volume) error) (*volume.Volume, uint64, error) {
	doc, err := c.cfg.Volumes.Update(ctx, id, func(cur store.Document) (json.RawMessage, error) {
		v, err := volume.Decode(cur.Body)
		if err != nil {
			return nil, err
		}
		if err := fn(v); err != nil {
			return nil, err
		}
		return v.Encode()
	})
	if err != nil {
		return nil, 0, err
	}
	v, err := volume.Decode(doc.Body)
	if err != nil {
		return nil, 0, err
	}
	return v, doc.Revision, nil
}

// announce publishes a change; a failure is logged, not returned, because
// the document is written by then and the caller cannot undo that.
func (c *Cache) announce(ctx context.Context, event string, v *volume.Volume, id string) {
	if c.cfg.Announce == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var after *volume.Volume
	if event != subject.EventDeleted {
		after = v
	}
	if err := c.cfg.Announce(ctx, event, v.UUID, after, id); err != nil {
		c.cfg.Log.Warn("imagecache: cannot announce a volume change", "volume", v.UUID, "event", event, "error", err)
	}
}

// msgID names the announcement of revision rev of volume uuid.
func msgID(uuid string, rev uint64) string { return fmt.Sprintf("%s.%d", uuid, rev) }

// storeError reports a store failure to a caller.
func storeError(ctx context.Context, image string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("image %s: %w", image, ctx.Err())
	}
	return errs.Wrap(errs.Unavailable, err, fmt.Sprintf("image %s: the volume store failed", image))
}

// The reason of a FAILED origin is stored as "[code] message", so that
// requests on other replicas fail with the code the downloader saw.

func failureMessage(err error) string {
	return "[" + string(errs.CodeOf(err)) + "] " + errs.MessageOf(err)
}

func failureError(stateMessage string) error {
	code, msg := errs.Unavailable, stateMessage
	if rest, ok := strings.CutPrefix(stateMessage, "["); ok {
		if c, m, ok := strings.Cut(rest, "] "); ok {
			if _, known := errs.Lookup(errs.Code(c)); known {
				code, msg = errs.Code(c), m
			}
		}
	}
	return errs.New(code, msg)
}

// keyedMutex serializes work on one key (a snapshot uuid), so that a
// command delivered twice at once is handled once after the other.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	ch chan struct{} // holds a token while locked
	n  int           // holders and waiters
}

// lock takes the key's lock or returns ctx's error; unlock releases it.
func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.n++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if e.n--; e.n == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
