// Package authn is the identity service. It owns the local user records
// (User/<username>, served through the generic CIMI resource protocol),
// creates the administrator account at first start, verifies credentials
// by the methods ServiceConfiguration/authn enables (local passwords and
// certificate DNs, LDAP, VOMS pseudo-users) and issues the signed session
// tokens every gateway verifies locally, with their keys, logouts and
// revocations (see README.md). New builds it from the shared dependencies
// and Run serves until the context ends.
package authn

import (
	"context"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/services/authn/internal/keyring"
	"stratuslab.dev/services/authn/internal/login"
	"stratuslab.dev/services/authn/internal/revocation"
	"stratuslab.dev/services/authn/internal/settings"
	"stratuslab.dev/services/authn/internal/throttle"
	"stratuslab.dev/services/authn/internal/users"
)

// Name is the service's name on the bus and in the store.
const Name = "authn"

// PasswordFile is the file, in the data directory, where the first start
// writes the administrator's password.
const PasswordFile = users.PasswordFile

// Service is the authn service.
type Service struct {
	deps *daemon.Deps
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service {
	return &Service{deps: deps}
}

// Run serves until ctx ends: the login, logout, keys and revocations
// queries, the CIMI reads and writes of User records, the rotation of the
// signing keys and the purge of old revocations. Meanwhile it creates the
// administrator account if the cloud has no user yet (hashing its password
// takes a moment, which serving need not wait for).
func (s *Service) Run(ctx context.Context) error {
	d := s.deps
	log := d.Logger
	userColl, err := d.Store.Collection(ctx, users.Kind)
	if err != nil {
		return err
	}
	keyColl, err := d.Store.Collection(ctx, keyring.Kind)
	if err != nil {
		return err
	}
	revColl, err := d.Store.Collection(ctx, revocation.Kind)
	if err != nil {
		return err
	}
	live, err := daemon.Live(d, settings.Defaults(), func(c settings.Settings) {
		log.Info("authentication settings in effect",
			"local_passwords", c.LocalDB.PasswordEnabled, "local_certificates", c.LocalDB.CertEnabled,
			"ldap_passwords", c.LDAP != nil && c.LDAP.PasswordEnabled, "voms", c.VOMS.Enabled,
			"session_ttl", c.SessionTTL.D().String(), "key_rotation", c.KeyRotation.D().String())
	})
	if err != nil {
		return err
	}
	if err := live.Load(ctx); err != nil {
		return err
	}
	ttl := func() time.Duration { return live.Current().SessionTTL.D() }
	keyTimes := func() (time.Duration, time.Duration) {
		c := live.Current()
		return c.KeyRotation.D(), c.SessionTTL.D()
	}

	ring := keyring.New(keyColl, d.Bus, log, nil)
	// A first key before the first login can be answered.
	if err := ring.Rotate(ctx, live.Current().KeyRotation.D(), ttl()); err != nil {
		return err
	}
	revs := revocation.New(revColl, d.Bus, nil)
	rules := users.NewRules(userColl, revs, ttl, nil)
	provider, err := resource.New(d.Bus, Name, log, rules.Kind())
	if err != nil {
		return err
	}
	logins := login.New(login.Config{
		Users:       userColl,
		Keys:        ring,
		Revocations: revs,
		Limiter:     throttle.New(throttle.DefaultPolicy(), nil),
		Settings:    live.Current,
		Logger:      log,
	})
	info := bus.ServiceInfo{Name: Name, Version: daemon.Version, Description: "identity: users, credentials, sessions"}
	return daemon.Group(ctx,
		live.Run,
		func(ctx context.Context) error {
			return d.Bus.Serve(ctx, info, append(logins.Endpoints(), provider.Endpoints()...)...)
		},
		func(ctx context.Context) error {
			return d.Bus.Consume(ctx, bus.ConsumerSpec{Durable: Name, Subjects: provider.Subjects()}, provider.Handle)
		},
		func(ctx context.Context) error { return ring.Run(ctx, keyTimes) },
		func(ctx context.Context) error {
			return revs.Run(ctx, func(err error) { log.Warn("cannot purge old session revocations; retrying", "error", err) })
		},
		func(ctx context.Context) error {
			_, err := users.EnsureAdmin(ctx, userColl, d.Boot.DataDir, log)
			if err != nil && ctx.Err() != nil {
				return nil // stopped first: the next start creates it
			}
			return err
		},
	)
}
