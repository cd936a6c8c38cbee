package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/session"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
)

// replayMargin is how far back the event subscription starts before the
// revocations are fetched: the subscription may take a moment to be
// created, and the NATS server's clock may differ a little from ours.
// Events seen twice do no harm: applying them again changes nothing.
const replayMargin = time.Minute

// pruneInterval is how often expired revocations and cache entries are
// dropped.
const pruneInterval = time.Minute

// Delays between attempts to load the keys while authn does not answer.
const (
	firstRetry = 100 * time.Millisecond
	maxRetry   = 5 * time.Second
)

// Run loads the key set and the revocations in force from authn, then
// follows authn's events (revocations, key rotations) until ctx ends; it
// returns nil then. The subscription starts before the fetch, so that no
// revocation published in between is missed.
func (a *Auth) Run(ctx context.Context) error {
	subErr := make(chan error, 1)
	go func() {
		spec := bus.SubscribeSpec{
			Subjects: []string{"evt." + subject.Authn + ".>"},
			Since:    time.Now().Add(-replayMargin),
		}
		subErr <- a.bus.Subscribe(ctx, spec, a.handleEvent)
	}()

	delay := firstRetry
	for {
		err := a.load(ctx)
		if err == nil {
			break
		}
		a.log.Warn("cannot load the session keys and revocations from authn; retrying", "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return <-subErr
		case err := <-subErr:
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetry)
	}

	tick := time.NewTicker(pruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return <-subErr
		case err := <-subErr:
			if err == nil {
				err = errors.New("auth: the authn event subscription ended")
			}
			return err
		case <-tick.C:
			a.prune(a.now())
		}
	}
}

// load fetches the key set and the revocations in force.
func (a *Auth) load(ctx context.Context) error {
	gen := a.keysGeneration()
	keys, err := a.fetchKeys(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := withTimeout(ctx)
	defer cancel()
	var revs authnv1.RevocationsResponse
	if err := a.bus.Request(rctx, subject.SvcAuthnRevocations, nil, &authnv1.RevocationsRequest{}, &revs); err != nil {
		return fmt.Errorf("auth: fetch revocations: %w", authnError(err))
	}
	for _, s := range revs.GetSessions() {
		a.revokeSession(s)
	}
	for _, u := range revs.GetUsers() {
		a.revokeUser(u)
	}
	a.setKeys(keys, gen, false)
	return nil
}

// fetchKeys asks authn for its key set.
func (a *Auth) fetchKeys(ctx context.Context) (session.KeySet, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var resp authnv1.KeysResponse
	if err := a.bus.Request(ctx, subject.SvcAuthnKeys, nil, &authnv1.KeysRequest{}, &resp); err != nil {
		return nil, fmt.Errorf("auth: fetch keys: %w", authnError(err))
	}
	return a.keySetOf(&resp), nil
}

// keySetOf converts authn's key set, skipping keys that cannot be Ed25519.
func (a *Auth) keySetOf(resp *authnv1.KeysResponse) session.KeySet {
	ks := make(session.KeySet, len(resp.GetKeys()))
	for _, k := range resp.GetKeys() {
		if len(k.GetEd25519()) != ed25519.PublicKeySize || k.GetKid() == "" {
			a.log.Warn("authn sent a malformed public key; ignoring it", "kid", k.GetKid())
			continue
		}
		ks[k.GetKid()] = ed25519.PublicKey(k.GetEd25519())
	}
	return ks
}

// refetchKeys fetches the key set again for a token naming an unknown key,
// at most once per refetchInterval whatever the number of such tokens.
func (a *Auth) refetchKeys(ctx context.Context) error {
	a.fetchMu.Lock()
	defer a.fetchMu.Unlock()
	if !a.lastFetch.IsZero() && time.Since(a.lastFetch) < refetchInterval {
		return a.Ready()
	}
	a.lastFetch = time.Now()
	gen := a.keysGeneration()
	keys, err := a.fetchKeys(ctx)
	if err != nil {
		// Whether the token is forged or newer than our keys cannot be
		// told without authn: unavailable, so the caller retries.
		return err
	}
	a.setKeys(keys, gen, false)
	return nil
}

func (a *Auth) keysGeneration() uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.keysGen
}

// setKeys installs a key set. A fetched set (fromEvent false) that started
// at generation gen is dropped when a rotation event arrived meanwhile: it
// may be older. When a key disappears the verified-token cache is emptied,
// since tokens it signed must not be accepted any more.
func (a *Auth) setKeys(keys session.KeySet, gen uint64, fromEvent bool) {
	a.mu.Lock()
	if !fromEvent && a.keys != nil && a.keysGen != gen {
		a.mu.Unlock()
		return
	}
	if fromEvent {
		a.keysGen++
	}
	removed := false
	for kid := range a.keys {
		if _, ok := keys[kid]; !ok {
			removed = true
			break
		}
	}
	a.keys = keys
	a.mu.Unlock()
	if removed {
		a.tokens.clear()
	}
}

// revokeSession refuses one token until it would have expired.
func (a *Auth) revokeSession(s *authnv1.SessionRevoked) {
	exp := s.GetExpires().AsTime()
	if s.GetTokenId() == "" || !a.now().Before(exp) {
		return
	}
	a.mu.Lock()
	a.revoked[s.GetTokenId()] = exp
	a.mu.Unlock()
}

// revokeUser refuses the user's tokens issued before not_before. Entries
// are kept: there is at most one per user, and forgetting one could let an
// old token through.
func (a *Auth) revokeUser(u *authnv1.UserSessionsRevoked) {
	if u.GetUser() == "" || u.GetNotBefore() == nil {
		return
	}
	nb := u.GetNotBefore().AsTime()
	a.mu.Lock()
	if cur, ok := a.notBefore[u.GetUser()]; !ok || nb.After(cur) {
		a.notBefore[u.GetUser()] = nb
	}
	a.mu.Unlock()
}

// handleEvent applies one authn event. Errors are logged, not returned: an
// event that cannot be decoded will not decode better the second time.
func (a *Auth) handleEvent(_ context.Context, ev *bus.Event) error {
	var err error
	switch ev.Subject() {
	case subject.EvtAuthnSessionRevoked:
		var m authnv1.SessionRevoked
		if err = ev.Decode(&m); err == nil {
			a.revokeSession(&m)
		}
	case subject.EvtAuthnUserSessionsRevoked:
		var m authnv1.UserSessionsRevoked
		if err = ev.Decode(&m); err == nil {
			a.revokeUser(&m)
		}
	case subject.EvtAuthnKeysRotated:
		var m authnv1.KeysResponse
		if err = ev.Decode(&m); err == nil {
			a.setKeys(a.keySetOf(&m), 0, true)
		}
	}
	if err != nil {
		a.log.Warn("cannot read an authn event", "subject", ev.Subject(), "error", err)
	}
	return nil
}

// prune drops revocations of tokens that have expired anyway, and expired
// cache entries.
func (a *Auth) prune(now time.Time) {
	a.mu.Lock()
	for id, exp := range a.revoked {
		if !now.Before(exp) {
			delete(a.revoked, id)
		}
	}
	a.mu.Unlock()
	a.tokens.prune(now)
	a.logins.prune(now)
}
