// Package agent is vmctl's agent role, one per VM host: it registers the
// host, heart-beats, and carries out the host-targeted commands
// (cmd.vmctl.host.<id>.<verb>) against the host's libvirt: define a
// domain with its context disk, start, shut down, reboot, destroy, and
// hot-plug or unplug disks.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/contextdisk"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// Config is what an Agent works with.
type Config struct {
	// HostID names the host on the bus and in the store (a subject token).
	HostID     string
	LibvirtURI string
	Hypervisor hypervisor.Hypervisor
	Hosts      *hosts.Registry
	// Machines is the Machine collection the reconciler compares with
	// the host's domains; nil: no reconciliation.
	Machines store.Collection
	// DestroyStrays says whether domains no machine owns are destroyed.
	DestroyStrays func() bool
	Bus           *bus.Bus
	// Dir holds each domain's directory: its context and swap disks and
	// its serial log.
	Dir string
	// Heartbeat is the period of heartbeats; 10 s when zero.
	Heartbeat time.Duration
	// Version is the agent's version, reported with the host.
	Version string
	// CPUs and MemoryMiB, when set, replace what the hypervisor reports:
	// libvirt's test driver has no real capacity, and a site may keep
	// some of a host for itself.
	CPUs      int
	MemoryMiB int64
	Log       *slog.Logger
	// Crash is called after each command's work, before its answer, for
	// crash tests (daemon.Deps.Crash); nil: nothing.
	Crash func(point string)
}

// Agent serves one host.
type Agent struct {
	cfg Config
	log *slog.Logger

	// mu guards stopping: when this agent last powered each domain off
	// on request (a stop), so that the reconciler does not take it for a
	// guest that stopped by itself before the scheduler records Stopped.
	mu       sync.Mutex
	stopping map[string]time.Time

	// cpu measures the machines' CPU use from one heartbeat to the next.
	cpu *cpuMeter
}

// New returns the agent of cfg.
func New(cfg Config) (*Agent, error) {
	if cfg.Hypervisor == nil || cfg.Hosts == nil || cfg.Bus == nil || cfg.Dir == "" {
		return nil, errors.New("vmctl agent: needs a hypervisor, the host registry, a bus and a directory")
	}
	if !subject.ValidToken(cfg.HostID) {
		return nil, fmt.Errorf("vmctl agent: %q is not a host id (letters, digits, '-' and '_')", cfg.HostID)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Crash == nil {
		cfg.Crash = func(string) {}
	}
	return &Agent{cfg: cfg, log: cfg.Log.With("host", cfg.HostID), stopping: map[string]time.Time{}, cpu: newCPUMeter()}, nil
}

// Register records the host and what it has.
func (a *Agent) Register(ctx context.Context) error {
	info, err := a.info(ctx)
	if err != nil {
		return fmt.Errorf("vmctl agent: describe the host: %w", err)
	}
	doms, err := a.cfg.Hypervisor.List(ctx)
	if err != nil {
		return fmt.Errorf("vmctl agent: list the host's domains: %w", err)
	}
	running, freeCPU, freeMem := load(info, doms)
	return a.cfg.Hosts.Register(ctx, hosts.Host{
		ID: a.cfg.HostID, Hostname: info.Hostname, LibvirtURI: a.cfg.LibvirtURI, CPUs: info.CPUs, MemoryMiB: info.MemoryMiB,
		LibvirtVersion: info.LibvirtVersion, Hypervisor: info.Hypervisor, HypervisorVersion: info.HypervisorVersion, AgentVersion: a.cfg.Version,
		FreeCPUPercent: freeCPU, FreeMemoryMiB: freeMem, RunningMachines: running,
	})
}

// Run registers the host, then heart-beats and serves its commands until
// ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	// Reconciled first, so that the host registers without the strays
	// the reconciliation destroys.
	a.reconcile(ctx)
	if err := a.Register(ctx); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		// A shutdown waits for its guest, up to maxShutdownWait: the
		// command is kept in progress meanwhile, and a crashed agent's
		// commands come back after AckWait.
		spec := bus.ConsumerSpec{Durable: "vmctl-agent-" + a.cfg.HostID, Subjects: []string{subject.HostCommands(a.cfg.HostID)}, Concurrency: 32,
			AckWait: 10 * time.Second, MaxRun: 2 * maxShutdownWait}
		errc <- a.cfg.Bus.Consume(ctx, spec, a.Handle)
	}()
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for turn := 1; ; turn++ {
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return <-errc
		case <-t.C:
			revived, err := a.heartbeat(ctx)
			if err != nil && ctx.Err() == nil {
				a.log.Warn("heartbeat failed; retrying", "error", err)
			}
			if revived {
				a.log.Info("host available again after it was declared lost: reconciling its machines")
			}
			if revived || turn%6 == 0 {
				a.reconcile(ctx)
			}
		}
	}
}

