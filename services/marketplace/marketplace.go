package marketplace

import (
	"context"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/controller"
	"stratuslab.dev/services/marketplace/internal/settings"
)

// Name is the service's name on the bus and in the store.
const Name = "marketplace"

// Service is the marketplace service.
type Service struct {
	deps *daemon.Deps
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service { return &Service{deps: deps} }

// Run serves until ctx ends: CIMI reads of entries and the resolve query
// (queries), CIMI writes and create_draft (one durable consumer).
func (s *Service) Run(ctx context.Context) error {
	d := s.deps
	log := d.Logger
	images, err := d.Store.Collection(ctx, catalog.Kind)
	if err != nil {
		return err
	}
	newest, err := d.Store.Collection(ctx, controller.NewestKind)
	if err != nil {
		return err
	}
	live, err := daemon.Live(d, settings.Defaults(), func(c settings.Settings) {
		log.Info("marketplace settings in effect", "endorsers", c.Endorsers, "trusted_cas", c.TrustedCAs != "",
			"allow_legacy_keys", c.AllowLegacyKeys, "draft_validity", c.DraftValidity.D().String())
	})
	if err != nil {
		return err
	}
	if err := live.Load(ctx); err != nil {
		return err
	}
	ctl, err := controller.New(controller.Config{Images: images, Newest: newest, Bus: d.Bus, Settings: live.Current, Log: log})
	if err != nil {
		return err
	}
	provider, err := resource.New(d.Bus, Name, log, ctl.Kind())
	if err != nil {
		return err
	}
	commands := func(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
		if provider.Owns(cmd.Subject()) {
			return provider.Handle(ctx, cmd)
		}
		return ctl.Handle(ctx, cmd)
	}
	info := bus.ServiceInfo{Name: Name, Version: daemon.Version, Description: "appliance registry: signed metadata, search, image tags"}
	return daemon.Group(ctx,
		live.Run,
		func(ctx context.Context) error {
			return d.Bus.Serve(ctx, info, append(provider.Endpoints(), ctl.Endpoints()...)...)
		},
		func(ctx context.Context) error {
			return d.Bus.Consume(ctx, bus.ConsumerSpec{Durable: Name, Subjects: provider.Subjects(), Concurrency: 32,
				AckWait: 10 * time.Second}, commands)
		},
	)
}
