package keyring

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/session"
	"stratuslab.dev/platform/store"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
)

// Kind is the document kind, and collection, of signing keys.
const Kind = "SigningKey"

// Activation is how long a new key waits before it signs: the time every
// gateway has to receive it on evt.authn.keys.rotated. Only the very first
// key of a cloud signs at once, since there is nothing else to sign with.
const Activation = 10 * time.Second

// Grace is added to a token's lifetime before the key that signed it is
// deleted: replicas that have not yet noticed a newer key may still sign
// with the old one for a short while.
const Grace = 5 * time.Minute

// Publisher publishes events; *bus.Bus satisfies it.
type Publisher interface {
	Publish(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// document is the stored form of a key.
type document struct {
	ID      string    `json:"id"`
	ACL     cimi.ACL  `json:"acl"`
	Kid     string    `json:"kid"`
	Seed    []byte    `json:"seed"` // the Ed25519 private key seed
	Created time.Time `json:"created"`
}

// key is one loaded key.
type key struct {
	kid     string
	private ed25519.PrivateKey
	public  ed25519.PublicKey
	created time.Time
}

// Ring holds the keys and signs tokens. It is safe for concurrent use.
type Ring struct {
	coll   store.Collection
	events Publisher
	log    *slog.Logger
	now    func() time.Time

	mu        sync.RWMutex
	keys      []key  // oldest first
	published string // fingerprint of the key set last published
}

// New returns a ring over the SigningKey collection coll that publishes key
// set changes on events (may be nil in tests) and reads the time from now
// (time.Now when nil).
func New(coll store.Collection, events Publisher, log *slog.Logger, now func() time.Time) *Ring {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ring{coll: coll, events: events, log: log, now: now}
}

// ID returns the document id of the key kid.
func ID(kid string) string { return Kind + "/" + kid }

// slotKid names the key of the rotation period holding t: every replica
// computes the same name, so only one of them can create it.
func slotKid(t time.Time, rotation time.Duration) string {
	return "k" + t.UTC().Truncate(rotation).Format("20060102T150405Z")
}

// Rotate brings the keys up to date at the current time: it creates the
// key of the current rotation period unless a key at least as recent
// exists, deletes the keys whose tokens have all expired (ttl is the
// session lifetime), reloads the set and publishes it when it changed.
func (r *Ring) Rotate(ctx context.Context, rotation, ttl time.Duration) error {
	if err := r.Load(ctx); err != nil {
		return err
	}
	now := r.now()
	r.mu.RLock()
	keys := slices.Clone(r.keys)
	r.mu.RUnlock()
	start := now.UTC().Truncate(rotation)
	if len(keys) == 0 || keys[len(keys)-1].created.Before(start) {
		if err := r.create(ctx, slotKid(now, rotation), now); err != nil {
			return err
		}
	}
	// A key is last used when its successor starts signing; the tokens it
	// signed are all expired ttl (and a grace) later.
	for i := 0; i+1 < len(keys); i++ {
		retired := keys[i+1].created.Add(Activation)
		if now.After(retired.Add(ttl + Grace)) {
			if err := r.delete(ctx, keys[i].kid); err != nil {
				return err
			}
		}
	}
	return r.Load(ctx)
}

// create stores a new key; another replica having created it first is fine.
func (r *Ring) create(ctx context.Context, kid string, now time.Time) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("keyring: generate key: %w", err)
	}
	doc := document{
		ID:      ID(kid),
		ACL:     cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}},
		Kid:     kid,
		Seed:    priv.Seed(),
		Created: now.UTC(),
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("keyring: encode key: %w", err)
	}
	if _, err := r.coll.Create(ctx, doc.ID, body); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("keyring: store key %s: %w", kid, err)
	} else if err == nil {
		r.log.InfoContext(ctx, "new session signing key", "kid", kid)
	}
	return nil
}

// delete removes an expired key; another replica having removed it first
// is fine.
func (r *Ring) delete(ctx context.Context, kid string) error {
	doc, err := r.coll.Get(ctx, ID(kid))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("keyring: read key %s: %w", kid, err)
	}
	err = r.coll.Delete(ctx, doc.ID, doc.Revision)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("keyring: delete key %s: %w", kid, err)
	}
	if err == nil {
		r.log.InfoContext(ctx, "session signing key retired", "kid", kid)
	}
	return nil
}