// reconcile runs Reconcile and logs what it found.
func (a *Agent) reconcile(ctx context.Context) {
	if a.cfg.Machines == nil {
		return
	}
	destroy := a.cfg.DestroyStrays == nil || a.cfg.DestroyStrays()
	rep, err := a.Reconcile(ctx, destroy)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("reconciliation failed; retrying later", "error", err)
		}
		return
	}
	for _, id := range rep.Strays {
		a.log.Warn("domain without a live machine", "domain", id, "destroyed", destroy)
	}
	for _, id := range rep.Lost {
		a.log.Warn("machine shown Unknown: its domain is gone or stopped", "machine", id)
	}
	for _, id := range rep.Back {
		a.log.Info("machine Running again: its domain runs", "machine", id)
	}
}

// heartbeat reports the host's load, then the machines' CPU use; revived
// says the host had been declared lost.
func (a *Agent) heartbeat(ctx context.Context) (revived bool, err error) {
	doms, err := a.cfg.Hypervisor.List(ctx)
	if err != nil {
		return false, err
	}
	usage := a.cpu.observe(time.Now(), doms)
	info, err := a.info(ctx)
	if err != nil {
		return false, err
	}
	running, freeCPU, freeMem := load(info, doms)
	if revived, err = a.cfg.Hosts.Heartbeat(ctx, a.cfg.HostID, freeCPU, freeMem, running); err != nil {
		return false, err
	}
	return revived, a.showCPU(ctx, usage)
}

// load counts the running domains and what the host has left once they
// have what they were given (load.txt's RVM, FCPU in percent of one CPU,
// FMEM in MiB), never below zero.
func load(info hypervisor.Info, doms []hypervisor.DomainStatus) (running, freeCPU int, freeMem int64) {
	freeCPU, freeMem = info.CPUs*100, info.MemoryMiB
	for _, d := range doms {
		if d.State != hypervisor.Running {
			continue
		}
		running++
		freeCPU -= d.CPU * 100
		freeMem -= d.MemoryMiB
	}
	return running, max(freeCPU, 0), max(freeMem, 0)
}

// info is the hypervisor's description with the configured capacity.
func (a *Agent) info(ctx context.Context) (hypervisor.Info, error) {
	info, err := a.cfg.Hypervisor.Info(ctx)
	if err != nil {
		return info, err
	}
	if a.cfg.CPUs > 0 {
		info.CPUs = a.cfg.CPUs
	}
	if a.cfg.MemoryMiB > 0 {
		info.MemoryMiB = a.cfg.MemoryMiB
	}
	return info, nil
}

// Handle carries out one host command.
func (a *Agent) Handle(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	verb := cmd.Subject()[strings.LastIndexByte(cmd.Subject(), '.')+1:]
	var err error
	var id string
	switch verb {
	case subject.VerbDefineDomain:
		var m machinev1.DefineDomain
		if err = cmd.Decode(&m); err == nil {
			id, err = m.GetMachineUuid(), a.define(ctx, &m)
		}
	case subject.VerbStartDomain:
		var m machinev1.StartDomain
		if err = cmd.Decode(&m); err == nil {
			id, err = m.GetMachineUuid(), a.cfg.Hypervisor.Start(ctx, m.GetMachineUuid())
		}
	case subject.VerbShutdownDomain:
		var m machinev1.ShutdownDomain
		if err = cmd.Decode(&m); err == nil {
			id, err = m.GetMachineUuid(), a.shutdown(ctx, &m)
		}
	case subject.VerbRebootDomain:
		var m machinev1.RebootDomain
		if err = cmd.Decode(&m); err == nil {
			id, err = m.GetMachineUuid(), a.cfg.Hypervisor.Reboot(ctx, m.GetMachineUuid())
		}
	case subject.VerbDestroyDomain:
		var m machinev1.DestroyDomain
		if err = cmd.Decode(&m); err == nil {
			id, err = m.GetMachineUuid(), a.destroy(ctx, m.GetMachineUuid(), m.GetUndefine())
		}
	case subject.VerbHotplugDisk:
		var m machinev1.HotplugDisk
		if err = cmd.Decode(&m); err == nil {
			id, err = m.GetMachineUuid(), a.cfg.Hypervisor.Attach(ctx, m.GetMachineUuid(), disk(m.GetDisk()))
		}
	case subject.VerbUnplugDisk:
		var m machinev1.UnplugDisk
		if err = cmd.Decode(&m); err == nil {
			id, err = m.GetMachineUuid(), a.cfg.Hypervisor.Detach(ctx, m.GetMachineUuid(), m.GetDevice())
		}
	default:
		err = errs.Errorf(errs.Invalid, "The vmctl agent has no command %q.", verb)
	}
	if err != nil {
		return bus.Result{}, bus.Settle(err)
	}
	a.cfg.Crash("vmctl.agent." + verb)
	return bus.Result{Affected: []string{"Machine/" + id}}, nil
}

// adminIdentity reads the Machine collection whole.
var adminIdentity = cimi.Identity{Roles: []string{cimi.RoleAdmin}}

