// Package auth authenticates every request the CIMI gateway serves. It
// finds who sent a request — a session token (Bearer header or cookie),
// HTTP Basic credentials, a verified X.509 client certificate (including
// RFC 3820 and VOMS proxies), or the client DN asserted by a trusted front
// proxy — and opens and closes sessions through authn. Session tokens are
// verified locally with the public keys authn publishes, and revocations
// are followed from authn's events, so that a request with a token costs
// no round trip; verified tokens and Basic or certificate logins are cached
// so that neither an Ed25519 check nor a bcrypt runs on every request.
package auth
