// Command vmctl runs the vmctl service on its own, against an external
// NATS (and Couchbase) given by the bootstrap settings.
package main

import (
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/services/vmctl"
)

func main() {
	daemon.Main(vmctl.Name, func(d *daemon.Deps) (daemon.Runner, error) {
		return vmctl.New(d), nil
	})
}
