// Package revocation records the session tokens that must be refused before
// they expire: one token after a logout (SessionRevoked), or every token of
// a user issued before some time, after the user was disabled, deleted, or
// had their password, roles or certificate DN changed (UserSessionsRevoked).
// Each is written to authn's store (Revocation documents), so that a gateway
// starting later learns it from svc.authn.revocations, and published on the
// bus, so that running gateways apply it at once. A revocation is kept only
// as long as a token it refuses could still be valid.
package revocation
