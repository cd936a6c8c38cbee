package session

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestParse(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	otherPub, _ := newKey(t)
	now := time.Now()
	claims := Claims{ID: "t1", User: "alice", Roles: []string{"::ADMIN"}, Method: "password",
		IssuedAt: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}
	good, err := Sign(priv, "k1", claims)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := Sign(priv, "k1", Claims{ID: "t2", User: "alice", Expires: now.Add(-time.Second).UnixMilli()})
	noUser, _ := Sign(priv, "k1", Claims{ID: "t3", Expires: now.Add(time.Hour).UnixMilli()})
	parts := strings.Split(good, ".")
	forged := strings.Join([]string{parts[0], parts[1], enc.EncodeToString([]byte(`{"jti":"t1","sub":"root","exp":99999999999999}`)), parts[3]}, ".")
	tests := []struct {
		name  string
		token string
		keys  Keys
		want  error
	}{
		{"good", good, KeySet{"k1": pub}, nil},
		{"unknown key", good, KeySet{"k2": pub}, ErrUnknownKey},
		{"wrong key", good, KeySet{"k1": otherPub}, ErrBadSignature},
		{"forged payload", forged, KeySet{"k1": pub}, ErrBadSignature},
		{"expired", expired, KeySet{"k1": pub}, ErrExpired},
		{"no user", noUser, KeySet{"k1": pub}, ErrMalformed},
		{"empty", "", KeySet{"k1": pub}, ErrMalformed},
		{"other version", "st2" + strings.TrimPrefix(good, "st1"), KeySet{"k1": pub}, ErrMalformed},
		{"bad signature encoding", parts[0] + "." + parts[1] + "." + parts[2] + ".!!", KeySet{"k1": pub}, ErrMalformed},
		{"too long", good + strings.Repeat("A", MaxTokenLength), KeySet{"k1": pub}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.token, tt.keys, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			}
			if err == nil && (c.User != "alice" || c.ID != "t1" || len(c.Roles) != 1 || c.Expires != claims.Expires) {
				t.Errorf("claims %+v", c)
			}
		})
	}
	if kid, err := KeyID(good); err != nil || kid != "k1" {
		t.Errorf("KeyID = %q, %v", kid, err)
	}
	if _, err := Sign(priv, "a.b", claims); err == nil {
		t.Error("a key id with a dot was accepted")
	}
}

func BenchmarkParse(b *testing.B) {
	pub, priv := newKey(b)
	now := time.Now()
	tok, _ := Sign(priv, "k1", Claims{ID: "t1", User: "alice", Roles: []string{"::ADMIN"},
		IssuedAt: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()})
	keys := KeySet{"k1": pub}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(tok, keys, now); err != nil {
			b.Fatal(err)
		}
	}
}
