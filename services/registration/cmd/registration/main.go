// Command registration runs the registration service on its own, against an external
// NATS (and Couchbase) given by the bootstrap settings.
package main

import (
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/services/registration"
)

func main() {
	daemon.Main(registration.Name, func(d *daemon.Deps) (daemon.Runner, error) {
		return registration.New(d), nil
	})
}
