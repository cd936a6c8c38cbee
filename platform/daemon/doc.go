// Package daemon assembles what every service runs on — telemetry, the NATS
// connection and streams, the document store, the admin listener — from the
// bootstrap settings, and runs a service until it is told to stop. The
// standalone service binaries and the all-in-one binary both use it, so a
// service cannot tell how it was started.
package daemon
