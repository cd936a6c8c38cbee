// Package scheduler is vmctl's scheduler role: it owns the Machine kind
// (create, actions, kill), places machines on hosts, gathers their disks
// from pdisk and their addresses from the pools, and drives their state
// from Pending to Running and from a kill or shutdown to Done, through
// commands to the agent of their host. Every step reads the machine
// document first, so that a redelivered command resumes where the
// document says.
package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/machinetype"
	"stratuslab.dev/services/vmctl/internal/settings"
)

// Verbs of the scheduler's own commands (cmd.vmctl.machine.<verb>).
const (
	VerbDeploy   = "deploy"
	VerbTeardown = "teardown"
)

// CounterKind is the collection of the vmId counter.
const CounterKind = "MachineCounter"

// Config is what a Scheduler works with.
type Config struct {
	Machines, Counters store.Collection
	Leases             *addresses.Leases
	Hosts              *hosts.Registry
	Bus                *bus.Bus
	Terminals          *bus.Terminals
	Settings           func() settings.Settings
	// Types returns the machine configurations; nil: the standard ones.
	Types func(ctx context.Context) []machinetype.Type
	Log   *slog.Logger
	Now   func() time.Time
	// StepWait bounds the wait for another service's command; 2 minutes
	// when zero.
	StepWait time.Duration
	// Crash is called at the named points of a machine's steps, for
	// crash tests (daemon.Deps.Crash); nil: nothing.
	Crash func(point string)
}

// Scheduler drives machines.
type Scheduler struct {
	cfg Config
	log *slog.Logger

	counterMu sync.Mutex // serialises nextVMID
}

// New returns the scheduler of cfg.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Machines == nil || cfg.Counters == nil || cfg.Leases == nil || cfg.Hosts == nil || cfg.Bus == nil || cfg.Terminals == nil || cfg.Settings == nil {
		return nil, errors.New("vmctl: the scheduler needs its collections, leases, hosts, a bus and its settings")
	}
	if cfg.Types == nil {
		cfg.Types = func(context.Context) []machinetype.Type { return machinetype.Defaults() }
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StepWait <= 0 {
		cfg.StepWait = 2 * time.Minute
	}
	if cfg.Crash == nil {
		cfg.Crash = func(string) {}
	}
	return &Scheduler{cfg: cfg, log: cfg.Log}, nil
}

// Kind is the CIMI Machine kind.
func (s *Scheduler) Kind() resource.Kind {
	return resource.Kind{
		Name:       machine.Kind,
		Collection: s.cfg.Machines,
		CanCreate:  func(who cimi.Identity) bool { return who.User != "" },
		New:        s.newMachine,
		Change:     s.change,
		SoftDelete: s.kill,
		Actions:    s.actions(),
		Changed:    s.changed,
		CheckID:    machine.CheckUUID,
		DefaultACL: func(who cimi.Identity, _ string, _ map[string]any) cimi.ACL { return cimi.OwnedBy(who) },
		View: func(who cimi.Identity, doc map[string]any) map[string]any {
			if !who.IsAdmin() {
				delete(doc, "host")
			}
			return doc
		},
	}
}

