// Package registration is the registration service. It will own registration requests (see README.md).
// Today it registers on the bus and answers health checks; New builds it
// from the shared dependencies and Run serves until the context ends.
package registration

import "stratuslab.dev/platform/daemon"

// Name is the service's name on the bus and in the store.
const Name = "registration"

// Service is the registration service; Run (from the announcement) serves it.
type Service struct {
	*daemon.Announcement
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service {
	return &Service{daemon.Announce(deps, "sign-up: registration requests and their approval")}
}
