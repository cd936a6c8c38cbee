// Package authntest builds what authn's tests run against: an in-process
// NATS server with the COMMANDS and EVENTS streams, a bus and authn's
// embedded store on it, a settable clock, and a way to read back the events
// published.
package authntest
