// Package pdisk is the pdisk service. It will own volumes and the image cache (see README.md).
// Today it registers on the bus and answers health checks; New builds it
// from the shared dependencies and Run serves until the context ends.
package pdisk

import "stratuslab.dev/platform/daemon"

// Name is the service's name on the bus and in the store.
const Name = "pdisk"

// Service is the pdisk service; Run (from the announcement) serves it.
type Service struct {
	*daemon.Announcement
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service {
	return &Service{daemon.Announce(deps, "storage controller: volumes and the image cache")}
}
