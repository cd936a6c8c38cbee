// Package keyring keeps the Ed25519 keys session tokens are signed with.
// The keys live in authn's store (SigningKey documents, private key
// included, never served through CIMI) so that every replica signs with the
// same key and every gateway can verify what any replica issued. A new key
// is made every rotation period; replicas agree on it because its id is
// derived from the period it starts and only one Create of that id can
// succeed. A key starts signing a little after it is made, once gateways
// have had time to learn it, and is deleted when every token it signed has
// expired.
package keyring
