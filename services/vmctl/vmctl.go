// Package vmctl is the vmctl service. It will own machines, machine types, hosts and address leases (see README.md).
// Today it registers on the bus and answers health checks; New builds it
// from the shared dependencies and Run serves until the context ends.
package vmctl

import "stratuslab.dev/platform/daemon"

// Name is the service's name on the bus and in the store.
const Name = "vmctl"

// Service is the vmctl service; Run (from the announcement) serves it.
type Service struct {
	*daemon.Announcement
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service {
	return &Service{daemon.Announce(deps, "VM controller: machines, machine types, hosts, addresses")}
}
