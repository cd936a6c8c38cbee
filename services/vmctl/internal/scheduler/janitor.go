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
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// Run looks after machines until ctx ends: the machines of hosts that
// stopped heart-beating are shown Unknown (their resources stay held
// until they are killed, as in the original), and Done machines are
// removed once keep-done has passed. Every replica may run it: each
// change is a revision-checked write.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		lost := s.cfg.Settings().HostLostAfter.D()
		if err := s.markLost(ctx, lost); err != nil && ctx.Err() == nil {
			s.log.Warn("cannot mark the machines of lost hosts; retrying", "error", err)
		}
		if err := s.purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("cannot purge finished machines; retrying", "error", err)
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