// Load reads the keys from the store and, when the set differs from the
// one last published, publishes it on evt.authn.keys.rotated.
func (r *Ring) Load(ctx context.Context) error {
	page, err := r.coll.Query(ctx, cimi.Query{}, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		return fmt.Errorf("keyring: read keys: %w", err)
	}
	keys := make([]key, 0, len(page.Docs))
	for _, d := range page.Docs {
		var doc document
		if err := json.Unmarshal(d.Body, &doc); err != nil || len(doc.Seed) != ed25519.SeedSize || doc.Kid == "" {
			r.log.WarnContext(ctx, "ignoring a damaged signing key document", "id", d.ID)
			continue
		}
		priv := ed25519.NewKeyFromSeed(doc.Seed)
		keys = append(keys, key{kid: doc.Kid, private: priv, public: priv.Public().(ed25519.PublicKey), created: doc.Created})
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.kid, b.kid)
	})
	fp := fingerprint(keys)
	r.mu.Lock()
	r.keys = keys
	changed := fp != r.published
	r.mu.Unlock()
	if !changed || r.events == nil || len(keys) == 0 {
		return nil
	}
	// Every replica publishes the change it sees; the message id makes the
	// stream keep one copy.
	if err := r.events.Publish(ctx, subject.EvtAuthnKeysRotated, r.Public(), "keys-"+fp); err != nil {
		return fmt.Errorf("keyring: publish the key set: %w", err)
	}
	r.mu.Lock()
	r.published = fp
	r.mu.Unlock()
	return nil
}

// fingerprint identifies a key set by its key ids.
func fingerprint(keys []key) string {
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k.kid))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// signer returns the key that signs now: the newest key that is older than
// Activation, or the newest of all when none is.
func (r *Ring) signer() (key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.keys) == 0 {
		return key{}, false
	}
	cutoff := r.now().Add(-Activation)
	for i := len(r.keys) - 1; i >= 0; i-- {
		if !r.keys[i].created.After(cutoff) {
			return r.keys[i], true
		}
	}
	return r.keys[len(r.keys)-1], true
}

// Sign returns the token for c signed with the current key.
func (r *Ring) Sign(c session.Claims) (string, error) {
	k, ok := r.signer()
	if !ok {
		return "", errs.New(errs.Unavailable, "The authentication service has no signing key yet: retry in a moment.")
	}
	return session.Sign(k.private, k.kid, c)
}

// Key implements session.Keys with the loaded keys.
func (r *Ring) Key(kid string) (ed25519.PublicKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.kid == kid {
			return k.public, true
		}
	}
	return nil, false
}

// Public returns the public keys, oldest first.
func (r *Ring) Public() *authnv1.KeysResponse {
	r.mu.RLock()
	defer r.mu.RUnlock()
	resp := &authnv1.KeysResponse{Keys: make([]*authnv1.PublicKey, 0, len(r.keys))}
	for _, k := range r.keys {
		resp.Keys = append(resp.Keys, &authnv1.PublicKey{Kid: k.kid, Ed25519: slices.Clone(k.public), Created: timestamppb.New(k.created)})
	}
	return resp
}

// Settings returns the rotation period and the session lifetime in effect.
type Settings func() (rotation, ttl time.Duration)

// CheckEvery is how often Run rotates when nothing changes; a change of the
// keys made by another replica is seen at once through the store's watch.
const CheckEvery = 30 * time.Second

// Run keeps the keys current until ctx ends: it rotates now and every
// CheckEvery, and reloads whenever another replica changes a key. A failed
// rotation is logged and tried again at the next tick.
func (r *Ring) Run(ctx context.Context, settings Settings) error {
	changes, err := r.coll.Watch(ctx)
	if err != nil {
		return fmt.Errorf("keyring: watch keys: %w", err)
	}
	rotate := func() {
		rotation, ttl := settings()
		if err := r.Rotate(ctx, rotation, ttl); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "cannot rotate session signing keys; retrying", "error", err)
		}
	}
	rotate()
	tick := time.NewTicker(CheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if changes == nil {
				changes, _ = r.coll.Watch(ctx) // nil again on failure: the next tick retries
			}
			rotate()
		case _, ok := <-changes:
			if !ok {
				// The watch ended early; ticks keep the keys current and
				// open it again.
				changes = nil
				continue
			}
			if err := r.Load(ctx); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "cannot reload session signing keys", "error", err)
			}
		}
	}
}
