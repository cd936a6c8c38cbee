package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// Report says what one reconciliation of the host found and did.
type Report struct {
	// Domains is how many domains the host runs or keeps defined.
	Domains int
	// Strays are domains no live machine owns; Destroyed those removed.
	Strays, Destroyed []string
	// Lost are machines shown Unknown: their domain is gone or stopped
	// while they should run.
	Lost []string
	// Back are Unknown machines shown Running again: their domain runs
	// (their host was lost and came back).
	Back []string
}

// Reconcile compares the host's domains with the machines placed on it:
// a domain whose machine does not exist, or has ended, is a stray,
// destroyed when destroyStrays is set (reported otherwise); a machine
// that should run whose domain is missing or shut off (the guest powered
// itself off) is shown Unknown, its resources kept until it is killed
// (unless this agent powered it off on request moments ago: the
// scheduler is recording the stop);
// an Unknown machine whose domain runs (its host was declared lost and
// heart-beats again) is Running again. Each change is announced as the
// scheduler announces its own.
func (a *Agent) Reconcile(ctx context.Context, destroyStrays bool) (Report, error) {
	var rep Report
	if a.cfg.Machines == nil {
		return rep, errors.New("vmctl agent: reconciling needs the Machine collection")
	}
	doms, err := a.cfg.Hypervisor.List(ctx)
	if err != nil {
		return rep, err
	}
	rep.Domains = len(doms)
	state := make(map[string]hypervisor.State, len(doms))
	for _, d := range doms {
		state[d.UUID] = d.State
		doc, err := a.cfg.Machines.Get(ctx, machine.ID(d.UUID))
		var m *machine.Machine
		if err == nil {
			m, err = machine.Decode(doc.Body)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return rep, err
		}
		if m != nil && m.DetailedState != machine.Done && m.DetailedState != machine.Failed {
			continue
		}
		rep.Strays = append(rep.Strays, d.UUID)
		if !destroyStrays {
			continue
		}
		if err := a.destroy(ctx, d.UUID, true); err != nil {
			return rep, fmt.Errorf("vmctl agent: destroy stray domain %s: %w", d.UUID, err)
		}
		rep.Destroyed = append(rep.Destroyed, d.UUID)
	}

	// Machines placed here that should run.
	onHost, err := a.machinesHere(ctx)
	if err != nil {
		return rep, err
	}
	for _, doc := range onHost {
		m, err := machine.Decode(doc.Body)
		if err != nil {
			continue
		}
		st, ok := state[m.UUID]
		list := &rep.Lost
		switch {
		case m.DetailedState == machine.Running && !ok:
			m.SetState(machine.UnknownD, "its domain is gone from host "+a.cfg.HostID, time.Now())
		case m.DetailedState == machine.Running && (st == hypervisor.Shutoff || st == hypervisor.Crashed) && !a.stoppedOnRequest(m.UUID):
			m.SetState(machine.UnknownD, "the guest stopped by itself ("+st.String()+")", time.Now())
		case m.DetailedState == machine.UnknownD && ok && st == hypervisor.Running:
			m.SetState(machine.Running, "", time.Now())
			list = &rep.Back
		default:
			continue
		}
		changed, err := a.save(ctx, m, doc.Revision)
		if err != nil {
			return rep, err
		}
		if changed {
			*list = append(*list, m.UUID)
		}
	}
	// Context disks and logs of domains that are gone.
	entries, _ := os.ReadDir(a.cfg.Dir)
	for _, e := range entries {
		if _, ok := state[e.Name()]; !ok && e.IsDir() && machine.CheckUUID(e.Name()) == nil {
			_ = os.RemoveAll(filepath.Join(a.cfg.Dir, e.Name()))
		}
	}
	return rep, nil
}

// save writes m over revision rev and announces the change, as the
// scheduler does: the document's ResourceChanged and, for billing and
// monitoring, MachineStateChanged. A conflict (someone else moved the
// machine meanwhile) is no error: the next round sees the new state.
func (a *Agent) save(ctx context.Context, m *machine.Machine, rev uint64) (bool, error) {
	m.Updated = m.StateChanged
	body, err := m.Encode()
	if err != nil {
		return false, err
	}
	if _, err := a.cfg.Machines.Put(ctx, machine.ID(m.UUID), body, rev); errors.Is(err, store.ErrConflict) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("vmctl agent: write machine %s: %w", m.UUID, err)
	}
	v := *m
	v.Command = ""
	data, _ := json.Marshal(&v)
	// The ids are those the scheduler would give a write over the same
	// revision: of two such writes only one succeeds.
	msgID := fmt.Sprintf("%s.%d", m.UUID, rev+1)
	ev := &cimiv1.ResourceChanged{Kind: machine.Kind, Id: machine.ID(m.UUID), Json: data}
	if err := a.cfg.Bus.Publish(ctx, subject.Event(subject.Vmctl, subject.ResourceMachine, subject.EventUpdated), ev, msgID); err != nil {
		a.log.Warn("cannot announce a machine's change", "machine", m.UUID, "error", err)
	}
	sc := &machinev1.MachineStateChanged{Machine: m.Proto(), ChangedAt: timestamppb.Now()}
	if err := a.cfg.Bus.Publish(ctx, subject.EvtMachineStateChanged, sc, msgID+".state"); err != nil {
		a.log.Warn("cannot announce a machine's state", "machine", m.UUID, "error", err)
	}
	return true, nil
}

// machinesHere returns the documents of the machines placed on this host.
func (a *Agent) machinesHere(ctx context.Context) ([]store.Document, error) {
	var out []store.Document
	const page = 500
	for first := 1; ; first += page {
		p, err := a.cfg.Machines.Query(ctx, hostQuery(a.cfg.HostID, first, first+page-1), adminIdentity)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Docs...)
		if len(p.Docs) < page {
			return out, nil
		}
	}
}
