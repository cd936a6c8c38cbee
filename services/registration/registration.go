// Package registration is the registration service. It will own registration requests (see README.md).
// Today it registers on the bus and answers health checks; New builds it
// from the shared dependencies and Run serves until the context ends.
package registration

import (
	"context"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/daemon"
)

// Name is the service's name on the bus and in the store.
const Name = "registration"

// Service is the registration service.
type Service struct {
	deps *daemon.Deps
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service {
	return &Service{deps: deps}
}

// Run makes the service discoverable on the bus (nats micro ls) until ctx
// ends.
func (s *Service) Run(ctx context.Context) error {
	return s.deps.Bus.Serve(ctx, bus.ServiceInfo{
		Name:        Name,
		Version:     daemon.Version,
		Description: "sign-up: registration requests and their approval",
	})
}
