// Package config reads the settings a service needs before it can reach
// anything else — where its data lives, which NATS servers and document store
// to use, where to listen, how to log — and keeps its live settings, the
// ServiceConfiguration/<service> document an administrator edits through CIMI,
// applied while it runs.
//
// Bootstrap settings come from, highest precedence first: command-line flags,
// STRATUSLAB_* environment variables, the INI file (--config, else
// STRATUSLAB_CONFIG, else /etc/stratuslab/stratuslab.cfg when it exists; keys
// of [DEFAULT] overridden by those of the [<service>] section), then
// defaults. Unknown keys in the file are errors naming the line, because a
// misspelt key would otherwise fall back to a default silently — for the
// store kind, the service would start on an empty embedded store and data
// would seem to vanish. Every error names where the bad value came from.
//
// Defaults are chosen so that `stratuslab` runs on a laptop with no file:
// data under /var/lib/stratuslab as root and ~/.stratuslab/data otherwise,
// the CIMI gateway on 127.0.0.1:8080 (plain HTTP on loopback; production puts
// a TLS front or --listen on a public address with certificates), an
// embedded NATS server listening on 127.0.0.1:4222, the embedded store, and
// the admin server on a fixed loopback port per service (see AdminPort) so
// that several services on one host do not collide and Prometheus targets
// are predictable.
package config