// newMachine checks a create body and allocates what the answer must
// carry: the vmId and the address. Anything else comes later, in order.
func (s *Scheduler) newMachine(ctx context.Context, who cimi.Identity, id string, body map[string]any) (map[string]any, error) {
	_, local, _ := cimi.SplitID(id)
	if doc, err := s.cfg.Machines.Get(ctx, id); err == nil {
		// A redelivery of this create: what it made is there.
		if m, err := machine.Decode(doc.Body); err == nil && m.Command == bus.MetaFrom(ctx).GetCommandId() {
			return toMap(m)
		}
		return nil, errs.Errorf(errs.Conflict, "%s already exists.", id)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	r, err := decodeRequest(raw)
	if err != nil {
		return nil, err
	}
	img, err := r.image()
	if err != nil {
		return nil, err
	}
	t, err := machinetype.Resolve(s.cfg.Types(ctx), r.Type, r.CPU, r.RAM, r.Swap)
	if err != nil {
		return nil, err
	}
	if err := s.fits(ctx, t); err != nil {
		return nil, err
	}
	network, err := r.network()
	if err != nil {
		return nil, err
	}
	if err := r.disks(img); err != nil {
		return nil, err
	}
	if len(r.Name) > maxName || len(r.Description) > maxDescr {
		return nil, errs.Errorf(errs.Invalid, "The name is at most %d bytes and the description %d.", maxName, maxDescr)
	}
	// The context is checked before anything is allocated, with a
	// stand-in address as complete as a real lease (so that keys the
	// lease fills are refused now), and written for good once the lease
	// is known.
	standIn := addresses.Lease{IP: "192.0.2.1", Netmask: "255.255.255.0", Gateway: "192.0.2.254", MAC: "02:00:c0:00:02:01", DNS: []string{"192.0.2.53"}}
	if _, _, err := r.contextSpec(standIn, "check.invalid", local); err != nil {
		return nil, err
	}
	if err := s.cfg.Leases.CanAllocate(network); err != nil {
		return nil, err
	}
	// The Marketplace says what the references name, last of the checks
	// (it is a round trip) and before anything is allocated: a refusal
	// leaves nothing behind.
	actor := resource.ActorOf(who)
	if img.Marketplace != "" {
		if img, err = s.resolve(ctx, actor, "image", img.Marketplace); err != nil {
			return nil, err
		}
	}
	readonly := make([]*machine.Image, len(r.ReadonlyDisks))
	for i, ref := range r.ReadonlyDisks {
		if machine.CheckUUID(ref) == nil {
			continue
		}
		ro, err := s.resolve(ctx, actor, fmt.Sprintf("read-only disk %s", ref), ref)
		if err != nil {
			return nil, err
		}
		readonly[i] = &ro
	}

	vmID, err := s.nextVMID(ctx)
	if err != nil {
		return nil, err
	}
	lease, err := s.cfg.Leases.Allocate(ctx, network, local)
	if err != nil {
		return nil, err
	}
	s.cfg.Crash("vmctl.scheduler.leased")
	release := func() {
		if rerr := s.cfg.Leases.Release(context.WithoutCancel(ctx), local); rerr != nil {
			s.log.Warn("cannot release the lease of a refused machine; the reconciler will", "machine", local, "error", rerr)
		}
	}
	mc, _, err := r.contextSpec(lease, lease.FQDN, local)
	if err != nil {
		release()
		return nil, err
	}
	m := &machine.Machine{
		UUID: local, VMID: vmID, Owner: who.User, Name: r.Name, Description: r.Description,
		Type: t.Name, CPU: t.CPU, Memory: int64(t.MemoryMiB) << 10, SwapMiB: int64(t.SwapMiB),
		Image: img, IP: lease.IP, Hostname: lease.FQDN, Context: mc, Save: r.Save,
		Interfaces: []machine.Interface{{Network: string(lease.Network), IP: lease.IP, MAC: lease.MAC}},
	}
	if m.Name == "" {
		m.Name = "one-" + strconv.FormatInt(vmID, 10)
	}
	m.Disks = plannedDisks(r, img, readonly, int64(t.SwapMiB), local)
	m.SetState(machine.Pending, "", s.cfg.Now())
	return toMap(m)
}

// plannedDisks lists the disks the machine will have, before pdisk makes
// them (the volumes are filled in at Prolog): the root disk, the swap disk
// of swapMiB (none for 0), which the agent makes on the host, then the
// volatile, persistent and read-only disks in the order asked; readonly
// holds the Marketplace entries of the read-only disks given as
// references (nil for a volume uuid).
//
// The volumes pdisk makes for the machine (the root disk of an image URL
// or a Marketplace entry, volatile disks, read-only copies of Marketplace
// images) are named from the start, so that a kill arriving while pdisk
// makes them releases them too.
func plannedDisks(r *request, img machine.Image, readonly []*machine.Image, swapMiB int64, machineUUID string) []machine.Disk {
	disks := []machine.Disk{{Role: machine.RoleRoot, Device: "vda"}}
	if img.Volume != "" {
		disks[0].Volume = "Volume/" + img.Volume
	}
	dev := 'b'
	next := func() string { d := "vd" + string(dev); dev++; return d }
	if swapMiB > 0 {
		disks = append(disks, machine.Disk{Role: machine.RoleSwap, Device: next(), SizeMiB: swapMiB})
	}
	for _, g := range r.VolatileDisks {
		disks = append(disks, machine.Disk{Role: machine.RoleVolatile, Device: next(), SizeMiB: g << 10})
	}
	for _, u := range r.PersistentDisks {
		disks = append(disks, machine.Disk{Role: machine.RolePersistent, Device: next(), Volume: "Volume/" + u})
	}
	for i, id := range r.ReadonlyDisks {
		d := machine.Disk{Role: machine.RoleReadOnly, Device: next(), ReadOnly: true}
		if machine.CheckUUID(id) == nil {
			d.Volume = "Volume/" + id
		} else if i < len(readonly) {
			d.Image = readonly[i]
		}
		disks = append(disks, d)
	}
	for i := range disks {
		d := &disks[i]
		if (d.Role == machine.RoleRoot && (img.URL != "" || img.FromMarketplace())) || d.Role == machine.RoleVolatile || d.Image != nil {
			d.Volume = "Volume/" + diskUUID(machineUUID, d.Role, i)
		}
	}
	return disks
}

// fits refuses a machine larger than any registered host could ever take.
func (s *Scheduler) fits(ctx context.Context, t machinetype.Type) error {
	all, err := s.cfg.Hosts.List(ctx)
	if err != nil || len(all) == 0 {
		return nil // placement says so later, with the reason
	}
	st := s.cfg.Settings()
	for _, h := range all {
		if float64(t.CPU) <= float64(h.CPUs)*st.CPURatio && float64(t.MemoryMiB) <= float64(h.MemoryMiB)*st.MemoryRatio {
			return nil
		}
	}
	return errs.Errorf(errs.Invalid, "No host of this cloud can ever take a machine of %d CPU and %d MiB; choose a smaller type.", t.CPU, t.MemoryMiB)
}

// nextVMID allocates the next machine number.
func (s *Scheduler) nextVMID(ctx context.Context) (int64, error) {
	// One at a time in this process: concurrent creates would otherwise
	// all read one revision and all but one retry, again and again.
	s.counterMu.Lock()
	defer s.counterMu.Unlock()
	const id = CounterKind + "/vmid"
	for attempt := 0; attempt < 200; attempt++ {
		doc, err := s.cfg.Counters.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			if _, err := s.cfg.Counters.Create(ctx, id, json.RawMessage(`{"next": 2}`)); err == nil {
				return 1, nil
			} else if !errors.Is(err, store.ErrExists) {
				return 0, fmt.Errorf("vmctl: start the machine counter: %w", err)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("vmctl: read the machine counter: %w", err)
		}
		var c struct {
			Next int64 `json:"next"`
		}
		if err := json.Unmarshal(doc.Body, &c); err != nil || c.Next < 1 {
			return 0, fmt.Errorf("vmctl: the machine counter is unreadable: %s", doc.Body)
		}
		body, _ := json.Marshal(map[string]int64{"next": c.Next + 1})
		if _, err := s.cfg.Counters.Put(ctx, id, body, doc.Revision); err == nil {
			return c.Next, nil
		} else if !errors.Is(err, store.ErrConflict) {
			return 0, fmt.Errorf("vmctl: advance the machine counter: %w", err)
		}
	}
	return 0, errs.Errorf(errs.Unavailable, "The machine counter is too busy; try again.")
}

// change lets users edit the name and description only.
func (s *Scheduler) change(_ context.Context, _ cimi.Identity, current, body map[string]any, selects []string) (map[string]any, error) {
	for _, attr := range []string{"name", "description"} {
		if len(selects) > 0 && !contains(selects, attr) {
			continue
		}
		v, ok := body[attr]
		if !ok {
			continue
		}
		limit := maxDescr
		if attr == "name" {
			limit = maxName
		}
		str, isString := v.(string)
		if !isString || len(str) > limit {
			return nil, errs.Errorf(errs.Invalid, "The %s must be a string of at most %d bytes.", attr, limit)
		}
		current[attr] = str
	}
	return current, nil
}

// kill marks the machine for destruction; teardown does the work.
func (s *Scheduler) kill(_ context.Context, _ cimi.Identity, current map[string]any) (map[string]any, error) {
	m, err := fromMap(current)
	if err != nil {
		return nil, err
	}
	switch m.DetailedState {
	case machine.Done:
		return nil, errs.Errorf(errs.Conflict, "Machine %d is already done.", m.VMID)
	case machine.Epilog:
		return current, nil
	}
	m.SetState(machine.Epilog, "killed", s.cfg.Now())
	return toMap(m)
}

// changed starts the work a write asks for: a deploy after a create, a
// teardown after a kill.
func (s *Scheduler) changed(ctx context.Context, _ cimi.Identity, before, after map[string]any) error {
	if after == nil {
		return nil
	}
	m, err := fromMap(after)
	if err != nil {
		return err
	}
	switch {
	case before == nil:
		return s.send(ctx, VerbDeploy, m.UUID)
	case m.DetailedState == machine.Epilog:
		return s.send(ctx, VerbTeardown, m.UUID)
	}
	return nil
}

// send sends one of the scheduler's own commands about machine uuid. Its
// id derives from the machine and the verb, so that sending it again (a
// redelivered create) is one command.
func (s *Scheduler) send(ctx context.Context, verb, uuid string) error {
	meta := &commonv1.Meta{CommandId: uuid + "." + verb, Actor: bus.ActorFrom(ctx)}
	ref := &commonv1.ResourceRef{Id: machine.ID(uuid)}
	return s.cfg.Bus.Send(ctx, subject.Command(subject.Vmctl, subject.ResourceMachine, verb), meta, ref)
}

// call sends a command to another service (or to an agent) and waits for
// its outcome. The command id derives from the machine, the step and the
// attempt's key, so that a resumed step re-sends the same command, which
// JetStream and the receiver recognise.
func (s *Scheduler) call(ctx context.Context, subj, commandID string, msg proto.Message) (bus.Outcome, error) {
	return s.callWithin(ctx, s.cfg.StepWait, subj, commandID, msg)
}

// outcomePoll is how often a resumed step reads its command's recorded
// outcome.
const outcomePoll = 250 * time.Millisecond

// callWithin sends a step's command as the actor in ctx (the machine's
// owner, for pdisk to check its rights) and waits up to wait for its
// outcome. A step resumed after a crash sends its command again under the
// same id; JetStream drops it as a duplicate, and the outcome of the first
// one, when it has ended, is read from the bus's record of outcomes.
func (s *Scheduler) callWithin(ctx context.Context, wait time.Duration, subj, commandID string, msg proto.Message) (bus.Outcome, error) {
	meta := &commonv1.Meta{CommandId: commandID, Actor: bus.ActorFrom(ctx)}
	setMeta(msg, meta)
	done, cancel := s.cfg.Terminals.Expect(commandID)
	defer cancel()
	sentBefore, err := s.cfg.Bus.SendOnce(ctx, subj, meta, msg)
	if err != nil {
		return bus.Outcome{}, err
	}
	wctx, stop := context.WithTimeout(ctx, wait)
	defer stop()
	// A command sent before (this step resumed after a crash) may have
	// ended while nobody listened, or end while its event is dropped as a
	// duplicate of one that passed: its recorded outcome is read until it
	// shows.
	var poll <-chan time.Time
	if sentBefore {
		t := time.NewTicker(outcomePoll)
		defer t.Stop()
		poll = t.C
	}
	recorded := func() (bus.Outcome, bool) {
		o, found, err := s.cfg.Bus.Outcome(wctx, commandID)
		return o, err == nil && found
	}
	if sentBefore {
		if o, ok := recorded(); ok {
			return o, o.Err
		}
	}
	for {
		select {
		case o := <-done:
			return o, o.Err
		case <-poll:
			if o, ok := recorded(); ok {
				return o, o.Err
			}
		case <-wctx.Done():
			return bus.Outcome{}, errs.Errorf(errs.Timeout, "No answer to %s within %s.", subj, wait)
		}
	}
}

// setMeta fills the meta field every command message has.
func setMeta(msg proto.Message, meta *commonv1.Meta) {
	m := msg.ProtoReflect()
	if fd := m.Descriptor().Fields().ByName("meta"); fd != nil {
		m.Set(fd, protoreflect.ValueOfMessage(proto.Clone(meta).ProtoReflect()))
	}
}

// stepID names the command of one step of one machine.
func stepID(uuid, step string) string {
	return uuid + "." + step
}

func toMap(m *machine.Machine) (map[string]any, error) {
	data, err := m.Encode()
	if err != nil {
		return nil, err
	}
	var out map[string]any
	dec := json.NewDecoder(bytesReader(data))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func fromMap(doc map[string]any) (*machine.Machine, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return machine.Decode(data)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
