// Package login answers authn's queries: svc.authn.login verifies
// credentials by the methods ServiceConfiguration/authn enables (local
// passwords, local certificate DNs, LDAP, VOMS pseudo-users) and opens a
// session by signing a token; svc.authn.logout revokes a token;
// svc.authn.keys and svc.authn.revocations tell gateways how to verify
// tokens. Refused credentials always get the same answer, whatever the
// reason, and repeated failures are slowed down per user and per source.
package login
