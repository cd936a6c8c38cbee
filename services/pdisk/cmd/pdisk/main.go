// Command pdisk runs the pdisk service on its own, against an external
// NATS (and Couchbase) given by the bootstrap settings.
package main

import (
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/services/pdisk"
)

func main() {
	daemon.Main(pdisk.Name, func(d *daemon.Deps) (daemon.Runner, error) {
		return pdisk.New(d), nil
	})
}
