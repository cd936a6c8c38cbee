// Package authn is the identity service. Today it keeps the local user
// records (User/<username>) and creates the administrator account at first
// start; it will verify credentials and issue session tokens (see
// README.md). New builds it from the shared dependencies and Run serves
// until the context ends.
package authn

import (
	"context"

	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/services/authn/internal/users"
)

// Name is the service's name on the bus and in the store.
const Name = "authn"

// PasswordFile is the file, in the data directory, where the first start
// writes the administrator's password.
const PasswordFile = users.PasswordFile

// Service is the authn service.
type Service struct {
	deps     *daemon.Deps
	announce *daemon.Announcement
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service {
	return &Service{deps: deps, announce: daemon.Announce(deps, "identity: users, credentials, sessions")}
}

// Run serves until ctx ends and, meanwhile, creates the administrator
// account if the cloud has no user yet (hashing its password takes a
// moment, which discovery need not wait for).
func (s *Service) Run(ctx context.Context) error {
	coll, err := s.deps.Store.Collection(ctx, users.Kind)
	if err != nil {
		return err
	}
	return daemon.Group(ctx, s.announce.Run, func(ctx context.Context) error {
		_, err := users.EnsureAdmin(ctx, coll, s.deps.Boot.DataDir, s.deps.Logger)
		if err != nil && ctx.Err() != nil {
			return nil // stopped first: the next start creates it
		}
		return err
	})
}
