// Command marketplace runs the marketplace service on its own, against an external
// NATS (and Couchbase) given by the bootstrap settings.
package main

import (
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/services/marketplace"
)

func main() {
	daemon.Main(marketplace.Name, func(d *daemon.Deps) (daemon.Runner, error) {
		return marketplace.New(d), nil
	})
}
