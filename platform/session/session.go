// Package session defines the session tokens authn issues and every
// gateway verifies locally: a compact, Ed25519-signed token carrying the
// user, roles and expiry, so that authenticating a request costs one
// signature check and no round trip to authn. authn keeps the private keys
// (and rotates them); gateways fetch the public keys (svc.authn.keys).
//
// A token is "st1.<kid>.<payload>.<signature>": kid names the signing key,
// payload is the base64url (unpadded) JSON of Claims, and signature is the
// base64url Ed25519 signature of everything before the last dot.
package session

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the first part of every token of this format.
const Version = "st1"

// MaxTokenLength bounds the tokens Parse reads, so that a hostile header
// cannot make it decode megabytes.
const MaxTokenLength = 4096

// Errors of Parse; each is wrapped with details.
var (
	ErrMalformed    = errors.New("session token is malformed")
	ErrUnknownKey   = errors.New("session token signed with an unknown key")
	ErrBadSignature = errors.New("session token signature does not verify")
	ErrExpired      = errors.New("session token has expired")
)

// Claims are what a token says.
type Claims struct {
	// ID is unique per token (for revocation on logout).
	ID string `json:"jti"`
	// User is the user name.
	User string `json:"sub"`
	// Roles held, as authn resolved them at login (::USER and ::ANON are
	// implied, not listed).
	Roles []string `json:"roles,omitempty"`
	// Method is how the user logged in: "password", "certificate", "voms".
	Method string `json:"mth,omitempty"`
	// IssuedAt and Expires are Unix times in milliseconds.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
}

// Issued returns the time the token was issued.
func (c Claims) Issued() time.Time { return time.UnixMilli(c.IssuedAt) }

// Expiry returns the time the token stops being valid.
func (c Claims) Expiry() time.Time { return time.UnixMilli(c.Expires) }

// Keys finds the public key of a key id.
type Keys interface {
	Key(kid string) (ed25519.PublicKey, bool)
}

// KeySet is a fixed set of public keys by key id.
type KeySet map[string]ed25519.PublicKey

// Key implements Keys.
func (s KeySet) Key(kid string) (ed25519.PublicKey, bool) {
	k, ok := s[kid]
	return k, ok
}

var enc = base64.RawURLEncoding

// Sign returns the token for c, signed by key under the key id kid (letters,
// digits, '-' and '_').
func Sign(key ed25519.PrivateKey, kid string, c Claims) (string, error) {
	if kid == "" || strings.ContainsAny(kid, ".") {
		return "", fmt.Errorf("session: key id %q must be non-empty and without dots", kid)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("session: encode claims: %w", err)
	}
	var b strings.Builder
	b.Grow(len(Version) + len(kid) + enc.EncodedLen(len(payload)) + enc.EncodedLen(ed25519.SignatureSize) + 3)
	b.WriteString(Version)
	b.WriteByte('.')
	b.WriteString(kid)
	b.WriteByte('.')
	b.WriteString(enc.EncodeToString(payload))
	signed := b.String()
	b.WriteByte('.')
	b.WriteString(enc.EncodeToString(ed25519.Sign(key, []byte(signed))))
	return b.String(), nil
}

// KeyID returns the key id a token names, without verifying anything.
func KeyID(token string) (string, error) {
	parts, err := split(token)
	if err != nil {
		return "", err
	}
	return parts[1], nil
}

func split(token string) ([]string, error) {
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLength)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 4 || parts[0] != Version || parts[1] == "" {
		return nil, fmt.Errorf("%w: want %s.<kid>.<payload>.<signature>", ErrMalformed, Version)
	}
	return parts, nil
}

// Parse verifies a token's signature with keys and its expiry at now, and
// returns its claims. Revocation is the caller's business.
func Parse(token string, keys Keys, now time.Time) (Claims, error) {
	parts, err := split(token)
	if err != nil {
		return Claims{}, err
	}
	key, ok := keys.Key(parts[1])
	if !ok {
		return Claims{}, fmt.Errorf("%w %q", ErrUnknownKey, parts[1])
	}
	sig, err := enc.DecodeString(parts[3])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Claims{}, fmt.Errorf("%w: bad signature encoding", ErrMalformed)
	}
	signed := token[:len(token)-len(parts[3])-1]
	if !ed25519.Verify(key, []byte(signed), sig) {
		return Claims{}, ErrBadSignature
	}
	payload, err := enc.DecodeString(parts[2])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: bad payload encoding", ErrMalformed)
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&c); err != nil {
		return Claims{}, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if c.User == "" || c.ID == "" {
		return Claims{}, fmt.Errorf("%w: no user or token id", ErrMalformed)
	}
	if now.UnixMilli() >= c.Expires {
		return Claims{}, fmt.Errorf("%w at %s", ErrExpired, c.Expiry().UTC().Format(time.RFC3339))
	}
	return c, nil
}
