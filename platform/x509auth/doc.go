// Package x509auth authenticates grid users by their X.509 client
// certificates. Go's crypto/x509 refuses RFC 3820 proxy chains, whose proxies
// are signed by end-entity certificates rather than by CAs, so the gateway's
// TLS only requests client certificates (ServerConfig) and Verify walks the
// proxies itself before checking the end-entity certificate against the
// configured CAs. Verify also reads the VOMS attribute certificate that
// voms-proxy-init embeds in a proxy, and reports the user's virtual
// organisation and FQANs when a trusted VOMS server signed it.
package x509auth
