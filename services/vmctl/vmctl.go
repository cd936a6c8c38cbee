// Package vmctl is the VM controller: the scheduler role owns the Machine
// kind and drives machines from Pending to Running and to Done; the agent
// role (one per VM host) drives the host's libvirt. New builds it from the
// shared dependencies and Run serves the roles the bootstrap names until
// the context ends.
package vmctl

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/agent"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// Name is the service's name on the bus and in the store.
const Name = "vmctl"

// Service is the vmctl service.
type Service struct {
	deps *daemon.Deps
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service { return &Service{deps: deps} }

// Run serves the scheduler and/or the agent until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	d := s.deps
	log := d.Logger
	live, err := daemon.Live(d, settings.Defaults(), nil)
	if err != nil {
		return err
	}
	if err := live.Load(ctx); err != nil {
		return err
	}
	hostColl, err := d.Store.Collection(ctx, hosts.Kind)
	if err != nil {
		return err
	}
	ratio := func() (float64, float64) { c := live.Current(); return c.CPURatio, c.MemoryRatio }
	registry := hosts.New(hostColl, ratio, time.Now, hosts.WithStaleAfter(live.Current().HostLostAfter.D()))
	tasks := []func(context.Context) error{live.Run}
	info := bus.ServiceInfo{Name: Name, Version: daemon.Version, Description: "VM controller: machines, machine types, hosts, addresses"}
	var endpoints []bus.Endpoint

	if slices.Contains(d.Boot.VmctlRoles, "scheduler") {
		machines, err := d.Store.Collection(ctx, machine.Kind)
		if err != nil {
			return err
		}
		counters, err := d.Store.Collection(ctx, scheduler.CounterKind)
		if err != nil {
			return err
		}
		leaseColl, err := d.Store.Collection(ctx, addresses.Kind)
		if err != nil {
			return err
		}
		configColl, err := d.Store.Collection(ctx, scheduler.ConfigurationKind)
		if err != nil {
			return err
		}
		configs := scheduler.NewConfigurations(configColl)
		if err := configs.Seed(ctx); err != nil {
			return err
		}
		terminals, err := bus.FollowTerminals(d.Conn)
		if err != nil {
			return err
		}
		defer func() { _ = terminals.Close() }()
		sched, err := scheduler.New(scheduler.Config{
			Machines: machines, Counters: counters,
			Leases: addresses.New(leaseColl, func() []addresses.Pool { return live.Current().Pools }),
			Hosts:  registry, Bus: d.Bus, Terminals: terminals, Settings: live.Current, Log: log, Types: configs.Types,
			Crash: d.Crash,
		})
		if err != nil {
			return err
		}
		provider, err := resource.New(d.Bus, Name, log, sched.Kind(), configs.Kind(),
			hosts.CIMIKind(hostColl))
		if err != nil {
			return err
		}
		endpoints = append(endpoints, provider.Endpoints()...)
		endpoints = append(endpoints, reports{hosts: registry.List, pools: func() []addresses.Pool { return live.Current().Pools }}.endpoints()...)
		commands := func(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
			if provider.Owns(cmd.Subject()) {
				return provider.Handle(ctx, cmd)
			}
			return sched.Handle(ctx, cmd)
		}
		tasks = append(tasks, sched.Run, func(ctx context.Context) error {
			// A deploy waits on pdisk and the agent; it keeps its command
			// in progress while it does.
			spec := bus.ConsumerSpec{Durable: Name, Subjects: provider.Subjects(), Concurrency: 256,
				AckWait: 10 * time.Second, MaxRun: 10 * time.Minute}
			return d.Bus.Consume(ctx, spec, commands)
		})
	}
	if slices.Contains(d.Boot.VmctlRoles, "agent") {
		hv, err := hypervisor.Open(ctx, d.Boot.LibvirtURI, hypervisor.Options{})
		if err != nil {
			return err
		}
		defer func() { _ = hv.Close() }()
		machines, err := d.Store.Collection(ctx, machine.Kind)
		if err != nil {
			return err
		}
		cfg := agent.Config{Machines: machines, DestroyStrays: func() bool { return live.Current().DestroyStrays },
			HostID: subject.HostID(d.Boot.Instance), LibvirtURI: d.Boot.LibvirtURI, Hypervisor: hv, Hosts: registry, Bus: d.Bus,
			Dir: filepath.Join(d.Boot.DataDir, Name, "domains"), Version: daemon.Version, Log: log,
			Crash: d.Crash,
		}
		if strings.HasPrefix(d.Boot.LibvirtURI, "test:") {
			// The test driver runs no guest: give it room for thousands.
			cfg.CPUs, cfg.MemoryMiB = 4096, 16<<20
		}
		ag, err := agent.New(cfg)
		if err != nil {
			return err
		}
		tasks = append(tasks, ag.Run)
	}
	tasks = append(tasks, func(ctx context.Context) error { return d.Bus.Serve(ctx, info, endpoints...) })
	return daemon.Group(ctx, tasks...)
}
