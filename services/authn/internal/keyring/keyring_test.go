package keyring

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/platform/session"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/authn/internal/authntest"
)

const (
	rotation = 24 * time.Hour
	ttl      = time.Hour
)

// keySet turns a published key set into what a gateway verifies with.
func keySet(resp *authnv1.KeysResponse) session.KeySet {
	ks := session.KeySet{}
	for _, k := range resp.GetKeys() {
		ks[k.GetKid()] = k.GetEd25519()
	}
	return ks
}

func sign(t *testing.T, r *Ring, now time.Time, id string) string {
	t.Helper()
	tok, err := r.Sign(session.Claims{ID: id, User: "alice", IssuedAt: now.UnixMilli(), Expires: now.Add(ttl).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := authntest.New(t)
	clock := authntest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	r := New(env.Collection(Kind), env.Bus, authntest.Quiet(), clock.Now)

	if _, err := r.Sign(session.Claims{ID: "x", User: "alice"}); err == nil {
		t.Fatal("signed without a key")
	}
	if err := r.Rotate(ctx, rotation, ttl); err != nil {
		t.Fatal(err)
	}
	first := r.Public()
	if len(first.Keys) != 1 {
		t.Fatalf("%d keys after the first rotation", len(first.Keys))
	}
	// The published set is what a gateway verifies with.
	var published authnv1.KeysResponse
	if !env.Last(subject.EvtAuthnKeysRotated, &published) || len(published.Keys) != 1 {
		t.Fatalf("key set not published: %v", &published)
	}
	old := sign(t, r, clock.Now(), "t1")
	if c, err := session.Parse(old, keySet(&published), clock.Now()); err != nil || c.ID != "t1" {
		t.Fatalf("token does not verify with the published keys: %v", err)
	}
	oldKid, _ := session.KeyID(old)

	// Same period: nothing changes, nothing is published again.
	clock.Add(time.Hour)
	if err := r.Rotate(ctx, rotation, ttl); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Public().Keys); n != 1 || env.Count(subject.EvtAuthnKeysRotated) != 1 {
		t.Fatalf("%d keys, %d publications within one period", n, env.Count(subject.EvtAuthnKeysRotated))
	}

	// Next period: a new key, published, which signs only after Activation.
	clock.Add(rotation)
	if err := r.Rotate(ctx, rotation, ttl); err != nil {
		t.Fatal(err)
	}
	if !env.Last(subject.EvtAuthnKeysRotated, &published) || len(published.Keys) != 2 {
		t.Fatalf("new key set not published: %v", &published)
	}
	beforeActivation := sign(t, r, clock.Now(), "t2")
	if kid, _ := session.KeyID(beforeActivation); kid != oldKid {
		t.Errorf("the new key signs before gateways can know it")
	}
	clock.Add(Activation + time.Second)
	recent := sign(t, r, clock.Now(), "t3")
	if kid, _ := session.KeyID(recent); kid == oldKid {
		t.Errorf("the old key still signs after the new one is active")
	}
	if _, err := session.Parse(beforeActivation, r, clock.Now()); err != nil {
		t.Errorf("a token of the old key no longer verifies within its lifetime: %v", err)
	}

	// Once every token of the old key has expired, the key goes.
	clock.Add(ttl + Grace + time.Second)
	if err := r.Rotate(ctx, rotation, ttl); err != nil {
		t.Fatal(err)
	}
	if !env.Last(subject.EvtAuthnKeysRotated, &published) || len(published.Keys) != 1 || published.Keys[0].Kid == oldKid {
		t.Fatalf("old key not retired: %v", &published)
	}
	if _, err := session.Parse(beforeActivation, r, time.UnixMilli(0)); !errors.Is(err, session.ErrUnknownKey) {
		t.Errorf("a token of the deleted key: %v, want unknown key", err)
	}
	if _, err := session.Parse(recent, keySet(&published), clock.Now().Add(-ttl)); err != nil {
		t.Errorf("the current key's token: %v", err)
	}
}

// Replicas rotating at once agree on one key.
func TestReplicasAgree(t *testing.T) {
	t.Parallel()
	env := authntest.New(t)
	clock := authntest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	rings := make([]*Ring, 4)
	for i := range rings {
		b, st := env.Replica()
		coll, err := st.Collection(context.Background(), Kind)
		if err != nil {
			t.Fatal(err)
		}
		rings[i] = New(coll, b, authntest.Quiet(), clock.Now)
	}
	for range 2 { // the first period, then the next
		var wg sync.WaitGroup
		for _, r := range rings {
			wg.Go(func() {
				if err := r.Rotate(context.Background(), rotation, ttl); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		clock.Add(rotation)
	}
	for _, r := range rings {
		if err := r.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := rings[0].Public()
	if len(want.Keys) != 2 {
		t.Fatalf("%d keys after two periods, want 2", len(want.Keys))
	}
	clock.Add(Activation)
	tok := sign(t, rings[0], clock.Now(), "t")
	for i, r := range rings {
		if got := r.Public(); len(got.Keys) != 2 || got.Keys[1].Kid != want.Keys[1].Kid {
			t.Errorf("replica %d has keys %v, replica 0 %v", i, got, want)
		}
		if _, err := session.Parse(tok, r, clock.Now()); err != nil {
			t.Errorf("replica %d cannot verify replica 0's token: %v", i, err)
		}
		if got := sign(t, r, clock.Now(), "u"); mustKid(t, got) != mustKid(t, tok) {
			t.Errorf("replica %d signs with another key", i)
		}
	}
}

func mustKid(t *testing.T, tok string) string {
	t.Helper()
	kid, err := session.KeyID(tok)
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// Run reloads a key another replica made, through the store's watch.
func TestRunFollowsOtherReplica(t *testing.T) {
	t.Parallel()
	env := authntest.New(t)
	clock := authntest.NewClock(time.Now())
	follower := New(env.Collection(Kind), env.Bus, authntest.Quiet(), clock.Now)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- follower.Run(ctx, func() (time.Duration, time.Duration) { return rotation, ttl }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitKeys := func(n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for len(follower.Public().Keys) != n {
			if time.Now().After(deadline) {
				t.Fatalf("follower has %d keys, want %d", len(follower.Public().Keys), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitKeys(1)
	b, st := env.Replica()
	coll, _ := st.Collection(ctx, Kind)
	other := New(coll, b, authntest.Quiet(), func() time.Time { return clock.Now().Add(rotation) })
	if err := other.Rotate(ctx, rotation, ttl); err != nil {
		t.Fatal(err)
	}
	waitKeys(2)
}
