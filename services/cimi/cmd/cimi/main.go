// Command cimi runs the CIMI gateway on its own, against an external NATS
// (and Couchbase) given by the bootstrap settings.
package main

import (
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/services/cimi"
)

func main() {
	daemon.Main(cimi.Name, func(d *daemon.Deps) (daemon.Runner, error) {
		return cimi.New(d)
	})
}
