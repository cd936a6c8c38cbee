package scheduler

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// Run looks after machines until ctx ends: the machines of hosts that
// stopped heart-beating are shown Unknown (their resources stay held
// until they are killed, as in the original), Done machines are removed
// once keep-done has passed, and the leases and host reservations of
// machines that do not exist or have ended are released (see sweep).
// Every replica may run it: each change is a revision-checked write.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		lost := s.cfg.Settings().HostLostAfter.D()
		if err := s.markLost(ctx, lost); err != nil && ctx.Err() == nil {
			s.log.Warn("cannot mark the machines of lost hosts; retrying", "error", err)
		}
		if err := s.purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("cannot purge finished machines; retrying", "error", err)
		}
		if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("cannot release what ended machines hold; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(lost / 2):
		}
	}
}

// markLost shows Unknown the running machines of hosts silent for longer
// than after.
func (s *Scheduler) markLost(ctx context.Context, after time.Duration) error {
	ids, err := s.cfg.Hosts.Expire(ctx, after)
	if err != nil {
		return err
	}
	for _, id := range ids {
		onHost := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"host"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: hosts.DocumentID(id)}}
		p, err := s.cfg.Machines.Query(ctx, cimi.Query{Filter: onHost}, admin)
		if err != nil {
			return err
		}
		var lost []string
		for _, d := range p.Docs {
			m, err := machine.Decode(d.Body)
			if err != nil || (m.DetailedState != machine.Running && m.DetailedState != machine.Boot && m.DetailedState != machine.StoppedD) {
				continue
			}
			m.SetState(machine.UnknownD, "host "+id+" stopped answering", s.cfg.Now())
			if err := s.save(ctx, m, d.Revision); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			lost = append(lost, m.UUID)
		}
		if len(lost) > 0 {
			s.log.Warn("host lost: its machines are Unknown", "host", id, "machines", len(lost))
			ev := &machinev1.HostUnavailable{HostId: id, MachineUuids: lost}
			if err := s.cfg.Bus.Publish(ctx, subject.EvtHostUnavailable, ev, ""); err != nil {
				s.log.Warn("cannot announce a lost host", "host", id, "error", err)
			}
		}
	}
	return nil
}

// purge removes Done machines older than keep-done.
func (s *Scheduler) purge(ctx context.Context) error {
	keep := s.cfg.Settings().KeepDone.D()
	done := &cimi.Comparison{Attr: cimi.Attribute{Path: []string{"detailedState"}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: string(machine.Done)}}
	p, err := s.cfg.Machines.Query(ctx, cimi.Query{Filter: done, First: 1, Last: 1000}, admin)
	if err != nil {
		return err
	}
	for _, d := range p.Docs {
		m, err := machine.Decode(d.Body)
		if err != nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m.StateChanged)
		if err != nil || s.cfg.Now().Sub(at) < keep {
			continue
		}
		if err := s.cfg.Machines.Delete(ctx, d.ID, d.Revision); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		ev := &cimiv1.ResourceChanged{Kind: machine.Kind, Id: d.ID, At: timestamppb.New(s.cfg.Now())}
		if err := s.cfg.Bus.Publish(ctx, subject.Event(subject.Vmctl, subject.ResourceMachine, subject.EventDeleted), ev, d.ID+".purged"); err != nil {
			s.log.Warn("cannot announce a purged machine", "machine", d.ID, "error", err)
		}
	}
	return nil
}

// SweepGrace is how old a lease must be before the sweep releases it for
// want of its machine: a create writes the lease before the machine's
// document, and a create interrupted in between is redelivered and
// finishes with the same lease within this time.
const SweepGrace = 2 * time.Minute

// sweep gives back what a crash or a lost race left held:
//   - the address leases of machines that do not exist (once SweepGrace
//     has passed since the lease was taken) or have ended (Done, Failed);
//   - a second address a live machine holds on a network, not the one it
//     uses (two replicas allocated for it at once), after SweepGrace;
//   - the host reservations of machines that do not exist or have ended,
//     and those on another host than the one a placed machine records
//     (two placements of one machine at once).
//
// A teardown releases all of these before it records the end, so that
// the sweep only finds what a crash or a race left, whatever the step.
func (s *Scheduler) sweep(ctx context.Context) error {
	now := s.cfg.Now()
	// What each machine is, read once per sweep: nil when it does not
	// exist; an unreadable document is left alone (skip).
	type found struct {
		m    *machine.Machine
		skip bool
	}
	machines := map[string]found{}
	lookup := func(uuid string) (found, error) {
		if f, ok := machines[uuid]; ok {
			return f, nil
		}
		var f found
		doc, err := s.cfg.Machines.Get(ctx, machine.ID(uuid))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return f, err
		default:
			if f.m, err = machine.Decode(doc.Body); err != nil {
				f.skip = true
			}
		}
		machines[uuid] = f
		return f, nil
	}
	held, err := s.cfg.Leases.Held(ctx)
	if err != nil {
		return err
	}
	for _, l := range held {
		f, err := lookup(l.Machine)
		if err != nil {
			return err
		}
		m := f.m
		young := now.Sub(l.Created) < SweepGrace
		var why string
		switch {
		case f.skip:
			continue
		case m == nil && !young:
			why = "the machine does not exist"
		case m == nil:
			continue
		case ended(m.DetailedState):
			why = "the machine is " + string(m.DetailedState)
		case !young && !usesAddress(m, l):
			why = "the machine uses another address"
		default:
			continue
		}
		if err := s.cfg.Leases.ReleaseOne(ctx, l); err != nil {
			return err
		}
		s.log.Warn("released a leaked address lease", "machine", l.Machine, "ip", l.IP, "network", l.Network, "reason", why)
	}

	all, err := s.cfg.Hosts.List(ctx)
	if err != nil {
		return err
	}
	for _, h := range all {
		for uuid := range h.Reservations {
			f, err := lookup(uuid)
			if err != nil {
				return err
			}
			m := f.m
			var why string
			switch {
			case f.skip:
				continue
			case m == nil:
				why = "the machine does not exist"
			case ended(m.DetailedState):
				why = "the machine is " + string(m.DetailedState)
			case m.Host != "" && m.Host != hosts.DocumentID(h.ID):
				why = "the machine is placed on " + m.Host
			default:
				continue
			}
			if err := s.cfg.Hosts.Release(ctx, h.ID, uuid); err != nil {
				return err
			}
			s.log.Warn("released a leaked host reservation", "machine", uuid, "host", h.ID, "reason", why)
		}
	}
	return nil
}

// ended reports whether a machine in state d holds nothing any more.
func ended(d machine.Detailed) bool { return d == machine.Done || d == machine.Failed }

// usesAddress reports whether lease l is one of m's interfaces.
func usesAddress(m *machine.Machine, l addresses.Lease) bool {
	for _, n := range m.Interfaces {
		if n.IP == l.IP && n.Network == string(l.Network) {
			return true
		}
	}
	return false
}
