// Package marketplace is the marketplace service. It will own the signed appliance metadata and image tags (see README.md).
// Today it registers on the bus and answers health checks; New builds it
// from the shared dependencies and Run serves until the context ends.
package marketplace

import "stratuslab.dev/platform/daemon"

// Name is the service's name on the bus and in the store.
const Name = "marketplace"

// Service is the marketplace service; Run (from the announcement) serves it.
type Service struct {
	*daemon.Announcement
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service {
	return &Service{daemon.Announce(deps, "appliance registry: signed metadata, search, image tags")}
}
