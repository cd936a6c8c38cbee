// Package x509test makes certificates for tests across the repository: a
// CA, user and host certificates, RFC 3820 and legacy Globus proxies, and
// VOMS attribute certificates encoded as voms-proxy-init encodes them, all
// with ECDSA P-256 keys so that tests stay fast. Nothing here is meant for
// production: keys are never protected and every failure ends the test.
package x509test
