package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
)

// Kind is the document kind, and collection, of revocations.
const Kind = "Revocation"

// Types of revocation documents.
const (
	typeSession = "session"
	typeUser    = "user"
)

// Publisher publishes events; *bus.Bus satisfies it.
type Publisher interface {
	Publish(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// document is the stored form of a revocation.
type document struct {
	ID   string   `json:"id"`
	ACL  cimi.ACL `json:"acl"`
	Type string   `json:"type"`
	// TokenID and Expires for a session; User and NotBefore for a user.
	TokenID   string    `json:"tokenId,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	User      string    `json:"user,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	// Until is when no token the revocation refuses can be valid any more.
	Until time.Time `json:"until"`
}

// List reads and writes the revocations.
type List struct {
	coll   store.Collection
	events Publisher
	now    func() time.Time
}

// New returns the revocations kept in coll, published on events, at the
// time given by now (time.Now when nil).
func New(coll store.Collection, events Publisher, now func() time.Time) *List {
	if now == nil {
		now = time.Now
	}
	return &List{coll: coll, events: events, now: now}
}

var adminACL = cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}

// RevokeSession refuses the token tokenID until it expires. Revoking a
// token twice is harmless.
func (l *List) RevokeSession(ctx context.Context, tokenID string, expires time.Time) error {
	expires = expires.UTC().Truncate(time.Millisecond)
	doc := document{ID: Kind + "/s-" + tokenID, ACL: adminACL, Type: typeSession,
		TokenID: tokenID, Expires: expires, Until: expires}
	body, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("revocation: encode: %w", err)
	}
	if _, err := l.coll.Create(ctx, doc.ID, body); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("revocation: record the logout: %w", err)
	}
	ev := &authnv1.SessionRevoked{TokenId: tokenID, Expires: timestamppb.New(expires)}
	if err := l.events.Publish(ctx, subject.EvtAuthnSessionRevoked, ev, "session-revoked-"+tokenID); err != nil {
		return fmt.Errorf("revocation: publish the logout: %w", err)
	}
	return nil
}

// RevokeUser refuses every token of user issued before notBefore; ttl is
// the longest a token lives, after which the revocation is forgotten.
// Revoking again with the same time (a redelivered command) changes
// nothing, and a later time extends the revocation.
func (l *List) RevokeUser(ctx context.Context, user string, notBefore time.Time, ttl time.Duration) error {
	notBefore = notBefore.UTC().Truncate(time.Millisecond)
	until := notBefore.Add(ttl)
	if !until.After(l.now()) {
		return nil // every token it would refuse has expired
	}
	id := Kind + "/u-" + user
	merge := func(cur document) document {
		cur.ID, cur.ACL, cur.Type, cur.User = id, adminACL, typeUser, user
		if notBefore.After(cur.NotBefore) {
			cur.NotBefore = notBefore
		}
		if until.After(cur.Until) {
			cur.Until = until
		}
		return cur
	}
	body, err := json.Marshal(merge(document{}))
	if err != nil {
		return fmt.Errorf("revocation: encode: %w", err)
	}
	_, err = l.coll.Create(ctx, id, body)
	if errors.Is(err, store.ErrExists) {
		_, err = l.coll.Update(ctx, id, func(d store.Document) (json.RawMessage, error) {
			var cur document
			if err := json.Unmarshal(d.Body, &cur); err != nil {
				cur = document{}
			}
			return json.Marshal(merge(cur))
		})
	}
	if err != nil {
		return fmt.Errorf("revocation: record the sessions of %s as revoked: %w", user, err)
	}
	ev := &authnv1.UserSessionsRevoked{User: user, NotBefore: timestamppb.New(notBefore)}
	msgID := "user-revoked-" + user + "-" + strconv.FormatInt(notBefore.UnixMilli(), 10)
	if err := l.events.Publish(ctx, subject.EvtAuthnUserSessionsRevoked, ev, msgID); err != nil {
		return fmt.Errorf("revocation: publish the revocation of %s's sessions: %w", user, err)
	}
	return nil
}

// all reads every revocation document.
func (l *List) all(ctx context.Context) ([]store.Document, error) {
	page, err := l.coll.Query(ctx, cimi.Query{}, cimi.Identity{Roles: []string{cimi.RoleAdmin}})
	if err != nil {
		return nil, fmt.Errorf("revocation: read revocations: %w", err)
	}
	return page.Docs, nil
}

// InForce lists the revocations that still refuse some token.
func (l *List) InForce(ctx context.Context) (*authnv1.RevocationsResponse, error) {
	docs, err := l.all(ctx)
	if err != nil {
		return nil, err
	}
	now := l.now()
	resp := &authnv1.RevocationsResponse{}
	for _, d := range docs {
		var doc document
		if json.Unmarshal(d.Body, &doc) != nil || !doc.Until.After(now) {
			continue
		}
		switch doc.Type {
		case typeSession:
			resp.Sessions = append(resp.Sessions, &authnv1.SessionRevoked{TokenId: doc.TokenID, Expires: timestamppb.New(doc.Expires)})
		case typeUser:
			resp.Users = append(resp.Users, &authnv1.UserSessionsRevoked{User: doc.User, NotBefore: timestamppb.New(doc.NotBefore)})
		}
	}
	return resp, nil
}

// Purge deletes the revocations no longer in force and returns how many
// it deleted. Replicas purging at once each delete some; none fails.
func (l *List) Purge(ctx context.Context) (int, error) {
	docs, err := l.all(ctx)
	if err != nil {
		return 0, err
	}
	now := l.now()
	n := 0
	for _, d := range docs {
		var doc document
		if err := json.Unmarshal(d.Body, &doc); err == nil && doc.Until.After(now) {
			continue
		}
		err := l.coll.Delete(ctx, d.ID, d.Revision)
		switch {
		case err == nil:
			n++
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
			// another replica purged it, or a user was revoked again
		default:
			return n, fmt.Errorf("revocation: purge %s: %w", d.ID, err)
		}
	}
	return n, nil
}

// PurgeEvery is how often Run purges.
const PurgeEvery = time.Minute

// Run purges the revocations no longer in force every PurgeEvery until ctx
// ends; failures are reported to onError and retried at the next tick.
func (l *List) Run(ctx context.Context, onError func(error)) error {
	tick := time.NewTicker(PurgeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := l.Purge(ctx); err != nil && ctx.Err() == nil && onError != nil {
				onError(err)
			}
		}
	}
}