// hostQuery selects a page of the machines placed on host.
func hostQuery(host string, first, last int) cimi.Query {
	return cimi.Query{First: first, Last: last, Filter: &cimi.Comparison{
		Attr: cimi.Attribute{Path: []string{"host"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: hosts.DocumentID(host)}}}
}

// disk is the hypervisor form of a domain disk.
func disk(d *machinev1.DomainDisk) hypervisor.Disk {
	format := "qcow2"
	if d.GetFormat() == machinev1.DiskFormat_DISK_FORMAT_RAW {
		format = "raw"
	}
	return hypervisor.Disk{Device: d.GetDevice(), Source: strings.TrimPrefix(d.GetTurl(), "file://"), Format: format, ReadOnly: d.GetReadOnly()}
}

// define writes the context and swap disks and defines the domain.
func (a *Agent) define(ctx context.Context, m *machinev1.DefineDomain) error {
	id := m.GetMachineUuid()
	spec := m.GetSpec()
	dir := filepath.Join(a.cfg.Dir, id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("vmctl agent: %w", err)
	}
	dom := hypervisor.Domain{UUID: id, Name: "stratus-" + id, CPU: int(spec.GetCpu()), MemoryMiB: int(spec.GetMemoryMib()),
		SerialLog: filepath.Join(dir, "serial.log")}
	for _, d := range spec.GetDisks() {
		dom.Disks = append(dom.Disks, disk(d))
	}
	if mib, dev := spec.GetSwapMib(), spec.GetSwapDevice(); mib > 0 && dev != "" {
		path := filepath.Join(dir, "swap.img")
		if err := writeSwap(path, int64(mib), id); err != nil {
			return err
		}
		// Right after the root disk, which stays the boot disk.
		at := min(1, len(dom.Disks))
		dom.Disks = slices.Insert(dom.Disks, at, hypervisor.Disk{Device: dev, Source: path, Format: "raw"})
	}
	if raw := spec.GetContext().GetDiskSpec(); len(raw) > 0 {
		var cs contextdisk.Spec
		if err := json.Unmarshal(raw, &cs); err != nil {
			return errs.Errorf(errs.Invalid, "The context of machine %s is not readable: %v.", id, err)
		}
		iso, err := contextdisk.Build(cs)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, "context.iso")
		if err := os.WriteFile(path, iso, 0o640); err != nil {
			return fmt.Errorf("vmctl agent: write the context disk: %w", err)
		}
		dom.Disks = append(dom.Disks, hypervisor.Disk{Device: "hdc", Source: path, Format: "raw", CDROM: true})
	}
	for _, n := range spec.GetInterfaces() {
		dom.Interfaces = append(dom.Interfaces, hypervisor.Interface{MAC: n.GetMac()})
	}
	return a.cfg.Hypervisor.Define(ctx, dom)
}

// maxShutdownWait bounds the wait of a shutdown_domain for its guest,
// whatever the command asks, so that it ends well within the consumer's
// MaxRun.
const maxShutdownWait = settings.MaxShutdownTimeout

// shutdown presses the guest's power button and, when the command gives a
// timeout, waits for the domain to be shut off. A guest still running
// then fails the command with errs.Timeout, at once: asking again would
// not help, and the sender destroys the domain.
func (a *Agent) shutdown(ctx context.Context, m *machinev1.ShutdownDomain) error {
	id := m.GetMachineUuid()
	a.noteStopping(id)
	defer a.noteStopping(id)
	within := min(m.GetTimeout().AsDuration(), maxShutdownWait)
	if m.GetTimeout() == nil || within <= 0 {
		return a.cfg.Hypervisor.Shutdown(ctx, id)
	}
	off, err := hypervisor.PowerOff(ctx, a.cfg.Hypervisor, id, within)
	if err != nil {
		return err
	}
	if !off {
		a.log.Warn("the guest did not power off in time", "machine", id, "timeout", within)
		return bus.Permanent(errs.Errorf(errs.Timeout, "The guest of machine %s did not power off within %s of the power button.", id, within))
	}
	return nil
}

// stoppingGrace is how long after a requested power-off a shut-off
// domain is the scheduler's to record: it writes Stopped as soon as the
// agent answers, well within this.
const stoppingGrace = 2 * time.Minute

// noteStopping records that domain id is being powered off on request.
func (a *Agent) noteStopping(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopping[id] = time.Now()
}

// stoppedOnRequest reports whether domain id was powered off on request
// within stoppingGrace, and forgets the older ones.
func (a *Agent) stoppedOnRequest(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, at := range a.stopping {
		if time.Since(at) > stoppingGrace {
			delete(a.stopping, k)
		}
	}
	_, ok := a.stopping[id]
	return ok
}

// destroy stops a domain and, when asked, removes it and its files.
func (a *Agent) destroy(ctx context.Context, id string, undefine bool) error {
	if !undefine {
		// A stop that found the guest deaf to the power button.
		a.noteStopping(id)
		defer a.noteStopping(id)
	}
	if err := a.cfg.Hypervisor.Destroy(ctx, id); err != nil && errs.CodeOf(err) != errs.NotFound {
		return err
	}
	if !undefine {
		return nil
	}
	if err := a.cfg.Hypervisor.Undefine(ctx, id); err != nil && errs.CodeOf(err) != errs.NotFound {
		return err
	}
	return os.RemoveAll(filepath.Join(a.cfg.Dir, id))
}
