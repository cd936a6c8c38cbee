package revocation

import (
	"context"
	"testing"
	"time"

	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/authn/internal/authntest"
)

func TestRevocations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := authntest.New(t)
	clock := authntest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	l := New(env.Collection(Kind), env.Bus, clock.Now)

	if err := l.RevokeSession(ctx, "jti-1", clock.Now().Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.RevokeSession(ctx, "jti-1", clock.Now().Add(30*time.Minute)); err != nil {
		t.Fatalf("a second logout of the same token: %v", err)
	}
	var sr authnv1.SessionRevoked
	if !env.Last(subject.EvtAuthnSessionRevoked, &sr) || sr.TokenId != "jti-1" || env.Count(subject.EvtAuthnSessionRevoked) != 1 {
		t.Fatalf("session revocation published %v (%d times)", &sr, env.Count(subject.EvtAuthnSessionRevoked))
	}
	if err := l.RevokeUser(ctx, "alice", clock.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Minute)
	second := clock.Now()
	for range 2 { // a redelivery changes nothing
		if err := l.RevokeUser(ctx, "alice", second, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := env.Count(subject.EvtAuthnUserSessionsRevoked); n != 2 {
		t.Errorf("%d user revocations published, want 2", n)
	}
	// An old revocation whose tokens have all expired is not recorded.
	if err := l.RevokeUser(ctx, "bob", clock.Now().Add(-2*time.Hour), time.Hour); err != nil {
		t.Fatal(err)
	}
	var ur authnv1.UserSessionsRevoked
	if !env.Last(subject.EvtAuthnUserSessionsRevoked, &ur) || ur.User != "alice" || !ur.NotBefore.AsTime().Equal(second) {
		t.Fatalf("user revocation published %v", &ur)
	}

	tests := []struct {
		after          time.Duration // from now
		sessions, user int
		purged         int
	}{
		{0, 1, 1, 0},
		{25 * time.Minute, 0, 1, 1}, // the token has expired
		{time.Hour, 0, 0, 1},        // so has every token alice had before the second revocation
	}
	for _, tt := range tests {
		clock.Add(tt.after)
		got, err := l.InForce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Sessions) != tt.sessions || len(got.Users) != tt.user {
			t.Errorf("at +%v in force: %v", tt.after, got)
		}
		if tt.user == 1 && !got.Users[0].NotBefore.AsTime().Equal(second) {
			t.Errorf("user revocation not before %v, want %v", got.Users[0].NotBefore.AsTime(), second)
		}
		if n, err := l.Purge(ctx); err != nil || n != tt.purged {
			t.Errorf("at +%v purged %d, %v; want %d", tt.after, n, err, tt.purged)
		}
	}
}
