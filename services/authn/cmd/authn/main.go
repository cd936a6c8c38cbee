// Command authn runs the authn service on its own, against an external
// NATS (and Couchbase) given by the bootstrap settings.
package main

import (
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/services/authn"
)

func main() {
	daemon.Main(authn.Name, func(d *daemon.Deps) (daemon.Runner, error) {
		return authn.New(d), nil
	})
}
